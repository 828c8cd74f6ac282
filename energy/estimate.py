"""Turn counts into energy under a cost model (paper Eqs. 12-13, Horowitz tiers, chips).

Per layer:

    compute = MACs x E_mac + SOPs x E_ac
    neuron  = neuron updates x E_neuron
    memory  = sum over buffers (weights, membrane state, activations) of accesses x E_mem(buffer)

With the paper preset this is Eq. 12 for an ANN (no SOPs, no neuron updates)
and Eq. 13 for an SNN. A layer is *memory-bound* under a cost model when its
memory energy exceeds its compute plus neuron energy.
"""

from __future__ import annotations

import os
from pathlib import Path

from .costs import CostModel, get_preset, load_cost_file

PJ = 1e-12


def resolve_cost(cost: str | os.PathLike | CostModel) -> CostModel:
    """A CostModel from itself, a preset name, or a TOML/YAML cost file."""
    if isinstance(cost, CostModel):
        return cost
    text = str(cost)
    if isinstance(cost, Path) or text.endswith((".toml", ".yaml", ".yml")) or os.sep in text:
        return load_cost_file(text)
    return get_preset(text)


def estimate_energy(result, cost: str | os.PathLike | CostModel = "paper") -> dict:
    """Energy per layer and in total for a :class:`ProfileResult`.

    Returns ``{"totals": {...}, "per_layer": DataFrame, "cost_model": {...}, "warnings": [...]}``;
    totals has ``compute_j``, ``neuron_j``, ``memory_j``, ``total_j``, ``memory_ratio`` and the
    paper's Table 6 grouping (``table6_compute_j``: compute plus neuron energy when the cost model
    groups neuron updates with compute).
    """
    model = resolve_cost(cost)
    df = result.per_layer
    counted = df[df["counted"]].copy() if len(df) else df.copy()
    warnings: list[str] = list(model.warnings) + list(model.flags)
    bpw = model.bytes_per_word
    overflow = 0
    memory = []
    for _, row in counted.iterrows():
        if not model.charge_memory:
            memory.append(0.0)
            continue
        if model.e_mem_word_pj is not None:
            memory.append(row["mem_accesses"] * model.e_mem_word_pj)
            continue
        pj = 0.0
        for words, buffer in (
            (row["weight_reads"], row["weight_buffer"]),
            (row["state_reads"] + row["state_writes"], row["state_buffer"]),
            (row["act_reads"] + row["act_writes"], row["act_buffer"]),
        ):
            if words:
                buffer_bytes = max(float(buffer), 1.0) * bpw
                overflow += model.tier_for(buffer_bytes)[2]
                pj += model.memory_pj(words, buffer_bytes=buffer_bytes)
        memory.append(pj)
    e_neuron = model.e_neuron_pj
    updates = float(counted["neuron_updates"].sum()) if len(counted) else 0.0
    if e_neuron is None and updates > 0:
        warnings.append(f"neuron updates are not charged: cost model {model.name!r} has no sourced per-update energy")
    counted["compute_j"] = (counted["macs"] * model.e_mac_pj + counted["sops"] * model.e_ac_pj) * PJ
    counted["neuron_j"] = counted["neuron_updates"] * (e_neuron or 0.0) * PJ
    counted["memory_j"] = [m * PJ for m in memory]
    counted["total_j"] = counted["compute_j"] + counted["neuron_j"] + counted["memory_j"]
    counted["bound"] = [
        "memory" if m > c + n else "compute"
        for c, n, m in zip(counted["compute_j"], counted["neuron_j"], counted["memory_j"], strict=True)
    ]
    if overflow:
        warnings.append(model.overflow_warning(overflow))
    if result.not_counted:
        names = ", ".join(f"{r['name']} ({r['type']})" for r in result.not_counted[:8])
        more = "" if len(result.not_counted) <= 8 else f" and {len(result.not_counted) - 8} more"
        warnings.append(f"not counted (no rule): {names}{more}")
    compute = float(counted["compute_j"].sum())
    neuron = float(counted["neuron_j"].sum())
    mem = float(counted["memory_j"].sum())
    total = compute + neuron + mem
    table6_compute = compute + neuron if model.neuron_energy_in == "compute" else compute
    totals = {
        "compute_j": compute,
        "neuron_j": neuron,
        "memory_j": mem,
        "total_j": total,
        "memory_ratio": mem / total if total else 0.0,
        "table6_compute_j": table6_compute,
        "per_sample_total_j": total / max(result.samples, 1),
        "memory_bound_layers": int((counted["bound"] == "memory").sum()),
        "layers": int(len(counted)),
    }
    return {
        "totals": totals,
        "per_layer": counted,
        "cost_model": model.to_dict(),
        "warnings": warnings,
    }
