"""Energy estimates, reports and comparisons, end to end (library and CLI)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from energy import profile
from energy.costs import get_preset
from reports import write_report
from spikedata.digits import DigitsConfig, generate_digits
from spklip_energy.analysis import analyse_checkpoint
from spklip_energy.checkpoint import save_checkpoint
from spklip_energy.cli import main
from spklip_energy.zoo import build_model, default_card

SIZE = dict(height=16, width=16)


@pytest.fixture
def data(tmp_path):
    return generate_digits(tmp_path / "digits", DigitsConfig(clips_per_class=3, frames=40, **SIZE))


def _ckpt(tmp_path, kind, name=None, **extra):
    card = default_card(kind, **SIZE)
    card.update(extra)
    path = tmp_path / f"{name or kind}.pt"
    save_checkpoint(path, build_model(card), card)
    return path


def test_paper_energy_is_eq12_eq13_of_the_counts():
    lin = torch.nn.Sequential(torch.nn.Linear(8, 4))
    r = profile(lin, (torch.rand(3, 8) < 0.5).float())
    e = r.energy("paper")
    t = r.totals
    assert math.isclose(e["compute_j"], (t["macs"] + t["sops"]) * 4.6e-12)
    assert math.isclose(e["memory_j"], t["mem_accesses"] * 5.0e-12)
    assert e["neuron_j"] == 0
    assert math.isclose(e["total_j"], e["compute_j"] + e["memory_j"])
    assert math.isclose(e["memory_ratio"], e["memory_j"] / e["total_j"])


def test_neuron_energy_and_tiers():
    from spikingjelly.activation_based import neuron

    lif = neuron.LIFNode(step_mode="m")
    r = profile(lif, torch.rand(4, 2, 10))
    e = r.energy("paper")
    assert math.isclose(e["neuron_j"], 80 * 0.9e-12)
    assert math.isclose(e["memory_j"], r.totals["mem_accesses"] * 5e-12)
    # tiered fp32: membrane state of 10 floats fits the 8 KB tier (10 pJ per 64 bits)
    e32 = r.energy("horowitz-fp32")
    assert math.isclose(e32["memory_j"], r.totals["mem_accesses"] * 4 * 10 / 8 * 1e-12)
    loihi = r.energy_report("loihi")
    assert any("UNVERIFIED" in w for w in loihi["warnings"])
    assert any("neuron updates are not charged" in w for w in loihi["warnings"])


def test_snn_and_ann_reports_written_and_parsed_back(tmp_path, data):
    for kind in ("test-sj-snn", "test-ann-cnn", "test-snntorch-snn", "test-sj-snn-single"):
        summary, per_layer = analyse_checkpoint(_ckpt(tmp_path, kind), data=data, samples=3, batch_size=2)
        out = tmp_path / f"rep-{kind}"
        paths = write_report(out, summary, per_layer)
        back = json.loads(paths["summary.json"].read_text())
        csv = pd.read_csv(paths["per_layer.csv"])
        counted = csv[csv["counted"]]
        assert back["counts"]["sops"] == pytest.approx(counted["sops"].sum())
        assert back["counts"]["macs"] == pytest.approx(counted["macs"].sum())
        assert back["energy"]["total_j"] == pytest.approx(counted["total_j"].sum())
        assert back["data"]["samples"] == 3
        t6 = back["table6_per_sample"]
        assert t6["total_energy_j"] == pytest.approx(back["energy"]["total_j"] / 3)
        md = paths["report.md"].read_text()
        for row in ("Computational energy (J)", "Memory access energy (J)", "Total energy (J)", "Memory energy ratio"):
            assert row in md
        html = paths["report.html"].read_text()
        assert "data:image/png;base64," in html and "<img" in html and 'src="energy_per_layer' not in html
        assert paths["energy_per_layer.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        spiking = kind != "test-ann-cnn"
        assert (back["counts"]["sops"] > 0) == spiking
        assert (back["counts"]["neuron_updates"] > 0) == spiking
        assert ("firing_rate.png" in paths) == spiking
        assert set(csv["bound"].dropna()) <= {"compute", "memory"}


def test_single_and_multi_step_models_count_the_same(tmp_path, data):
    s_multi, _ = analyse_checkpoint(_ckpt(tmp_path, "test-sj-snn"), data=data, samples=2)
    s_single, _ = analyse_checkpoint(_ckpt(tmp_path, "test-sj-snn-single"), data=data, samples=2)
    for key in ("sops", "macs", "neuron_updates"):
        assert s_multi.counts[key] == s_single.counts[key], key


def test_cli_report_json_and_table6(tmp_path, data, capsys):
    ck = _ckpt(tmp_path, "test-sj-snn")
    out = tmp_path / "r"
    assert main(["report", str(ck), "--data", str(data), "--samples", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checkpoint"]["kind"] == "test-sj-snn"
    assert (out / "report.html").exists()
    assert (
        main(["report", str(ck), "--data", str(data), "--samples", "2", "--out", str(out), "--preset", "horowitz-int8"])
        == 0
    )
    text = capsys.readouterr().out
    assert "Memory energy ratio" in text and "horowitz-int8" in text


def test_cli_compare_ratios_to_first(tmp_path, data, capsys):
    ann = _ckpt(tmp_path, "test-ann-cnn", eval={"top1": 0.5})
    snn = _ckpt(tmp_path, "test-sj-snn", eval={"top1": 0.25})
    out = tmp_path / "cmp"
    assert (
        main(["compare", str(ann), str(snn), "--data", str(data), "--samples", "2", "--out", str(out), "--json"]) == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in res["rows"]] == ["test-ann-cnn", "test-sj-snn"]
    df = pd.read_csv(out / "comparison.csv")
    assert df.loc[0, "total_j_ratio"] == pytest.approx(1.0)
    assert df.loc[1, "total_j_ratio"] == pytest.approx(df.loc[1, "total_j"] / df.loc[0, "total_j"])
    assert df.loc[0, "accuracy"] == 0.5
    assert (out / "energy_vs_accuracy.png").exists() and (out / "comparison.html").exists()


def _run(*args):
    return subprocess.run([sys.executable, "-m", "spklip_energy.cli", *args], capture_output=True, text=True)


@pytest.mark.slow
def test_cli_bad_inputs_one_line_exit_2(tmp_path, data):
    good = _ckpt(tmp_path, "test-sj-snn")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[:100])
    unknown = tmp_path / "unknown.pt"
    save_checkpoint(unknown, {"w": torch.zeros(1)}, {"kind": "no-such-model"})
    big = tmp_path / "big.pt"
    card = default_card("test-sj-snn", height=32, width=32)
    save_checkpoint(big, build_model(card), card)
    nan_costs = tmp_path / "costs.toml"
    nan_costs.write_text(
        'name = "x"\ne_mac_pj = nan\ne_ac_pj = 1\ne_neuron_pj = 1\ne_mem_word_pj = 1\nsources = ["me"]\n'
    )
    out = tmp_path / "out"
    cases = [
        (["report", str(tmp_path / "missing.pt")], "missing.pt"),
        (["report", str(corrupt)], "corrupt.pt"),
        (["report", str(unknown)], "no-such-model"),
        (["report", str(good), "--preset", "warp-drive"], "warp-drive"),
        (["report", str(good), "--costs", str(nan_costs)], "e_mac_pj"),
        (["report", str(big), "--data", str(data)], "32x32"),
    ]
    for args, needle in cases:
        r = (
            _run(*args, "--out", str(out), "--data", str(data))
            if "--data" not in args
            else _run(*args, "--out", str(out))
        )
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, f"{args}: expected exit 2, found {r.returncode}: {r.stderr[-500:]}"
        assert len(lines) == 1 and "Traceback" not in r.stderr, f"{args}: {r.stderr}"
        assert needle in lines[0], f"{args}: expected {needle!r} in {lines[0]!r}"
        assert not out.exists(), f"{args}: output folder written on failure"


def test_paper_preset_is_the_default_and_costs_are_cited():
    cm = get_preset("paper").to_dict()
    assert cm["e_mac_pj"] == 4.6 and cm["e_ac_pj"] == 4.6 and cm["e_neuron_pj"] == 0.9
    assert cm["sources"]
