"""Mixed precision: bf16 autocast on the CPU (and CUDA when present), fp16 with loss scaling on CUDA only."""

from __future__ import annotations

import pytest
import torch
from cli_helpers import check_user_error, run_main

from spklip.config import preset_config
from spklip.io import load_spklip
from spklip.training import embed_clips, train
from spklip_energy.errors import ConfigError
from spklip_energy.precision import autocast, grad_scaler, resolve_precision

SETS = {"height": 32, "width": 32, "hsfe.input_pool": 1, "train.batch_size": 8, "train.pretrain_epochs": 1}


def test_resolution_and_refusals():
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "bf16"
    assert resolve_precision("auto", torch.device("cuda")) == "fp16"
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
    with pytest.raises(ConfigError, match="--precision must be one of"):
        resolve_precision("fp8", cpu)
    assert grad_scaler("bf16", cpu) is None
    with autocast("bf16", cpu):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with autocast("fp32", cpu):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


@pytest.mark.slow
@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")),
    ],
)
def test_bf16_training_follows_fp32_and_is_recorded(data, tmp_path, device):
    cfg = preset_config("tiny", {"model": "spklip", **SETS})
    full = train(cfg, data, tmp_path / "fp32", epochs=1, device=device, precision="fp32")
    half = train(cfg, data, tmp_path / "bf16", epochs=1, device=device, precision="bf16")
    a, b = full.history[0]["train_loss"], half.history[0]["train_loss"]
    assert torch.isfinite(torch.tensor(b)) and abs(a - b) <= 0.05 * abs(a), (a, b)
    loaded = load_spklip(half.checkpoint)
    assert loaded.card["train"]["precision"] == "bf16" and half.history[0]["precision"] == "bf16"
    assert all(t.dtype == torch.float32 for t in loaded.model.state_dict().values() if t.is_floating_point())
    # evaluation under bf16 autocast: the same embeddings to bf16's precision
    model, dev = loaded.model.to(device), torch.device(device)
    from spklip.data import load_splits

    _, splits = load_splits(loaded.model.cfg, data, ("test",))
    f32 = embed_clips(model, splits["test"], dev)[0]
    with autocast("bf16", dev):
        f16 = embed_clips(model, splits["test"], dev)[0]
    assert f16.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(f32, f16).min() > 0.99


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_fp16_on_cuda_uses_loss_scaling(data, tmp_path):
    cfg = preset_config("tiny", {"model": "spklip", **SETS})
    res = train(cfg, data, tmp_path / "fp16", epochs=1, device="cuda", precision="fp16")
    assert res.history[0]["precision"] == "fp16" and grad_scaler("fp16", torch.device("cuda")) is not None


def test_cli_refuses_fp16_on_the_cpu(capsys, tmp_path):
    rc, _, err = run_main(capsys, "train", "--precision", "fp16", "--out", tmp_path / "run")
    check_user_error(rc, err, "fp16", "CUDA")
    assert not (tmp_path / "run").exists()
