"""A bit-exact fixed-point reference of Loihi's CUBA-LIF running a netx chain (numpy, vectorised).

Dynamics: Loihi's CUBA-LIF in fixed point, :func:`.loihi_fixed.cuba_lif_step` (the formats and the
step's sources are there).
Synapses (conv: torch-layout cross-correlation, clamped to signed 24 bits; dense:
``W @ s``) deliver at step ``t`` the spikes their source layer sent at ``t - 1``,
so every synaptic layer adds one step of latency; the input layer has no synapse
and takes its ``a_in`` straight from the data. Flatten layers only reshape.

The engine runs layer-major: a layer's whole input train is formed with one
batched matrix product (float64, exact for these integer sizes), then its
neurons are stepped in time. Samples in the batch are independent (each starts
from u = v = 0), as netx's ``reset_interval`` makes them.

Counts, per layer: ``synaptic_events`` = spikes delivered x fan-out (the
synapses each delivered spike drives, borders included), ``neuron_updates`` =
neurons x steps, ``spikes`` = spikes sent.

Resources: :func:`check_simulation` estimates, from the network and the number
of steps and samples alone, the memory a run takes (:func:`simulation_bytes`)
and its work (:func:`simulation_work`), and refuses a run over the memory limit
or over :data:`MAX_SYNAPTIC_OPS` / :data:`MAX_NEURON_UPDATES` (each about an
hour on one CPU core; ``docs/lava.md``) before anything is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from spklip_energy.errors import ConfigError
from spklip_energy.limits import check_count, check_memory

from .loihi_fixed import clamp_synaptic, cuba_lif_step, state_bias
from .netx_format import NetxLayer, NetxNet

#: ceiling on the synapses one run evaluates, steps x samples x synapses (the engine computes every synapse
#: at every step, spike or not): about an hour on one CPU core at the ~5e9 per second measured here
MAX_SYNAPTIC_OPS = 2 * 10**13
#: ceiling on neuron updates (steps x samples x neurons): about an hour at the ~4e7 per second measured here
MAX_NEURON_UPDATES = 10**11


@dataclass
class LIFState:
    u: np.ndarray
    v: np.ndarray


def cuba_lif_run(
    a_in: np.ndarray,
    i_decay: int,
    v_decay: int,
    v_th_mant: int,
    bias: np.ndarray | None = None,
    record: bool = False,
    reset_after: np.ndarray | None = None,
) -> tuple[np.ndarray, LIFState, dict]:
    """Step a CUBA-LIF population through ``a_in`` ``[S, ...]`` (int); returns spikes ``[S, ...]`` (bool),
    the final state and (with ``record``) the ``u``/``v`` trace ``[S, ...]``. ``reset_after[t]`` true sets
    u and v to 0 after step ``t`` (Lava's ``io.reset.Reset`` in its post-management phase)."""
    steps = a_in.shape[0]
    shape = a_in.shape[1:]
    u = np.zeros(shape, dtype=np.int64)
    v = np.zeros(shape, dtype=np.int64)
    b = np.zeros(shape, dtype=np.int64) if bias is None else np.broadcast_to(state_bias(bias.astype(np.int64)), shape)
    spikes = np.zeros(a_in.shape, dtype=bool)
    trace = {"u": np.zeros(a_in.shape, np.int64), "v": np.zeros(a_in.shape, np.int64)} if record else {}
    for t in range(steps):
        u, v, s = cuba_lif_step(u, v, a_in[t].astype(np.int64), b, i_decay, v_decay, v_th_mant)
        spikes[t] = s
        if record:
            trace["u"][t], trace["v"][t] = u, v
        if reset_after is not None and reset_after[t]:
            u = np.zeros_like(u)
            v = np.zeros_like(v)
    return spikes, LIFState(u, v), trace


def _conv(x: np.ndarray, lay: NetxLayer) -> np.ndarray:
    """Integer cross-correlation of ``x`` ``[M, C, H, W]`` with the layer's weight; ``[M, O, H', W']`` int64."""
    w = lay.weight
    (ph, pw), (sh, sw), (dh, dw), g = lay.padding, lay.stride, lay.dilation, lay.groups
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2], w.shape[3]
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]  # [M, C, H', W', kh, kw]
    cin_g, cout_g = w.shape[1], w.shape[0] // g
    outs = []
    for gi in range(g):
        wg = w[gi * cout_g : (gi + 1) * cout_g].astype(np.float64)  # [o, c, kh, kw]
        xg = win[:, gi * cin_g : (gi + 1) * cin_g]
        outs.append(np.einsum("mchwij,ocij->mohw", xg, wg, optimize=True))
    out = np.concatenate(outs, axis=1) if g > 1 else outs[0]
    return clamp_synaptic(np.rint(out).astype(np.int64))


