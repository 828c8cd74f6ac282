"""Tests of the energy constants table, cost models, presets and user cost files.

The literal numbers asserted here are copied from
``shared/reference/energy-constants.md`` (sections A–E) and from SPKLIP's
appendix A.6, Table 6; the module under test derives them, so a retyped or
mis-derived constant fails here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from energy.costs import (
    CONSTANTS,
    DEFAULT_CAPABLE_PRESETS,
    DEFAULT_PRESET,
    PRESETS,
    Constant,
    CostModel,
    get_preset,
    load_cost_file,
)
from spklip_energy.errors import ConfigError

TOL = 1e-12
KB, MB = 1024, 1024 * 1024


def close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol


# --------------------------------------------------------------------------- constants table

# name -> value, as printed in energy-constants.md
CONSTANTS_FILE = {
    # A. Horowitz 2014, 45 nm
    "int8_add_pj": 0.03,
    "int32_add_pj": 0.1,
    "int8_mult_pj": 0.2,
    "int32_mult_pj": 3.1,
    "fp16_add_pj": 0.4,
    "fp16_mult_pj": 1.1,
    "fp32_add_pj": 0.9,
    "fp32_mult_pj": 3.7,
    "sram_8kb_64bit_pj": 10.0,
    "sram_32kb_64bit_pj": 20.0,
    "sram_1mb_64bit_pj": 100.0,
    "dram_64bit_min_pj": 1300.0,
    "dram_64bit_max_pj": 2600.0,
    # B. derived
    "fp32_mac_pj": 4.6,
    "fp32_ac_pj": 0.9,
    "fp16_mac_pj": 1.5,
    "fp16_ac_pj": 0.4,
    "int32_mac_pj": 3.2,
    "int32_ac_pj": 0.1,
    "int8_mac_pj": 0.23,
    "int8_ac_pj": 0.03,
    "sram_8kb_32bit_pj": 5.0,
    "sram_32kb_32bit_pj": 10.0,
    "sram_1mb_32bit_pj": 50.0,
    "sram_8kb_byte_pj": 1.25,
    # C. SPKLIP A.6
    "paper_e_c_pj": 4.6,
    "paper_e_u_pj": 0.9,
    "paper_e_m_pj": 5.0,
    # E. chips
    "loihi_synop_pj": 23.6,
    "truenorth_synevent_pj": 26.0,
}


@pytest.mark.parametrize("key, expected", sorted(CONSTANTS_FILE.items()))
def test_constant_matches_constants_file(key: str, expected: float) -> None:
    c = CONSTANTS[key]
    assert close(c.value, expected), f"{key}: expected {expected}, found {c.value}"


def test_every_constant_is_cited_and_has_a_status() -> None:
    for key, c in CONSTANTS.items():
        assert isinstance(c, Constant)
        assert c.name == key
        assert c.source, f"{key}: no source"
        assert c.unit and c.node and c.precision, f"{key}: unit/node/precision missing"
        assert c.status in ("primary-crosschecked", "derived", "UNVERIFIED")
        if c.status == "derived":
            assert c.derivation, f"{key}: derived without its arithmetic"


def test_derived_rows_show_their_arithmetic() -> None:
    assert CONSTANTS["fp32_mac_pj"].derivation.endswith("3.7 + 0.9")
    assert CONSTANTS["fp16_mac_pj"].derivation.endswith("1.1 + 0.4")
    assert CONSTANTS["int32_mac_pj"].derivation.endswith("3.1 + 0.1")
    assert CONSTANTS["int8_mac_pj"].derivation.endswith("0.2 + 0.03")
    assert CONSTANTS["sram_8kb_32bit_pj"].derivation.endswith("10 / 2")
    assert CONSTANTS["sram_8kb_byte_pj"].derivation.endswith("10 / 8")


def test_chip_constants_are_unverified() -> None:
    assert CONSTANTS["loihi_synop_pj"].status == "UNVERIFIED"
    assert CONSTANTS["truenorth_synevent_pj"].status == "UNVERIFIED"
    assert "Table 2" in CONSTANTS["loihi_synop_pj"].note
    for key, c in CONSTANTS.items():
        if not key.startswith(("loihi", "truenorth")):
            assert c.status != "UNVERIFIED", key


def test_paper_constants_equal_their_horowitz_counterparts() -> None:
    assert close(CONSTANTS["paper_e_c_pj"].value, CONSTANTS["fp32_mac_pj"].value)
    assert close(CONSTANTS["paper_e_u_pj"].value, CONSTANTS["fp32_add_pj"].value)
    assert close(CONSTANTS["paper_e_m_pj"].value, CONSTANTS["sram_8kb_32bit_pj"].value)


def test_constant_rejects_bad_status() -> None:
    with pytest.raises(ConfigError, match="status"):
        Constant("x_pj", 1.0, "pJ", "fp32", "45 nm", "somewhere", "guessed")


# --------------------------------------------------------------------------- presets

# preset -> (mac, ac, neuron, word_bits), from energy-constants.md
PRESET_NUMBERS = {
    "paper": (4.6, 4.6, 0.9, 32),
    "horowitz-fp32": (4.6, 0.9, 0.9, 32),
    "horowitz-fp16": (1.5, 0.4, 0.4, 16),
    "horowitz-int32": (3.2, 0.1, 0.1, 32),
    "horowitz-int8": (0.23, 0.03, 0.03, 8),
    "horowitz-fp32-8kb": (4.6, 0.9, 0.9, 32),
    "loihi": (4.6, 23.6, None, 32),
    "truenorth": (4.6, 26.0, None, 32),
}


def test_preset_names() -> None:
    assert set(PRESETS) == set(PRESET_NUMBERS)
    assert DEFAULT_PRESET == "paper"
    assert DEFAULT_PRESET in DEFAULT_CAPABLE_PRESETS
    assert "loihi" not in DEFAULT_CAPABLE_PRESETS
    assert "truenorth" not in DEFAULT_CAPABLE_PRESETS


@pytest.mark.parametrize("name", sorted(PRESET_NUMBERS))
def test_preset_numbers_match_constants_file(name: str) -> None:
    mac, ac, neuron, bits = PRESET_NUMBERS[name]
    p = get_preset(name)
    assert p.name == name
    assert close(p.e_mac_pj, mac), f"{name} MAC: expected {mac}, found {p.e_mac_pj}"
    assert close(p.e_ac_pj, ac), f"{name} AC: expected {ac}, found {p.e_ac_pj}"
    if neuron is None:
        assert p.e_neuron_pj is None
        assert any("neuron updates are not charged" in w for w in p.warnings)
    else:
        assert close(p.e_neuron_pj, neuron), f"{name} neuron: expected {neuron}, found {p.e_neuron_pj}"
    assert p.word_bits == bits
    assert p.sources


def test_paper_preset_memory_and_grouping() -> None:
    p = get_preset("paper")
    assert p.memory_model == "flat"
    assert p.e_mem_word_pj == 5.0
    assert close(p.memory_pj(words=1), 5.0)
    assert close(p.memory_pj(words=1000), 5000.0)
    assert p.neuron_energy_in == "compute"
    assert any("Table 6 has no neuron-update row" in w for w in p.warnings)
    assert any("AC" in w or "accumulates" in w for w in p.warnings)
    assert p.default_capable and not p.unverified and not p.mixes_nodes


@pytest.mark.parametrize("name", ["horowitz-fp32", "horowitz-fp16", "horowitz-int32", "horowitz-int8"])
def test_horowitz_presets_use_the_sram_tiers(name: str) -> None:
    p = get_preset(name)
    assert p.memory_model == "sram-tiers"
    assert p.sram_tiers == ((8192, 10.0), (32768, 20.0), (1048576, 100.0))
    assert p.fixed_sram_bytes is None
    assert any("one add of the preset's precision" in w for w in p.warnings)
    assert p.default_capable and not p.unverified and not p.mixes_nodes


def test_memory_is_bytes_based_per_precision() -> None:
    # 1000 words in an 8 KB buffer: 4000 / 2000 / 1000 bytes at 10/8 = 1.25 pJ per byte
    assert close(get_preset("horowitz-fp32").memory_pj(1000, buffer_bytes=4000), 5000.0)
    assert close(get_preset("horowitz-fp16").memory_pj(1000, buffer_bytes=2000), 2500.0)
    assert close(get_preset("horowitz-int8").memory_pj(1000, buffer_bytes=1000), 1250.0)
    # explicit bytes override words × word_bits / 8
    assert close(get_preset("horowitz-fp32").memory_pj(1000, nbytes=100, buffer_bytes=100), 125.0)


def test_sram_32bit_word_costs_match_constants_file() -> None:
    p = get_preset("horowitz-fp32")
    assert close(p.memory_pj(1, buffer_bytes=8 * KB), 5.0)  # 8 KB, 32-bit access
    assert close(p.memory_pj(1, buffer_bytes=32 * KB), 10.0)  # 32 KB
    assert close(p.memory_pj(1, buffer_bytes=1 * MB), 50.0)  # 1 MB
    assert close(p.memory_pj(0, nbytes=1, buffer_bytes=1), 1.25)  # 8 KB per byte


def test_tier_selection_at_boundaries() -> None:
    p = get_preset("horowitz-fp32")
    assert p.tier_for(0) == (8192, 10.0, False)
    assert p.tier_for(8192) == (8192, 10.0, False)
    assert p.tier_for(8193) == (32768, 20.0, False)
    assert p.tier_for(32768) == (32768, 20.0, False)
    assert p.tier_for(32769) == (1048576, 100.0, False)
    assert p.tier_for(1048576) == (1048576, 100.0, False)
    assert p.tier_for(1048577) == (1048576, 100.0, True)
    assert p.tier_for(2 * MB) == (1048576, 100.0, True)


def test_overflow_is_charged_at_the_largest_tier_and_warned() -> None:
    p = get_preset("horowitz-fp32")
    assert close(p.memory_pj(1, buffer_bytes=2 * MB), 50.0)
    assert p.overflow_warning(3) == (
        "3 buffers exceed 1 MB, charged at the 1 MB SRAM cost (DRAM would cost 13–26× more)"
    )
    assert p.overflow_warning(1).startswith("1 buffer exceeds 1 MB")


def test_tiered_memory_needs_a_buffer_size() -> None:
    with pytest.raises(ValueError, match="buffer_bytes"):
        get_preset("horowitz-fp32").memory_pj(10)
    with pytest.raises(ValueError, match="no SRAM tiers"):
        get_preset("paper").tier_for(100)


def test_fixed_sram_bytes_charges_every_buffer_at_that_tier() -> None:
    p = get_preset("horowitz-fp32-8kb")
    assert p.fixed_sram_bytes == 8192
    assert p.tier_for() == (8192, 10.0, False)
    assert p.tier_for(2 * MB) == (8192, 10.0, False)
    assert close(p.memory_pj(1, buffer_bytes=2 * MB), 5.0)
    fixed32 = CostModel(
        name="fixed-32k",
        description="",
        e_mac_pj=1,
        e_ac_pj=1,
        e_neuron_pj=1,
        sram_tiers=p.sram_tiers,
        fixed_sram_bytes=20000,
        sources=("test",),
    )
    assert fixed32.tier_for(10) == (32768, 20.0, False)
    assert close(fixed32.memory_pj(1, buffer_bytes=10), 10.0)


@pytest.mark.parametrize("words", [0, 1, 7, 1000, 123456789, 2.9e11])
def test_bytes_based_and_word_based_memory_agree(words: float) -> None:
    """fp32 charged at the fixed 8 KB tier equals the paper's flat 5 pJ per 32-bit word."""
    tiered = get_preset("horowitz-fp32-8kb").memory_pj(words=words)
    flat = get_preset("paper").memory_pj(words=words)
    assert math.isclose(tiered, flat, rel_tol=1e-12, abs_tol=1e-12)


