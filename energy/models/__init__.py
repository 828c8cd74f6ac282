"""Published energy models side by side, all over the counts of the same one forward run.

=================  ======================================================================  ======
name               model                                                                   status
=================  ======================================================================  ======
``paper`` ...      today's flat presets (:mod:`..costs`), unchanged (:mod:`.flat`)          S+ / U
``lemaire-lab``    Lemaire et al. 2022, the authors' lab's linear memory fit (:mod:`.lemaire`) S+
``lemaire-sj``     Lemaire et al. 2022, spikingjelly's piecewise per-word memory           S+
``spikesim``       SpikeSim crossbar model, RRAM (``spikesim-sram``: SRAM) (:mod:`.spikesim`) P
``eyeriss``        Eyeriss-style data-movement bound, best-to-worst (:mod:`.datamove`)      S
=================  ======================================================================  ======

:func:`resolve_models` turns ``--models`` (names, ``default``, ``all``) and an optional model
file into model objects; :func:`estimate_models` prices a profile under each of them, natively
and, for a network without neurons, at the fair quantized precisions (:func:`.base.quantized`),
and for a spiking network adds the break-even rates of :mod:`.fair`.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

from spklip_energy.errors import ConfigError

from ..costs import PRESETS, describe_value, read_table
from .base import (
    NATIVE,
    EnergyModel,
    Estimate,
    ModelInfo,
    Precision,
    PriceContext,
    quantized,
    snn_bits,
    summarise,
)
from .datamove import DataMovementModel
from .fair import FairSetup, break_even, network_steps
from .flat import PresetModel
from .lemaire import BUFFER_MODES, LemaireModel
from .spikesim import CONSTANTS as SPIKESIM_CONSTANTS
from .spikesim import DEVICES, SpikeSimModel
from .table import Layers

DEFAULT_MODELS = ("paper", "lemaire-lab", "lemaire-sj", "spikesim", "eyeriss")
NEW_MODELS = ("lemaire-lab", "lemaire-sj", "spikesim", "spikesim-sram", "eyeriss")
#: ``all``: every model whose figures are sourced (the UNVERIFIED chip presets only when named)
ALL_MODELS = (*[n for n, c in PRESETS.items() if not c.unverified], *NEW_MODELS)
KNOWN = (*PRESETS, *NEW_MODELS)


# --------------------------------------------------------------------------- model files

_FILE_KEYS = {
    "lemaire": ("e_add_pj", "e_mul_pj", "fifo", "buffers"),
    "spikesim": ("xbar", *SPIKESIM_CONSTANTS),
    "eyeriss": ("rf", "array", "gb", "dram", "dram_passes", "batch"),
}


def _number(value: Any, what: str, minimum: float = 0.0, strict: bool = False) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise ConfigError(f"{what} must be a number, got {describe_value(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{what} must be finite, got {value}")
    if value < minimum or (strict and value == minimum):
        raise ConfigError(f"{what} must be {'>' if strict else '>='} {minimum:g}, got {value:g}")
    return value


def _whole(value: Any, what: str, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{what} must be a whole number >= {minimum}, got {describe_value(value)}")
    return int(value)


def load_model_file(path: str | os.PathLike) -> dict[str, dict]:
    """Parameters of the models from a TOML or YAML file: sections ``[lemaire]``, ``[spikesim]``,
    ``[eyeriss]`` (keys in :data:`_FILE_KEYS`), checked entry by entry; a bad entry is a one-line
    :class:`ConfigError` naming it."""
    path = Path(path)
    raw = read_table(path, "model file")
    where = f"model file {path}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must hold sections of keys, got {describe_value(raw)}")
    out: dict[str, dict] = {}
    for section, table in raw.items():
        if section not in _FILE_KEYS:
            raise ConfigError(f"{where}: unknown section {section!r}; valid sections: {', '.join(_FILE_KEYS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: section {section} must be a table of keys, got {describe_value(table)}")
        unknown = [k for k in table if k not in _FILE_KEYS[section]]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {section}.{unknown[0]}; valid keys: {', '.join(_FILE_KEYS[section])}"
            )
        vals: dict[str, Any] = {}
        for key, value in table.items():
            what = f"{where}: {section}.{key}"
            if key == "buffers":
                if value not in BUFFER_MODES:
                    raise ConfigError(f"{what} must be one of {', '.join(BUFFER_MODES)}, got {describe_value(value)}")
                vals[key] = value
            elif key in ("fifo", "xbar", "batch"):
                vals[key] = _whole(value, what)
            elif key == "dram_passes":
                vals[key] = _number(value, what, minimum=1.0)
            elif key in ("rf", "array", "gb", "dram"):
                vals[key] = _number(value, what, strict=True)
            else:
                vals[key] = _number(value, what)
        out[section] = vals
    ey = out.get("eyeriss", {})
    levels = [ey.get(k) for k in ("rf", "array", "gb", "dram")]
    if all(v is not None for v in levels) and sorted(levels) != levels:
        raise ConfigError(
            f"{where}: eyeriss access costs must not fall going outwards (rf <= array <= gb <= dram), got {levels}"
        )
    return out


# --------------------------------------------------------------------------- resolving names


def _build(name: str, params: dict[str, dict]) -> EnergyModel:
    if name in PRESETS:
        return PresetModel(PRESETS[name])
    if name.startswith("lemaire-"):
        return LemaireModel(memory=name.split("-", 1)[1], **params.get("lemaire", {}))
    if name.startswith("spikesim"):
        device = name.split("-", 1)[1] if "-" in name else "rram"
        assert device in DEVICES
        return SpikeSimModel(device=device, **params.get("spikesim", {}))
    if name == "eyeriss":
        return DataMovementModel(**params.get("eyeriss", {}))
    raise AssertionError(name)  # pragma: no cover - names are checked first


def resolve_models(
    spec: str | list[str] | None = None, model_file: str | os.PathLike | None = None
) -> list[EnergyModel]:
    """Model objects for ``spec``: a comma-separated string or list of names, ``default``
    (:data:`DEFAULT_MODELS`) or ``all`` (:data:`ALL_MODELS`); an unknown name is a ConfigError."""
    if spec is None:
        spec = "default"
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    out: list[str] = []
    for n in names:
        if n == "default":
            out.extend(DEFAULT_MODELS)
        elif n == "all":
            out.extend(ALL_MODELS)
        elif n in KNOWN:
            out.append(n)
        else:
            raise ConfigError(f"unknown energy model {n!r}; valid models: {', '.join(KNOWN)}, or default, all")
    params = load_model_file(model_file) if model_file is not None else {}
    seen: list[str] = []
    for n in out:
        if n not in seen:
            seen.append(n)
    return [_build(n, params) for n in seen]


# --------------------------------------------------------------------------- estimating


def counted_layers(source) -> Layers:
    """The counted layers of a :class:`~energy.ProfileResult` (its fast path), a per-layer
    table, or :class:`Layers` themselves, as the columns the models price."""
    if isinstance(source, Layers):
        return source
    if hasattr(source, "layers") and hasattr(source, "records"):
        return source.layers
    if "counted" not in source:
        return Layers.from_frame(source.iloc[0:0])
    return Layers.from_frame(source[source["counted"].fillna(False).astype(bool)])


def estimate_models(
    per_layer,
    samples: int,
    models: list[EnergyModel],
    steps: int | list[int] | None = None,
    weight_bits: int = 8,
    snn_steps: int | None = None,
) -> dict:
    """Every model's energy for one profiled network (a ProfileResult, its per-layer table or its
    :class:`Layers`), JSON-ready.

    A network without neurons is priced natively, at int8 and, when ``steps`` (the T, or the list of
    T, of the spiking networks it is compared with) is given, at ``ceil(log2(T+1))``-bit activations with
    ``weight_bits``-bit weights. A spiking network is priced natively, and each model adds the
    break-even rates of its spiking layers against their ANN twins at those pricings (T: ``snn_steps``,
    its time steps per pass, when the caller knows them, as for a checkpoint; else as its counts show).
    """
    rows = counted_layers(per_layer)
    spiking = bool(rows.is_("neuron").any())
    own_steps = (snn_steps or network_steps(rows, samples)) if spiking else None
    t = own_steps if spiking else steps
    pricings = [NATIVE, *quantized(t, weight_bits)]
    estimates, fair = [], {}
    setup = FairSetup.of(rows, samples, own_steps) if spiking else None
    for m in models:
        for p in [NATIVE] if spiking else pricings:
            estimates.append(summarise(m, rows, PriceContext(samples=samples, spiking=spiking, precision=p)).to_dict())
        if spiking:
            fair[m.name] = break_even(m, rows, samples, pricings, setup)
    return {
        "models": [m.info.to_dict() for m in models],
        "estimates": estimates,
        "spiking": spiking,
        "steps": t,
        "pricings": [
            {"name": p.name, "label": p.label(), "act_bits": p.act_bits, "weight_bits": p.weight_bits} for p in pricings
        ],
        "break_even": fair or None,
    }


__all__ = [
    "ALL_MODELS",
    "DEFAULT_MODELS",
    "KNOWN",
    "NATIVE",
    "DataMovementModel",
    "EnergyModel",
    "Estimate",
    "LemaireModel",
    "ModelInfo",
    "PresetModel",
    "PriceContext",
    "Precision",
    "SpikeSimModel",
    "estimate_models",
    "load_model_file",
    "quantized",
    "resolve_models",
    "snn_bits",
    "summarise",
]
