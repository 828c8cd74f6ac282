"""The published energy models (energy.models): hand cases, equality with spikingjelly
2.0.0's estimators, the quantized-ANN baseline, break-even rates, bad model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.op_counter.analytical_energy import (
    LemaireEnergyConfig,
    estimate_lemaire_energy,
)
from spikingjelly.activation_based.op_counter.spikesim import estimate_spikesim_energy

from energy import profile
from energy.costs import PRESETS
from energy.estimate import estimate_energy
from energy.models import (
    DataMovementModel,
    LemaireModel,
    Precision,
    PresetModel,
    PriceContext,
    SpikeSimModel,
    estimate_models,
    load_model_file,
    resolve_models,
    snn_bits,
    summarise,
)
from energy.models.fair import (
    _spiking_side,
    ann_twin,
    break_even,
    crossings,
    spiking_synapses,
)
from energy.models.table import Layers
from spklip_energy.errors import ConfigError

REL = 1e-6


def _spikes(n: int, a: float, seed: int) -> torch.Tensor:
    """spikingjelly's validation oracle input: round(n a) ones at a seeded random permutation."""
    x = torch.zeros(n)
    x[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: round(n * a)]] = 1
    return x


def _oracle_net(cin, cout, lif, linear=False):
    syn = nn.Linear(cin, cout) if linear else nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.constant_(syn.weight, 0.125)
    nn.init.zeros_(syn.bias)
    node = (neuron.LIFNode if lif else neuron.IFNode)(v_threshold=1.0, detach_reset=True)
    return nn.Sequential(syn, node).eval()


def _layers(model, x, **kw):
    functional.reset_net(model)
    r = profile(model, x, **kw)
    functional.reset_net(model)
    return Layers.from_frame(r.per_layer[r.per_layer["counted"]]), r.samples


def _total_pj(model_obj, layers, samples, spiking=True, precision=None):
    ctx = PriceContext(samples, spiking) if precision is None else PriceContext(samples, spiking, precision)
    return summarise(model_obj, layers, ctx).low_j * 1e12 * samples


# --------------------------------------------------------------------------- Lemaire: the sheet's unit cases

UNIT_CASES = [  # (cin, cout, hw, a, seed, lif, linear, total pJ in spikingjelly's convention)
    (4, 8, 12, 0.125, 6, False, False, 82_720.7625),
    (8, 16, 10, 0.25, 7, True, False, 665_179.4625),
    (64, 32, 0, 0.5, 3, True, True, 11_571.1),  # the wheel's figure (with the theta_out reset ACC)
]


@pytest.mark.parametrize("case", UNIT_CASES, ids=["conv-IF", "conv-LIF", "linear-LIF"])
def test_lemaire_sj_reproduces_the_sheets_unit_cases_and_spikingjelly(case):
    cin, cout, hw, a, seed, lif, linear, expected = case
    net = _oracle_net(cin, cout, lif, linear)
    x = _spikes(cin * (hw * hw if hw else 1), a, seed).reshape((1, cin) if linear else (1, cin, hw, hw))
    layers, n = _layers(net, x)
    ours = _total_pj(LemaireModel(memory="sj", buffers="traced"), layers, n)
    functional.reset_net(net)
    theirs = estimate_lemaire_energy(net, x, config=LemaireEnergyConfig(strict=False)).total_pj
    assert ours == pytest.approx(expected, rel=REL)
    assert ours == pytest.approx(theirs, rel=REL)


def test_lemaire_lab_mode_by_hand_on_the_linear_case():
    """Linear 64->32, 32 input spikes, 32 output spikes, LIF: every count and buffer written out."""
    net = _oracle_net(64, 32, lif=True, linear=True)
    layers, n = _layers(net, _spikes(64, 0.5, 3).reshape(1, 64))
    theta_in = 32
    theta_out = int(layers["out_spikes"][1])
    assert theta_out == 32  # weights 0.125 x 32 spikes = 4 > threshold: every neuron fires
    lab = lambda elems: 1.09e-5 * elems * 32 + 13.2  # noqa: E731 - pJ per access of a buffer of elems words
    ops = (theta_in * 32 + 32 + theta_out) * 0.1 + 32 * 3.2  # synaptic ACs + bias + reset; LIF leak MACs
    addressing = theta_in * 32 * 0.1
    inout = (theta_in + theta_out) * lab(1000)  # spikes through the 1000-spike FIFO
    params = (theta_in * 32 + 32) * lab(64 * 32 + 32)  # weight fan-out + bias, buffer = the layer's params
    potential = 2 * (theta_in * 32 + 32) * lab(32)  # synaptic + neuron potential reads and writes, one step
    expected = ops + addressing + inout + params + potential
    assert _total_pj(LemaireModel(memory="lab", buffers="sample"), layers, n) == pytest.approx(expected, rel=1e-12)


