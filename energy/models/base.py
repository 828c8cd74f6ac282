"""The one interface every energy model implements, and how its per-layer prices add up.

An energy model prices the counted layers of one :class:`~energy.ProfileResult`
(the counts of one forward run plus each layer's geometry, :mod:`..geometry`, as the numpy
columns of :class:`.table.Layers`); it never runs the model. :meth:`EnergyModel.price` returns a
:class:`.table.Priced`: per layer a low and a high energy in pJ (equal for a point estimate; a
best-to-worst range for a bound), the components that make it up, and whether the model priced
the layer and why not: a layer a model cannot price is listed as *not priced by that model*,
never as zero. :func:`summarise` adds the layers into one JSON-ready :class:`Estimate`.

A :class:`Precision` asks a model to price a non-spiking network at a narrower arithmetic
(``int8``, or the ``ceil(log2(T+1))``-bit activations a T-step rate-coded SNN corresponds to, Yan
et al. arXiv 2409.08290): each model says in its assumptions how it does that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .table import Layers, Priced

PJ = 1e-12


@dataclass(frozen=True)
class Precision:
    """How a non-spiking network is priced: ``act_bits``-bit activations, ``weight_bits``-bit weights.

    ``name`` is ``native`` (the model's own precision; the bits are then unused), ``int8`` or
    ``q<bits>`` (the activation width a T-step SNN matches: :func:`snn_bits`).
    """

    name: str = "native"
    act_bits: int = 32
    weight_bits: int = 32

    @property
    def native(self) -> bool:
        return self.name == "native"

    def label(self) -> str:
        if self.native:
            return "the model's own precision"
        return f"activations {self.act_bits}-bit, weights {self.weight_bits}-bit"


NATIVE = Precision()


def snn_bits(steps: int) -> int:
    """Activation bits of the quantized ANN a ``steps``-step rate-coded SNN corresponds to:
    ``ceil(log2(T + 1))`` (Yan et al., arXiv 2409.08290: T=1 -> 1, 2-3 -> 2, 4-7 -> 3, 8-15 -> 4)."""
    return max(1, math.ceil(math.log2(int(steps) + 1)))


def quantized(steps=None, weight_bits: int = 8) -> list[Precision]:
    """The fair ANN pricings: int8, and ``q<b>`` with ``b = snn_bits(T)`` for each T of ``steps`` (one T, a
    list of them, or None when no spiking network is in view)."""
    out = [Precision("int8", 8, 8)]
    ts = [] if steps is None else [steps] if isinstance(steps, int) else list(steps)
    for b in sorted({snn_bits(t) for t in ts}):
        out.append(Precision(f"q{b}", b, weight_bits))
    return out


@dataclass(frozen=True)
class ModelInfo:
    """What a report must say about a model: what it is, where its numbers come from, how sure they are."""

    name: str
    title: str
    citation: str
    status: str  # P (primary), S (secondary), S+ (secondary cross-checked), U (UNVERIFIED)
    node: str
    assumptions: tuple[str, ...]
    constants: dict = field(default_factory=dict)  # name -> {"value", "unit", "source", "status"}
    bound: bool = False  # True: the model gives a best-to-worst range

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "citation": self.citation,
            "status": self.status,
            "node": self.node,
            "assumptions": list(self.assumptions),
            "constants": dict(self.constants),
            "bound": self.bound,
        }


class EnergyModel:
    """Base class: :attr:`info` plus :meth:`price` over the counted layers (see the module doc)."""

    info: ModelInfo

    @property
    def name(self) -> str:
        return self.info.name

    def not_applicable(self, spiking: bool) -> str | None:
        """Why this model does not apply to a (non-)spiking network, or None when it does."""
        return None

    def price(self, layers: Layers, ctx: PriceContext) -> Priced:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class PriceContext:
    """What a model may need besides the layers: the run's sample count, whether the network has
    spiking neurons, and the precision to price a non-spiking network at."""

    samples: int
    spiking: bool
    precision: Precision = NATIVE


@dataclass
class Estimate:
    """One model's energy for one network at one precision, per sample."""

    model: str
    precision: str
    low_j: float | None  # None: the model does not apply
    high_j: float | None
    components_j: dict
    priced_layers: int
    not_priced: list[dict]  # {"name", "type", "reason"}
    priced_ops_share: float  # fraction of the network's MACs + SOPs in priced layers
    note: str = ""

    @property
    def point(self) -> bool:
        return self.low_j is not None and math.isclose(self.low_j, self.high_j, rel_tol=1e-12)

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "precision": self.precision,
            "low_j": self.low_j,
            "high_j": self.high_j,
            "components_j": self.components_j,
            "priced_layers": self.priced_layers,
            "not_priced": self.not_priced,
            "priced_ops_share": self.priced_ops_share,
            "note": self.note,
        }


def summarise(model: EnergyModel, layers: Layers, ctx: PriceContext) -> Estimate:
    """Price ``layers`` with ``model`` and add them up, per sample."""
    why = model.not_applicable(ctx.spiking)
    if why:
        return Estimate(model.name, ctx.precision.name, None, None, {}, 0, [], 0.0, note=why)
    p = model.price(layers, ctx)
    ok = p.priced
    scale = PJ / max(ctx.samples, 1)
    ops = layers["macs"] + layers["sops"]
    total_ops = float(ops.sum())
    not_priced = [
        {"name": layers["name"][i], "type": layers["type"][i], "reason": p.reason[i]} for i in np.flatnonzero(~ok)
    ]
    return Estimate(
        model=model.name,
        precision=ctx.precision.name,
        low_j=float(p.low[ok].sum()) * scale,
        high_j=float(p.high[ok].sum()) * scale,
        components_j={k + "_j": float(np.asarray(v)[ok].sum()) * scale for k, v in p.components.items()},
        priced_layers=int(ok.sum()),
        not_priced=not_priced,
        priced_ops_share=float(ops[ok].sum()) / total_ops if total_ops else 1.0,
    )
