"""The ANN SPKLIP baseline: shapes, ablation switches, training/resume, evaluation, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from energy import profile
from spklip import build_spklip, preset_config
from spklip.hsfe import block_indices, temporal_blocks
from spklip.metrics import retrieval_recall, topk_accuracy
from spklip.training import train
from spklip_energy.cli import main
from spklip_energy.errors import ConfigError

# a 32x32 variant of tiny that fits the small test dataset
SMALL = {"height": 32, "width": 32, "hsfe.input_pool": 1, "train.batch_size": 8, "train.pretrain_epochs": 1}


def _spikes(b, cfg, p=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, cfg.frames, cfg.height, cfg.width, generator=g) < p).to(torch.uint8)


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_forward_shapes_small_presets(preset):
    cfg = preset_config(preset)
    m = build_spklip(cfg).eval()
    tokens = torch.zeros(2, cfg.text.context_length, dtype=torch.long)
    tokens[:, :3] = torch.tensor([1, 7, 2])
    with torch.no_grad():
        out = m(_spikes(2, cfg), tokens)
    assert out.spike_features.shape == (2, cfg.embed_dim)
    assert out.text_features.shape == (2, cfg.embed_dim)
    assert torch.isfinite(out.spike_features).all() and out.logit_scale.ndim == 0


@pytest.mark.parametrize("preset", ["reference", "paper"])
def test_large_presets_build_with_their_sizes(preset):
    cfg = preset_config(preset)
    assert (cfg.frames, cfg.height, cfg.width, cfg.embed_dim) == (250, 240, 320, 256)
    small = preset_config(preset, {"height": 128, "width": 128, "hsfe.features": 8, "hsfe.trunk_blocks": 1})
    m = build_spklip(small).eval()
    with torch.no_grad():
        assert m.encode_spikes(_spikes(1, small)).shape == (1, 256)
    expected_branches = 4 if preset == "reference" else 5
    assert len(m.visual.hsfe.branches) == expected_branches
    assert m.text.style == ("clip" if preset == "reference" else "bert")


@pytest.mark.slow
def test_reference_preset_forward_batch_one():
    cfg = preset_config("reference")
    m = build_spklip(cfg).eval()
    with torch.no_grad():
        out = m.encode_spikes(_spikes(1, cfg, p=0.02))
    assert out.shape == (1, 256) and torch.isfinite(out).all()


def test_blocks_are_the_papers_windows():
    cfg = preset_config("reference").hsfe
    idx = block_indices(cfg)
    assert idx.shape == (5, 61)
    assert idx[:, 30].tolist() == [30, 75, 120, 165, 210]  # block centres
    x = torch.arange(250).view(1, 250, 1, 1).expand(2, 250, 3, 3)
    blocks = temporal_blocks(x, cfg)
    assert blocks.shape == (10, 61, 3, 3)
    assert blocks[6, :, 0, 0].tolist() == list(range(45, 106))  # clip 1, block 1


def test_wrong_spike_shape_is_one_clear_error():
    cfg = preset_config("tiny")
    m = build_spklip(cfg)
    from spklip_energy.errors import MediaError

    with pytest.raises(MediaError, match=r"\[B, 250, 64, 64\]"):
        m.encode_spikes(torch.zeros(1, 250, 32, 32, dtype=torch.uint8))


# --------------------------------------------------------------------------- ablation switches


def _params(cfg):
    return sum(p.numel() for p in build_spklip(cfg).visual.parameters())


def _macs(cfg):
    m = build_spklip(cfg).eval()
    return profile(m.visual, _spikes(1, cfg)).totals["macs"]


def test_ablation_switches_change_parameters_and_compute():
    base = preset_config("tiny")
    # SA off removes its two convolutions
    no_sa = preset_config("tiny", {"hsfe.sa": False})
    sa = build_spklip(base).visual.hsfe.sa
    assert _params(base) - _params(no_sa) == sum(p.numel() for p in sa.parameters())
    # photon-conservation slicing: branch k sees 61 - 2k frames; without it, all 61
    no_slice = preset_config("tiny", {"hsfe.slicing": False})
    extra = sum((61 - (61 - 2 * k)) * (base.hsfe.branch_width * 9 + 1) for k in range(4))
    assert _params(no_slice) - _params(base) == extra
    # 3 blocks: the HSFE and STAR-Net run on 3/5 of the blocks
    three = preset_config("tiny", {"hsfe.n_blocks": 3, "hsfe.window_step": 90})
    ratio = _macs(three) / _macs(base)
    assert 0.55 < ratio < 0.65, f"expected about 3/5 of the MACs, found {ratio:.3f}"
    # STAR-Net off: pooling + linear per block instead of MAPResNet + Transformer
    no_star = preset_config("tiny", {"starnet.enabled": False})
    assert _params(no_star) < _params(base) and _macs(no_star) < _macs(base)


def test_unknown_override_and_bad_values():
    with pytest.raises(ConfigError, match="hsfe.nope"):
        preset_config("tiny", {"hsfe.nope": 1})
    with pytest.raises(ConfigError, match="preset"):
        preset_config("huge")
    with pytest.raises(ConfigError, match="need 331 frames"):
        preset_config("tiny", {"hsfe.n_blocks": 7})
    with pytest.raises(ConfigError, match="true or false"):
        preset_config("tiny", {"hsfe.sa": "maybe"})
    with pytest.raises(ConfigError, match="too small for STAR-Net"):
        preset_config("paper", {"height": 64, "width": 64})


# --------------------------------------------------------------------------- metrics on known answers


def test_topk_and_retrieval_on_hand_made_similarities():
    sim = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.8, 0.7]])
    labels = torch.tensor([0, 1, 2])
    acc = topk_accuracy(sim, labels, (1, 2))
    assert acc["top1"] == pytest.approx(1 / 3) and acc["top2"] == pytest.approx(1.0)
    # rows are caption queries, columns clips: query 0 ranks its clip first, query 1 third, query 2 second
    q = torch.tensor([[0.9, 0.1, 0.0], [0.3, 0.1, 0.5], [0.1, 0.8, 0.7]])
    rec = retrieval_recall(q, ["a", "b", "c"], (1, 2, 3))
    assert rec == {"R@1": pytest.approx(1 / 3), "R@2": pytest.approx(2 / 3), "R@3": pytest.approx(1.0)}
    # identical captions are equally correct answers: clips 1 and 2 both answer "x"
    assert retrieval_recall(q, ["a", "x", "x"], (1,))["R@1"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- training and resume


def _weights(path):
    from spklip.io import load_spklip, model_state

    return model_state(load_spklip(path).checkpoint)


@pytest.mark.slow
def test_resume_after_interruption_equals_straight_run(tmp_path, data):
    cfg = preset_config("tiny", SMALL)
    straight = train(cfg, data, tmp_path / "a", epochs=2)

    class Crash(Exception):
        pass

    def crash_in_epoch_two(p):
        if p["epoch"] == 2 and p["step"] == 1:
            raise Crash

    with pytest.raises(Crash):
        train(cfg, data, tmp_path / "b", epochs=2, progress=crash_in_epoch_two)
    partial = json.loads((tmp_path / "b" / "metrics.jsonl").read_text().splitlines()[-1])
    assert partial["epoch"] == 1
    resumed = train(cfg, data, tmp_path / "b", epochs=2, resume=True)
    assert resumed.resumed_from_epoch == 1
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert (tmp_path / "b" / "curves.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_cli_train_eval_report_adapt(tmp_path, data, capsys):
    run = tmp_path / "run"
    sets = sum((["--set", f"{k}={v}"] for k, v in SMALL.items()), [])
    assert (
        main(["train", "--preset", "tiny", *sets, "--data", str(data), "--epochs", "1", "--out", str(run), "--json"])
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    ck = res["checkpoint"]
    assert res["history"][0]["epoch"] == 1
    assert main(["eval", ck, "--data", str(data), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert 0 <= ev["top1"] <= 1 and ev["clips"] == 8 * 1 and "R@5" in ev
    from spklip_energy.checkpoint import load_checkpoint

    assert load_checkpoint(ck).card["eval"]["top1"] == ev["top1"]
    out = tmp_path / "rep"
    assert main(["report", ck, "--data", str(data), "--samples", "2", "--out", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["checkpoint"]["kind"] == "spklip" and rep["counts"]["macs"] > 0
    assert rep["not_counted"] == [] and rep["accuracy"] == ev["top1"]
    assert (
        main(
            ["adapt", ck, "--data", str(data), "--shots", "1", "--epochs", "1", "--out", str(tmp_path / "ad"), "--json"]
        )
        == 0
    )
    ad = json.loads(capsys.readouterr().out)
    assert ad["results"][0]["shots"] == 1
    assert all(m.startswith("visual.starnet.temporal.layers.") for m in ad["trainable_modules"])


def _run(*args):
    return subprocess.run([sys.executable, "-m", "spklip_energy.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_bad_input(tmp_path, data):
    from spklip_energy.checkpoint import save_checkpoint
    from spklip_energy.zoo import build_model, default_card

    zoo = tmp_path / "zoo.pt"
    card = default_card("test-ann-cnn")
    save_checkpoint(zoo, build_model(card), card)
    cases = [
        (["train", "--preset", "huge", "--data", str(data), "--out", str(tmp_path / "r1")], "huge"),
        (["train", "--set", "hsfe.nope=1", "--data", str(data), "--out", str(tmp_path / "r2")], "hsfe.nope"),
        (["train", "--data", str(data), "--out", str(tmp_path / "r3")], "64x64"),
        (["eval", str(zoo), "--data", str(data)], "not a SPKLIP"),
        (["eval", str(tmp_path / "none.pt")], "none.pt"),
    ]
    for args, needle in cases:
        r = _run(*args)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, f"{args}: expected exit 2, found {r.returncode}: {r.stderr[-400:]}"
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert needle in lines[0], f"expected {needle!r} in {lines[0]!r}"
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r3" / "last.pt").exists()


@pytest.mark.slow
def test_pretrain_then_locked_visual_trains_only_the_text_side(tmp_path, data):
    from spklip.io import load_spklip
    from spklip_energy.checkpoint import load_checkpoint

    cfg = preset_config(
        "tiny",
        {
            **SMALL,
            "train.pretrain_epochs": 1,
            "train.lock_visual": True,
            "train.augment": "flip",
            "train.class_loss": 1.0,
        },
    )
    res = train(cfg, data, tmp_path / "run", epochs=1)
    card = load_checkpoint(res.checkpoint).card
    pre = card["pretrain"]
    assert pre["epochs"] == 1 and 0.0 <= pre["history"][0]["val_top1"] <= 1.0
    trained = load_spklip(res.checkpoint).model
    fresh = build_spklip(cfg)
    # pre-training moved the visual encoder, the contrastive stage the text tower
    vis_changed = any(
        not torch.equal(a, b)
        for a, b in zip(trained.visual.state_dict().values(), fresh.visual.state_dict().values(), strict=True)
    )
    txt_changed = any(
        not torch.equal(a, b)
        for a, b in zip(trained.text.state_dict().values(), fresh.text.state_dict().values(), strict=True)
    )
    assert vis_changed and txt_changed
    # resuming the locked stage leaves the visual encoder exactly as pre-training left it
    res2 = train(cfg, data, tmp_path / "run", epochs=2, resume=True)
    again = load_spklip(res2.checkpoint).model
    for (name, a), b in zip(trained.visual.state_dict().items(), again.visual.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} changed while locked"
    assert any(
        not torch.equal(a, b)
        for a, b in zip(trained.text.state_dict().values(), again.text.state_dict().values(), strict=True)
    )
    assert load_checkpoint(res2.checkpoint).card["pretrain"] == pre