def _ms_resnet18(batch=2, steps=4):
    from spikingjelly.activation_based.model import ms_resnet

    torch.manual_seed(0)
    m = ms_resnet.ms_resnet18(T=steps, num_classes=10).eval()
    functional.set_step_mode(m, "m")
    return m, torch.rand(batch, 3, 64, 64)


@pytest.mark.slow
def test_ms_resnet18_equals_spikingjelly_lemaire_and_spikesim():
    m, x = _ms_resnet18()
    layers, n = _layers(m, x, samples=2)
    with torch.no_grad(), pytest.warns(RuntimeWarning):
        functional.reset_net(m)
        lem = estimate_lemaire_energy(m, x, config=LemaireEnergyConfig(strict=False))
    with torch.no_grad():
        functional.reset_net(m)
        ss = estimate_spikesim_energy(m, x, strict=False)
    traced = _total_pj(LemaireModel(memory="sj", buffers="traced"), layers, n)
    assert traced == pytest.approx(lem.total_pj, rel=REL)
    assert _total_pj(SpikeSimModel(), layers, n) == pytest.approx(ss.energy_total_pj, rel=REL)
    # the documented choice: per-sample buffers are smaller than spikingjelly's batch-sized ones
    assert _total_pj(LemaireModel(memory="sj"), layers, n) < traced


@pytest.mark.slow
def test_fsve_full_equals_spikingjelly_on_the_layers_both_support(tmp_path):
    from spklip import build_spklip, preset_config

    cfg = preset_config(
        "tiny", {"height": 32, "width": 32, "hsfe.input_pool": 1, "model": "fsve-full", "fsve.hsfe": "spiking"}
    )
    enc = build_spklip(cfg, seed=1).eval().visual
    torch.manual_seed(0)
    x = (torch.rand(1, cfg.frames, 32, 32) < 0.3).float()
    layers, n = _layers(enc, x)
    assert layers.is_("neuron").any() and (layers["sops"] > 0).any()
    with torch.no_grad(), pytest.warns(RuntimeWarning):
        functional.reset_net(enc)
        lem = estimate_lemaire_energy(enc, x, config=LemaireEnergyConfig(strict=False))
    assert _total_pj(LemaireModel(memory="sj", buffers="traced"), layers, n) == pytest.approx(lem.total_pj, rel=REL)


# --------------------------------------------------------------------------- SpikeSim


def test_spikesim_reproduces_the_authors_vgg9_example():
    """VGG9 / CIFAR-10, X = 64, k = 3, T = 5, RRAM: 3,840 PE cycles per step, 15,906,934 pJ."""
    chans = [(3, 64, 1), (64, 64, 2), (64, 128, 1), (128, 128, 2), (128, 256, 1), (256, 256, 1), (256, 256, 2)]
    mods = []
    for cin, cout, stride in chans:
        mods += [
            layer.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False, step_mode="m"),
            neuron.LIFNode(step_mode="m"),
        ]
    net = nn.Sequential(*mods).eval()
    x = (torch.rand(5, 1, 3, 32, 32) < 0.2).float()
    layers, n = _layers(net, x)
    model = SpikeSimModel()
    assert np.nansum(model.cycles(layers)) / 5 == 3840
    assert model.cycle_pj(3, 3) == pytest.approx(828.486, abs=1e-3)
    assert _total_pj(model, layers, n) == pytest.approx(15_906_934, rel=REL)
    with torch.no_grad():
        functional.reset_net(net)
        assert _total_pj(model, layers, n) == pytest.approx(estimate_spikesim_energy(net, x).energy_total_pj, rel=REL)


