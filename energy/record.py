"""The energy report: one typed, versioned record of what ``report`` measured.

:class:`EnergyReport` is built by ``report`` for a checkpoint
(:func:`spklip_energy.analysis.analyse_checkpoint`) and for a netx network
(:func:`spklip_energy.analysis.analyse_netx`), and read by ``compare``, the demo,
the benchmark, the report writers and ``--json``. Readers use attributes.

:meth:`EnergyReport.to_json` gives the ``summary.json`` document: the keys and key
order the file has always had, ``schema_version`` last.
:meth:`EnergyReport.from_json` reads one back: a record without ``schema_version``
(written before it existed) is version 1, a newer version or a malformed record is
one :class:`~spklip_energy.errors.ConfigError` sentence naming the record and the
problem. A change of the document's keys or of their meaning bumps
:data:`SCHEMA_VERSION`.

Typed here: everything this record owns. Kept as plain dicts, because they are
open-ended or are owned (written and read) by another module:

* ``counts``: the profiler's sums (:attr:`energy.ProfileResult.totals`), an open set of counters
  that grows with the counting rules (every count column plus bookkeeping such as
  ``not_counted_modules`` and ``samples``);
* ``cost_model``: :meth:`energy.costs.CostModel.to_dict`, the cost model with its sources,
  owned by :mod:`energy.costs`;
* ``energy_models``: :func:`energy.models.estimate_models`' deep record (pricings, ranges,
  break-even tables per model), owned by :mod:`energy.models` and read by :mod:`reports.models`;
* ``evaluation``: the evaluation a checkpoint's card records (``spklip-energy eval``), owned by the training code;
* ``checkpoint.config``: the model's config as its card records it (a SPKLIP config, a zoo card, a
  netx network's layers);
* ``simulator.counts``: the fixed-point simulator's totals (:meth:`export.loihi_engine.SimResult.totals`).
"""

from __future__ import annotations

import json
import numbers
import os
import types
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from spklip_energy.errors import ConfigError, found

#: the version of the record :meth:`EnergyReport.to_json` writes; :meth:`EnergyReport.from_json` reads up to it
SCHEMA_VERSION = 1


@dataclass(kw_only=True)
class CheckpointInfo:
    """What was profiled: a checkpoint (or a netx network, ``kind`` ``netx``)."""

    path: str
    kind: str
    spiking: bool
    config: dict


@dataclass(kw_only=True)
class DataInfo:
    """The data it was profiled on; ``samples`` is the number every per-sample figure divides by."""

    source: str
    samples: int
    frames: int
    height: int
    width: int
    classes: list[str]


@dataclass(kw_only=True)
class CountsPerSample:
    """Operation counts per sample (memory in 32-bit words)."""

    macs: float
    sops: float
    neuron_updates: float
    mem_reads: float
    mem_writes: float
    mem_accesses: float


@dataclass(kw_only=True)
class EnergyTotals:
    """Energy of the whole profiled batch (J) under the report's cost model (:func:`energy.estimate.estimate_energy`)."""

    compute_j: float
    neuron_j: float
    memory_j: float
    total_j: float
    memory_ratio: float
    table6_compute_j: float
    per_sample_total_j: float
    memory_bound_layers: int
    layers: int


@dataclass(kw_only=True)
class EnergyPerSample:
    """Energy per sample (J)."""

    compute_j: float
    neuron_j: float
    memory_j: float
    total_j: float


@dataclass(kw_only=True)
class Table6:
    """The paper's Table 6 rows, per sample (neuron energy grouped as the cost model says)."""

    computational_energy_j: float
    memory_access_energy_j: float
    total_energy_j: float
    memory_energy_ratio: float


@dataclass(kw_only=True)
class PartFigures:
    """One part of a SPKLIP visual encoder (:mod:`spklip.parts`): its counted layers, counts and energy per
    sample, and its share of the total energy."""

    layers: int
    macs: float
    sops: float
    neuron_updates: float
    mem_accesses: float
    compute_j: float
    neuron_j: float
    memory_j: float
    total_j: float
    share: float


@dataclass(kw_only=True)
class NotCounted:
    """A layer that ran but has no counting rule."""

    name: str
    type: str
    reason: str
    calls: int


@dataclass(kw_only=True)
class SimulatorCheck:
    """A netx report's fixed-point simulator counts beside the hook counter's (``simulator_counts`` and
    ``counts_agree_with_simulator`` in the JSON)."""

    counts: dict
    agree: bool


