"""Energy by model part: the name mapping, the summary's parts, the report's table and plot, compare's columns."""

from __future__ import annotations

import contextlib
import io
import json
import math
from dataclasses import fields

import pandas as pd
import pytest
import torch
from export_helpers import SMALL, small_checkpoint

from convert import convert_spklip
from energy.record import EnergyReport
from reports import write_report
from reports.render import comparison_frame, comparison_markdown
from spikedata.digits import DigitsConfig, generate_digits
from spikedata.manifest import load_manifest
from spklip import build_spklip, preset_config
from spklip.data import clips_for
from spklip.io import save_spklip
from spklip.parts import PARTS, assign_parts, part_of
from spklip.tokenizer import SpikeTextTokenizer
from spklip_energy.analysis import PART_FIGURES, analyse_checkpoint, comparison_row
from spklip_energy.checkpoint import save_checkpoint
from spklip_energy.cli import main
from spklip_energy.zoo import build_model, default_card

pytestmark = pytest.mark.usefixtures("one_thread")

PNG = b"\x89PNG\r\n\x1a\n"

# --------------------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    "name,part",
    [
        ("hsfe.pool", "HSFE"),
        ("hsfe.branches.0.conv1", "HSFE"),
        ("hsfe.sa.conv1", "HSFE"),
        ("hsfe.head.0", "HSFE"),
        ("hsfe.trunk.0.body.1", "HSFE"),
        ("hsfe.out_lif", "HSFE"),
        ("visual.hsfe.trunk.0.body.1", "HSFE"),  # names of a profile of the whole model
        ("starnet.spatial.stem.0", "CNN"),
        ("starnet.spatial.layer1.0.conv1", "CNN"),
        ("starnet.spatial.layer4.0.downsample.1", "CNN"),
        ("starnet.spatial.stages.3.lif", "CNN"),  # the FSVE's plain spiking CNN
        ("starnet.spatial.attnpool", "heads"),
        ("starnet.spatial.attnpool.proj", "heads"),
        ("starnet.spatial.head", "heads"),
        ("starnet.spatial.head_lif", "heads"),
        ("starnet.spatial.avgpool", "heads"),
        ("starnet.spatial.flatten", "heads"),
        ("starnet.pool", "heads"),  # BlockPooling: the no-STAR-Net ablation
        ("starnet.flatten", "heads"),
        ("starnet.proj", "heads"),
        ("starnet.position", "temporal Transformer"),
        ("starnet.temporal.layers.0.self_attn", "temporal Transformer"),
        ("starnet.temporal.layers.1.attn.qk", "temporal Transformer"),
        # converted runs: a CNN run is CNN; a run from the HSFE is HSFE for unit 0, CNN for the units after it
        ("starnet.spatial.stem.net.0.spiking_0.if_node", "CNN"),
        ("starnet.spatial.layer2.pre.0.0.conv1", "CNN"),
        ("hsfe.snn.pre.0.head.0", "HSFE"),
        ("hsfe.snn.net.0.trunk.body.0", "HSFE"),
        ("hsfe.snn.net.1.0", "CNN"),
        ("hsfe.snn.net.3.0.conv1", "CNN"),
        # unknown names
        ("starnet", "other"),
        ("starnet.cls_token", "other"),
        ("encoder_norm", "other"),
        ("<root>", "other"),
        ("hsfe_like.conv", "other"),
    ],
)
def test_part_of(name, part):
    assert part_of(name) == part


def test_assign_parts_places_the_rows_of_a_converted_run_by_their_neighbours():
    names = [
        "hsfe.pool",
        "hsfe.snn",
        "hsfe.snn.pre.0.head.0",
        "hsfe.snn.net.0.trunk.body.0",
        "hsfe.snn.net.spike_add_0",
        "hsfe.snn.net.1.0",
        "hsfe.snn.net.2.0.conv1",
        "hsfe.snn.net.spike_add_1",
        "hsfe.snn.readout",
        "starnet.spatial.attnpool",
    ]
    assert part_of("hsfe.snn.net.spike_add_1") == part_of("hsfe.snn.readout") == "HSFE"  # by name alone
    assert assign_parts(names) == ["HSFE", "CNN", "HSFE", "HSFE", "HSFE", "CNN", "CNN", "CNN", "CNN", "heads"]
    # a run of the HSFE alone: all of it is HSFE
    alone = [
        "hsfe.snn",
        "hsfe.snn.pre.0.head.0",
        "hsfe.snn.net.0.trunk.body.0",
        "hsfe.snn.net.spike_add_0",
        "hsfe.snn.readout",
        "starnet.spatial.stem.0",
    ]
    assert assign_parts(alone) == ["HSFE"] * 5 + ["CNN"]
    assert assign_parts(["starnet.temporal.layers.0.linear1", "x"]) == ["temporal Transformer", "other"]


# --------------------------------------------------------------------------- real checkpoints


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, data):
    tmp = tmp_path_factory.mktemp("parts-ckpt")
    return {model: small_checkpoint(tmp, data, model) for model in ("spklip", "fsve-full")}