def test_spikesim_lists_what_it_cannot_price_and_skips_anns():
    net = nn.Sequential(
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(4 * 36, 3, step_mode="m"),
    ).eval()
    nn.init.constant_(net[0].weight, 0.5)  # the LIF fires, so the linear layer has work to price
    layers, n = _layers(net, (torch.rand(2, 1, 2, 6, 6) < 0.5).float())
    assert layers["sops"][3] > 0
    est = summarise(SpikeSimModel(), layers, PriceContext(n, True))
    assert est.priced_layers == 1 and est.low_j > 0
    names = {r["name"]: r["reason"] for r in est.not_priced}
    assert "outside SpikeSim" in names["3"] and est.priced_ops_share < 1
    ann = summarise(SpikeSimModel(), layers, PriceContext(n, False))
    assert ann.low_j is None and "no neurons" in ann.note


# --------------------------------------------------------------------------- flat presets, data movement


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_as_models_equal_estimate_energy_per_layer(preset):
    m, x = _ms_resnet18(batch=1, steps=2)
    functional.reset_net(m)
    r = profile(m, x, samples=1)
    layers = Layers.from_frame(r.per_layer[r.per_layer["counted"]])
    priced = PresetModel(PRESETS[preset]).price(layers, PriceContext(r.samples, True))
    ref = estimate_energy(r, preset)["per_layer"]
    np.testing.assert_allclose(priced.low, ref["total_j"].to_numpy() / 1e-12, rtol=1e-9)


def _one_linear(spiking_input: bool):
    lin = nn.Linear(16, 8)
    x = (torch.rand(4, 16) < 0.25).float() if spiking_input else torch.rand(4, 16)
    layers, n = _layers(nn.Sequential(lin).eval(), x)
    return layers, n


def test_eyeriss_bound_by_hand_on_one_dense_layer():
    layers, n = _one_linear(False)
    model = DataMovementModel()
    priced = model.price(layers, PriceContext(n, False))
    m, w, i, o = 4 * 16 * 8, (16 * 8 + 8) * 4, 4 * 16, 4 * 8  # MACs, weights (per inference), inputs, outputs
    scale = 1.5  # Horowitz 45 nm fp16 MAC
    best = (w * 208 + m + i * 208 + m + o * 200 + 2 * (m - o)) * scale + m * 1.5
    worst = (w * 200 + 9 * m + i * 200 + 9 * m + o * 200 + 2 * (m - o) * 6) * scale + m * 1.5
    assert priced.low[0] == pytest.approx(best) and priced.high[0] == pytest.approx(worst)
    assert priced.low[0] < priced.high[0]


# --------------------------------------------------------------------------- the fair baseline


@pytest.mark.parametrize(("steps", "bits"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 3), (8, 4), (15, 4), (16, 5)])
def test_snn_bits_is_ceil_log2_t_plus_1(steps, bits):
    assert snn_bits(steps) == bits


def test_quantized_pricing_of_an_ann_layer_by_hand():
    layers, n = _one_linear(False)
    q = Precision("int8", 8, 8)
    got = _total_pj(PresetModel(PRESETS["paper"]), layers, n, spiking=False, precision=q)
    macs, weights, acts = 4 * 16 * 8, 16 * 8 + 8, 4 * 16 + 4 * 8
    expected = macs * 0.23 + (weights * 8 / 32 + acts * 8 / 32) * 5.0
    assert got == pytest.approx(expected)
    native = _total_pj(PresetModel(PRESETS["paper"]), layers, n, spiking=False)
    assert native == pytest.approx(macs * 4.6 + (weights + acts) * 5.0)
    for model in (LemaireModel("lab"), LemaireModel("sj"), DataMovementModel()):
        lo = _total_pj(model, layers, n, spiking=False, precision=Precision("q2", 2, 8))
        mid = _total_pj(model, layers, n, spiking=False, precision=q)
        hi = _total_pj(model, layers, n, spiking=False)
        assert lo < mid < hi, model.name


def _small_snn():
    """A real-valued input into conv + LIF, whose spikes feed a second conv + LIF (T = 4, 2 samples)."""
    torch.manual_seed(3)
    net = nn.Sequential(
        layer.Conv2d(2, 8, 3, padding=1, step_mode="m"),
        neuron.LIFNode(step_mode="m"),
        layer.Conv2d(8, 8, 3, padding=1, step_mode="m"),
        neuron.LIFNode(step_mode="m"),
    ).eval()
    nn.init.constant_(net[0].weight, 0.3)
    return _layers(net, torch.rand(4, 2, 2, 8, 8))