def conv_fan_out(lay: NetxLayer, in_shape: tuple[int, int, int]) -> np.ndarray:
    """Synapses driven by one spike of each input neuron ``[C, H, W]`` (borders and stride included)."""
    w = lay.weight
    c, h, wd = in_shape
    idx = np.arange(h * wd, dtype=np.float64).reshape(1, 1, h, wd)
    (ph, pw), (sh, sw), (dh, dw) = lay.padding, lay.stride, lay.dilation
    xp = np.pad(idx, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-1)
    kh, kw = w.shape[2], w.shape[3]
    win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))[:, :, ::sh, ::sw, ::dh, ::dw]
    hits = win[win >= 0].astype(np.int64)
    coverage = np.bincount(hits, minlength=h * wd).reshape(h, wd)
    per_channel = w.shape[0] // lay.groups
    return np.broadcast_to(coverage * per_channel, (c, h, wd))


def _chain(net: NetxNet):
    """(layer, the (C, H, W) or (N, 1, 1) shape it receives) for each synaptic layer, in order."""
    shape = tuple(net.layers[0].shape)
    for lay in net.layers[1:]:
        if lay.type == "flatten":
            shape = (math.prod(shape), 1, 1)
            continue
        yield lay, shape
        shape = tuple(lay.shape)


def simulation_work(net: NetxNet, steps: int, samples: int) -> tuple[int, int]:
    """(synaptic operations, neuron updates) of one run: every synapse and neuron at every step."""
    synapses = 0
    for lay, _ in _chain(net):
        if lay.type == "conv":
            synapses += lay.neurons * math.prod(lay.weight.shape[1:])  # each output: (in/groups) x kH x kW
        else:
            synapses += lay.weight.size
    neurons = sum(lay.neurons for lay in net.layers)
    return steps * samples * synapses, steps * samples * neurons


def simulation_bytes(net: NetxNet, steps: int, samples: int, record: bool = False) -> int:
    """The memory :func:`simulate` takes for ``steps`` x ``samples``, estimated from the sizes alone: the
    int64 input, every layer's spikes (and ``record``'s u/v traces), and the largest layer's temporaries
    (float64 padded input and im2col windows, the float64/int64 currents, the event count)."""
    sn = steps * samples
    kept = sum(lay.neurons for lay in net.layers) * (1 + (16 if record else 0))
    peak = 0
    for lay, (c, h, w) in _chain(net):
        if lay.type == "conv":
            (ph, pw), k = lay.padding, math.prod(lay.weight.shape[1:])
            temp = 8 * c * (h + 2 * ph) * (w + 2 * pw) + 8 * k * math.prod(lay.shape[1:])
        else:
            temp = 8 * c * h * w
        temp += c * h * w * (1 + 16) + lay.neurons * 24  # delivered spikes, event count; currents
        peak = max(peak, temp)
    return sn * (8 * math.prod(net.input_shape) + kept + peak)


def check_simulation(net: NetxNet, steps: int, samples: int, cause: str, record: bool = False) -> None:
    """Refuse a run that would need more memory than the limit, or more work than the ceilings."""
    name = Path(net.path).name if net.path else "the network"
    what = f"simulating {name} ({steps:,} steps x {samples:,} samples)"
    check_memory(simulation_bytes(net, steps, samples, record), what, cause)
    synops, updates = simulation_work(net, steps, samples)
    check_count(
        synops,
        MAX_SYNAPTIC_OPS,
        "one simulation's synaptic operations (steps x samples x synapses)",
        f"{cause} ({synops:,} synaptic operations, {what})",
        "about an hour on one CPU core; use fewer steps",
    )
    check_count(
        updates,
        MAX_NEURON_UPDATES,
        "one simulation's neuron updates (steps x samples x neurons)",
        f"{cause} ({updates:,} neuron updates, {what})",
        "about an hour on one CPU core; use fewer steps",
    )


@dataclass
class SimResult:
    """What :func:`simulate` measured; arrays are ``[S, N, ...]`` per neuron layer."""

    steps: int
    samples: int
    layers: list[dict]  # per layer: index, type, shape, neurons, spikes, synaptic_events, neuron_updates
    spikes: dict[int, np.ndarray] = field(default_factory=dict)
    traces: dict[int, dict] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        return self.spikes[max(self.spikes)]

    def totals(self) -> dict:
        return {k: int(sum(layer[k] for layer in self.layers)) for k in ("spikes", "synaptic_events", "neuron_updates")}


