"""The energy report record (energy/record.py): summary.json's keys, versioning, round trips, and the CLI's --json."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle

import pytest
from cli_helpers import run_main

from energy.record import SCHEMA_VERSION, EnergyReport, PartFigures, SimulatorCheck, read_report
from reports.writer import summary_json, write_report
from spikedata.digits import DigitsConfig, generate_digits
from spklip_energy.analysis import analyse_checkpoint, comparison_row
from spklip_energy.checkpoint import save_checkpoint
from spklip_energy.errors import ConfigError
from spklip_energy.zoo import build_model, default_card

pytestmark = pytest.mark.usefixtures("one_thread")

#: summary.json's keys, in the order the file has always had them (schema_version appended last)
CHECKPOINT_KEYS = [
    "checkpoint",
    "data",
    "tool_version",
    "created",
    "reuse",
    "counts",
    "counts_per_sample",
    "energy",
    "energy_per_sample",
    "table6_per_sample",
    "neuron_energy_grouping",
    "cost_model",
    "energy_models",
    "warnings",
    "not_counted",
    "conventions",
    "parts",
    "accuracy",
    "evaluation",
    "measured_top1_on_profiled_samples",
    "schema_version",
]
NESTED_KEYS = {
    "checkpoint": ["path", "kind", "spiking", "config"],
    "data": ["source", "samples", "frames", "height", "width", "classes"],
    "counts_per_sample": ["macs", "sops", "neuron_updates", "mem_reads", "mem_writes", "mem_accesses"],
    "energy": [
        "compute_j",
        "neuron_j",
        "memory_j",
        "total_j",
        "memory_ratio",
        "table6_compute_j",
        "per_sample_total_j",
        "memory_bound_layers",
        "layers",
    ],
    "energy_per_sample": ["compute_j", "neuron_j", "memory_j", "total_j"],
    "table6_per_sample": [
        "computational_energy_j",
        "memory_access_energy_j",
        "total_energy_j",
        "memory_energy_ratio",
    ],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_digits(
        tmp_path_factory.mktemp("record") / "digits", DigitsConfig(clips_per_class=3, frames=40, height=16, width=16)
    )


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    card = default_card("test-sj-snn", height=16, width=16)
    card["eval"] = {"top1": 0.5, "clips": 10, "confusion": [[1, 0], [0, 1]]}
    return save_checkpoint(tmp_path_factory.mktemp("record-ckpt") / "snn.pt", build_model(card), card)


@pytest.fixture(scope="module")
def analysed(ckpt, data):
    return analyse_checkpoint(ckpt, data=data, samples=2, batch_size=2)


def _with_parts(report: EnergyReport) -> EnergyReport:
    """The report with two parts (a zoo model has none): the parts' figures go through the record too."""
    e = report.energy_per_sample
    half = {k: v / 2 for k, v in dataclasses.asdict(e).items()}
    c = {k: getattr(report.counts_per_sample, k) / 2 for k in ("macs", "sops", "neuron_updates", "mem_accesses")}
    part = PartFigures(layers=1, **c, **half, share=0.5)
    return dataclasses.replace(report, parts={"HSFE": part, "CNN": dataclasses.replace(part, layers=2)})


def test_to_json_has_the_summary_keys_in_order(analysed):
    report, _ = analysed
    doc = report.to_json()
    assert list(doc) == CHECKPOINT_KEYS and doc["schema_version"] == SCHEMA_VERSION == 1
    for key, keys in NESTED_KEYS.items():
        assert list(doc[key]) == keys, key
    assert doc["parts"] is None and doc["accuracy"] == 0.5
    assert doc["evaluation"] == {"top1": 0.5, "clips": 10}  # the confusion matrix is left out
    assert all(list(r) == ["name", "type", "reason", "calls"] for r in doc["not_counted"])
    parts = _with_parts(report).to_json()["parts"]
    assert list(parts) == ["HSFE", "CNN"]
    assert list(parts["CNN"]) == [
        "layers",
        "macs",
        "sops",
        "neuron_updates",
        "mem_accesses",
        "compute_j",
        "neuron_j",
        "memory_j",
        "total_j",
        "share",
    ]


def test_round_trip(analysed):
    report, _ = analysed
    for r in (report, _with_parts(report)):
        assert EnergyReport.from_json(r.to_json()) == r
        text = summary_json(r)
        back = EnergyReport.from_json(json.loads(text), "summary.json")
        assert back == r and summary_json(back) == text
        assert pickle.loads(pickle.dumps(r)) == r  # the demo's worker processes send records pickled