@pytest.mark.parametrize("name", ["paper", "lemaire-lab", "lemaire-sj", "eyeriss"])
def test_break_even_rate_is_where_the_spiking_layer_costs_what_its_twin_costs(name):
    layers, n = _small_snn()
    (model,) = resolve_models(name)
    pricings = [Precision(), Precision("int8", 8, 8), Precision("q3", 3, 8)]
    res = break_even(model, layers, n, pricings)
    assert len(res["layers"]) == 1  # the second conv reads spikes; the first reads real values
    syn = layers.take(spiking_synapses(layers))
    mid = lambda e: (e.low_j + e.high_j) / 2  # noqa: E731
    side = [mid(summarise(model, _spiking_side(syn, r, 1.0), PriceContext(n, True))) for r in (0.0, 0.5, 1.0)]
    assert side[1] == pytest.approx((side[0] + side[2]) / 2, rel=1e-9)  # affine in the rate
    entry = res["layers"][0]
    rate = entry["input_rate"]
    assert rate == pytest.approx(syn["in_spikes"][0] / syn["in_elems"][0])
    assert entry["snn_j"] == pytest.approx(side[0] + rate * (side[2] - side[0]), rel=1e-9)
    for p in pricings:
        twin = mid(summarise(model, ann_twin(syn, n), PriceContext(n, False, p)))
        got = entry["pricings"][p.name]
        r = got["break_even_rate"]
        assert got["ann_j"] == pytest.approx(twin, rel=1e-9)
        assert side[0] + r * (side[2] - side[0]) == pytest.approx(twin, rel=1e-9)
        if 0 < r < 1:
            at_r = mid(summarise(model, _spiking_side(syn, r, 1.0), PriceContext(n, True)))
            assert at_r == pytest.approx(twin, rel=1e-9)
            assert got["verdict"] == ("spiking cheaper" if rate < r else "ANN cheaper")
    # the twin: the same layer once per step of its input, densely
    twin = ann_twin(syn, n)
    fan_in, outputs = 8 * 9, 8 * 64  # C_in x k; C_out x H x W per sample and step
    assert twin["macs"][0] == fan_in * outputs * n and twin["sops"][0] == 0
    assert entry["spikes_per_synapse"] == pytest.approx(syn["sops"][0] / (fan_in * outputs * n))


def test_crossing_verdicts():
    nan = float("nan")
    e0, e1 = np.array([1.0, 1.0, 3.0, 1.0, 1.0, 1.0, nan]), np.array([3.0, 3.0, 5.0, 1.5, 1.0, 1.0, 2.0])
    ann = np.array([2.0, 2.0, 2.0, 2.0, 2.0, 0.5, 2.0])
    rate = np.array([0.1, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1])
    r, verdict = crossings(e0, e1, ann, rate)
    assert r[:4] == [0.5, 0.5, -0.5, 2.0] and r[4:] == [None, None, None]
    assert verdict[0] == "spiking cheaper" and verdict[1] == "ANN cheaper"
    assert verdict[2].startswith("never") and verdict[3].startswith("always")
    assert verdict[4].endswith("costs less") and verdict[5].endswith("costs more") and verdict[6] == "not priced"


def test_estimate_models_prices_anns_at_the_fair_precisions_and_snns_with_break_even():
    lin = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()).eval()
    r = profile(lin, torch.rand(2, 2, 6, 6))
    out = estimate_models(r.per_layer, r.samples, resolve_models("default"), steps=[4, 10])
    assert [p["name"] for p in out["pricings"]] == ["native", "int8", "q3", "q4"]
    assert not out["spiking"] and out["break_even"] is None
    spikesim = [e for e in out["estimates"] if e["model"] == "spikesim"]
    assert all(e["low_j"] is None for e in spikesim)
    assert {e["precision"] for e in out["estimates"]} == {"native", "int8", "q3", "q4"}
    m, x = _ms_resnet18(batch=1, steps=2)
    functional.reset_net(m)
    r = profile(m, x, samples=1)  # its input [B, C, H, W] is repeated over T inside the model
    out = estimate_models(r.per_layer, r.samples, resolve_models("all"))
    assert out["spiking"] and out["steps"] == 2
    assert [p["name"] for p in out["pricings"]] == ["native", "int8", "q2"]
    assert {e["precision"] for e in out["estimates"]} == {"native"}
    assert set(out["break_even"]) == {m["name"] for m in out["models"]}
    assert "loihi" not in out["break_even"]  # UNVERIFIED presets only when named
    for m in out["models"]:
        assert m["citation"] and m["status"] in ("P", "S+", "S", "U") and m["assumptions"]


