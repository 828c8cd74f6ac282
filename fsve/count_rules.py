"""Counting rules for the FSVE's own layers (registered on import).

* :class:`SpikeNorm` / :class:`Heaviside` (SN units): one neuron update per element
  and step (a compare, and for SN the threshold ``alpha * E|x|``); they keep no
  membrane, so no state reads or writes; their outputs are spikes.
* :class:`SpikeMatMul`: for two binary operands one synaptic operation per
  non-zero product, ``sum_k colsum(a)_k * rowsum(b)_k`` per matrix pair (the
  accumulates an event-driven core performs when a spike meets a spike); with one
  binary operand one accumulate per spike and output column; otherwise MACs.
"""

from __future__ import annotations

import math

from energy.counts import Counts
from energy.rules import (
    CallContext,
    base_counts,
    neuron_counts,
    record_spike_rate,
    register_rule,
    select,
)

from .esdsa import SpikeMatMul
from .neurons import Heaviside, SpikeNorm


@register_rule(SpikeNorm, Heaviside, spiking=True)
def sn_rule(module, inputs, output, ctx: CallContext) -> Counts:
    out = output if not isinstance(output, tuple) else output[0]
    c = neuron_counts(module, inputs[0], out, ctx, state_tensors=0)
    ctx.mark_spike(out)
    return c


@register_rule(SpikeMatMul)
def spike_matmul_rule(module: SpikeMatMul, inputs, output, ctx: CallContext) -> Counts:
    a, b = inputs[0], inputs[1]
    c, _, out = base_counts(module, inputs, output, ctx, sample_dims=2)
    k = a.shape[-1]
    dense = out.numel() * k
    a_bin, b_bin = bool(ctx.is_spike(a)), bool(ctx.is_spike(b))  # small operands: one sync is cheap
    if a_bin is True and b_bin is True:
        pairs = (a.sum(dim=-2, dtype=a.dtype if a.is_floating_point() else None).float() * b.sum(dim=-1).float()).sum()
        c.sops = pairs
        c.binary_input = True
        record_spike_rate(c, a, True, ctx.nnz(a))
        return c
    if a_bin is True or b_bin is True:
        spikes, other_cols = (a, b.shape[-1]) if a_bin is True else (b, a.shape[-2])
        nnz = ctx.nnz(spikes)
        reps = math.prod(out.shape[:-2]) // max(math.prod(spikes.shape[:-2]), 1)
        c.sops = nnz * other_cols * max(reps, 1)
        c.binary_input = True
        record_spike_rate(c, spikes, True, nnz)
        return c
    c.macs = select(False, 0, dense)
    return c


__all__ = ["sn_rule", "spike_matmul_rule"]
