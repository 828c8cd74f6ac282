"""Today's per-operation presets (:mod:`..costs`) as energy models, unchanged.

Natively a preset prices exactly as :func:`~energy.estimate.estimate_energy` always
has (paper Eqs. 12-13, Horowitz tiers). For a quantized pricing of a non-spiking network the MACs
and accumulates are charged at the Horowitz 45 nm int8 figures (Horowitz has no narrower
arithmetic, so a network with fewer activation bits is charged int8 arithmetic: an upper bound on
its compute), and every memory access moves ``bits / word_bits`` of a word: activations at the
activation width, weights at the weight width (packed words; the energy per access is taken as
proportional to the bits moved, the width-halving assumption PMC8934428 states).
"""

from __future__ import annotations

import numpy as np

from ..costs import CONSTANTS, CostModel
from .base import EnergyModel, ModelInfo, PriceContext
from .table import Layers, Priced

_STATUS = {"primary-crosschecked": "S+", "derived": "S+", "UNVERIFIED": "U"}


class PresetModel(EnergyModel):
    """One :class:`~energy.costs.CostModel` as an energy model (vectorised; per layer it
    equals :func:`~energy.estimate.estimate_energy`, which ``tests/test_energy_models.py``
    checks)."""

    def __init__(self, cost: CostModel) -> None:
        self.cost = cost
        tiers = cost.sram_tiers or ()
        self._tiers = (np.array([c for c, _ in tiers], dtype=float), np.array([pj for _, pj in tiers], dtype=float))
        self.info = ModelInfo(
            name=cost.name,
            title=f"flat per-operation preset {cost.name!r}",
            citation="; ".join(cost.sources),
            status="U" if cost.unverified else "S+",
            node="mixed (see flags)" if cost.mixes_nodes else "45 nm",
            assumptions=(
                cost.description,
                *cost.warnings,
                *cost.flags,
                "quantized pricing: int8 arithmetic (Horowitz 45 nm), memory scaled by the bits moved",
            ),
            constants={
                k: {
                    "value": CONSTANTS[k].value,
                    "unit": CONSTANTS[k].unit,
                    "source": CONSTANTS[k].source,
                    "status": _STATUS.get(CONSTANTS[k].status, CONSTANTS[k].status),
                }
                for k in cost.constant_keys
            },
        )

    def _memory_pj(self, words: np.ndarray, buffer: np.ndarray, bits_scale: float) -> np.ndarray:
        """Accesses of ``words`` words of a buffer of ``buffer`` elements, at the SRAM tier that holds it;
        ``bits_scale``: the fraction of a word each element occupies (1 natively)."""
        cost = self.cost
        bpw = cost.bytes_per_word
        if cost.fixed_sram_bytes is not None:
            size = np.full(len(words), float(cost.fixed_sram_bytes))
        else:
            size = np.maximum(buffer * bits_scale, 1.0) * bpw
        caps, pjs = self._tiers
        tier = np.minimum(np.searchsorted(caps, size, side="left"), len(caps) - 1)
        return np.where(words > 0, words * bits_scale * bpw * pjs[tier] / 8, 0.0)

    def price(self, layers: Layers, ctx: PriceContext) -> Priced:
        cost, p = self.cost, ctx.precision
        act = wgt = 1.0
        e_mac, e_ac = cost.e_mac_pj, cost.e_ac_pj
        if not p.native:
            act, wgt = p.act_bits / cost.word_bits, p.weight_bits / cost.word_bits
            e_mac, e_ac = CONSTANTS["int8_mac_pj"].value, CONSTANTS["int8_ac_pj"].value
        compute = layers["macs"] * e_mac + layers["sops"] * e_ac
        neuron = layers["neuron_updates"] * (cost.e_neuron_pj or 0.0)
        state = layers["state_reads"] + layers["state_writes"]
        io = layers["act_reads"] + layers["act_writes"]
        if not cost.charge_memory:
            memory = np.zeros(len(layers))
        elif cost.e_mem_word_pj is not None:
            memory = (layers["weight_reads"] * wgt + state + io * act) * cost.e_mem_word_pj
        else:
            memory = (
                self._memory_pj(layers["weight_reads"], layers["weight_buffer"], wgt)
                + self._memory_pj(state, layers["state_buffer"], 1.0)
                + self._memory_pj(io, layers["act_buffer"], act)
            )
        total = compute + neuron + memory
        return Priced.point(
            total,
            np.ones(len(layers), bool),
            np.full(len(layers), "", dtype=object),
            compute=compute,
            neuron=neuron,
            memory=memory,
        )
