"""Loihi's CUBA-LIF in fixed point: the one home of its integer formats and of its neuron step.

Per neuron and step (Lava's ``PyLifModelBitAcc``; all integers; ``docs/lava.md`` for the sources)::

    u = trunc0(u * (4096 - iDecay) / 4096) + (a_in << 6)      # then wrapped to signed 24 bits
    v = trunc0(v * (4096 - vDecay) / 4096) + u + (bias << 6)  # then clipped to +-(2**23 - 1)
    s = v > (vThMant << 6);  v[s] = 0                          # u is not reset; no refractory period

``trunc0`` divides by 4096 rounding toward zero (``sign(t) * (|t| >> 12)``). :func:`cuba_lif_step` is
that step for numpy arrays and torch tensors alike (int64), so the numpy reference engine
(:mod:`.loihi_engine`) and the torch twin the hook counter watches (:mod:`.loihi_torch`) run the same
arithmetic; the exporter (:mod:`.lava_export`) and the file format (:mod:`.netx_format`) take their ranges
from here.
"""

from __future__ import annotations

import numpy as np
import torch

#: decays (iDecay, vDecay) are fractions of this: 4096 keeps everything, 0 nothing
DECAY_UNIT = 4096
DECAY_SHIFT = 12  # log2(DECAY_UNIT): trunc0's division
#: a_in, the bias and vThMant are shifted left by this into the 24-bit state registers
STATE_SHIFT = 6
#: u is wrapped to signed 24 bits: it lives in [-2**23 + 1, 2**23]
U_WRAP = 1 << 24
U_HALF = 1 << 23
#: v is clipped to +-V_MAX; a convolution's summed input a_in is clamped to [-(V_MAX + 1), V_MAX]
V_MAX = (1 << 23) - 1
#: weight mantissas netx keeps losslessly (8-bit, even above: its optimiser clips outside and warns)
WEIGHT_RANGE = (-256, 254)
#: 13-bit signed bias mantissa
BIAS_MAX = (1 << 12) - 1
#: threshold mantissa of a neuron group (netx's default integrator uses 1 << 17 itself)
VTH_MAX = (1 << 17) - 1
#: a_in is int16 in Lava's LIF
A_IN_MAX = (1 << 15) - 1


def _xp(x):
    return np if isinstance(x, np.ndarray) else torch


def v_decay_of(retain: float) -> int:
    """``vDecay`` of a leak that keeps ``retain`` of ``v`` per step (spikingjelly's ``v = retain * v + x``)."""
    return int(round((1.0 - retain) * DECAY_UNIT))


def trunc_decay(x, decay: int):
    """``sign(x * (4096 - decay)) * (|x * (4096 - decay)| >> 12)``: ``x`` decayed, rounded toward zero (int64)."""
    xp = _xp(x)
    t = x * (DECAY_UNIT - int(decay))
    return xp.sign(t) * (xp.abs(t) >> DECAY_SHIFT)


def state_bias(bias):
    """A bias mantissa as it enters ``v`` (shifted into the state registers)."""
    return bias << STATE_SHIFT


def clamp_synaptic(a):
    """A convolution's summed input clamped to the signed 24-bit range the hardware carries."""
    return _xp(a).clip(a, -V_MAX - 1, V_MAX)


def cuba_lif_step(u, v, a_in, bias_state, i_decay: int, v_decay: int, v_th_mant: int):
    """One step of a CUBA-LIF population: ``(u, v, spikes)`` after input ``a_in`` (int64 arrays or tensors;
    ``bias_state``: :func:`state_bias` of the bias, or 0)."""
    xp = _xp(u)
    u = trunc_decay(u, i_decay) + (a_in << STATE_SHIFT)
    u = xp.where(u > U_HALF, u - U_WRAP, xp.where(u <= -U_HALF, u + U_WRAP, u))
    v = xp.clip(trunc_decay(v, v_decay) + u + bias_state, -V_MAX, V_MAX)
    s = v > (int(v_th_mant) << STATE_SHIFT)
    v = xp.where(s, 0, v)
    return u, v, s


__all__ = [
    "A_IN_MAX",
    "BIAS_MAX",
    "DECAY_SHIFT",
    "DECAY_UNIT",
    "STATE_SHIFT",
    "U_HALF",
    "U_WRAP",
    "VTH_MAX",
    "V_MAX",
    "WEIGHT_RANGE",
    "clamp_synaptic",
    "cuba_lif_step",
    "state_bias",
    "trunc_decay",
    "v_decay_of",
]