# --------------------------------------------------------------------------- bad input


def test_unknown_model_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown energy model 'lemaire'.*lemaire-lab"):
        resolve_models("paper,lemaire")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[lemaire]\ne_add_pj = -0.1\n", "lemaire.e_add_pj must be >= 0"),
        ("[lemaire]\ne_add_pj = nan\n", "lemaire.e_add_pj must be finite"),
        ('[lemaire]\ne_mul_pj = "3.1"\n', "lemaire.e_mul_pj must be a number, got the string '3.1'"),
        ("[lemaire]\nfifo = 0\n", "lemaire.fifo must be a whole number >= 1"),
        ('[lemaire]\nbuffers = "batch"\n', "lemaire.buffers must be one of sample, traced"),
        ("[spikesim]\nxbar = 6.5\n", "spikesim.xbar must be a whole number"),
        ("[spikesim]\nadc = 1.0\n", "unknown key spikesim.adc"),
        ("[eyeriss]\ndram_passes = 0.5\n", "eyeriss.dram_passes must be >= 1"),
        ("[eyeriss]\nbatch = 0\n", "eyeriss.batch must be a whole number >= 1"),
        ("[eyeriss]\nrf = 0\n", "eyeriss.rf must be > 0"),
        ("[eyeriss]\nrf = 3\narray = 2\ngb = 6\ndram = 200\n", "must not fall going outwards"),
        ("[eyriss]\nrf = 1\n", "unknown section 'eyriss'"),
        ("lemaire = 3\n", "section lemaire must be a table"),
        ("[lemaire\n", "is not valid TOML"),
    ],
)
def test_bad_model_files_name_the_entry(tmp_path, text, needle):
    f = tmp_path / "models.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_model_file(f)
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_model_file_parameters_reach_the_models(tmp_path):
    f = tmp_path / "models.yaml"
    f.write_text(
        "lemaire:\n  fifo: 10\n  buffers: traced\neyeriss:\n  batch: 4\n  dram_passes: 2\nspikesim:\n  xbar: 128\n"
    )
    lab, ey, ss = resolve_models("lemaire-lab,eyeriss,spikesim", model_file=f)
    assert (lab.fifo, lab.buffers, ey.batch, ey.dram_passes, ss.xbar) == (10, "traced", 4, 2.0, 128)
    assert math.isclose(ss.cycle_pj(3, 3), SpikeSimModel(xbar=128).cycle_pj(3, 3))


# --------------------------------------------------------------------------- through the CLI


@pytest.fixture
def zoo(tmp_path):
    from spikedata.digits import DigitsConfig, generate_digits
    from spklip_energy.checkpoint import save_checkpoint
    from spklip_energy.zoo import build_model, default_card

    data = generate_digits(tmp_path / "digits", DigitsConfig(clips_per_class=3, frames=40, height=16, width=16))
    paths = {}
    for kind in ("test-ann-cnn", "test-sj-snn"):
        card = default_card(kind, height=16, width=16)
        paths[kind] = tmp_path / f"{kind}.pt"
        save_checkpoint(paths[kind], build_model(card), card)
    return data, paths


def test_cli_report_models_all_json_names_every_model_and_writes_the_plots(tmp_path, zoo, capsys):
    import json

    from cli_helpers import run_main

    data, ck = zoo
    out = tmp_path / "r"
    rc, text, err = run_main(
        capsys, "report", ck["test-sj-snn"], "--data", data, "--samples", "2", "--out", out, "--models", "all", "--json"
    )
    assert rc == 0, err
    em = json.loads(text)["energy_models"]
    names = [m["name"] for m in em["models"]]
    assert {"paper", "lemaire-lab", "lemaire-sj", "spikesim", "spikesim-sram", "eyeriss"} <= set(names)
    assert "loihi" not in names
    assert all(e["model"] in names for e in em["estimates"]) and em["spiking"]
    assert em["break_even"]["lemaire-lab"]["layers"], "a spiking layer with a break-even rate"
    assert (out / "energy_models.png").stat().st_size > 0 and (out / "break_even.png").stat().st_size > 0
    md = (out / "report.md").read_text()
    assert "Energy under published models" in md and "Break-even input rates per spiking layer" in md
    rc, text, err = run_main(
        capsys,
        "report",
        ck["test-ann-cnn"],
        "--data",
        data,
        "--samples",
        "2",
        "--out",
        tmp_path / "a",
        "--models",
        "lemaire-lab,loihi",
        "--snn-steps",
        "5",
    )
    assert rc == 0, err
    assert "lemaire-lab        q3" in text and "loihi" in text and "int8" in text