@pytest.mark.parametrize("name", ["loihi", "truenorth"])
def test_chip_presets_are_flagged_and_never_default(name: str) -> None:
    p = get_preset(name)
    assert p.unverified
    assert not p.default_capable
    assert p.mixes_nodes
    assert not p.charge_memory and p.memory_model == "not charged"
    assert p.memory_pj(1e9) == 0.0
    assert p.e_neuron_pj is None
    assert any("mixes process nodes" in w for w in p.warnings)
    assert any("memory is not charged separately" in w for w in p.warnings)


def test_unverified_flag_texts() -> None:
    (loihi,) = get_preset("loihi").flags
    assert loihi.startswith("UNVERIFIED: Loihi 23.6 pJ per synaptic op seen only in secondary citations")
    (truenorth,) = get_preset("truenorth").flags
    assert truenorth.startswith("UNVERIFIED: TrueNorth ~26 pJ per synaptic event seen only in secondary citations")
    assert any("do not ship" in w for w in get_preset("loihi").warnings)


def test_get_preset_unknown_lists_valid_names() -> None:
    with pytest.raises(ConfigError) as e:
        get_preset("horowitz-fp64")
    msg = str(e.value)
    assert "horowitz-fp64" in msg
    for name in PRESETS:
        assert name in msg


