"""The rate-coded wrapper and the small modules a converted run is made of.

:class:`RateCoded` holds one converted run (an ``fx.GraphModule`` of IF neurons
and threshold-balancing scalers made by spikingjelly's ``RateCodingRecipe``).
Each call resets its neurons, runs the network ``timesteps`` times on the same
analog input, accumulates the outputs and returns their mean, so the ANN
remainder sees a tensor of the ANN's shape that converges to the ANN's
activation as ``timesteps`` grows. Neurons are reset again after the call, so
nothing carries over between samples or calls.

The other classes exist so that the energy counter sees what happens between
the neurons (:mod:`.count_rules`):

* :class:`EventConv2d`, :class:`EventAvgPool2d`: spikingjelly's single-step
  ``layer.Conv2d`` / ``layer.AvgPool2d`` under their own type (same parameters,
  same arithmetic), counted as synaptic operations when their input is scaled spikes;
* :class:`SpikeAdd`: the residual additions of the traced graph as a module
  (``a + b``), so that they are visible to hooks;
* :class:`Accumulate`: the per-step accumulation of the run's output.

:class:`HSFETrunk` is the HSFE's ``head -> trunk + long skip`` as one module (to be
traced), and :class:`ConvertedHSFE` the HSFE whose head and trunk are replaced by
a rate-coded run.
"""

from __future__ import annotations

import operator

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional
from spikingjelly.activation_based import layer as sj_layer
from torch import fx

from spklip.hsfe import HSFE
from spklip_energy.errors import ConfigError
from spklip_energy.options import check_positive_int

from .layers import ConversionError


class EventConv2d(sj_layer.Conv2d):
    """A convolution inside a converted run (counted as SOPs on scaled spikes)."""


class EventAvgPool2d(sj_layer.AvgPool2d):
    """Average pooling inside a converted run (counted as accumulates on scaled spikes)."""


class SpikeAdd(nn.Module):
    """``a + b`` of the traced graph (a residual connection), as a module."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class Accumulate(nn.Module):
    """``total + y`` (``y`` when ``total`` is None): the sum of a run's outputs over steps."""

    def forward(self, y: torch.Tensor, total: torch.Tensor | None = None) -> torch.Tensor:
        return y if total is None else total + y


class RateCoded(nn.Module):
    """Run a converted network ``timesteps`` times on the same input; return the mean output.

    ``pre`` is the part of the converted graph that depends on the input only (the
    layers before the first neurons, e.g. the first convolution on the analog
    input): it runs once per call, and its outputs drive ``net`` (the neurons and
    everything after them) at every step.
    """

    def __init__(self, pre: nn.Module, net: nn.Module, timesteps: int, units: list[str]) -> None:
        super().__init__()
        self.pre = pre
        self.net = net
        self.readout = Accumulate()
        self.timesteps = check_timesteps(timesteps)
        self.units = list(units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self.net)
        try:
            drive = self.pre(x)
            total = None
            for _ in range(self.timesteps):
                total = self.readout(self.net(*drive), total)
            return total / self.timesteps
        finally:
            functional.reset_net(self.net)

    def extra_repr(self) -> str:
        return f"units={'+'.join(self.units)}, timesteps={self.timesteps}"


#: the largest T a new conversion may ask for (``convert --timesteps``, checked by
#: :func:`~.sweep.parse_timesteps`): each step is one pass of the converted layers, so T multiplies the work
#: of every forward (T = 1024 already runs the converted CNN a thousand times per clip). A converted model
#: keeps the T it was saved with, whatever it is.
MAX_TIMESTEPS = 1024


def check_timesteps(t, name: str = "timesteps") -> int:
    """T of a rate-coded run: a positive integer (:class:`~.layers.ConversionError` otherwise)."""
    try:
        return check_positive_int(t, name)
    except ConfigError as exc:
        raise ConversionError(str(exc)) from None


def set_timesteps(model: nn.Module, timesteps: int) -> int:
    """Set T of every rate-coded run in ``model``; returns how many runs were changed."""
    t = check_timesteps(timesteps)
    n = 0
    for m in model.modules():
        if isinstance(m, RateCoded):
            m.timesteps = t
            n += 1
    return n


