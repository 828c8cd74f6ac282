"""What makes training faster must not change what it computes: locked-image tuning reuses the locked
tower's features (the same training as recomputing them), spike frames are pooled as integers (the same
numbers as AvgPool2d / MaxPool2d in float), the MTF branches run fused (the same maps and gradients as
branch by branch, which still runs whenever the layers are watched or traced)."""

from __future__ import annotations

import pytest
import torch

from fsve.hsfe import SpikeMaxPool2d, SpikingHSFE, SpikingMTFBranch
from spklip import preset_config
from spklip.hsfe import HSFE, MTFBranch, SpikeAvgPool2d
from spklip.io import load_spklip
from spklip.training import LockedFeatures, train
from tests.export_helpers import SMALL


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


@pytest.mark.parametrize(
    "p, shape", [(2, (3, 5, 16, 16)), (3, (2, 4, 17, 20)), (4, (1, 2, 9, 9)), (12, (1, 1, 24, 24))]
)
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
    from spklip import build_spklip

    cfg = preset_config("tiny", {})
    model = build_spklip(cfg).eval()
    x = torch.rand(2, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0)) < 0.05
    with torch.no_grad():
        a = model.encode_spikes(x.to(torch.uint8))
        b = model.encode_spikes(x.float())
    assert torch.allclose(a, b, atol=1e-6), "uint8 spikes (integer pooling) and float spikes give one model"


@pytest.mark.parametrize("dtype, high", [(torch.uint8, 2), (torch.uint8, 256), (torch.bool, 2), (torch.int32, 1000)])
@pytest.mark.parametrize("p", [2, 3, 5])
def test_both_integer_pooling_paths_equal_float_pooling(dtype, high, p):
    """Binary uint8 sums stay in uint8, larger counts go through int16 (no overflow); bool and wider
    integers too; the mean is divided, not multiplied by 1/p^2 (exact for p = 3, 5 as well)."""
    x = torch.randint(0, high, (2, 3, 2 * p + 1, 3 * p), generator=torch.Generator().manual_seed(p)).to(dtype)
    assert torch.equal(SpikeAvgPool2d(p)(x), torch.nn.functional.avg_pool2d(x.float(), p))
    assert torch.equal(SpikeMaxPool2d(p)(x), torch.nn.functional.max_pool2d(x.float(), p))
    assert SpikeMaxPool2d(p)(x).dtype == torch.float32


def _grads(module, x):
    module.zero_grad(set_to_none=True)
    out = module(x)
    (out.float() * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
    return out.detach(), {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


def _front_end(spiking: bool, overrides: dict):
    cfg = preset_config("tiny", {"model": "fsve-full" if spiking else "spklip", **overrides})
    torch.manual_seed(0)
    module = SpikingHSFE(cfg) if spiking else HSFE(cfg.hsfe)
    with torch.no_grad():  # masks and biases away from their initial values, as after training
        for name, param in module.named_parameters():
            if name.endswith(("mask", "conv1.bias")):
                param.add_(torch.randn(param.shape) * 0.3)
    blocks = torch.rand(6, cfg.hsfe.block_frames(), 16, 16, generator=torch.Generator().manual_seed(1)) < 0.15
    return module.train(), blocks.to(torch.uint8)


@pytest.mark.parametrize(
    "spiking, overrides",
    [
        (False, {}),
        (False, {"hsfe.slicing": False}),
        (False, {"hsfe.input_pool": 1, "hsfe.branches": 2}),
        (True, {}),
        (True, {"fsve.hsfe_encoding": "repeat"}),
        (True, {"fsve.time_steps": 4, "hsfe.slicing": False}),
    ],
)
def test_fused_branches_compute_what_the_branches_compute(spiking, overrides, monkeypatch):
    module, blocks = _front_end(spiking, overrides)
    branch_type = SpikingMTFBranch if spiking else MTFBranch
    calls = {"n": 0}
    real = branch_type.forward

    def counted(self, x):
        calls["n"] += 1
        return real(self, x)

    monkeypatch.setattr(branch_type, "forward", counted)
    fused, fused_grads = _grads(module, blocks)
    assert calls["n"] == 0, "unwatched branches run fused"
    handle = module.branches[0].conv1.register_forward_hook(lambda *args: None)  # a watcher: the profiler
    written, written_grads = _grads(module, blocks)
    handle.remove()
    assert calls["n"] == len(module.branches), "watched branches run one by one, as written"
    assert fused.shape == written.shape
    if spiking:  # spikes: equal but where a membrane sits within rounding of the threshold
        assert (fused != written).float().mean() < 1e-3
    else:
        assert torch.allclose(fused, written, rtol=1e-5, atol=1e-5)
    assert fused_grads.keys() == written_grads.keys()
    for name, g in written_grads.items():
        if spiking and name.endswith("conv1.bias"):
            continue  # a tdBN follows: its gradient is zero up to rounding, noise either way
        scale = g.abs().max() + 1e-12
        assert (fused_grads[name] - g).abs().max() / scale < 1e-3, name


class _MTF(torch.nn.Module):
    def __init__(self, hsfe):
        super().__init__()
        self.hsfe = hsfe

    def forward(self, x):
        return self.hsfe.mtf(x)


def test_traced_branches_show_every_branch():
    module, blocks = _front_end(False, {})
    graph = torch.fx.symbolic_trace(_MTF(module)).graph
    called = {str(n.target) for n in graph.nodes if n.op == "call_module"}
    assert {f"hsfe.branches.{k}.conv2" for k in range(len(module.branches))} <= called
