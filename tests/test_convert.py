"""ANN-to-SNN conversion (convert): rate coding, reset, round trip, energy, the convert verb."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based.neuron import BaseNode

from convert import (
    ConversionError,
    RateCoded,
    apply_conversion,
    convert_module,
    convert_spklip,
    converted_runs,
    parse_layers,
    runs,
    set_timesteps,
)
from convert.ratecode import EventAvgPool2d, EventConv2d
from convert.sweep import convert_checkpoint
from energy import profile
from spklip import build_spklip, preset_config
from spklip.io import load_spklip, save_spklip
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy.checkpoint import load_checkpoint, save_checkpoint
from spklip_energy.cli import main
from spklip_energy.errors import CheckpointError, ConfigError
from spklip_energy.stats import accuracy_summary

# the tiny preset on 32x32 clips, HSFE features at 16x16, two temporal blocks
TINY = {
    "height": 32,
    "width": 32,
    "hsfe.input_pool": 2,
    "hsfe.n_blocks": 2,
    "train.batch_size": 8,
    "train.pretrain_epochs": 1,
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _spikes(b, cfg, p=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, cfg.frames, cfg.height, cfg.width, generator=g) < p).to(torch.uint8)


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 1),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
        nn.ReLU(),
    )
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.1, 0.3)
    return net.eval()


def _x(seed=1):
    return torch.rand(16, 2, 8, 8, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- names and runs


def test_layer_names_groups_and_runs():
    assert parse_layers("cnn") == ["stem", "layer1", "layer2", "layer3", "layer4"]
    assert parse_layers("all") == ["hsfe", "stem", "layer1", "layer2", "layer3", "layer4"]
    assert parse_layers("layer3, stem,layer1") == ["stem", "layer1", "layer3"]
    assert runs(["stem", "layer1", "layer3"]) == [["stem", "layer1"], ["layer3"]]
    assert runs(parse_layers("all")) == [parse_layers("all")]
    with pytest.raises(ConversionError, match="valid names: hsfe, stem, layer1.*cnn, all"):
        parse_layers("stem,attnpool")
    # a model without STAR-Net has only its HSFE trunk
    assert parse_layers("all", starnet_enabled=False) == ["hsfe"]
    with pytest.raises(ConversionError, match="starnet.enabled=false.*stem"):
        parse_layers("stem", starnet_enabled=False)


# --------------------------------------------------------------------------- rate coding


def test_error_shrinks_with_timesteps():
    cnn, x = _cnn(), _x()
    with torch.no_grad():
        ref = cnn(x)
        snn = convert_module(cnn, [x], timesteps=4)
        errs = {}
        for t in (4, 16, 64):
            set_timesteps(snn, t)
            out = snn(x)
            assert out.shape == ref.shape
            errs[t] = float((out - ref).abs().mean())
    scale = float(ref.abs().mean())
    assert errs[4] > errs[16] > errs[64], errs
    assert errs[64] < 0.05 * scale, (errs, scale)
    assert not any(isinstance(m, nn.ReLU) for m in snn.modules())  # every ReLU became an IF neuron
    assert sum(isinstance(m, BaseNode) for m in snn.modules()) == 3


def test_wrapper_resets_between_calls():
    cnn, x = _cnn(), _x()
    snn = convert_module(cnn, [x], timesteps=8)
    with torch.no_grad():
        first = snn(x)
        snn(_x(seed=7) * 3)  # a different sample in between
        again = snn(x)
    assert torch.equal(first, again)
    for m in snn.modules():
        if isinstance(m, BaseNode):
            assert isinstance(m.v, float) and m.v == 0.0  # reset after the call, nothing kept


def test_methods_convert_and_percentile_is_checked():
    cnn, x = _cnn(), _x()
    with torch.no_grad():
        ref = cnn(x)
        for method in ("percentile", "robust"):
            out = convert_module(cnn, [x], timesteps=64, method=method)(x)
            assert float((out - ref).abs().mean()) < 0.1 * float(ref.abs().mean()), method
    with pytest.raises(ValueError, match="percentile"):
        convert_module(cnn, [x], timesteps=4, method="percentile", percentile=120)
    with pytest.raises(ValueError, match="unknown method"):
        convert_module(cnn, [x], timesteps=4, method="mean")


# --------------------------------------------------------------------------- SPKLIP


@pytest.fixture(scope="module")
def tiny():
    cfg = preset_config("tiny", TINY)
    return cfg, build_spklip(cfg).eval()


@pytest.mark.parametrize("layers,method", [("all", "robust"), ("stem,layer2", "percentile")])
def test_apply_conversion_round_trip(tiny, layers, method):
    cfg, ann = tiny
    clips = [_spikes(2, cfg, seed=1), _spikes(2, cfg, seed=2)]
    x = _spikes(2, cfg, seed=3)
    conv, spec = convert_spklip(ann, layers, 4, clips, method)
    assert spec["calib_clips"] == 4 and spec["method"] == method and spec["timesteps"] == 4
    assert len(converted_runs(conv)) == len(runs(parse_layers(layers)))
    assert not converted_runs(ann)  # the input model is left as it was
    spec = json.loads(json.dumps(spec))  # what the card stores
    fresh = apply_conversion(build_spklip(cfg, seed=5), spec)
    fresh.load_state_dict(conv.state_dict(), strict=True)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh.encode_spikes(x), conv.encode_spikes(x))


def test_converted_spklip_converges_to_ann(tiny):
    cfg, ann = tiny
    x = _spikes(2, cfg, seed=3)
    conv, _ = convert_spklip(ann, "all", 2, [_spikes(4, cfg, seed=1)], "max")
    with torch.no_grad():
        ref = ann.encode_spikes(x)
        low = float((conv.encode_spikes(x) - ref).abs().mean())
        set_timesteps(conv, 32)
        high = float((conv.encode_spikes(x) - ref).abs().mean())
    assert high < low


def test_apply_conversion_rejects_bad_records(tiny):
    cfg, _ = tiny
    good = {"layers": ["stem"], "timesteps": 4, "method": "max"}
    for bad, exc, needle in [
        ({**good, "layers": ["stem", "nope"]}, ValueError, "valid names"),
        ({**good, "layers": "stem"}, TypeError, "list"),
        ({**good, "timesteps": 0}, ValueError, "timesteps"),
        ({**good, "method": "mean"}, ValueError, "method"),
        ({k: v for k, v in good.items() if k != "timesteps"}, KeyError, "timesteps"),
        ("stem", TypeError, "object"),
    ]:
        with pytest.raises(exc, match=needle):
            apply_conversion(build_spklip(cfg), bad)
    no_star = preset_config("tiny", {**TINY, "starnet.enabled": False})
    with pytest.raises(ValueError, match="starnet.enabled=false"):
        apply_conversion(build_spklip(no_star), good)


def test_converted_layers_are_counted_as_synaptic_operations(tiny):
    cfg, ann = tiny
    x = _spikes(2, cfg, seed=3)
    conv, _ = convert_spklip(ann, "cnn", 4, [_spikes(2, cfg, seed=1)], "max")
    a, s = profile(ann.visual, x), profile(conv.visual, x)
    assert s.not_counted == [] and a.not_counted == []
    assert s.totals["sops"] > a.totals["sops"] and s.totals["macs"] < a.totals["macs"]
    rows = s.per_layer[s.per_layer["type"] == "EventConv2d"]
    stepped = rows[rows["name"].str.contains(".net.", regex=False)]  # after the first neurons: fed by scaled spikes
    # (deep layers of an untrained net may stay silent at small T: zero SOPs, and still no MACs)
    assert len(stepped) and (stepped["macs"] == 0).all() and (stepped["sops"] > 0).sum() >= 5


def test_scaled_spikes_are_sops_and_neuron_updates_are_neurons_times_t():
    cnn, x = _cnn(), _x()
    t = 8
    snn = convert_module(cnn, [x], timesteps=t)
    neurons, spikes = {}, {}

    def watch(name):
        def hook(mod, args, out):
            neurons[name] = args[0].numel()
            spikes[name] = spikes.get(name, 0) + int(out.sum())

        return hook

    nodes = [(n, m) for n, m in snn.named_modules() if isinstance(m, BaseNode)]
    handles = [m.register_forward_hook(watch(n)) for n, m in nodes]
    res = profile(snn, x)
    for h in handles:
        h.remove()
    pl = res.per_layer.set_index("name")
    assert res.totals["neuron_updates"] == t * sum(neurons.values())
    for n, _ in nodes:
        assert pl.loc[n, "neuron_updates"] == t * neurons[n]
    # IF -> x s -> AvgPool(2) -> Conv1x1(8 -> 8): each spike is one accumulate in the pool and
    # reaches exactly one pooled position, i.e. 8 output channels: SOPs = 8 x spikes, no MACs
    first = nodes[0][0]
    pool = pl[pl["type"] == "EventAvgPool2d"]
    assert len(pool) == 1 and pool["sops"].iloc[0] == spikes[first] > 0 and pool["macs"].iloc[0] == 0
    conv1x1 = next(n for n, m in snn.named_modules() if isinstance(m, EventConv2d) and m.kernel_size == (1, 1))
    assert pl.loc[conv1x1, "sops"] == 8 * spikes[first] and pl.loc[conv1x1, "macs"] == 0
    # the first convolution sees the analog input: MACs, computed once per call (not per step)
    head = next(n for n, m in snn.named_modules() if isinstance(m, EventConv2d) and m.in_channels == 2)
    assert pl.loc[head, "calls"] == 1 and pl.loc[head, "macs"] == 16 * 8 * 8 * 8 * 2 * 9
    assert isinstance(snn, RateCoded) and any(isinstance(m, EventAvgPool2d) for m in snn.modules())


# --------------------------------------------------------------------------- the verb


@pytest.fixture(scope="module")
def ann_ckpt(tmp_path_factory, data, tiny):
    cfg, model = tiny
    tok = SpikeTextTokenizer.train(["a digit moves left", "a digit moves right"], cfg.text.vocab_size)
    path = tmp_path_factory.mktemp("ckpt") / "ann.pt"
    save_spklip(path, model, tok, {"data": {"path": str(data)}})
    return path


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_cli_unknown_layer_lists_valid_names(ann_ckpt, tmp_path, capsys):
    assert main(["convert", str(ann_ckpt), "--layers", "stem,attnpool", "--out", str(tmp_path / "c.pt")]) == 2
    line = _error_line(capsys)
    assert "attnpool" in line and "hsfe, stem, layer1, layer2, layer3, layer4, cnn, all" in line
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("kind", ["fsve-hybrid", "fsve-full", "spklip-converted", "test-sj-snn"])
def test_cli_refuses_spiking_checkpoints(tmp_path, capsys, kind):
    ck = tmp_path / "snn.pt"
    save_checkpoint(ck, {"w": torch.zeros(1)}, {"kind": kind})
    assert main(["convert", str(ck), "--layers", "cnn", "--out", str(tmp_path / "c.pt")]) == 2
    assert "already spiking" in _error_line(capsys)


def _code(argv) -> int:
    """main's exit status, or argparse's when it refuses the command line itself."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_cli_no_calibration_data(ann_ckpt, data, tmp_path, capsys):
    assert _code(["convert", str(ann_ckpt), "--layers", "cnn", "--calib", "0", "--out", str(tmp_path / "c.pt")]) == 2
    assert "--calib" in _error_line(capsys)
    with pytest.raises(ConfigError, match="--calib must be at least 1, got 0"):
        convert_checkpoint(ann_ckpt, "cnn", [4], tmp_path / "c.pt", calib=0)
    test_only = data / "test_only.jsonl"
    test_only.write_text(
        "".join(
            ln + "\n" for ln in (data / "manifest.jsonl").read_text().splitlines() if json.loads(ln)["split"] != "train"
        )
    )
    assert (
        main(["convert", str(ann_ckpt), "--layers", "cnn", "--data", str(test_only), "--out", str(tmp_path / "c.pt")])
        == 2
    )
    assert "no calibration data" in _error_line(capsys)
    assert (
        _code(["convert", str(ann_ckpt), "--layers", "cnn", "--timesteps", "4,x", "--out", str(tmp_path / "c.pt")]) == 2
    )
    assert "--timesteps" in _error_line(capsys)