@pytest.fixture(scope="module")
def analysed(checkpoints, data):
    return {model: analyse_checkpoint(path, data=data, samples=2, batch_size=2) for model, path in checkpoints.items()}


def _check_parts_add_up(summary: EnergyReport, per_layer: pd.DataFrame) -> None:
    parts = summary.parts
    assert list(parts) == [p for p in PARTS if p in parts]  # display order
    for key in ("compute_j", "neuron_j", "memory_j", "total_j"):
        want = getattr(summary.energy_per_sample, key)
        assert sum(getattr(p, key) for p in parts.values()) == pytest.approx(want, rel=1e-9)
    for key in ("macs", "sops", "neuron_updates", "mem_accesses"):
        want = getattr(summary.counts_per_sample, key)
        assert sum(getattr(p, key) for p in parts.values()) == pytest.approx(want, rel=1e-9)
    assert sum(p.share for p in parts.values()) == pytest.approx(1.0)
    for p in parts.values():
        assert p.share == pytest.approx(p.total_j / summary.energy_per_sample.total_j)
        assert {f.name for f in fields(p)} == {"layers", "share", *PART_FIGURES}
    counted = per_layer[per_layer["counted"].astype(bool)]
    assert sum(p.layers for p in parts.values()) == len(counted)
    for name, p in parts.items():  # the per-layer table's part column is what was summed
        rows = counted[counted["part"] == name]
        assert p.total_j == pytest.approx(rows["total_j"].sum() / summary.data.samples, rel=1e-9)


@pytest.mark.parametrize("model", ["spklip", "fsve-full"])
def test_parts_add_up_to_the_totals(analysed, model):
    summary, per_layer = analysed[model]
    _check_parts_add_up(summary, per_layer)
    parts = summary.parts
    assert list(parts) == ["HSFE", "CNN", "temporal Transformer", "heads"]  # nothing falls to "other"
    assert all(p.total_j > 0 and p.layers > 0 for p in parts.values())
    heads = set(per_layer.loc[per_layer["part"] == "heads", "name"])
    ann_heads, snn_heads = {"starnet.spatial.attnpool"}, {"starnet.spatial.head", "starnet.spatial.head_lif"}
    assert (ann_heads if model == "spklip" else snn_heads) <= heads
    json.dumps(summary.to_json()["parts"], allow_nan=False)  # JSON-ready


def test_converted_checkpoint_parts_follow_the_units(tmp_path, data):
    cfg = preset_config("tiny", {**SMALL, "hsfe.input_pool": 2})
    ann = build_spklip(cfg, seed=1).eval()
    ds = clips_for(cfg, load_manifest(data), "train")
    calib = torch.stack([ds[i]["spikes"] for i in range(2)])
    conv, spec = convert_spklip(ann, "all", 2, [calib], "max")  # one run: HSFE head and trunk, then the CNN
    tok = SpikeTextTokenizer.train(["a digit moves"], cfg.text.vocab_size)
    path = save_spklip(tmp_path / "conv.pt", conv, tok, {"conversion": spec})
    summary, per_layer = analyse_checkpoint(path, data=data, samples=2, batch_size=2)
    assert summary.checkpoint.kind == "spklip-converted"
    _check_parts_add_up(summary, per_layer)
    assert list(summary.parts) == ["HSFE", "CNN", "temporal Transformer", "heads"]
    part = per_layer.set_index("name")["part"]
    run = part[part.index.str.startswith("hsfe.snn.")]
    assert (run[run.index.str.match(r"hsfe\.snn\.(pre|net)\.0\.")] == "HSFE").all()
    cnn = run[run.index.str.match(r"hsfe\.snn\.(pre|net)\.[1-9]")]
    assert len(cnn) and (cnn == "CNN").all()
    assert part["hsfe.snn.readout"] == part["hsfe.snn"] == "CNN"  # the run ends in the CNN's layer4
    adds = run[run.index.str.contains("spike_add_")]
    assert set(adds) == {"HSFE", "CNN"}  # the trunk's residual adds and the CNN's
    assert summary.parts["CNN"].sops > 0  # the converted CNN's synaptic operations are the CNN's


def test_zoo_checkpoints_have_no_parts(tmp_path):
    data = generate_digits(tmp_path / "digits", DigitsConfig(clips_per_class=3, frames=20, height=16, width=16))
    card = default_card("test-sj-snn", height=16, width=16)
    path = save_checkpoint(tmp_path / "zoo.pt", build_model(card), card)
    summary, per_layer = analyse_checkpoint(path, data=data, samples=1)
    assert summary.parts is None and "part" not in per_layer.columns
    paths = write_report(tmp_path / "rep", summary, per_layer)
    assert "energy_by_part.png" not in paths and not (tmp_path / "rep" / "energy_by_part.png").exists()
    assert "Energy by part" not in paths["report.md"].read_text()
    assert comparison_row(summary, "zoo")["energy_by_part_j"] is None


