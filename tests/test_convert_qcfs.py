"""Conversion-aware methods (convert.qcfs, .neurons, .biascal) and the convert verb's new options."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import neuron as sj_neuron

from convert import apply_conversion, convert_module, convert_spklip, converted_runs
from convert.biascal import calibrate_bias
from convert.neurons import ConvertedIF
from convert.qcfs import QCFS, quantize_activations, to_relu
from convert.structure import _subnet
from convert.sweep import sweep_steps
from spikedata.digits import DigitsConfig, generate_digits
from spklip import build_spklip, preset_config
from spklip_energy.checkpoint import load_checkpoint
from spklip_energy.cli import main

TINY = {
    "height": 32,
    "width": 32,
    "hsfe.input_pool": 2,
    "hsfe.n_blocks": 2,
    "train.batch_size": 8,
    "train.pretrain_epochs": 1,
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(seed=1, n=16):
    return torch.randn(n, 2, 8, 8, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- the quantized activation


def test_qcfs_is_the_clip_floor_shift_formula_with_a_straight_through_gradient():
    q = QCFS(4, 2.0)
    x = torch.tensor([-1.0, 0.0, 0.24, 0.26, 0.74, 0.76, 1.0, 1.9, 2.5, 9.0], requires_grad=True)
    y = q(x)
    # lambda/L * clip(floor(x L / lambda + 1/2), 0, L) with lambda = 2, L = 4: steps of 0.5, rounding at 0.25
    assert y.tolist() == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0, 1.0, 2.0, 2.0, 2.0]
    y.sum().backward()
    assert x.grad[3] == pytest.approx(1.0) and x.grad[0] == 0 and x.grad[-1] == 0  # identity inside the clip
    assert q.threshold.grad is not None and torch.isfinite(q.threshold.grad)
    with pytest.raises(ValueError):
        QCFS(4, float("nan"))


@pytest.mark.parametrize("levels", [2, 4, 8])
def test_if_with_half_threshold_start_reproduces_the_quantized_relu_exactly_at_t_equals_l(levels):
    torch.manual_seed(levels)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU())
    x = _x()
    quantize_activations(net, [net], levels, [x], net, 99.0)
    with torch.no_grad():
        want = net(x)
    to_relu([net])
    snn = convert_module(net, [x], timesteps=levels, method="qcfs")
    with torch.no_grad():
        got = snn(x)
    assert want.unique().numel() > 2  # several levels are in use
    assert torch.allclose(got, want, atol=1e-6), (got - want).abs().max()
    # the same network starting at zero membrane floors instead of rounding: not exact
    zero = convert_module(net, [x], timesteps=levels, method="qcfs", v_init=0.0)
    with torch.no_grad():
        assert (zero(x) - want).abs().max() > 1e-3


def test_converted_if_hand_case_counts_and_bias_current():
    n = ConvertedIF(v_init=0.5)
    x = torch.tensor([[0.0, 0.1, 0.3, 0.5, 0.7, 1.2]])
    t, total = 4, torch.zeros_like(x)
    for _ in range(t):
        total += n(x)
    # spikes after T steps of a constant current x (threshold 1): clip(floor(T x + 1/2), 0, T)
    assert total.tolist() == [[0.0, 0.0, 1.0, 2.0, 3.0, 4.0]]
    n.reset()
    assert float(n.v) == 0.5  # back to half the threshold
    b = ConvertedIF(v_init=0.0, channels=2)
    b.bias.copy_(torch.tensor([0.25, 0.0]))
    z = torch.zeros(1, 2, 1, 1)
    assert sum(float(b(z)[0, 0]) for _ in range(8)) == 2.0  # a bias current of 1/4 fires every 4th step
    assert "per-channel" in repr(b)


def test_bias_calibration_moves_mean_outputs_onto_the_ann():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
        nn.ReLU(),
    ).eval()
    x = _x(n=32)
    with torch.no_grad():
        ann_mean = net(x).mean(dim=(0, 2, 3))
    run = convert_module(net, [x], timesteps=3, method="max", bias=True)
    holder = nn.Sequential(run)
    with torch.no_grad():
        before = (holder(x).mean(dim=(0, 2, 3)) - ann_mean).abs().mean()
    rec = calibrate_bias(net, holder, [[net]], [x], lambda m, b: m(b))
    with torch.no_grad():
        after = (holder(x).mean(dim=(0, 2, 3)) - ann_mean).abs().mean()
    assert rec["layers"] == 3 and rec["calibrated"] and rec["timesteps"] == 3
    assert after < 0.5 * before, (before, after)
    assert any(m.bias.abs().sum() > 0 for m in run.modules() if isinstance(m, ConvertedIF))


def test_bias_calibration_refuses_neurons_without_bias():
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU()).eval()
    run = convert_module(net, [_x()], timesteps=2)
    with pytest.raises(ValueError, match="bias currents"):
        calibrate_bias(net, nn.Sequential(run), [[net]], [_x()], lambda m, b: m(b))


# --------------------------------------------------------------------------- SPKLIP records


@pytest.fixture(scope="module")
def tiny():
    cfg = preset_config("tiny", TINY)
    return cfg, build_spklip(cfg).eval()


def _spikes(b, cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, cfg.frames, cfg.height, cfg.width, generator=g) < 0.1).to(torch.uint8)


def test_qcfs_conversion_with_bias_round_trips_through_its_record(tiny):
    cfg, ann = tiny
    import copy

    q = copy.deepcopy(ann)
    clips = [_spikes(2, cfg, seed=1)]
    units = [_subnet(q, ["stem", "layer1"])]
    made = quantize_activations(q, units, 4, clips, q.encode_spikes, 99.9)
    assert len(made) == 3 + 3 * cfg.starnet.blocks[0] if hasattr(cfg.starnet, "blocks") else len(made) > 3
    to_relu(units)
    conv, spec = convert_spklip(q, "stem,layer1", 4, clips, "qcfs", bias=True)
    assert spec["method"] == "qcfs" and spec["v_init"] == 0.5 and spec["format"] == 2
    neurons = [m for m in conv.modules() if isinstance(m, ConvertedIF)]
    assert len(neurons) == len(made) and all(n.bias.numel() > 0 for n in neurons)
    with torch.no_grad():
        neurons[0].bias.fill_(0.01)  # a calibrated current travels in the state dict
    spec = json.loads(json.dumps(spec))
    fresh = apply_conversion(build_spklip(cfg, seed=3), spec)
    fresh.load_state_dict(conv.state_dict(), strict=True)
    x = _spikes(2, cfg, seed=4)
    with torch.no_grad():
        assert torch.equal(fresh.eval().encode_spikes(x), conv.encode_spikes(x))


def test_records_of_format_1_still_build_their_legacy_neurons(tiny):
    cfg, ann = tiny
    _, spec = convert_spklip(ann, "layer2", 2, [_spikes(2, cfg)], "robust")
    legacy = {k: v for k, v in spec.items() if k not in ("v_init", "bias_calibration")} | {"format": 1}
    model = apply_conversion(build_spklip(cfg), legacy)
    kinds = {type(m) for m in converted_runs(model)[0].modules() if isinstance(m, sj_neuron.BaseNode)}
    assert kinds == {sj_neuron.HalfThresholdIFNode}
    with pytest.raises(ValueError, match="format 2"):
        apply_conversion(build_spklip(cfg), legacy | {"method": "qcfs"})


def test_layer_sweep_adds_one_unit_at_a_time():
    assert sweep_steps(["stem", "layer1", "layer2"]) == [["stem"], ["stem", "layer1"], ["stem", "layer1", "layer2"]]
    assert sweep_steps(["hsfe", "stem", "layer1", "layer2", "layer3", "layer4"])[-2:] == [
        ["stem", "layer1", "layer2", "layer3", "layer4"],
        ["stem", "layer1", "layer2", "layer3", "layer4", "hsfe"],
    ]


# --------------------------------------------------------------------------- the verb


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("qcfs")
    data = generate_digits(root / "digits", DigitsConfig(clips_per_class=3, height=32, width=32, frames=250))
    sets = sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])
    assert (
        main(["train", "--preset", "tiny", *sets, "--data", str(data), "--epochs", "1", "--out", str(root / "run")])
        == 0
    )
    return data, root / "run" / "last.pt"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _code(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.slow
def test_cli_qcfs_sweep_layers_then_eval_report_export(trained, tmp_path, capsys):
    data, ann = trained
    capsys.readouterr()
    out = tmp_path / "q.pt"
    assert (
        main(
            [
                "convert",
                str(ann),
                "--layers",
                "stem,layer1",
                "--method",
                "qcfs",
                "--levels",
                "2",
                "--finetune-epochs",
                "1",
                "--bias-calib",
                "--sweep-layers",
                "--timesteps",
                "1,2",
                "--calib",
                "4",
                "--samples",
                "2",
                "--models",
                "paper,lemaire-sj",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    labels = [r["label"] for r in res["rows"]]
    assert labels == ["ANN", "QCFS ANN (L=2)", "T=1", "T=2"]
    assert [r["label"] for r in res["layer_rows"]] == ["stem", "stem+layer1"]
    for r in res["rows"] + res["layer_rows"]:
        lo, hi = r["top1_ci"]
        assert 0 <= lo <= r["top1"] <= hi <= 1 and r["total_j"] > 0
        assert set(r["models"]) == {"paper", "lemaire-sj"} and r["models"]["paper"][0] == pytest.approx(r["total_j"])
    t1, t2 = res["rows"][2:]
    assert t2["neuron_updates"] == pytest.approx(2 * t1["neuron_updates"])
    assert res["layer_rows"][-1]["top1"] == t2["top1"]  # the full selection at the kept T is the T=2 model
    assert res["layer_rows"][0]["neuron_updates"] < res["layer_rows"][1]["neuron_updates"]
    card = load_checkpoint(out).card
    spec = card["conversion"]
    assert spec["method"] == "qcfs" and spec["qcfs"]["levels"] == 2 and spec["qcfs"]["finetune"]["epochs"] == 1
    assert spec["bias_calibration"]["calibrated"] and spec["bias_calibration"]["timesteps"] == 2
    assert card["eval"]["top1"] == t2["top1"]
    assert main(["eval", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["top1"] == pytest.approx(t2["top1"])
    assert (
        main(["report", str(out), "--data", str(data), "--samples", "2", "--out", str(tmp_path / "rep"), "--json"]) == 0
    )
    rep = json.loads(capsys.readouterr().out)
    assert rep["counts"]["neuron_updates"] > 0 and rep["not_counted"] == []
    # ONNX: the T-step loop unrolled, soft-reset IF with θ/2 start and bias currents, checked by onnxruntime
    assert (
        main(
            [
                "export",
                str(out),
                "--format",
                "onnx",
                "--out",
                str(tmp_path / "onnx"),
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
    exp = json.loads(capsys.readouterr().out)
    assert exp["verify"]["visual"]["max_rel_error"] < 1e-3 and exp["visual"]["time_steps"] == 2
    # NIR has no subtractive reset: refused with one line
    assert main(["export", str(out), "--format", "nir", "--out", str(tmp_path / "nir")]) == 2
    assert "reset by subtraction" in _error_line(capsys)


def test_cli_bad_conversion_options_are_one_line(trained, tmp_path, capsys):
    data, ann = trained
    capsys.readouterr()
    c = str(tmp_path / "c.pt")
    assert _code(["convert", str(ann), "--layers", "cnn", "--method", "snn-magic", "--out", c]) == 2
    assert "--method" in capsys.readouterr().err
    assert main(["convert", str(ann), "--layers", "cnn", "--finetune-epochs", "2", "--out", c]) == 2
    assert "--finetune-epochs applies to --method qcfs only" in _error_line(capsys)
    assert main(["convert", str(ann), "--layers", "cnn", "--levels", "4", "--method", "robust", "--out", c]) == 2
    assert "--levels" in _error_line(capsys)
    assert main(["convert", str(ann), "--layers", "cnn", "--method", "qcfs", "--levels", "100000", "--out", c]) == 2
    assert "--levels 100000" in _error_line(capsys)
    assert (
        _code(["convert", str(ann), "--layers", "cnn", "--method", "qcfs", "--finetune-epochs", "-1", "--out", c]) == 2
    )
    assert "--finetune-epochs" in capsys.readouterr().err
    assert main(["convert", str(ann), "--layers", "cnn", "--models", "lemaire", "--out", c]) == 2
    assert "lemaire" in _error_line(capsys)
    test_only = data / "test_only_qcfs.jsonl"  # beside the clips it names
    test_only.write_text(
        "".join(
            ln + "\n" for ln in (data / "manifest.jsonl").read_text().splitlines() if json.loads(ln)["split"] != "train"
        )
    )
    assert (
        main(
            [
                "convert",
                str(ann),
                "--layers",
                "cnn",
                "--method",
                "qcfs",
                "--finetune-epochs",
                "1",
                "--data",
                str(test_only),
                "--out",
                c,
            ]
        )
        == 2
    )
    assert "--finetune-epochs needs training clips" in _error_line(capsys)
    assert not (tmp_path / "c.pt").exists()
