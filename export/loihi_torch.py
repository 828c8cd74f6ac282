"""The same fixed-point netx chain as torch modules, so the project's hook counter can count it.

:class:`NetxTorch` rebuilds a :class:`~.netx_format.NetxNet` from ``nn.Conv2d`` /
``nn.Linear`` synapses (float64 weights holding the integer mantissas: exact for
these sizes) and :class:`LoihiCubaLIF` populations (int64 arithmetic identical to
:mod:`.loihi_engine`), runs it multi-step on ``[S, N, C, H, W]`` with the same
one-step synaptic delay, and so gives the hook-based counter
(:func:`energy.profile`) the same quantised network on the same
input as ``simulate``. It is a second, independent implementation of the
dynamics: tests require its spikes and counts to equal the numpy engine's.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from energy.rules import neuron_counts, preserving_rule, register_rule

from .loihi_fixed import clamp_synaptic, cuba_lif_step, state_bias
from .netx_format import NetxNet


class LoihiCubaLIF(nn.Module):
    """Loihi CUBA-LIF in fixed point over ``[S, N, ...]`` (input: the synaptic ``a_in`` per step)."""

    step_mode = "m"

    def __init__(
        self,
        i_decay: int,
        v_decay: int,
        v_th_mant: int,
        bias: torch.Tensor | None = None,
        reset_interval: int | None = None,
        reset_offset: int = 0,
    ) -> None:
        super().__init__()
        self.i_decay, self.v_decay, self.v_th_mant = int(i_decay), int(v_decay), int(v_th_mant)
        self.register_buffer("bias", None if bias is None else bias.to(torch.int64), persistent=False)
        self.reset_interval, self.reset_offset = reset_interval, reset_offset  # u, v = 0 after step t ≡ offset

    def forward(self, a_in: torch.Tensor) -> torch.Tensor:
        a = a_in.to(torch.int64)
        u = torch.zeros_like(a[0])
        v = torch.zeros_like(a[0])
        b = torch.zeros_like(a[0]) if self.bias is None else state_bias(self.bias).expand_as(a[0])
        out = []
        for t in range(a.shape[0]):
            u, v, s = cuba_lif_step(u, v, a[t], b, self.i_decay, self.v_decay, self.v_th_mant)
            out.append(s)
            if self.reset_interval and t % self.reset_interval == self.reset_offset % self.reset_interval:
                u, v = torch.zeros_like(u), torch.zeros_like(v)
        return torch.stack(out).to(torch.float64)

    def extra_repr(self) -> str:
        return f"iDecay={self.i_decay}, vDecay={self.v_decay}, vThMant={self.v_th_mant}"


@register_rule(LoihiCubaLIF, spiking=True)
def _loihi_lif_rule(module, inputs, output, ctx):
    return neuron_counts(module, inputs[0], output, ctx, state_tensors=2)  # u and v


class _Delay(nn.Module):
    """One step of synaptic latency on ``[S, N, ...]``: the output at ``t`` is the input at ``t - 1``."""

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros_like(s[:1]), s[:-1]])


register_rule(_Delay)(preserving_rule)  # no arithmetic; spikes stay spikes


class NetxTorch(nn.Module):
    """A netx chain as torch modules; ``forward([S, N, C, H, W]) -> {layer index: spikes [S, N, ...]}``
    (``reset_interval``: the engine's per-layer reset schedule)."""

    def __init__(self, net: NetxNet, reset_interval: int | None = None) -> None:
        super().__init__()
        self.net = net
        first = net.layers[0]
        self.input_lif = LoihiCubaLIF(
            first.neuron.i_decay,
            first.neuron.v_decay,
            first.neuron.v_th_mant,
            reset_interval=reset_interval,
            reset_offset=-1,
        )
        ordinal = 0  # netx numbers its blocks without flatten layers: reset offsets follow that
        self.synapses = nn.ModuleDict()
        self.neurons = nn.ModuleDict()
        for i, lay in enumerate(net.layers[1:], start=1):
            if lay.type == "flatten":
                continue
            ordinal += 1
            w = torch.from_numpy(lay.weight).to(torch.float64)
            if lay.type == "conv":
                syn = nn.Conv2d(
                    w.shape[1] * lay.groups,
                    w.shape[0],
                    tuple(w.shape[2:]),
                    stride=lay.stride,
                    padding=lay.padding,
                    dilation=lay.dilation,
                    groups=lay.groups,
                    bias=False,
                )
            else:
                syn = nn.Linear(w.shape[1], w.shape[0], bias=False)
            syn = syn.to(torch.float64)
            syn.weight.data.copy_(w)
            syn.weight.requires_grad_(False)
            self.synapses[str(i)] = syn
            bias = None
            if lay.bias is not None:
                b = torch.from_numpy(lay.bias)
                bias = b.reshape(-1, 1, 1) if lay.type == "conv" else b
            self.neurons[str(i)] = LoihiCubaLIF(
                lay.neuron.i_decay, lay.neuron.v_decay, lay.neuron.v_th_mant, bias, reset_interval, ordinal - 1
            )
        self.delay = _Delay()

    def forward(self, a_in: torch.Tensor) -> dict[int, torch.Tensor]:
        s = self.input_lif(a_in)
        out = {0: s}
        steps, n = s.shape[:2]
        for i, lay in enumerate(self.net.layers[1:], start=1):
            if lay.type == "flatten":
                s = s.reshape(steps, n, -1)
                continue
            syn = self.synapses[str(i)]
            x = self.delay(s)
            if lay.type == "dense":
                x = x.reshape(steps * n, -1)
            else:
                x = x.reshape(steps * n, *x.shape[2:])
            a = torch.round(syn(x))
            if lay.type == "conv":
                a = clamp_synaptic(a)
            s = self.neurons[str(i)](a.reshape(steps, n, *lay.shape) if lay.type == "conv" else a.reshape(steps, n, -1))
            out[i] = s
        return out


__all__ = ["LoihiCubaLIF", "NetxTorch"]