# --------------------------------------------------------------------------- report and compare


def test_report_has_the_part_table_and_plot(analysed, tmp_path):
    summary, per_layer = analysed["fsve-full"]
    paths = write_report(tmp_path / "rep", summary, per_layer)
    assert paths["energy_by_part.png"].read_bytes()[:8] == PNG
    md = paths["report.md"].read_text()
    assert "## Energy by part (per sample)" in md and "![Energy by part](energy_by_part.png)" in md
    section = md.split("## Energy by part (per sample)", 1)[1].split("\n## ", 1)[0]
    table = [ln for ln in section.splitlines() if ln.startswith("| ")]
    assert table[0].startswith("| part | layers | MACs | SOPs | neuron updates | memory accesses")
    rows = {ln.split(" | ")[0].lstrip("| "): ln for ln in table[1:]}
    assert list(rows) == [*summary.parts, "all parts"]
    for name, p in summary.parts.items():
        assert rows[name].endswith(f"| {100 * p.share:.1f} % |")
        assert f"| {p.total_j * 1e6:.4g} |" in rows[name]
    assert f"| {summary.energy_per_sample.total_j * 1e6:.4g} | 100 % |" in rows["all parts"]
    html = paths["report.html"].read_text()
    assert "<h2>Energy by part (per sample)</h2>" in html and 'alt="Energy by part"' in html
    back = json.loads(paths["summary.json"].read_text())
    assert back["parts"].keys() == summary.parts.keys()
    assert back["parts"]["CNN"]["total_j"] == pytest.approx(summary.parts["CNN"].total_j)
    assert set(pd.read_csv(paths["per_layer.csv"])["part"]) == set(summary.parts)


def _main_json(*argv) -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([str(a) for a in argv]) == 0
    return json.loads(buf.getvalue())


def test_compare_has_energy_by_part(checkpoints, analysed, data, tmp_path):
    out = tmp_path / "cmp"
    res = _main_json(
        "compare",
        checkpoints["spklip"],
        checkpoints["fsve-full"],
        "--data",
        data,
        "--samples",
        "2",
        "--batch-size",
        "2",
        "--out",
        out,
        "--json",
    )
    assert (out / "energy_by_part.png").read_bytes()[:8] == PNG
    doc = json.loads((out / "comparison.json").read_text())
    assert [r["kind"] for r in doc["rows"]] == ["spklip", "fsve-full"]
    for row, cli_row, model in zip(doc["rows"], res["rows"], ("spklip", "fsve-full"), strict=True):
        by_part = row["energy_by_part_j"]
        assert by_part == pytest.approx(cli_row["energy_by_part_j"])
        assert list(by_part) == ["HSFE", "CNN", "temporal Transformer", "heads"]
        assert sum(by_part.values()) == pytest.approx(row["total_j"], rel=1e-9)
        assert by_part == pytest.approx({p: v.total_j for p, v in analysed[model][0].parts.items()})
    df = pd.read_csv(out / "comparison.csv")
    cols = ["part_hsfe_j", "part_cnn_j", "part_temporal_transformer_j", "part_heads_j"]
    assert set(cols) <= set(df.columns) and "energy_by_part_j" not in df.columns
    assert df[cols].sum(axis=1).tolist() == pytest.approx(df["total_j"].tolist(), rel=1e-9)
    assert df.loc[0, "total_j_ratio"] == pytest.approx(1.0)  # the existing columns are still there
    md = (out / "comparison.md").read_text()
    assert "| HSFE (J) | CNN (J) | temporal Transformer (J) | heads (J) |" in md
    assert "![energy by part](energy_by_part.png)" in md
    hsfe = doc["rows"][1]["energy_by_part_j"]["HSFE"]
    assert f"{hsfe:.4g} ({100 * hsfe / doc['rows'][1]['total_j']:.1f} %)" in md
    assert 'alt="energy by part"' in (out / "comparison.html").read_text()


def test_comparison_table_shows_a_dash_for_a_model_without_parts(analysed):
    spklip = comparison_row(analysed["spklip"][0], "ann")
    zoo = {**spklip, "name": "zoo", "kind": "test-ann-cnn", "energy_by_part_j": None}
    df = comparison_frame([spklip, zoo])
    assert df.attrs["parts"] == ["HSFE", "CNN", "temporal Transformer", "heads"]
    assert math.isnan(df.loc[1, "part_cnn_j"]) and df.loc[0, "part_cnn_j"] == spklip["energy_by_part_j"]["CNN"]
    line = next(ln for ln in comparison_markdown(df, "paper", 2).splitlines() if ln.startswith("| zoo |"))
    assert line.endswith("| — | — | — | — |")
    bare = comparison_frame([{**zoo, "name": "a"}, {**zoo, "name": "b"}])  # no SPKLIP model: no part columns
    assert bare.attrs["parts"] == [] and "HSFE (J)" not in comparison_markdown(bare, "paper", 2)