@pytest.mark.parametrize("name", sorted(PRESET_NUMBERS))
def test_to_dict_carries_fields_and_cited_constants(name: str) -> None:
    p = get_preset(name)
    d = p.to_dict()
    json.dumps(d)  # report-ready
    for key in (
        "name",
        "e_mac_pj",
        "e_ac_pj",
        "e_neuron_pj",
        "e_mem_word_pj",
        "sram_tiers",
        "fixed_sram_bytes",
        "word_bits",
        "charge_memory",
        "neuron_energy_in",
        "sources",
        "flags",
        "warnings",
        "mixes_nodes",
        "constants",
    ):
        assert key in d, key
    assert d["constants"], f"{name}: no constants listed"
    for c in d["constants"].values():
        assert c["source"] and c["status"]
    # every number the preset charges is among the cited constants
    values = [c["value"] for c in d["constants"].values()]
    for number in (p.e_mac_pj, p.e_ac_pj, p.e_neuron_pj, p.e_mem_word_pj):
        if number is not None:
            assert any(close(number, v) for v in values), f"{name}: {number} not cited"


# --------------------------------------------------------------------------- CostModel validation


def _model(**kw) -> CostModel:
    base = dict(
        name="m",
        description="",
        e_mac_pj=1.0,
        e_ac_pj=1.0,
        e_neuron_pj=1.0,
        e_mem_word_pj=1.0,
        sources=("test",),
    )
    base.update(kw)
    return CostModel(**base)


