"""Counting rules for converted (rate-coded) runs, registered on import.

spikingjelly's conversion puts a scaler on each side of every IF neuron:
``x -> x * (1/s) -> IF -> spikes * s``. The layer after a neuron therefore sees
*scaled spikes* ``{0, s}`` (sums of them after a residual addition, window sums
after average pooling), not ``{0, 1}``. On event-driven hardware ``s`` is folded
into the next layer's weights (and ``1/s`` into the threshold), so:

* **scalers** (``VoltageScaler``, ``ChannelVoltageScaler``) cost nothing, neither
  operations nor memory; the one after a neuron passes the neuron's spikes on as
  the *events* of its output;
* a **convolution** whose input carries events does
  ``SOPs = (C_out / groups) * sum_p events(p) * coverage(p)`` (the border-exact
  coverage of :mod:`energy.rules`), no MACs;
* **average pooling** of events accumulates each event once per window containing it
  (SOPs); its output carries the window sums of the events, so that the following
  convolution is charged what the folded pooling + convolution kernel costs;
* a **residual addition** of two event tensors merges two event streams (no
  operations; the output carries both); events added to an analog tensor are one
  accumulate each; two analog tensors one add (MAC) per element;
* the **readout** accumulates the run's output every step (an accumulate per
  event, or an add per element when the output is analog) and divides by T once
  per call (a multiply per element);
* IF neurons are spikingjelly ``BaseNode``s and use the library rule: one update per
  neuron and step, membrane read and write.

Events are tracked per profile in the call context's scratch space
(``ctx.scratch["convert.events"]``), keyed by tensor identity as the context's own
spike marks are, and forgotten when the tensor is freed.
"""

from __future__ import annotations

import weakref

import torch
import torch.nn.functional as F
from spikingjelly.activation_based.ann2snn.modules import ChannelVoltageScaler, VoltageScaler

from energy.counts import Counts
from energy.rules import (
    CallContext,
    avg_pool_rule,
    base_counts,
    conv_coverage,
    conv_key,
    conv_rule,
    first_tensor,
    no_reuse_weights,
    pool_coverage,
    pool_key,
    record_spike_rate,
    register_rule,
)

from .ratecode import Accumulate, EventAvgPool2d, EventConv2d, RateCoded, SpikeAdd

_KEY = "convert.events"  # this module's entry in CallContext.scratch
SCALER_NOTE = (
    "converted runs: ann2snn's threshold-balancing scalers are folded into the neighbouring weights and "
    "thresholds (no operations or memory charged); layers fed by scaled spikes are charged SOPs per event"
)


def _events_map(ctx: CallContext) -> dict:
    """This profile's table ``id(tensor) -> (weakref to the tensor, events per element)``."""
    return ctx.scratch.setdefault(_KEY, {})


def set_events(ctx: CallContext, t: torch.Tensor | None, events: torch.Tensor) -> None:
    """Record that ``t`` carries ``events`` (a tensor of ``t``'s shape: events per element)."""
    if isinstance(t, torch.Tensor):
        table, key = _events_map(ctx), id(t)

        def drop(ref, table=table, key=key) -> None:  # forget the events when ``t`` is freed
            entry = table.get(key)
            if entry is not None and entry[0] is ref:
                del table[key]

        table[key] = (weakref.ref(t, drop), events)


def events_of(ctx: CallContext, t) -> torch.Tensor | None:
    """Events per element of ``t``: recorded ones, ``t`` itself for a known spike tensor, else None."""
    if not isinstance(t, torch.Tensor):
        return None
    entry = _events_map(ctx).get(id(t))
    if entry is not None and entry[0]() is t:
        return entry[1]
    if ctx.known_spike(t):
        return t
    return None


@register_rule(VoltageScaler, ChannelVoltageScaler)
def scaler_rule(module, inputs, output, ctx: CallContext) -> Counts:
    ev = events_of(ctx, inputs[0])
    if ev is not None:
        set_events(ctx, first_tensor(output), ev)
    return Counts(notes=[SCALER_NOTE])


