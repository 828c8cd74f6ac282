"""Per-operation energy constants and the cost models built from them.

Every number in this module comes from ``shared/reference/energy-constants.md``
(sections A–E), which cites its sources. Nothing is retyped from memory: base
rows are entered once in :data:`CONSTANTS` with their source, and every derived
row (a MAC = mult + add, a 32-bit SRAM access = half a 64-bit one) is computed
from the base rows in code, with its arithmetic kept in ``derivation``.

A :class:`CostModel` prices four kinds of work:

==============  ===============================================  ==============
quantity        meaning                                          field
==============  ===============================================  ==============
MAC             one multiply-accumulate (ANN layers)             ``e_mac_pj``
AC / SOP        one accumulate, i.e. one synaptic operation      ``e_ac_pj``
neuron update   one membrane-potential update                    ``e_neuron_pj``
memory          one 32-bit word (flat) or bytes at an SRAM tier  see below
==============  ===============================================  ==============

Memory is charged in one of two ways:

* **flat**: ``e_mem_word_pj`` per word access, whatever the buffer size. This is
  the SPKLIP paper's E_M = 5.0 pJ per 32-bit SRAM read/write (Eq. 12/13).
* **SRAM tiers**: ``sram_tiers`` lists ``(capacity_bytes, pj_per_64bit_access)``
  (Horowitz 2014: 8 KB → 10 pJ, 32 KB → 20 pJ, 1 MB → 100 pJ). A buffer is
  charged at the smallest tier that holds it, at ``pj_per_64bit / 8`` per byte.
  A buffer larger than the largest tier is charged at the largest tier and
  reported as an overflow (DRAM would cost 13–26× more). ``fixed_sram_bytes``
  charges every buffer at the tier that holds that fixed size instead.

Presets (:data:`PRESETS`): ``paper`` (SPKLIP A.6, the default), ``horowitz-fp32``,
``horowitz-fp16``, ``horowitz-int32``, ``horowitz-int8``, ``horowitz-fp32-8kb``
(fp32 with memory fixed at the 8 KB tier, which reproduces the paper's 5 pJ per
32-bit word) and the neuromorphic-chip presets ``loihi`` and ``truenorth``. The
chip presets use per-event figures that were seen only in secondary citations.
They carry an ``UNVERIFIED`` flag, mix process nodes, and are never default.
A user's own table is read with :func:`load_cost_file` (TOML or YAML).
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from spklip_energy.errors import ConfigError, SpklipWarning

__all__ = [
    "CONSTANTS",
    "DEFAULT_CAPABLE_PRESETS",
    "DEFAULT_PRESET",
    "NEURON_ENERGY_GROUPS",
    "PRESETS",
    "Constant",
    "CostModel",
    "get_preset",
    "load_cost_file",
]

STATUSES = ("primary-crosschecked", "derived", "UNVERIFIED")
NEURON_ENERGY_GROUPS = ("compute", "separate")
WORD_BITS = (8, 16, 32)
KB = 1024
MB = 1024 * 1024

# --------------------------------------------------------------------------- citations
# Citation texts as written in shared/reference/energy-constants.md.

HOROWITZ_2014 = (
    'M. Horowitz, "1.1 Computing\'s energy problem (and what we can do about it)", '
    "ISSCC 2014, pp. 10–14, DOI 10.1109/ISSCC.2014.6757323 (energy-per-operation table)"
)
PMC8934428 = "PMC8934428 Tab. 3"
SPIKINGJELLY = "spikingjelly 2.0.0 op_counter (SimpleEnergyCostConfig presets, Lemaire breakpoints)"
SPKLIP_A6 = (
    'SPKLIP paper, appendix A.6 (E_C, E_U, E_M; Eq. 12 and 13; Table 6), constants stated as "from Horowitz 2014"'
)
DAVIES_2018 = (
    'Davies et al., "Loihi: A Neuromorphic Manycore Processor with On-Chip Learning", '
    "IEEE Micro 38(1):82–99, 2018, Table 2 (as widely cited)"
)
MEROLLA_2014 = "Merolla et al., Science 345:668 (2014), as cited secondarily"


# --------------------------------------------------------------------------- validation


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)  # numpy scalars too


def _check_number(value: Any, what: str) -> float:
    """``value`` as a float, or a ConfigError naming ``what``."""
    if not _is_number(value):
        raise ConfigError(f"{what} must be a number, got {describe_value(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be finite, got {value}")
    if value < 0:
        raise ConfigError(f"{what} must be >= 0, got {value:g}")
    return value


def _check_positive_int(value: Any, what: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{what} must be a positive whole number of bytes, got {describe_value(value)}")
    return int(value)


def describe_value(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {value!r}"
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _format_bytes(n: float) -> str:
    if n >= MB and n % MB == 0:
        return f"{int(n // MB)} MB"
    if n >= KB and n % KB == 0:
        return f"{int(n // KB)} KB"
    return f"{n:g} bytes"


# --------------------------------------------------------------------------- constants


@dataclass(frozen=True)
class Constant:
    """One cited per-operation energy figure."""

    name: str  # unit-suffixed key, e.g. "fp32_add_pj"
    value: float
    unit: str  # e.g. "pJ/op", "pJ per 64-bit access"
    precision: str  # e.g. "fp32", "int8", "64-bit", "chip-native"
    node: str  # process node, e.g. "45 nm"
    source: str  # citation text
    status: str  # one of STATUSES
    derivation: str = ""  # arithmetic for derived rows, e.g. "3.7 + 0.9"
    note: str = ""  # caveat to repeat in reports

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ConfigError(f"constant {self.name}: status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        _check_number(self.value, f"constant {self.name}: value")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "precision": self.precision,
            "node": self.node,
            "source": self.source,
            "status": self.status,
            "derivation": self.derivation,
            "note": self.note,
        }


def _fmt(x: float) -> str:
    """A constant as written in the constants file (4.6, not 4.6000000000000005)."""
    return f"{x:.6g}"


def _base(name, value, unit, precision, node, source, status="primary-crosschecked", note=""):
    return Constant(name, value, unit, precision, node, source, status, "", note)


def _sum(name: str, a: Constant, b: Constant, unit: str = "pJ/op") -> Constant:
    return Constant(
        name=name,
        value=round(a.value + b.value, 12),  # 3.7 + 0.9 is 4.6000000000000005 in binary
        unit=unit,
        precision=a.precision,
        node=a.node,
        source=f"derived from {a.name} and {b.name} ({HOROWITZ_2014})",
        status="derived",
        derivation=f"{a.name} + {b.name} = {_fmt(a.value)} + {_fmt(b.value)}",
    )


def _same(name: str, a: Constant, what: str) -> Constant:
    return Constant(
        name=name,
        value=a.value,
        unit=a.unit,
        precision=a.precision,
        node=a.node,
        source=f"derived from {a.name} ({HOROWITZ_2014})",
        status="derived",
        derivation=f"{what} = {a.name} = {_fmt(a.value)}",
    )


def _div(name: str, a: Constant, by: int, unit: str, precision: str, why: str) -> Constant:
    return Constant(
        name=name,
        value=round(a.value / by, 12),
        unit=unit,
        precision=precision,
        node=a.node,
        source=f"derived from {a.name} ({HOROWITZ_2014}); {why}",
        status="derived",
        derivation=f"{a.name} / {by} = {_fmt(a.value)} / {by}",
    )


def _build_constants() -> dict[str, Constant]:
    nm45 = "45 nm"
    h = HOROWITZ_2014
    rows = [
        # A. Horowitz 2014, 45 nm, 0.9 V
        _base("int8_add_pj", 0.03, "pJ/op", "int8", nm45, f"{h}; also in {SPIKINGJELLY} int8 preset"),
        _base("int32_add_pj", 0.1, "pJ/op", "int32", nm45, f"{h}; {PMC8934428}"),
        _base("int8_mult_pj", 0.2, "pJ/op", "int8", nm45, f"{h}; {SPIKINGJELLY} int8 preset"),
        _base("int32_mult_pj", 3.1, "pJ/op", "int32", nm45, f"{h}; {PMC8934428}"),
        _base("fp16_add_pj", 0.4, "pJ/op", "fp16", nm45, f"{h}; {SPIKINGJELLY} fp16 preset (e_ac)"),
        _base(
            "fp16_mult_pj",
            1.1,
            "pJ/op",
            "fp16",
            nm45,
            f"{h} (equals spikingjelly's fp16 MAC 1.5 − add 0.4)",
        ),
        _base("fp32_add_pj", 0.9, "pJ/op", "fp32", nm45, f"{h}; {PMC8934428}"),
        _base("fp32_mult_pj", 3.7, "pJ/op", "fp32", nm45, f"{h}; {PMC8934428}"),
        _base(
            "sram_8kb_64bit_pj",
            10.0,
            "pJ per 64-bit access",
            "64-bit",
            nm45,
            f"{h}; {PMC8934428} note; {SPIKINGJELLY} Lemaire breakpoints",
        ),
        _base(
            "sram_32kb_64bit_pj",
            20.0,
            "pJ per 64-bit access",
            "64-bit",
            nm45,
            f"{h}; {SPIKINGJELLY} Lemaire breakpoints",
        ),
        _base(
            "sram_1mb_64bit_pj",
            100.0,
            "pJ per 64-bit access",
            "64-bit",
            nm45,
            f"{h}; {SPIKINGJELLY} Lemaire breakpoints",
        ),
        _base(
            "dram_64bit_min_pj",
            1300.0,
            "pJ per 64-bit access",
            "64-bit",
            nm45,
            f'{h} ("1.3–2.6 nJ"); several secondary citations, primary not re-read',
            note="lower end of the DRAM range 1300–2600 pJ",
        ),
        _base(
            "dram_64bit_max_pj",
            2600.0,
            "pJ per 64-bit access",
            "64-bit",
            nm45,
            f'{h} ("1.3–2.6 nJ"); several secondary citations, primary not re-read',
            note="upper end of the DRAM range 1300–2600 pJ",
        ),
        # C. SPKLIP paper, appendix A.6 (values as printed in the paper)
        _base(
            "paper_e_c_pj",
            4.6,
            "pJ/op",
            '"32-bit"',
            "45 nm (from Horowitz 2014)",
            SPKLIP_A6,
            note="E_C, compute: charged for MACs and ACs alike; equals the fp32 MAC (the Horowitz fp32 add is 0.9 pJ)",
        ),
        _base(
            "paper_e_u_pj",
            0.9,
            "pJ/op",
            '"32-bit"',
            "45 nm (from Horowitz 2014)",
            SPKLIP_A6,
            note="E_U, neuron update; equals the fp32 add",
        ),
        _base(
            "paper_e_m_pj",
            5.0,
            "pJ per 32-bit SRAM read/write",
            "32-bit",
            "45 nm (from Horowitz 2014)",
            SPKLIP_A6,
            note="E_M, memory access; equals half of Horowitz's 8 KB 64-bit read",
        ),
        # E. Neuromorphic chips (UNVERIFIED)
        _base(
            "loihi_synop_pj",
            23.6,
            "pJ per synaptic spike op",
            "chip-native",
            "Intel 14 nm FinFET",
            DAVIES_2018,
            status="UNVERIFIED",
            note="one public project's notes claim it is not in the primary paper; check Table 2 before use",
        ),
        _base(
            "truenorth_synevent_pj",
            26.0,
            "pJ per synaptic event (~26)",
            "1-bit synapse, chip-native",
            "28 nm",
            MEROLLA_2014,
            status="UNVERIFIED",
            note="approximate: the sources say ~26 pJ",
        ),
    ]
    c = {r.name: r for r in rows}
    halving = "halving for width is the assumption PMC8934428 states"
    derived = [
        # B. Derived from A
        _sum("fp32_mac_pj", c["fp32_mult_pj"], c["fp32_add_pj"]),
        _same("fp32_ac_pj", c["fp32_add_pj"], "AC"),
        _sum("fp16_mac_pj", c["fp16_mult_pj"], c["fp16_add_pj"]),
        _same("fp16_ac_pj", c["fp16_add_pj"], "AC"),
        _sum("int32_mac_pj", c["int32_mult_pj"], c["int32_add_pj"]),
        _same("int32_ac_pj", c["int32_add_pj"], "AC"),
        _sum("int8_mac_pj", c["int8_mult_pj"], c["int8_add_pj"]),
        _same("int8_ac_pj", c["int8_add_pj"], "AC"),
        _div(
            "sram_8kb_32bit_pj",
            c["sram_8kb_64bit_pj"],
            2,
            "pJ per 32-bit access",
            "32-bit",
            halving,
        ),
        _div(
            "sram_32kb_32bit_pj",
            c["sram_32kb_64bit_pj"],
            2,
            "pJ per 32-bit access",
            "32-bit",
            halving,
        ),
        _div(
            "sram_1mb_32bit_pj",
            c["sram_1mb_64bit_pj"],
            2,
            "pJ per 32-bit access",
            "32-bit",
            halving,
        ),
        _div(
            "sram_8kb_byte_pj",
            c["sram_8kb_64bit_pj"],
            8,
            "pJ/B",
            "—",
            "a 64-bit access moves 8 bytes",
        ),
    ]
    c.update({r.name: r for r in derived})
    return c


CONSTANTS: dict[str, Constant] = _build_constants()
"""Every constant the presets use, keyed by its unit-suffixed name."""


def _v(key: str) -> float:
    return CONSTANTS[key].value


# --------------------------------------------------------------------------- cost model


def check_cost_fields(v: dict[str, Any], where: str, noun: str) -> dict[str, Any]:
    """The fields of a cost model checked and normalised: the one home of these checks, for
    :class:`CostModel` (``noun`` "field") and for a user's cost file (``noun`` "key"). A bad value is a
    one-line :class:`ConfigError` starting with ``where`` and naming the field; returns the fields with
    numbers as floats, tiers and string lists as tuples, and the caveats every report repeats added."""
    v = dict(v)
    name = v["name"]
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: {noun} name must be a non-empty string, got {describe_value(name)}")
    if not isinstance(v["description"], str):
        raise ConfigError(f"{where}: {noun} description must be a string, got {describe_value(v['description'])}")
    for key in ("e_mac_pj", "e_ac_pj"):
        v[key] = _check_number(v[key], f"{where}: {noun} {key}")
    for key in ("e_neuron_pj", "e_mem_word_pj"):
        if v[key] is not None:
            v[key] = _check_number(v[key], f"{where}: {noun} {key}")
    if v["sram_tiers"] is not None:
        v["sram_tiers"] = _check_tiers(v["sram_tiers"], f"{where}: {noun} sram_tiers")
    if not isinstance(v["charge_memory"], bool):
        raise ConfigError(
            f"{where}: {noun} charge_memory must be true or false, got {describe_value(v['charge_memory'])}"
        )
    flat, tiered = v["e_mem_word_pj"] is not None, v["sram_tiers"] is not None
    if v["charge_memory"]:
        if flat == tiered:
            raise ConfigError(
                f"{where}: exactly one of the {noun}s e_mem_word_pj and sram_tiers must be set when memory is "
                f"charged, found {'both' if flat else 'neither'}"
            )
    elif flat or tiered:
        raise ConfigError(f"{where}: {noun}s e_mem_word_pj and sram_tiers must be unset when charge_memory is false")
    if v["fixed_sram_bytes"] is not None:
        _check_positive_int(v["fixed_sram_bytes"], f"{where}: {noun} fixed_sram_bytes")
        if not tiered:
            raise ConfigError(f"{where}: {noun} fixed_sram_bytes needs sram_tiers to be set")
    bits = v["word_bits"]
    if not isinstance(bits, int) or isinstance(bits, bool) or bits not in WORD_BITS:
        raise ConfigError(
            f"{where}: {noun} word_bits must be one of {', '.join(map(str, WORD_BITS))}, got {describe_value(bits)}"
        )
    if v["neuron_energy_in"] not in NEURON_ENERGY_GROUPS:
        raise ConfigError(
            f"{where}: {noun} neuron_energy_in must be one of {', '.join(NEURON_ENERGY_GROUPS)}, "
            f"got {describe_value(v['neuron_energy_in'])}"
        )
    for key in ("sources", "flags", "warnings", "constant_keys"):
        value = v[key]
        if isinstance(value, str) or not all(isinstance(s, str) and s.strip() for s in value):
            raise ConfigError(f"{where}: {noun} {key} must be a list of non-empty strings, got {describe_value(value)}")
        v[key] = tuple(value)
    if not v["sources"]:
        raise ConfigError(f"{where}: {noun} sources is empty; a cost table without a source is refused")
    if not isinstance(v["mixes_nodes"], bool):
        raise ConfigError(f"{where}: {noun} mixes_nodes must be true or false, got {describe_value(v['mixes_nodes'])}")
    unknown = [k for k in v["constant_keys"] if k not in CONSTANTS]
    if unknown:
        raise ConfigError(f"{where}: {noun} constant_keys names unknown constant(s) {', '.join(unknown)}")
    # Never let a report drop the caveats below: add them when the builder did not.
    extra = []
    if v["e_neuron_pj"] is None and not any("neuron updates are not charged" in w for w in v["warnings"]):
        extra.append("neuron updates are not charged by this cost model")
    if v["mixes_nodes"] and not any("mixes process nodes" in w for w in v["warnings"]):
        extra.append("mixes process nodes: figures of different process nodes are summed")
    v["warnings"] += tuple(extra)
    return v


@dataclass(frozen=True)
class CostModel:
    """Energy per MAC, per AC (synaptic op), per neuron update and per memory access.

    Memory is either flat (``e_mem_word_pj`` per word access) or tiered
    (``sram_tiers``, charged per byte at ``pj_per_64bit / 8``); a model with
    ``charge_memory=False`` charges neither (its per-event energy already
    includes the synaptic memory fetch).
    """

    name: str
    description: str
    e_mac_pj: float  # per multiply-accumulate
    e_ac_pj: float  # per accumulate / synaptic operation
    e_neuron_pj: float | None  # per neuron update; None = not charged (reports must warn)
    e_mem_word_pj: float | None = None  # flat memory cost per word access (32-bit for the paper)
    sram_tiers: tuple[tuple[int, float], ...] | None = None  # (capacity_bytes, pJ per 64-bit)
    fixed_sram_bytes: int | None = None  # charge every buffer at the tier that holds this size
    word_bits: int = 32  # bits per stored element: bytes per word = word_bits / 8
    charge_memory: bool = True  # False: per-event energy already includes memory
    neuron_energy_in: str = "compute"  # where reports group neuron-update energy
    sources: tuple[str, ...] = ()  # citations of the numbers
    flags: tuple[str, ...] = ()  # provenance flags, e.g. "UNVERIFIED: ..."
    warnings: tuple[str, ...] = ()  # assumptions every report must repeat
    mixes_nodes: bool = False  # True when figures of different process nodes are summed
    constant_keys: tuple[str, ...] = field(default=())  # keys of CONSTANTS used

    def __post_init__(self) -> None:
        named = isinstance(self.name, str) and bool(self.name.strip())
        checked = check_cost_fields(
            {f.name: getattr(self, f.name) for f in fields(self)},
            f"cost model {self.name!r}" if named else "cost model",
            "field",
        )
        for key, value in checked.items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ properties

    @property
    def memory_model(self) -> str:
        """``"flat"``, ``"sram-tiers"`` or ``"not charged"``."""
        if not self.charge_memory:
            return "not charged"
        return "flat" if self.e_mem_word_pj is not None else "sram-tiers"

    @property
    def bytes_per_word(self) -> float:
        return self.word_bits / 8

    @property
    def unverified(self) -> bool:
        """True when any figure of this model is flagged UNVERIFIED."""
        return any(f.startswith("UNVERIFIED") for f in self.flags)

    @property
    def default_capable(self) -> bool:
        """True only for the built-in presets that may be used as a default."""
        return self.name in DEFAULT_CAPABLE_PRESETS and PRESETS.get(self.name) == self

    # ------------------------------------------------------------------ memory

    def tier_for(self, buffer_bytes: float | None = None) -> tuple[int, float, bool]:
        """The SRAM tier a buffer of ``buffer_bytes`` is charged at.

        Returns ``(capacity_bytes, pj_per_64bit_access, overflow)``: the smallest
        tier whose capacity is >= the buffer size; a buffer larger than every
        tier gets the largest tier and ``overflow=True``. When the model has
        ``fixed_sram_bytes``, that size is used instead of ``buffer_bytes``.
        """
        if self.sram_tiers is None:
            raise ValueError(f"cost model {self.name!r} has no SRAM tiers ({self.memory_model} memory)")
        size = self.fixed_sram_bytes if self.fixed_sram_bytes is not None else buffer_bytes
        if size is None:
            raise ValueError(f"cost model {self.name!r} charges memory by SRAM tier and needs buffer_bytes")
        size = _check_number(size, "buffer_bytes")
        for capacity, pj in self.sram_tiers:
            if size <= capacity:
                return capacity, pj, False
        capacity, pj = self.sram_tiers[-1]
        return capacity, pj, True

    def memory_pj(self, words: float, nbytes: float | None = None, buffer_bytes: float | None = None) -> float:
        """Energy in pJ of moving ``words`` words (or ``nbytes`` bytes) of a buffer.

        * flat: ``words × e_mem_word_pj`` (one access per word; ``nbytes`` is ignored);
        * tiered: ``bytes × pj_per_64bit / 8`` with ``bytes = nbytes`` or
          ``words × word_bits / 8``, at :meth:`tier_for` ``(buffer_bytes)``;
        * ``charge_memory=False``: 0.
        """
        words = _check_number(words, "words")
        if not self.charge_memory:
            return 0.0
        if self.e_mem_word_pj is not None:
            return words * self.e_mem_word_pj
        nbytes = words * self.bytes_per_word if nbytes is None else _check_number(nbytes, "nbytes")
        _, pj_per_64bit, _ = self.tier_for(buffer_bytes)
        return nbytes * pj_per_64bit / 8

    def overflow_warning(self, n_buffers: int) -> str:
        """The report line for ``n_buffers`` buffers larger than the largest SRAM tier."""
        if self.sram_tiers is None:
            raise ValueError(f"cost model {self.name!r} has no SRAM tiers ({self.memory_model} memory)")
        capacity, pj = self.sram_tiers[-1]
        size = _format_bytes(capacity)
        noun = "buffer exceeds" if n_buffers == 1 else "buffers exceed"
        text = f"{n_buffers} {noun} {size}, charged at the {size} SRAM cost"
        if pj > 0:
            lo = _v("dram_64bit_min_pj") / pj
            hi = _v("dram_64bit_max_pj") / pj
            text += f" (DRAM would cost {lo:.3g}–{hi:.3g}× more)"
        return text

    # ------------------------------------------------------------------ reports

    def to_dict(self) -> dict[str, Any]:
        """All fields, plus the constants used with their sources and derivations."""
        return {
            "name": self.name,
            "description": self.description,
            "e_mac_pj": self.e_mac_pj,
            "e_ac_pj": self.e_ac_pj,
            "e_neuron_pj": self.e_neuron_pj,
            "e_mem_word_pj": self.e_mem_word_pj,
            "sram_tiers": None if self.sram_tiers is None else [list(t) for t in self.sram_tiers],
            "fixed_sram_bytes": self.fixed_sram_bytes,
            "word_bits": self.word_bits,
            "charge_memory": self.charge_memory,
            "memory_model": self.memory_model,
            "neuron_energy_in": self.neuron_energy_in,
            "sources": list(self.sources),
            "flags": list(self.flags),
            "warnings": list(self.warnings),
            "mixes_nodes": self.mixes_nodes,
            "unverified": self.unverified,
            "default_capable": self.default_capable,
            "constants": {k: CONSTANTS[k].to_dict() for k in self.constant_keys},
        }


def _check_tiers(tiers: Any, what: str) -> tuple[tuple[int, float], ...]:
    if isinstance(tiers, (str, bytes)) or not hasattr(tiers, "__iter__"):
        raise ConfigError(f"{what} must be a list of [capacity_bytes, pj_per_64bit] pairs, got {describe_value(tiers)}")
    out = []
    for i, tier in enumerate(tiers):
        if isinstance(tier, (str, bytes)) or not hasattr(tier, "__len__") or len(tier) != 2:
            raise ConfigError(
                f"{what} entry {i} must be a pair [capacity_bytes, pj_per_64bit], got {describe_value(tier)}"
            )
        capacity = _check_positive_int(tier[0], f"{what} entry {i} capacity")
        pj = _check_number(tier[1], f"{what} entry {i} pj_per_64bit")
        out.append((capacity, pj))
    if not out:
        raise ConfigError(f"{what} must hold at least one tier")
    caps = [c for c, _ in out]
    if any(b <= a for a, b in zip(caps, caps[1:], strict=False)):
        raise ConfigError(f"{what} must be sorted by strictly increasing capacity, got capacities {caps}")
    return tuple(out)


# --------------------------------------------------------------------------- presets

_SRAM_TIERS = (
    (8 * KB, _v("sram_8kb_64bit_pj")),
    (32 * KB, _v("sram_32kb_64bit_pj")),
    (1 * MB, _v("sram_1mb_64bit_pj")),
)
_SRAM_KEYS = (
    "sram_8kb_64bit_pj",
    "sram_32kb_64bit_pj",
    "sram_1mb_64bit_pj",
    "dram_64bit_min_pj",
    "dram_64bit_max_pj",
)
_TIER_TEXT = (
    "/".join(_format_bytes(c) for c, _ in _SRAM_TIERS)
    + " ("
    + "/".join(_fmt(pj) for _, pj in _SRAM_TIERS)
    + " pJ per 64-bit access)"
)
_NEURON_AS_ADD = (
    "neuron updates are charged as one add of the preset's precision "
    "(the paper's E_U = 0.9 pJ equals the Horowitz fp32 add)"
)
_HOROWITZ_SOURCES = (HOROWITZ_2014, PMC8934428, SPIKINGJELLY)


def _paper() -> CostModel:
    return CostModel(
        name="paper",
        description=(
            "SPKLIP appendix A.6: E_C = 4.6 pJ per MAC and per AC alike, E_U = 0.9 pJ per neuron "
            "update, E_M = 5.0 pJ per 32-bit SRAM access (Eq. 12 and 13)"
        ),
        e_mac_pj=_v("paper_e_c_pj"),
        e_ac_pj=_v("paper_e_c_pj"),
        e_neuron_pj=_v("paper_e_u_pj"),
        e_mem_word_pj=_v("paper_e_m_pj"),
        word_bits=32,
        neuron_energy_in="compute",
        sources=(SPKLIP_A6, HOROWITZ_2014),
        warnings=(
            "the paper charges accumulates (SOPs) at E_C = 4.6 pJ, the fp32 MAC price; the Horowitz fp32 add is 0.9 pJ",
            "Table 6 has no neuron-update row and the paper does not say where E_U × updates is "
            "counted; this preset assumes it is part of compute energy",
        ),
        constant_keys=(
            "paper_e_c_pj",
            "paper_e_u_pj",
            "paper_e_m_pj",
            "fp32_mac_pj",
            "fp32_add_pj",
            "sram_8kb_32bit_pj",
        ),
    )


def _horowitz(precision: str, bits: int) -> CostModel:
    mac, ac = f"{precision}_mac_pj", f"{precision}_ac_pj"
    return CostModel(
        name=f"horowitz-{precision}",
        description=(
            f"Horowitz 2014, 45 nm {precision}: MAC = mult + add = {_fmt(_v(mac))} pJ, "
            f"AC = add = {_fmt(_v(ac))} pJ; memory by SRAM tier {_TIER_TEXT}, "
            f"charged per byte, {bits}-bit words"
        ),
        e_mac_pj=_v(mac),
        e_ac_pj=_v(ac),
        e_neuron_pj=_v(f"{precision}_add_pj"),
        sram_tiers=_SRAM_TIERS,
        word_bits=bits,
        neuron_energy_in="compute",
        sources=_HOROWITZ_SOURCES,
        warnings=(_NEURON_AS_ADD,),
        constant_keys=(f"{precision}_mult_pj", f"{precision}_add_pj", mac, ac, *_SRAM_KEYS),
    )


def _horowitz_fp32_8kb() -> CostModel:
    base = _horowitz("fp32", 32)
    return CostModel(
        name="horowitz-fp32-8kb",
        description=(
            "Horowitz 2014, 45 nm fp32 with every buffer charged at the 8 KB SRAM tier "
            f"({_fmt(_v('sram_8kb_64bit_pj'))} pJ per 64-bit access = "
            f"{_fmt(_v('sram_8kb_32bit_pj'))} pJ per 32-bit word, the paper's E_M assumption)"
        ),
        e_mac_pj=base.e_mac_pj,
        e_ac_pj=base.e_ac_pj,
        e_neuron_pj=base.e_neuron_pj,
        sram_tiers=_SRAM_TIERS,
        fixed_sram_bytes=8 * KB,
        word_bits=32,
        neuron_energy_in="compute",
        sources=_HOROWITZ_SOURCES,
        warnings=(
            _NEURON_AS_ADD,
            "memory is fixed at the 8 KB SRAM tier whatever the buffer size, as the paper's "
            "E_M = 5.0 pJ per 32-bit word assumes",
        ),
        constant_keys=(*base.constant_keys, "sram_8kb_32bit_pj"),
    )


def _chip(name: str, synop_key: str, chip: str, what: str, approx: bool = False) -> CostModel:
    c = CONSTANTS[synop_key]
    shown = ("~" if approx else "") + _fmt(c.value)
    mac = CONSTANTS["fp32_mac_pj"]
    return CostModel(
        name=name,
        description=(
            f"{chip}: {shown} pJ per {what} ({c.node}); MACs, which {chip} cannot "
            f"execute, charged as host-side fp32 work at the Horowitz 45 nm MAC "
            f"({_fmt(mac.value)} pJ); neuron updates and memory not charged separately"
        ),
        e_mac_pj=mac.value,
        e_ac_pj=c.value,
        e_neuron_pj=None,
        charge_memory=False,
        word_bits=32,
        neuron_energy_in="compute",
        sources=(c.source, HOROWITZ_2014),
        flags=(f"UNVERIFIED: {chip} {shown} pJ per {what} seen only in secondary citations ({c.note})",),
        warnings=(
            f"mixes process nodes: synaptic ops at {chip}'s {c.node} per-event figure, MACs at "
            "the Horowitz 45 nm fp32 MAC",
            f"neuron updates are not charged: no verified per-update figure for {chip}"
            + (" (the 52 / 1.7 pJ Loihi neuron-update figures are marked 'do not ship')" if name == "loihi" else ""),
            f"memory is not charged separately: {chip}'s per-event energy includes the synaptic memory fetch on chip",
        ),
        mixes_nodes=True,
        constant_keys=(synop_key, "fp32_mac_pj", "fp32_mult_pj", "fp32_add_pj"),
    )


PRESETS: dict[str, CostModel] = {
    m.name: m
    for m in (
        _paper(),
        _horowitz("fp32", 32),
        _horowitz("fp16", 16),
        _horowitz("int32", 32),
        _horowitz("int8", 8),
        _horowitz_fp32_8kb(),
        _chip("loihi", "loihi_synop_pj", "Loihi", "synaptic op"),
        _chip("truenorth", "truenorth_synevent_pj", "TrueNorth", "synaptic event", approx=True),
    )
}
"""Built-in cost models by name."""

DEFAULT_PRESET = "paper"
DEFAULT_CAPABLE_PRESETS: tuple[str, ...] = (
    "paper",
    "horowitz-fp32",
    "horowitz-fp16",
    "horowitz-int32",
    "horowitz-int8",
    "horowitz-fp32-8kb",
)
"""Presets that may serve as a default: no UNVERIFIED figure, no mixed process nodes."""


def get_preset(name: str) -> CostModel:
    """The built-in cost model ``name``, or a ConfigError listing the valid names."""
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown energy cost preset {name!r}; valid presets: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------- user files

_REQUIRED_KEYS = ("name", "e_mac_pj", "e_ac_pj", "e_neuron_pj", "sources")
_OPTIONAL_KEYS = (
    "description",
    "e_mem_word_pj",
    "sram_tiers",
    "fixed_sram_bytes",
    "word_bits",
    "neuron_energy_in",
)


MAX_COST_FILE_BYTES = 1 << 20  # a cost table is a few hundred bytes; anything over 1 MiB is not one


def _duplicate_warning_loader(yaml, path: Path, what: str = "cost file"):
    """PyYAML's SafeLoader, warning where a mapping repeats a key (the last value wins, as in YAML) and
    refusing aliases."""

    class Loader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            # an alias can expand a 1 kB file into gigabytes ("billion laughs"); a cost table needs none
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ConfigError(
                    f"{what} {path}: line {event.start_mark.line + 1} uses the YAML alias "
                    f"*{event.anchor}; aliases are not accepted, write the values out"
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            seen: set = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: SafeLoader reports it
                    continue
                if duplicate:
                    warnings.warn(
                        f"{what} {path}: duplicate key {key!r} on line {key_node.start_mark.line + 1}; "
                        "the last value is used",
                        SpklipWarning,
                        stacklevel=2,
                    )
            return super().construct_mapping(node, deep=deep)

    return Loader


def read_table(path: Path, what: str = "cost file") -> Any:
    """The table in a TOML or YAML file (``what``: how errors name it), or a one-line ConfigError."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{what} {path}: unsupported suffix {path.suffix or '(none)'!r}; use .toml, .yaml or .yml")
    try:
        if path.is_file() and path.stat().st_size > MAX_COST_FILE_BYTES:
            raise ConfigError(
                f"{what} {path} is {path.stat().st_size:,} bytes; a table is at most {MAX_COST_FILE_BYTES:,}"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text") from None
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ModuleNotFoundError:
                raise ConfigError(f"{what} {path}: reading TOML needs Python 3.11+ or the tomli package") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{what} {path} is not valid TOML: {e}") from None
    try:
        import yaml
    except ModuleNotFoundError:
        raise ConfigError(f"{what} {path}: reading YAML needs the pyyaml package") from None
    try:
        return yaml.load(text, Loader=_duplicate_warning_loader(yaml, path, what))  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise ConfigError(f"{what} {path} is not valid YAML: {msg}") from None


def load_cost_file(path: str | Path) -> CostModel:
    """A user's own cost table from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file.

    Required keys: ``name``, ``e_mac_pj``, ``e_ac_pj``, ``e_neuron_pj`` (numbers, pJ),
    ``sources`` (a non-empty list of citations), and exactly one of
    ``e_mem_word_pj`` (flat pJ per word) or ``sram_tiers`` (list of
    ``[capacity_bytes, pj_per_64bit_access]``). Optional: ``description``,
    ``fixed_sram_bytes``, ``word_bits`` (8/16/32, default 32) and
    ``neuron_energy_in`` (``compute``/``separate``, default ``compute``).
    """
    path = Path(path)
    raw = read_table(path)
    where = f"cost file {path}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must hold a table of keys, got {describe_value(raw)}")
    not_text = [k for k in raw if not isinstance(k, str)]
    if not_text:
        raise ConfigError(f"{where}: keys must be names, found {not_text[0]!r}")
    unknown = sorted(set(raw) - set(_REQUIRED_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; valid keys: "
            f"{', '.join(_REQUIRED_KEYS + _OPTIONAL_KEYS)}"
        )
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    sources = raw["sources"]
    given = {
        "description": "",
        "e_mem_word_pj": None,
        "sram_tiers": None,
        "fixed_sram_bytes": None,
        "word_bits": 32,
        "neuron_energy_in": "compute",
        **raw,
        "sources": [sources] if isinstance(sources, str) else sources,
        "charge_memory": True,
        "flags": (f"user-supplied cost table from {path}",),
        "warnings": (),
        "mixes_nodes": False,
        "constant_keys": (),
    }
    if not isinstance(given["sources"], list | tuple):
        raise ConfigError(f"{where}: key sources must be a list of non-empty strings, got {describe_value(sources)}")
    return CostModel(**check_cost_fields(given, where, "key"))