def test_netx_record_has_simulator_counts_instead_of_parts(analysed):
    report, _ = analysed
    sim = SimulatorCheck(counts={"spikes": 3, "synaptic_events": 5, "neuron_updates": 7}, agree=True)
    netx = dataclasses.replace(report, simulator=sim)
    doc = netx.to_json()
    want = [k for k in CHECKPOINT_KEYS if k != "parts"]
    want[want.index("accuracy") : want.index("accuracy")] = ["simulator_counts", "counts_agree_with_simulator"]
    assert list(doc) == want
    assert doc["simulator_counts"] == sim.counts and doc["counts_agree_with_simulator"] is True
    back = EnergyReport.from_json(json.loads(summary_json(netx)))
    assert back == netx and back.parts is None


def test_summary_json_and_report_json_are_the_record(ckpt, data, analysed, tmp_path, capsys):
    out = tmp_path / "rep"
    rc, stdout, err = run_main(capsys, "report", ckpt, "--data", data, "--samples", "2", "--out", out, "--json")
    assert rc == 0, err
    text = (out / "summary.json").read_text(encoding="utf-8")
    assert stdout == text  # byte for byte: the same record through the same serialiser
    doc = json.loads(text)
    assert list(doc) == CHECKPOINT_KEYS and doc["schema_version"] == SCHEMA_VERSION
    record = read_report(out / "summary.json")
    assert record.to_json() == doc
    report, _ = analysed  # the same checkpoint and clips analysed in-process: the same figures
    assert record.counts == report.counts and record.energy == report.energy
    paths = write_report(tmp_path / "again", report, analysed[1])
    assert json.loads(paths["summary.json"].read_text()) == json.loads(summary_json(report))


def test_a_record_without_schema_version_is_version_1(analysed):
    report, _ = analysed
    doc = copy.deepcopy(report.to_json())
    del doc["schema_version"]
    back = EnergyReport.from_json(doc)
    assert back.schema_version == 1 and back == report


def test_a_newer_schema_version_is_refused(analysed, tmp_path):
    report, _ = analysed
    doc = json.loads(summary_json(report))
    doc["schema_version"] = SCHEMA_VERSION + 1
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as exc:
        read_report(path)
    msg = str(exc.value)
    assert str(path) in msg and f"schema_version {SCHEMA_VERSION + 1} is newer" in msg and "\n" not in msg


@pytest.mark.parametrize(
    "change,needle",
    [
        (lambda d: d.pop("energy"), "lacks 'energy'"),
        (lambda d: d["data"].pop("samples"), "lacks 'data.samples'"),
        (lambda d: d["data"].__setitem__("samples", "2"), "data.samples must be an integer, found a string '2'"),
        (lambda d: d["energy"].__setitem__("total_j", None), "energy.total_j must be a number, found null"),
        (lambda d: d["checkpoint"].__setitem__("spiking", 1), "checkpoint.spiking must be a boolean"),
        (lambda d: d["warnings"].append(3), "warnings[0] must be a string"),
        (lambda d: d.__setitem__("extra", 1), "unknown field 'extra'"),
        (lambda d: d["table6_per_sample"].__setitem__("x", 1), "unknown field 'table6_per_sample.x'"),
        (lambda d: d.__setitem__("schema_version", "1"), "schema_version must be a positive integer"),
        (lambda d: d.__setitem__("simulator_counts", {}), "both 'parts' and simulator counts"),
    ],
)
def test_a_malformed_record_is_one_config_error(analysed, change, needle):
    report, _ = analysed
    doc = json.loads(summary_json(report))
    doc["warnings"] = []
    change(doc)
    with pytest.raises(ConfigError) as exc:
        EnergyReport.from_json(doc, "rep/summary.json")
    msg = str(exc.value)
    assert msg.startswith("rep/summary.json: ") and needle in msg and "\n" not in msg, msg


def test_unreadable_files_are_one_config_error(tmp_path):
    bad = tmp_path / "summary.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"summary\.json: cannot read the energy report"):
        read_report(bad)
    with pytest.raises(ConfigError, match="must be a JSON object, found a list"):
        EnergyReport.from_json([])


def test_demo_json_prints_the_records_as_json(analysed, data, tmp_path, monkeypatch, capsys):
    """``demo --json`` writes each model's report as its summary.json document (not its repr)."""
    report, _ = analysed
    from spikedata.summary import dataset_summary

    fake = {
        "data": str(data),
        "rows": [comparison_row(report, "snn")],
        "summaries": {"snn": report},
        "dataset": dataset_summary(data),
    }
    monkeypatch.setattr("spklip_energy.demo.run_demo", lambda *a, **k: fake)
    rc, stdout, err = run_main(capsys, "demo", "--out", tmp_path / "demo", "--json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert doc["summaries"]["snn"] == json.loads(summary_json(report))
    assert doc["dataset"]["clips"] > 0 and fake["summaries"]["snn"] is report  # the result is not changed