def _events_per_pixel(ev: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    return ev.reshape((-1,) + spatial).sum(0, dtype=torch.float32).double()


@register_rule(EventConv2d)
def event_conv_rule(module: EventConv2d, inputs, output, ctx: CallContext) -> Counts:
    ev = events_of(ctx, inputs[0])
    if ev is None:
        return conv_rule(module, inputs, output, ctx)
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=3)
    spatial = tuple(x.shape[-2:])
    cov = ctx.cached(conv_key(module, spatial, x.device), lambda: conv_coverage(module, spatial, x.device))
    per_pixel = _events_per_pixel(ev, spatial)
    c.sops = (per_pixel * cov).sum() * (module.out_channels // module.groups)
    c.binary_input = True
    record_spike_rate(c, x, True, per_pixel.sum())
    if ctx.reuse == "none":
        no_reuse_weights(c, module, out)
    return c


@register_rule(EventAvgPool2d)
def event_avg_pool_rule(module: EventAvgPool2d, inputs, output, ctx: CallContext) -> Counts:
    ev = events_of(ctx, inputs[0])
    if ev is None:
        return avg_pool_rule(module, inputs, output, ctx)
    c, x, out = base_counts(module, inputs, output, ctx, sample_dims=3)
    spatial = tuple(x.shape[-2:])
    cov = ctx.cached(pool_key(module, spatial, x.device), lambda: pool_coverage(module, spatial, x.device))
    per_pixel = _events_per_pixel(ev, spatial)
    c.sops = (per_pixel * cov).sum()
    c.binary_input = True
    record_spike_rate(c, x, True, per_pixel.sum())
    window_sums = F.avg_pool2d(
        ev.float(),
        module.kernel_size,
        module.stride,
        module.padding,
        module.ceil_mode,
        module.count_include_pad,
        divisor_override=1,
    )
    set_events(ctx, out, window_sums)
    return c


@register_rule(SpikeAdd)
def spike_add_rule(module, inputs, output, ctx: CallContext) -> Counts:
    a, b = inputs[0], inputs[1]
    c, _, out = base_counts(module, (a, b), output, ctx, sample_dims=max(out_dims(output) - 1, 1))
    ea, eb = events_of(ctx, a), events_of(ctx, b)
    if ea is not None and eb is not None:
        set_events(ctx, out, ea + eb)
        c.binary_input = True
    elif ea is not None or eb is not None:
        c.sops = (ea if ea is not None else eb).sum(dtype=torch.float64)
    else:
        c.macs = out.numel()
    return c


def out_dims(output) -> int:
    out = first_tensor(output)
    return out.dim() if out is not None else 1


@register_rule(Accumulate)
def accumulate_rule(module, inputs, output, ctx: CallContext) -> Counts:
    y = inputs[0]
    total = inputs[1] if len(inputs) > 1 and isinstance(inputs[1], torch.Tensor) else None
    c, _, out = base_counts(module, inputs, output, ctx, sample_dims=max(y.dim() - 1, 1))
    if total is None:  # first step: the output is the step's output itself
        return c
    ev = events_of(ctx, y)
    if ev is not None:
        c.sops = ev.sum(dtype=torch.float64)
        c.binary_input = True
    else:
        c.macs = y.numel()
    return c


@register_rule(RateCoded, covers_children=False)
def rate_coded_rule(module: RateCoded, inputs, output, ctx: CallContext) -> Counts:
    """The wrapper's own work: dividing the accumulated output by T, once per call."""
    out = first_tensor(output)
    c = Counts()
    if out is not None:
        c.macs = out.numel()
        c.act_reads = c.act_writes = out.numel()
        c.act_read_bytes = c.act_write_bytes = out.numel() * out.element_size()
        c.act_buffer = out[0].numel() if out.dim() > 1 else out.numel()
    return c


__all__ = [
    "accumulate_rule",
    "event_avg_pool_rule",
    "event_conv_rule",
    "events_of",
    "rate_coded_rule",
    "scaler_rule",
    "set_events",
    "spike_add_rule",
]