class HSFETrunk(nn.Module):
    """HSFE's ``t = head(x); trunk(t) + t`` (the part of the HSFE that uses ReLUs)."""

    def __init__(self, head: nn.Module, trunk: nn.Module) -> None:
        super().__init__()
        self.head = head
        self.trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.head(x)
        return self.trunk(t) + t


class ConvertedHSFE(HSFE):
    """An HSFE whose head and trunk (and, with a longer run, STAR-Net's CNN) are the run ``snn``.

    Same inputs and outputs as :class:`~spklip.hsfe.HSFE`: MTF
    branches and spatial attention stay analog; their output feeds ``snn``.
    """

    snn: RateCoded

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        return self.snn(self.sa(self.mtf(self.pooled(blocks))))


def make_event_layers(net: fx.GraphModule) -> fx.GraphModule:
    """Give the run's convolutions and average pools their event-counting types, and turn the
    graph's ``a + b`` nodes into :class:`SpikeAdd` modules (arithmetic unchanged)."""
    for m in net.modules():
        if type(m) is sj_layer.Conv2d:
            m.__class__ = EventConv2d
        elif type(m) is sj_layer.AvgPool2d:
            m.__class__ = EventAvgPool2d
    i = 0
    for node in list(net.graph.nodes):
        if (
            node.op == "call_function"
            and node.target in (operator.add, torch.add)
            and len(node.args) == 2
            and not node.kwargs
            and all(isinstance(a, fx.Node) for a in node.args)
        ):
            name = f"spike_add_{i}"
            i += 1
            net.add_submodule(name, SpikeAdd())
            with net.graph.inserting_after(node):
                new = net.graph.call_module(name, args=node.args)
            node.replace_all_uses_with(new)
            net.graph.erase_node(node)
    net.graph.lint()
    net.recompile()
    return net


def split_static(net: fx.GraphModule) -> tuple[fx.GraphModule, fx.GraphModule]:
    """Split a converted graph into ``pre`` (nodes that depend on the input only, no neuron on the
    way) and ``net`` (the rest); ``net(*pre(x)) == original(x)`` at every step."""
    from spikingjelly.activation_based.base import MemoryModule

    graph = net.graph
    modules = dict(net.named_modules())
    static: set[fx.Node] = set()
    output = None
    for node in graph.nodes:
        if node.op == "placeholder":
            static.add(node)
        elif node.op == "output":
            output = node
        elif node.op == "get_attr" or (
            node.op in ("call_module", "call_function", "call_method")
            and all(a in static for a in node.all_input_nodes)
            and not (node.op == "call_module" and isinstance(modules[node.target], MemoryModule))
        ):
            static.add(node)
    frontier = [n for n in graph.nodes if n in static and any(u not in static for u in n.users)]
    if output is None or all(a in static for a in output.all_input_nodes):
        raise ValueError("the converted network has no spiking neurons")
    pre_graph, env = fx.Graph(), {}
    for node in graph.nodes:
        if node in static:
            env[node] = pre_graph.node_copy(node, lambda n: env[n])
    pre_graph.output(tuple(env[n] for n in frontier))
    rest_graph, env2 = fx.Graph(), {}
    for i, n in enumerate(frontier):
        env2[n] = rest_graph.placeholder(f"drive_{i}")
    for node in graph.nodes:
        if node not in static:
            env2[node] = rest_graph.node_copy(node, lambda n: env2[n])
    pre, rest = fx.GraphModule(net, pre_graph), fx.GraphModule(net, rest_graph)
    for g in (pre, rest):
        g.graph.lint()
        g.delete_all_unused_submodules()
        g.recompile()
    return pre, rest


__all__ = [
    "Accumulate",
    "ConvertedHSFE",
    "EventAvgPool2d",
    "EventConv2d",
    "HSFETrunk",
    "RateCoded",
    "SpikeAdd",
    "MAX_TIMESTEPS",
    "check_timesteps",
    "make_event_layers",
    "set_timesteps",
    "split_static",
]