def simulate(
    net: NetxNet,
    a_in: np.ndarray,
    *,
    bias_in: np.ndarray | None = None,
    record: bool = False,
    keep_spikes: bool = True,
    reset_interval: int | None = None,
) -> SimResult:
    """Run ``net`` on input ``a_in`` ``[S, N, C, H, W]`` (ints driven into the input layer's ``a_in``
    each step; spikes are 0/1). ``bias_in`` ``[N, C, H, W]`` optionally sets the input layer's bias
    mantissa (as netx users do with ``in_layer.neuron.bias_mant``). ``reset_interval`` resets neuron
    layer ``i`` (counted without flatten layers, as netx's blocks) after every step ``t`` (counted from
    0) with ``t % interval == (i - 1) % interval``:
    the schedule of lava-dl's netx ``Reset(interval, offset=i - 1)`` test, which starts each layer from
    zero state the step its first synaptic input arrives."""
    a_in = np.asarray(a_in)
    if a_in.ndim != 5:
        raise ConfigError(f"simulation input must be [steps, samples, C, H, W], found shape {list(a_in.shape)}")
    if tuple(a_in.shape[2:]) != tuple(net.input_shape):
        raise ConfigError(
            f"input of shape {list(a_in.shape[2:])} (C, H, W) does not match the network's input "
            f"layer {list(net.input_shape)}"
        )
    steps, n = a_in.shape[:2]
    if steps < 1 or n < 1:
        raise ConfigError(
            f"simulation input must have at least one step and one sample, found shape {list(a_in.shape)}"
        )
    check_simulation(net, steps, n, f"an input of {steps:,} steps x {n:,} samples", record)
    if np.issubdtype(a_in.dtype, np.floating) and np.any(a_in != np.trunc(a_in)):
        raise ConfigError("simulation input must be integers (spikes or a_in mantissas)")

    # netx builds no block for flatten layers: reset offsets number the neuron layers only
    ordinal = {i: k for k, i in enumerate(j for j, lay in enumerate(net.layers) if lay.type != "flatten")}

    def resets(i: int) -> np.ndarray | None:
        if not reset_interval:
            return None
        t = np.arange(steps)
        return t % reset_interval == (ordinal[i] - 1) % reset_interval

    first = net.layers[0]
    s, _, tr = cuba_lif_run(
        a_in.astype(np.int64),
        first.neuron.i_decay,
        first.neuron.v_decay,
        first.neuron.v_th_mant,
        bias_in,
        record,
        resets(0),
    )
    res = SimResult(steps, n, [])
    res.layers.append(
        {
            "index": 0,
            "type": "input",
            "shape": list(first.shape),
            "neurons": first.neurons,
            "spikes": int(s.sum()),
            "synaptic_events": 0,
            "neuron_updates": first.neurons * steps * n,
        }
    )
    if keep_spikes:
        res.spikes[0] = s
    if record:
        res.traces[0] = tr
    shape = first.shape
    for i, lay in enumerate(net.layers[1:], start=1):
        if lay.type == "flatten":
            s = s.reshape(steps, n, -1, 1, 1)
            shape = (int(np.prod(shape)), 1, 1)
            continue
        delivered = np.zeros_like(s)
        delivered[1:] = s[:-1]  # a synapse delivers at t what its source sent at t - 1
        flat = delivered.reshape(steps * n, *shape)
        if lay.type == "conv":
            a = _conv(flat, lay)
            fan = conv_fan_out(lay, shape)
        else:  # dense
            x = flat.reshape(steps * n, -1).astype(np.float64)
            a = np.rint(x @ lay.weight.T.astype(np.float64)).astype(np.int64)
            fan = np.full(x.shape[1], lay.shape[0], dtype=np.int64)
        events = int((flat.reshape(steps * n, -1).astype(np.int64) * fan.reshape(1, -1)).sum())
        a = a.reshape(steps, n, *lay.shape)
        bias = None
        if lay.bias is not None:
            bias = lay.bias.reshape(-1, 1, 1) if lay.type == "conv" else lay.bias.reshape(lay.shape)
        s, _, tr = cuba_lif_run(
            a, lay.neuron.i_decay, lay.neuron.v_decay, lay.neuron.v_th_mant, bias, record, resets(i)
        )
        shape = lay.shape
        res.layers.append(
            {
                "index": i,
                "type": lay.type,
                "shape": list(lay.shape),
                "neurons": lay.neurons,
                "spikes": int(s.sum()),
                "synaptic_events": events,
                "neuron_updates": lay.neurons * steps * n,
            }
        )
        if keep_spikes:
            res.spikes[i] = s
        if record:
            res.traces[i] = tr
    return res


__all__ = [
    "MAX_NEURON_UPDATES",
    "MAX_SYNAPTIC_OPS",
    "LIFState",
    "SimResult",
    "check_simulation",
    "conv_fan_out",
    "cuba_lif_run",
    "simulate",
    "simulation_bytes",
    "simulation_work",
]