@pytest.mark.parametrize(
    "field, value",
    [
        ("e_mac_pj", -1.0),
        ("e_ac_pj", float("nan")),
        ("e_neuron_pj", float("inf")),
        ("e_mem_word_pj", -0.5),
        ("e_mac_pj", "4.6"),
        ("e_ac_pj", True),
    ],
)
def test_cost_model_rejects_bad_numbers_naming_the_field(field: str, value) -> None:
    with pytest.raises(ConfigError, match=field):
        _model(**{field: value})


def test_cost_model_structural_checks() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        _model(sram_tiers=((8192, 10.0),))
    with pytest.raises(ConfigError, match="exactly one"):
        _model(e_mem_word_pj=None)
    with pytest.raises(ConfigError, match="sorted"):
        _model(e_mem_word_pj=None, sram_tiers=((32768, 20.0), (8192, 10.0)))
    with pytest.raises(ConfigError, match="fixed_sram_bytes"):
        _model(fixed_sram_bytes=8192)
    with pytest.raises(ConfigError, match="word_bits"):
        _model(word_bits=12)
    with pytest.raises(ConfigError, match="neuron_energy_in"):
        _model(neuron_energy_in="memory")
    with pytest.raises(ConfigError, match="sources"):
        _model(sources=())
    with pytest.raises(ConfigError, match="charge_memory"):
        _model(charge_memory=False)
    assert _model(charge_memory=False, e_mem_word_pj=None).memory_pj(5) == 0.0


def test_memory_pj_rejects_bad_counts() -> None:
    with pytest.raises(ConfigError, match="words"):
        get_preset("paper").memory_pj(-1)
    with pytest.raises(ConfigError, match="buffer_bytes"):
        get_preset("horowitz-fp32").memory_pj(1, buffer_bytes=float("nan"))


# --------------------------------------------------------------------------- SPKLIP Table 6


def test_paper_table6_arithmetic_is_reproduced() -> None:
    """Counts implied by Table 6 (with the paper's E_C = 4.6 pJ, E_M = 5.0 pJ), re-priced."""
    J_PER_PJ = 1e-12
    # counts implied by the printed energies
    ann_ops = 1.372 / (4.6 * J_PER_PJ)
    ann_reads = 0.0036 / (5.0 * J_PER_PJ)
    snn_sops = 0.356 / (4.6 * J_PER_PJ)
    snn_accesses = 0.791 / (5.0 * J_PER_PJ)
    snn_updates = 0  # Table 6 has no neuron-update row

    p = get_preset("paper")
    # Eq. 12 and Eq. 13, with neuron energy grouped with compute (p.neuron_energy_in)
    ann_compute = ann_ops * p.e_mac_pj * J_PER_PJ
    ann_memory = p.memory_pj(words=ann_reads) * J_PER_PJ
    snn_compute = (snn_sops * p.e_ac_pj + snn_updates * p.e_neuron_pj) * J_PER_PJ
    snn_memory = p.memory_pj(words=snn_accesses) * J_PER_PJ
    ann_total, snn_total = ann_compute + ann_memory, snn_compute + snn_memory

    assert abs(ann_total - 1.3756) <= 0.001, f"ANN total: expected 1.3756 J, found {ann_total}"
    assert abs(ann_total - 1.375) <= 0.001  # as printed
    assert abs(snn_total - 1.147) <= 0.001, f"SNN total: expected 1.147 J, found {snn_total}"
    saving = 100 * (1 - snn_total / ann_total)
    assert abs(saving - 16.6) <= 0.05, f"saving: expected 16.6 %, found {saving}"
    ann_mem_ratio = 100 * ann_memory / ann_total
    snn_mem_ratio = 100 * snn_memory / snn_total
    assert abs(ann_mem_ratio - 0.26) <= 0.05, f"ANN memory ratio: expected 0.26 %, found {ann_mem_ratio}"
    assert abs(snn_mem_ratio - 68.99) <= 0.05, f"SNN memory ratio: expected 68.99 %, found {snn_mem_ratio}"
    compute_cut = 100 * (1 - snn_compute / ann_compute)
    assert abs(compute_cut - 74.05) <= 0.1, f"compute cut: expected 74.05 %, found {compute_cut}"


