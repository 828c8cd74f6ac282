"""The fair baseline: every spiking layer against the same layer as a (quantized) ANN, and its break-even rate.

Flat SNN-versus-fp32-ANN figures overstate what spikes save. This module prices, under any energy
model, each synaptic layer of a spiking network that receives spikes against its **ANN twin**: the
same weights run once, densely, on real-valued inputs (``macs = fan-in x outputs of one step``),
priced natively, at int8 and at the ``ceil(log2(T+1))`` bits a T-step rate-coded SNN corresponds to
(Yan et al., arXiv 2409.08290). The spiking side is the layer's synaptic work plus the updates of
the T x outputs neurons it drives (their output spikes are charged to the next layer).

Every model here is affine in the input spike count, so the spiking layer's energy at input rate
r (spikes per input element and step) is ``E0 + (E1 - E0) r`` from two pricings, without spikes
and with every input spiking (synaptic operations per spike as measured; for a layer that saw no
spike, its dense fan-out), and the
**break-even rate** is where it meets the ANN twin: below it the spiking layer costs less. Where a
model's energy does not depend on spikes (SpikeSim is dense) there is no break-even; where the
spiking layer costs more even without spikes it is ``never``.

**Spikes per synapse per inference** = SOPs / (fan-in x outputs per step x samples), beside the
0.15-1.38 band in which Dampfhoffer et al. (IEEE TETCI 7(3):731, 2023; abstract) find an IF SNN
competitive, depending on the ANN implementation: a literature flag, not an energy preset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import NATIVE, EnergyModel, Precision, PriceContext
from .table import Layers

DAMPFHOFFER_BAND = (0.15, 1.38)
DAMPFHOFFER = "Dampfhoffer et al., IEEE TETCI 7(3):731-741, 2023 (abstract)"
YAN = "Yan, Bai, Tang, Wong, arXiv 2409.08290 v4 (abstract)"


def spiking_synapses(layers: Layers) -> np.ndarray:
    """Indices of the conv and linear layers that received spikes (and no real values)."""
    syn = layers.is_("conv") | layers.is_("linear")
    return np.flatnonzero(syn & layers["binary"] & (layers["macs"] == 0) & (layers["in_elems"] > 0))


def layer_steps(layers: Layers, samples: int) -> np.ndarray:
    """T of each layer: outputs written over the run / (samples x outputs per sample and step)."""
    per = layers["out_buffer"] * max(samples, 1)
    t = np.divide(layers["act_writes"], per, out=np.ones(len(layers)), where=per > 0)
    return np.maximum(np.round(t), 1.0)


def network_steps(layers: Layers, samples: int) -> int | None:
    """The T of a spiking network as its counts show it (its neurons' steps per sample), None for a network
    without neurons. A model that runs several passes per sample (SPKLIP's encoders run their CNN once per
    temporal block) shows passes x T: give :func:`estimate_models` its T instead."""
    neurons = layers.is_("neuron")
    if not neurons.any():
        return None
    return int(layer_steps(layers.take(neurons), samples).max())


def _leak(layers: Layers) -> float:
    """1 when the network's neurons leak (any LIF, or none known to be IF), else 0."""
    leaks = layers["leak"][layers.is_("neuron")]
    return 1.0 if (leaks == 1).any() or not (leaks == 0).any() else 0.0


def _spiking_side(syn: Layers, rate: float, leak: float) -> Layers:
    """The synaptic layers with every input spiking at ``rate``, followed by the neurons they drive."""
    per_spike = np.divide(
        syn["sops"],
        syn["in_spikes"],
        out=syn.fan_in() * syn["act_writes"] / syn["in_elems"],
        where=syn["in_spikes"] > 0,
    )
    spikes = rate * syn["in_elems"]
    a = syn.with_cols(in_spikes=spikes, sops=spikes * per_spike)
    n_out = syn["act_writes"]
    zero = np.zeros(len(syn))
    neurons = Layers(
        {
            **{k: zero.copy() for k, v in syn.cols.items() if v.dtype == float},
            "name": np.array([f"{x} (its neurons)" for x in syn["name"]], dtype=object),
            "type": np.full(len(syn), "neurons", dtype=object),
            "family": np.full(len(syn), "neuron", dtype=object),
            "leak": np.full(len(syn), leak),
            "has_bias": np.zeros(len(syn), bool),
            "binary": np.zeros(len(syn), bool),
        }
    ).with_cols(
        neuron_updates=n_out,
        state_reads=n_out,
        state_writes=n_out,
        act_reads=n_out,
        act_writes=n_out,
        in_call=syn["out_call"],
        out_call=syn["out_call"],
        out_call_step=syn["out_call_step"],
        state_buffer=syn["out_buffer"],
        in_buffer=syn["out_buffer"],
        out_buffer=syn["out_buffer"],
        act_buffer=syn["out_buffer"],
        calls=syn["calls"],
        mem_accesses=4 * n_out,
    )
    return Layers.concat(a, neurons)


def ann_twin(syn: Layers, samples: int, steps: int | None = None) -> Layers:
    """Each spiking synaptic layer as the dense layer an ANN runs once where the SNN runs ``steps`` time steps
    (when ``steps`` is None, the steps per sample the counts show: right when one sample is one pass)."""
    t = layer_steps(syn, samples) if steps is None else np.full(len(syn), float(steps))
    outs = syn["act_writes"] / t
    reads, weights = syn["act_reads"] / t, syn["weight_reads"] / t
    return syn.with_cols(
        macs=outs * syn.fan_in(),
        sops=0.0,
        in_spikes=0.0,
        out_spikes=0.0,
        act_reads=reads,
        act_writes=outs,
        weight_reads=weights,
        in_call=syn["in_call"] / t,
        out_call=syn["out_call"] / t,
        calls=np.maximum(np.round(syn["calls"] / t), 1.0),
        mem_accesses=weights + reads + outs,
        binary=False,
    )


@dataclass
class FairSetup:
    """What every model prices for the break-even analysis of one network, built once: its spiking synaptic
    layers, those layers (with their neurons) without spikes and with every input spiking, and their ANN
    twins."""

    syn: Layers
    sides: Layers  # rate 0 then rate 1, each the k synaptic layers followed by their k neurons
    twin: Layers

    @classmethod
    def of(cls, layers: Layers, samples: int, steps: int | None = None) -> FairSetup | None:
        """``steps``: the network's T (see :func:`ann_twin`)."""
        idx = spiking_synapses(layers)
        if not len(idx):
            return None
        syn = layers.take(idx)
        leak = _leak(layers)
        return cls(
            syn,
            Layers.concat(_spiking_side(syn, 0.0, leak), _spiking_side(syn, 1.0, leak)),
            ann_twin(syn, samples, steps),
        )


def _mid(priced) -> np.ndarray:
    """Each layer's energy (pJ; the midpoint of a range), NaN where not priced."""
    return np.where(priced.priced, (priced.low + priced.high) / 2, np.nan)


def break_even(
    model: EnergyModel, layers: Layers, samples: int, pricings: list[Precision], setup: FairSetup | None = None
) -> dict:
    """Per spiking synaptic layer and for the network: break-even input rates under ``model``.

    Returns ``{"layers": [...], "network": {...}}``; each layer has its measured input rate, spikes
    per synapse per inference with the Dampfhoffer flag, and per ANN pricing the twin's energy, the
    spiking side's energy at the measured rate and without spikes, and the break-even rate (or why
    there is none). Energies are in J per sample (the midpoint of a range). The network entry scales
    every layer's rate alike (x = their mean rate). ``setup``: :meth:`FairSetup.of` ``(layers,
    samples)``, shared by several models.
    """
    setup = setup if setup is not None else FairSetup.of(layers, samples)
    if setup is None or model.not_applicable(True):
        return {"layers": [], "network": None}
    syn = setup.syn
    k = len(syn)
    sides = _mid(model.price(setup.sides, PriceContext(samples=samples, spiking=True)))
    e0 = sides[:k] + sides[k : 2 * k]
    e1 = sides[2 * k : 3 * k] + sides[3 * k :]
    rate = syn["in_spikes"] / syn["in_elems"]
    measured = e0 + (e1 - e0) * rate
    ann = {}
    if not model.not_applicable(False):
        for p in pricings:
            ann[p.name] = _mid(model.price(setup.twin, PriceContext(samples=samples, spiking=False, precision=p)))
    synapses = syn.fan_in() * syn["out_buffer"] * max(samples, 1)
    per_synapse = syn["sops"] / synapses
    n = max(samples, 1)
    scale = 1e-12 / n
    cross = {name: crossings(e0, e1, e, rate) for name, e in ann.items()}
    names, types = syn["name"].tolist(), syn["type"].tolist()
    rates, per_syn = rate.tolist(), per_synapse.tolist()
    snn_j, snn0_j = _js(measured, scale), _js(e0, scale)
    ann_j = {name: _js(e, scale) for name, e in ann.items()}
    out_layers = [
        {
            "name": names[j],
            "type": types[j],
            "input_rate": rates[j],
            "spikes_per_synapse": per_syn[j],
            "dampfhoffer": dampfhoffer_flag(per_syn[j]),
            "snn_j": snn_j[j],
            "snn_no_spikes_j": snn0_j[j],
            "pricings": {
                name: {"ann_j": ann_j[name][j], "break_even_rate": cross[name][0][j], "verdict": cross[name][1][j]}
                for name in ann
            },
        }
        for j in range(k)
    ]
    mean_rate = float(syn["in_spikes"].sum() / syn["in_elems"].sum())
    # uniform scaling s of every layer's rate: E(s) = sum e0 + s * sum (e1 - e0) * rate
    s0, slope = float(np.nansum(e0)), float(np.nansum((e1 - e0) * rate))
    network = {
        "input_rate": mean_rate,
        "snn_j": (s0 + slope) * scale,
        "snn_no_spikes_j": s0 * scale,
        "spikes_per_synapse": float(syn["sops"].sum() / synapses.sum()),
        "layers": k,
        "pricings": {},
    }
    for name, e in ann.items():
        total = float(np.nansum(e))
        r, verdict = crossings(
            np.array([s0]),
            np.array([s0 + slope / mean_rate if mean_rate else s0]),
            np.array([total]),
            np.array([mean_rate]),
        )
        network["pricings"][name] = {"ann_j": total * scale, "break_even_rate": r[0], "verdict": verdict[0]}
    network["dampfhoffer"] = dampfhoffer_flag(network["spikes_per_synapse"])
    return {"layers": out_layers, "network": network}


def _js(pj: np.ndarray, scale: float) -> list:
    """pJ per run as J per sample, None where not priced."""
    return [None if v != v else v * scale for v in pj.tolist()]


VERDICTS = {
    "not priced": "not priced",
    "flat-cheaper": "no dependence on spikes under this model: the spiking layer costs less",
    "flat-dearer": "no dependence on spikes under this model: the spiking layer costs more",
    "never": "never: costs more than the ANN layer even without spikes",
    "always": "always: cheaper at any rate up to one spike per input and step",
    "snn": "spiking cheaper",
    "ann": "ANN cheaper",
}


def crossings(e0, e1, e_ann, rate) -> tuple[list, list]:
    """Where ``e0 + (e1 - e0) r`` (``e1``: every input spiking) meets ``e_ann``, per layer: the break-even
    rates (None where there is none) and a verdict at the measured ``rate`` (:data:`VERDICTS`). Plain Python
    over the few layers of a network: faster than numpy's per-call overhead here."""
    rates, verdicts = [], []
    for a, b, c, m in zip(
        np.asarray(e0, float).tolist(),
        np.asarray(e1, float).tolist(),
        np.asarray(e_ann, float).tolist(),
        np.asarray(rate, float).tolist(),
        strict=True,
    ):
        if a != a or b != b or c != c:
            key, r = "not priced", None
        elif b - a <= 0:
            key, r = ("flat-cheaper" if a < c else "flat-dearer"), None
        else:
            r = (c - a) / (b - a)
            key = "never" if r <= 0 else "always" if r >= 1 else "snn" if m < r else "ann"
        rates.append(r)
        verdicts.append(VERDICTS[key])
    return rates, verdicts


def dampfhoffer_flag(spikes_per_synapse: float) -> str:
    """Where a spikes-per-synapse-per-inference figure falls against Dampfhoffer et al.'s band."""
    lo, hi = DAMPFHOFFER_BAND
    if spikes_per_synapse != spikes_per_synapse:
        return "n/a"
    if spikes_per_synapse < lo:
        return f"below {lo:g}: competitive against every ANN implementation studied"
    if spikes_per_synapse <= hi:
        return f"within {lo:g}-{hi:g}: competitive only against some ANN implementations"
    return f"above {hi:g}: not competitive with the ANN implementations studied"


__all__ = [
    "DAMPFHOFFER_BAND",
    "NATIVE",
    "FairSetup",
    "ann_twin",
    "break_even",
    "dampfhoffer_flag",
    "layer_steps",
    "network_steps",
    "spiking_synapses",
]