def test_cli_compare_prices_the_ann_at_the_snns_bits(tmp_path, zoo, capsys):
    import json

    from cli_helpers import run_main

    data, ck = zoo
    out = tmp_path / "cmp"
    rc, text, err = run_main(
        capsys,
        "compare",
        ck["test-ann-cnn"],
        ck["test-sj-snn"],
        "--data",
        data,
        "--samples",
        "2",
        "--out",
        out,
        "--json",
        "--weight-bits",
        "4",
    )
    assert rc == 0, err
    rows = json.loads(text)["rows"]
    snn_t = rows[1]["energy_models"]["steps"]
    bits = snn_bits(snn_t)
    ann_pricings = {p["name"]: p for p in rows[0]["energy_models"]["pricings"]}
    assert ann_pricings[f"q{bits}"]["act_bits"] == bits and ann_pricings[f"q{bits}"]["weight_bits"] == 4
    md = (out / "comparison.md").read_text()
    assert "## Energy under published models" in md and f"| test-ann-cnn | q{bits} |" in md
    assert (out / "energy_models.png").exists()
    import pandas as pd

    df = pd.read_csv(out / "comparison.csv")
    assert f"lemaire-lab@q{bits}_low_j" in df.columns and math.isnan(df.loc[1, f"lemaire-lab@q{bits}_low_j"])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--models", "lemaire,paper"], ["unknown energy model 'lemaire'"]),
        (["--weight-bits", "0"], ["--weight-bits"]),
        (["--models", "eyeriss", "--model-file", "BAD"], ["eyeriss.dram_passes must be >= 1"]),
        (["--model-file", "MISSING"], ["model file", "does not exist"]),
    ],
)
def test_cli_bad_model_options_are_one_line_exit_2(tmp_path, zoo, capsys, args, needles):
    from cli_helpers import check_user_error, run_main

    data, ck = zoo
    bad = tmp_path / "bad.toml"
    bad.write_text("[eyeriss]\ndram_passes = 0\n")
    args = [str(bad) if a == "BAD" else str(tmp_path / "missing.toml") if a == "MISSING" else a for a in args]
    out = tmp_path / "r"
    rc, _, err = run_main(capsys, "report", ck["test-sj-snn"], "--data", data, "--samples", "1", "--out", out, *args)
    check_user_error(rc, err, *needles)
    assert not out.exists()


@pytest.mark.slow
def test_spklip_checkpoints_carry_their_own_time_steps(tmp_path):
    """SPKLIP's encoders run their CNN once per temporal block, so the counts show blocks x T; the break-even
    analysis and the ANN's fair pricing use the T the checkpoint records (fsve.time_steps)."""
    from export_helpers import small_checkpoint, small_digits

    from spklip_energy.analysis import analyse_checkpoint, price_fairly

    data = small_digits(tmp_path / "d")
    full = small_checkpoint(tmp_path, data, "fsve-full", calibrate=True, **{"fsve.time_steps": 3})
    ann = small_checkpoint(tmp_path, data, "spklip")
    s_full, p_full = analyse_checkpoint(full, data=data, samples=2, models="paper,lemaire-sj")
    s_ann, p_ann = analyse_checkpoint(ann, data=data, samples=2, models="paper,lemaire-sj")
    em = s_full.energy_models
    assert em["spiking"] and em["steps"] == 3 and [p["name"] for p in em["pricings"]] == ["native", "int8", "q2"]
    assert em["break_even"]["paper"]["layers"]
    assert [p["name"] for p in s_ann.energy_models["pricings"]] == ["native", "int8"]
    price_fairly([s_ann, s_full], [p_ann, p_full], models="paper,lemaire-sj")
    assert [p["name"] for p in s_ann.energy_models["pricings"]] == ["native", "int8", "q2"]
