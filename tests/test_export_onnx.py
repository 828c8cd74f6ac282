"""ONNX export of SPKLIP checkpoints: graphs, dynamic batch, agreement with torch, CLI, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_helpers import small_checkpoint

from export import export_checkpoint
from export.spiking import lif_spec, onnx_friendly
from spklip.io import load_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy.cli import main
from spklip_energy.errors import CheckpointError, ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ann_ckpt(tmp_path_factory, data):
    return small_checkpoint(tmp_path_factory.mktemp("ann"), data, "spklip")


def _spikes(b, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).float()


def _rel(a, b):
    b = b.double().numpy()
    return float((np.abs(a - b) / np.abs(b).max(axis=1, keepdims=True)).max())


def test_ann_export_checks_and_matches_torch_at_any_batch(tmp_path, ann_ckpt, data):
    rec = export_checkpoint(ann_ckpt, tmp_path / "out", opset=17, verify=True, data=data, samples=3)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["export.json", "text.onnx", "visual.onnx"]
    for f in ("visual.onnx", "text.onnx"):
        graph = onnx.load(str(out / f))
        onnx.checker.check_model(graph)
        assert graph.opset_import[0].version == 17
        assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    loaded = load_spklip(ann_ckpt)
    loaded.model.eval()
    cfg = loaded.model.cfg
    vis = ort.InferenceSession(str(out / "visual.onnx"), providers=["CPUExecutionProvider"])
    txt = ort.InferenceSession(str(out / "text.onnx"), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        x = _spikes(b, cfg, seed=b)
        tokens = loaded.tokenizer.encode(["a digit"] * b, cfg.text.context_length).long()
        with torch.no_grad():
            want_v, want_t = loaded.model.visual(x), loaded.model.text(tokens)
        got_v = vis.run(None, {"spikes": x.numpy()})[0]
        got_t = txt.run(None, {"tokens": tokens.numpy()})[0]
        assert got_v.shape == (b, cfg.embed_dim) and got_t.shape == (b, cfg.embed_dim)
        assert _rel(got_v, want_v) <= 1e-4 and _rel(got_t, want_t) <= 1e-4
    meta = json.loads((out / "export.json").read_text())
    assert meta["kind"] == "spklip" and meta["opset"] == 17 and meta["verify"]["ok"]
    assert meta["visual"]["inputs"][0]["shape"] == ["batch", cfg.frames, 32, 32]
    assert SpikeTextTokenizer.from_json(meta["tokenizer"]).vocab_size == loaded.tokenizer.vocab_size
    assert rec["verify"]["visual"]["max_rel_error"] <= 1e-4


def test_export_lif_is_spikingjellys_lif():
    from fsve import make_lif

    lif = make_lif(v_threshold=0.5, decay=0.25)
    x = torch.rand(6, 4, 9, generator=torch.Generator().manual_seed(0))
    want = lif(x)
    assert torch.equal(lif_spec("lif", lif).run(x)[0], want)
    with onnx_friendly(torch.nn.Sequential(lif)):
        assert torch.equal(lif(x), want)
    assert "multi_step_forward" not in lif.__dict__  # restored


def test_unsupported_neuron_is_refused_by_name():
    from spikingjelly.activation_based import neuron

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), neuron.IFNode(step_mode="m"))
    with pytest.raises(CheckpointError, match=r"module x\.1 \(IFNode\)"), onnx_friendly(net, prefix="x."):
        pass


def test_fsve_full_export_is_unrolled_and_verified(tmp_path, data):
    ck = small_checkpoint(tmp_path, data, "fsve-full")
    rec = export_checkpoint(ck, tmp_path / "out", verify=True, data=data, samples=3)
    ver = rec["verify"]
    assert ver["spiking"] and ver["ok"]
    assert 0.0 <= ver["visual"]["frac_elements_over_tol"] <= 0.05, ver
    assert ver["text"]["max_rel_error"] <= 1e-4
    loaded = load_spklip(ck)
    loaded.model.eval()
    x = _spikes(3, loaded.model.cfg, seed=5)
    got = ort.InferenceSession(str(tmp_path / "out" / "visual.onnx"), providers=["CPUExecutionProvider"]).run(
        None, {"spikes": x.numpy()}
    )[0]
    with torch.no_grad():
        want = loaded.model.visual(x)
    assert got.shape == tuple(want.shape)
    assert (np.abs(got - want.numpy()) <= 1e-4 * np.abs(want.numpy()).max()).mean() >= 0.95


def test_cli_end_to_end_json(tmp_path, ann_ckpt, data, capsys):
    out = tmp_path / "cli"
    assert (
        main(
            [
                "export",
                str(ann_ckpt),
                "--format",
                "onnx",
                "--out",
                str(out),
                "--verify",
                "--data",
                str(data),
                "--samples",
                "2",
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["verify"]["ok"] and res["verify"]["clips"] == 2 and res["opset"] == 17
    assert set(res["files"]) == {"export.json", "text.onnx", "visual.onnx"}
    # existing non-empty folder: refused without --overwrite, replaced with it
    assert main(["export", str(ann_ckpt), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", str(ann_ckpt), "--out", str(out), "--overwrite", "--opset", "18", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["opset"] == 18
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers


def test_cli_verify_failure_exits_1_with_one_line(tmp_path, ann_ckpt, data, capsys, monkeypatch):
    import export.verify as verify

    monkeypatch.setattr(verify, "ANN_TOLERANCE", 0.0)  # nothing can pass
    assert (
        main(["export", str(ann_ckpt), "--out", str(tmp_path / "v"), "--verify", "--data", str(data), "--samples", "1"])
        == 1
    )
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "verification failed" in err[0]


@pytest.mark.slow
def test_bad_input_is_one_line_and_nothing_written(tmp_path, ann_ckpt):
    from spklip_energy.checkpoint import save_checkpoint
    from spklip_energy.zoo import build_model, default_card

    zoo = tmp_path / "zoo.pt"
    card = default_card("test-ann-cnn")
    save_checkpoint(zoo, build_model(card), card)
    with pytest.raises(CheckpointError, match="not a SPKLIP"):
        export_checkpoint(zoo, tmp_path / "z")
    with pytest.raises(ConfigError, match="opset"):
        export_checkpoint(ann_ckpt, tmp_path / "o", opset=9)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    afile = tmp_path / "afile"
    afile.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [
        ([str(zoo), "--out", str(tmp_path / "z")], "not a SPKLIP"),
        ([str(tmp_path / "none.pt")], "none.pt"),
        ([str(ann_ckpt), "--out", str(busy)], "not empty"),
        ([str(ann_ckpt), "--out", str(afile / "sub")], "afile"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append(([str(ann_ckpt), "--out", str(locked / "sub")], "locked"))
    try:
        for args, needle in cases:
            r = subprocess.run(
                [sys.executable, "-m", "spklip_energy.cli", "export", *args], capture_output=True, text=True
            )
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert r.returncode == 2, (args, r.stderr[-400:])
            assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
            assert needle in lines[0], lines[0]
    finally:
        locked.chmod(0o700)
    assert not (tmp_path / "z").exists() and not (tmp_path / "o").exists()
    assert sorted(p.name for p in busy.iterdir()) == ["keep.txt"] and not any(locked.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