@dataclass(kw_only=True)
class EnergyReport:
    """One energy report (``summary.json``); see the module's documentation.

    ``parts`` is the energy by model part of a SPKLIP checkpoint (None for the zoo's models); a netx
    report has ``simulator`` instead, and its JSON has no ``parts`` key. Records are mutable:
    :func:`~spklip_energy.analysis.price_fairly` re-prices ``energy_models`` in place."""

    checkpoint: CheckpointInfo
    data: DataInfo
    tool_version: str
    created: str
    reuse: str
    counts: dict[str, float]
    counts_per_sample: CountsPerSample
    energy: EnergyTotals
    energy_per_sample: EnergyPerSample
    table6_per_sample: Table6
    neuron_energy_grouping: str
    cost_model: dict
    energy_models: dict | None
    warnings: list[str]
    not_counted: list[NotCounted]
    conventions: list[str]
    parts: dict[str, PartFigures] | None = None
    simulator: SimulatorCheck | None = None
    accuracy: float | None = None
    evaluation: dict | None = None
    measured_top1_on_profiled_samples: float | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        """The ``summary.json`` document (JSON-ready but for numpy scalars, which a serialiser's ``default``
        turns into numbers). It shares this record's dicts and lists: copy before changing it."""
        doc = {
            "checkpoint": _flat(self.checkpoint),
            "data": _flat(self.data),
            "tool_version": self.tool_version,
            "created": self.created,
            "reuse": self.reuse,
            "counts": self.counts,
            "counts_per_sample": _flat(self.counts_per_sample),
            "energy": _flat(self.energy),
            "energy_per_sample": _flat(self.energy_per_sample),
            "table6_per_sample": _flat(self.table6_per_sample),
            "neuron_energy_grouping": self.neuron_energy_grouping,
            "cost_model": self.cost_model,
            "energy_models": self.energy_models,
            "warnings": self.warnings,
            "not_counted": [_flat(r) for r in self.not_counted],
            "conventions": self.conventions,
        }
        if self.simulator is None:
            doc["parts"] = None if self.parts is None else {name: _flat(p) for name, p in self.parts.items()}
        else:
            doc["simulator_counts"] = self.simulator.counts
            doc["counts_agree_with_simulator"] = self.simulator.agree
        doc["accuracy"] = self.accuracy
        doc["evaluation"] = self.evaluation
        doc["measured_top1_on_profiled_samples"] = self.measured_top1_on_profiled_samples
        doc["schema_version"] = self.schema_version
        return doc

    @classmethod
    def from_json(cls, doc, source: str | os.PathLike | None = None) -> EnergyReport:
        """The record of a ``summary.json`` document (``source`` names it in errors: its file, say).

        Raises :class:`~spklip_energy.errors.ConfigError` for a newer ``schema_version`` than
        :data:`SCHEMA_VERSION`, and for a missing, unknown or mistyped field."""
        prefix = f"{source}: " if source is not None else ""
        if not isinstance(doc, dict):
            raise ConfigError(f"{prefix}an energy report must be a JSON object, found {found(doc)}")
        version = doc.get("schema_version", 1)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ConfigError(
                f"{prefix}energy report schema_version must be a positive integer, found {found(version)}"
            )
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{prefix}energy report schema_version {version} is newer than this spklip-energy reads "
                f"(up to {SCHEMA_VERSION}); upgrade spklip-energy to read it"
            )
        if "simulator" in doc:  # the record's attribute, not a key of the document
            raise ConfigError(f"{prefix}energy report has an unknown field 'simulator'")
        body = dict(doc)
        body["schema_version"] = version
        netx = "simulator_counts" in body or "counts_agree_with_simulator" in body
        if netx:
            if "parts" in body:
                raise ConfigError(f"{prefix}energy report has both 'parts' and simulator counts")
            for key in ("simulator_counts", "counts_agree_with_simulator"):
                if key not in body:
                    raise ConfigError(f"{prefix}energy report lacks '{key}'")
            body["simulator"] = {
                "counts": body.pop("simulator_counts"),
                "agree": body.pop("counts_agree_with_simulator"),
            }
            body["parts"] = None
        else:
            body.setdefault("parts", None)  # records written before energy by part existed
            body["simulator"] = None
        return _load(cls, body, "", prefix)


def read_report(path: str | os.PathLike) -> EnergyReport:
    """The record of a ``summary.json`` file; an unreadable file or record is one ConfigError naming it."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the energy report ({type(exc).__name__})") from None
    return EnergyReport.from_json(doc, path)


# --------------------------------------------------------------------------- reading, checked


def _flat(obj) -> dict:
    """A flat record's fields as a dict, in declaration order (values shared, not copied)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


@cache
def _hints(cls) -> dict[str, Any]:
    return get_type_hints(cls)


_WORDS = {float: "a number", int: "an integer", bool: "a boolean", str: "a string", dict: "an object", list: "a list"}


def _load(cls, value, where: str, prefix: str):
    """``cls`` built from ``value`` (a dict with exactly its fields), each field checked against its type."""
    name = where or "the record"
    if not isinstance(value, dict):
        raise ConfigError(f"{prefix}energy report field {name} must be an object, found {found(value)}")
    hints = _hints(cls)
    for key in value:
        if key not in hints:
            raise ConfigError(f"{prefix}energy report has an unknown field '{where + '.' if where else ''}{key}'")
    kwargs = {}
    for f in fields(cls):
        path = f"{where}.{f.name}" if where else f.name
        if f.name not in value:
            raise ConfigError(f"{prefix}energy report lacks '{path}'")
        kwargs[f.name] = _check(value[f.name], hints[f.name], path, prefix)
    return cls(**kwargs)


def _check(value, hint, where: str, prefix: str):
    """``value`` checked against ``hint`` (nested records built); a mismatch is one ConfigError."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        (hint,) = args  # every optional field here is ``X | None``
        origin = get_origin(hint)
    if is_dataclass(hint):
        return _load(hint, value, where, prefix)
    base = origin or hint
    ok = {
        float: isinstance(value, numbers.Real) and not isinstance(value, bool),
        int: isinstance(value, numbers.Integral) and not isinstance(value, bool),
        bool: isinstance(value, bool),
        str: isinstance(value, str),
        dict: isinstance(value, dict),
        list: isinstance(value, list),
    }[base]
    if not ok:
        raise ConfigError(f"{prefix}energy report field {where} must be {_WORDS[base]}, found {found(value)}")
    args = get_args(hint)
    if base is dict and args:
        return {k: _check(v, args[1], f"{where}.{k}", prefix) for k, v in value.items()}
    if base is list and args:
        return [_check(v, args[0], f"{where}[{i}]", prefix) for i, v in enumerate(value)]
    return value


__all__ = [
    "SCHEMA_VERSION",
    "CheckpointInfo",
    "CountsPerSample",
    "DataInfo",
    "EnergyPerSample",
    "EnergyReport",
    "EnergyTotals",
    "NotCounted",
    "PartFigures",
    "SimulatorCheck",
    "Table6",
    "read_report",
]