# --------------------------------------------------------------------------- user cost files

GOOD_TOML = """\
name = "my-chip"
description = "a test table"
e_mac_pj = 2.0
e_ac_pj = 0.5
e_neuron_pj = 0.25
sram_tiers = [[4096, 8.0], [65536, 16.0]]
word_bits = 16
neuron_energy_in = "separate"
sources = ["Doe et al. 2025, Table 1"]
"""

GOOD_YAML = """\
name: my-flat
e_mac_pj: 3
e_ac_pj: 1.5
e_neuron_pj: 0.7
e_mem_word_pj: 6.5
sources:
  - "Doe et al. 2025, Table 2"
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_toml_cost_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "costs.toml", GOOD_TOML)
    m = load_cost_file(path)
    assert (m.name, m.e_mac_pj, m.e_ac_pj, m.e_neuron_pj) == ("my-chip", 2.0, 0.5, 0.25)
    assert m.sram_tiers == ((4096, 8.0), (65536, 16.0))
    assert m.word_bits == 16 and m.neuron_energy_in == "separate"
    assert m.sources == ("Doe et al. 2025, Table 1",)
    assert m.flags == (f"user-supplied cost table from {path}",)
    assert not m.default_capable
    assert close(m.memory_pj(10, buffer_bytes=5000), 10 * 2 * 16.0 / 8)
    assert m.tier_for(70000) == (65536, 16.0, True)
    assert m.overflow_warning(2).startswith("2 buffers exceed 64 KB")


@pytest.mark.parametrize("suffix", [".yaml", ".yml"])
def test_load_yaml_cost_file(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path, "costs" + suffix, GOOD_YAML)
    m = load_cost_file(str(path))
    assert (m.name, m.e_mac_pj, m.e_ac_pj, m.e_neuron_pj, m.e_mem_word_pj) == (
        "my-flat",
        3.0,
        1.5,
        0.7,
        6.5,
    )
    assert m.memory_model == "flat" and m.word_bits == 32 and m.neuron_energy_in == "compute"
    assert str(path) in m.flags[0]
    assert close(m.memory_pj(2), 13.0)


def _toml_without(key: str) -> str:
    return "\n".join(line for line in GOOD_TOML.splitlines() if not line.startswith(key + " ")) + "\n"


@pytest.mark.parametrize(
    "text, key",
    [
        (_toml_without("e_mac_pj"), "e_mac_pj"),
        (_toml_without("name"), "name"),
        (GOOD_TOML + "e_flop_pj = 1.0\n", "e_flop_pj"),
        (GOOD_TOML.replace("e_ac_pj = 0.5", "e_ac_pj = -0.5"), "e_ac_pj"),
        (GOOD_TOML.replace("e_ac_pj = 0.5", "e_ac_pj = nan"), "e_ac_pj"),
        (GOOD_TOML.replace("e_neuron_pj = 0.25", "e_neuron_pj = inf"), "e_neuron_pj"),
        (GOOD_TOML.replace("e_mac_pj = 2.0", 'e_mac_pj = "2.0"'), "e_mac_pj"),
        (GOOD_TOML.replace("e_mac_pj = 2.0", "e_mac_pj = true"), "e_mac_pj"),
        (_toml_without("sources"), "sources"),
        (GOOD_TOML.replace('sources = ["Doe et al. 2025, Table 1"]', "sources = []"), "sources"),
        (GOOD_TOML + "e_mem_word_pj = 5.0\n", "e_mem_word_pj"),
        (_toml_without("sram_tiers"), "sram_tiers"),
        (
            GOOD_TOML.replace("[[4096, 8.0], [65536, 16.0]]", "[[65536, 16.0], [4096, 8.0]]"),
            "sram_tiers",
        ),
        (GOOD_TOML.replace("[[4096, 8.0], [65536, 16.0]]", "[[4096, -8.0]]"), "sram_tiers"),
        (GOOD_TOML.replace("[[4096, 8.0], [65536, 16.0]]", "[[4096]]"), "sram_tiers"),
        (GOOD_TOML + "fixed_sram_bytes = -3\n", "fixed_sram_bytes"),
        (GOOD_TOML.replace("word_bits = 16", "word_bits = 12"), "word_bits"),
        (GOOD_TOML.replace('"separate"', '"memory"'), "neuron_energy_in"),
    ],
    ids=[
        "missing-e_mac_pj",
        "missing-name",
        "unknown-key",
        "negative",
        "nan",
        "inf",
        "string",
        "bool",
        "no-sources",
        "empty-sources",
        "both-memory-kinds",
        "no-memory-kind",
        "unsorted-tiers",
        "negative-tier",
        "short-tier",
        "bad-fixed",
        "bad-word-bits",
        "bad-grouping",
    ],
)
def test_bad_toml_cost_file_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as e:
        load_cost_file(path)
    msg = str(e.value)
    assert str(path) in msg, f"expected the file in {msg!r}"
    assert key in msg, f"expected key {key} in {msg!r}"
    assert "\n" not in msg


@pytest.mark.parametrize(
    "replace, key",
    [
        (("e_ac_pj: 1.5", "e_ac_pj: -1.5"), "e_ac_pj"),
        (("e_ac_pj: 1.5", "e_ac_pj: .nan"), "e_ac_pj"),
        (("e_mem_word_pj: 6.5", "e_mem_word_pj: .inf"), "e_mem_word_pj"),
        (("e_mac_pj: 3", "e_mac_pj: three"), "e_mac_pj"),
        (("e_mac_pj: 3", "e_mac_pj:"), "e_mac_pj"),
        (("name: my-flat", "nmae: my-flat"), "nmae"),
    ],
    ids=["negative", "nan", "inf", "string", "null", "typo-key"],
)
def test_bad_yaml_cost_file_names_file_and_key(tmp_path: Path, replace, key: str) -> None:
    path = _write(tmp_path, "bad.yaml", GOOD_YAML.replace(*replace))
    with pytest.raises(ConfigError) as e:
        load_cost_file(path)
    assert str(path) in str(e.value) and key in str(e.value), str(e.value)


@pytest.mark.parametrize(
    "name, text",
    [
        ("costs.json", '{"name": "x"}'),
        ("costs", GOOD_TOML),
        ("broken.toml", 'name = "x\ne_mac_pj = = 1\n'),
        ("broken.yaml", "name: [unclosed\n"),
        ("list.yaml", "- 1\n- 2\n"),
        ("empty.yaml", ""),
    ],
    ids=["json-suffix", "no-suffix", "malformed-toml", "malformed-yaml", "not-a-table", "empty"],
)
def test_unreadable_cost_file_names_the_file(tmp_path: Path, name: str, text: str) -> None:
    path = _write(tmp_path, name, text)
    with pytest.raises(ConfigError) as e:
        load_cost_file(path)
    assert str(path) in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


def test_missing_cost_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist") as e:
        load_cost_file(path)
    assert str(path) in str(e.value)


def test_directory_as_cost_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "dir.toml"
    path.mkdir()
    with pytest.raises(ConfigError) as e:
        load_cost_file(path)
    assert str(path) in str(e.value)


def test_cost_model_adds_missing_caveats() -> None:
    m = _model(e_neuron_pj=None, mixes_nodes=True)
    assert any("neuron updates are not charged" in w for w in m.warnings)
    assert any("mixes process nodes" in w for w in m.warnings)
    assert _model().warnings == ()


def test_numpy_scalars_are_accepted_as_counts() -> None:
    np = pytest.importorskip("numpy")
    p = get_preset("horowitz-fp32")
    assert close(p.memory_pj(np.int64(1000), buffer_bytes=np.float64(4000.0)), 5000.0)
    assert p.tier_for(np.int64(8193)) == (32768, 20.0, False)
    assert close(get_preset("paper").memory_pj(np.float32(2.0)), 10.0)
