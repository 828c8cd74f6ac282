"""What makes training faster must not change what it computes: locked-image tuning reuses the locked
tower's features (the same training as recomputing them), spike frames are pooled as integers (the same
numbers as AvgPool2d in float)."""

from __future__ import annotations

import pytest
import torch

from spklip_energy.model import preset_config
from spklip_energy.model.hsfe import SpikeAvgPool2d
from spklip_energy.model.io import load_spklip
from spklip_energy.model.training import LockedFeatures, train
from tests.export_helpers import SMALL, small_digits


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return small_digits(tmp_path_factory.mktemp("locked") / "data")


def _recompute(self, spikes, keys):  # the reference: a forward pass for every clip, every time
    with torch.no_grad():
        self.computed += len(keys)
        return self.model.encode_spikes(spikes.to(self.device))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["spklip", "fsve-hybrid"])
def test_cached_features_train_the_same_model(data, tmp_path, monkeypatch, model):
    cfg = preset_config("tiny", {**SMALL, "model": model, "train.epochs": 3, "train.pretrain_epochs": 1})
    assert cfg.train.lock_visual and cfg.train.augment == "flip"
    calls = {"cached": 0}
    real_call = LockedFeatures.__call__

    def counting(self, spikes, keys):
        out = real_call(self, spikes, keys)
        calls["cached"], calls["stored"] = self.computed, len(self.store)
        calls["lookups"] = calls.get("lookups", 0) + len(keys)
        return out

    monkeypatch.setattr(LockedFeatures, "__call__", counting)
    cached = train(cfg, data, tmp_path / "cached")
    monkeypatch.setattr(LockedFeatures, "__call__", _recompute)
    plain = train(cfg, data, tmp_path / "plain")
    a, b = load_spklip(cached.checkpoint).model.state_dict(), load_spklip(plain.checkpoint).model.state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), f"{k} differs"
    for h1, h2 in zip(cached.history, plain.history, strict=True):
        assert h1["val_top1"] == h2["val_top1"] and h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-4)
        if model != "spklip":
            assert h1["firing_rates"] == pytest.approx(h2["firing_rates"])
    train_clips = 8  # 1 per class and split; each clip has at most 4 flip states
    assert calls["lookups"] == 3 * train_clips, "every clip of every epoch gets its features"
    assert calls["cached"] == calls["stored"] <= 4 * train_clips, "features are computed once per clip and state"


@pytest.mark.parametrize("p, shape", [(2, (3, 5, 16, 16)), (3, (2, 4, 17, 20)), (4, (1, 2, 9, 9)), (12, (1, 1, 24, 24))])
def test_integer_pooling_equals_float_avgpool(p, shape):
    g = torch.Generator().manual_seed(p)
    x = (torch.rand(shape, generator=g) < 0.3).to(torch.uint8)
    x[0, 0, 0, :] = 255 if p <= 11 else 1  # any uint8 value, not only spikes
    ref = torch.nn.functional.avg_pool2d(x.float(), p)
    out = SpikeAvgPool2d(p)(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert torch.equal(out, ref)
    assert torch.equal(SpikeAvgPool2d(p)(x.float()), ref), "float input takes AvgPool2d's own path"


def test_visual_encoder_same_features_for_uint8_and_float_spikes():
    from spklip_energy.model import build_spklip

    cfg = preset_config("tiny", {})
    model = build_spklip(cfg).eval()
    x = (torch.rand(2, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0)) < 0.05)
    with torch.no_grad():
        a = model.encode_spikes(x.to(torch.uint8))
        b = model.encode_spikes(x.float())
    assert torch.allclose(a, b, atol=1e-6), "uint8 spikes (integer pooling) and float spikes give one model"