def test_broken_conversion_record_is_a_checkpoint_error(tiny, tmp_path):
    cfg, ann = tiny
    conv, spec = convert_spklip(ann, "layer1", 2, [_spikes(2, cfg)], "max")
    tok = SpikeTextTokenizer.train(["a digit"], cfg.text.vocab_size)
    path = save_spklip(tmp_path / "c.pt", conv, tok, {"conversion": spec})
    loaded = load_spklip(path)
    assert loaded.card["kind"] == "spklip-converted" and converted_runs(loaded.model)
    ck = load_checkpoint(path)
    save_checkpoint(path, ck.state_dict, {**ck.card, "conversion": {**spec, "layers": ["layer9"]}})
    with pytest.raises(CheckpointError, match="conversion record.*layer9"):
        load_spklip(path)


@pytest.mark.slow
def test_cli_convert_end_to_end_then_eval_report_compare(data, tmp_path, capsys):
    sets = sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])
    run = tmp_path / "run"
    assert (
        main(["train", "--preset", "tiny", *sets, "--data", str(data), "--epochs", "1", "--out", str(run), "--json"])
        == 0
    )
    ann = json.loads(capsys.readouterr().out)["checkpoint"]
    out = tmp_path / "conv.pt"
    assert (
        main(
            [
                "convert",
                ann,
                "--layers",
                "all",
                "--timesteps",
                "2,1",
                "--calib",
                "4",
                "--samples",
                "2",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert [r["timesteps"] for r in res["rows"]] == [None, 1, 2] and res["kept_timesteps"] == 2
    ann_row, t1, t2 = res["rows"]
    assert ann_row["sops"] < t1["sops"] < t2["sops"] and t2["neuron_updates"] == 2 * t1["neuron_updates"] > 0
    for r in res["rows"]:  # each accuracy is k of the evaluated clips, inside its own Wilson interval
        k = round(r["top1"] * r["clips"])
        assert r["clips"] > 0 and r["top1"] == pytest.approx(k / r["clips"])
        ci = accuracy_summary([1] * k + [0] * (r["clips"] - k))
        assert r["top1_ci"] == pytest.approx([ci["ci_low"], ci["ci_high"]])
        assert r["total_j"] > 0 and not r["not_counted"]
    assert open(res["plot"], "rb").read(4) == b"\x89PNG" and res["plot"].endswith("conv.convert.png")
    card = load_checkpoint(out).card
    assert card["kind"] == "spklip-converted" and card["conversion"]["timesteps"] == 2
    assert card["conversion"]["layers"] == ["hsfe", "stem", "layer1", "layer2", "layer3", "layer4"]
    assert card["eval"]["top1"] == t2["top1"]

    assert main(["eval", str(out), "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["top1"] == pytest.approx(t2["top1"])
    assert (
        main(["report", str(out), "--data", str(data), "--samples", "2", "--out", str(tmp_path / "rep"), "--json"]) == 0
    )
    rep = json.loads(capsys.readouterr().out)
    assert rep["checkpoint"]["kind"] == "spklip-converted" and rep["checkpoint"]["spiking"] is True
    assert rep["counts"]["sops"] > 0 and rep["counts"]["neuron_updates"] > 0 and rep["not_counted"] == []
    assert any("scaled spikes" in w for w in rep["warnings"])  # the counting convention is stated
    assert (
        main(
            ["compare", ann, str(out), "--data", str(data), "--samples", "2", "--out", str(tmp_path / "cmp"), "--json"]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["kind"] for r in rows] == ["spklip", "spklip-converted"] and rows[1]["sops"] > rows[0]["sops"]
