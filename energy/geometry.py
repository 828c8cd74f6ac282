"""What the published energy models need to know about a layer besides its counts.

The hook counter records what a layer *did* (operations, accesses, spikes); the
analytical models of :mod:`energy.models` also need what it *is*:
a convolution's channels, kernel and stride, a linear layer's widths, whether a
neuron leaks. :func:`layer_geometry` reads that from the module once, when the
profile is summed, so that no energy model runs the model again.

Families:

* ``conv`` - ``nn.Conv1d/2d/3d`` and subclasses (spikingjelly's, the converter's
  event convolution), not transposed;
* ``linear`` - ``nn.Linear`` and subclasses;
* ``neuron`` - a stateful spiking neuron with a membrane: ``leak`` is True for a
  leaky one (LIF and its relatives: a multiply per update), False for IF, None
  when the type is not known to be either;
* ``other`` - everything else (normalisation, pooling, attention, SN units, ...).
"""

from __future__ import annotations

import math

import torch.nn as nn

FAMILIES = ("conv", "linear", "neuron", "other")

#: library neuron classes (by class name anywhere in the MRO) that leak / do not leak; a neuron class of this
#: project says it itself: its ``neuron_spec()`` (fsve.neurons.NeuronSpec) has ``leaky``
_LEAKY = frozenset(
    {
        "LIFNode",
        "ParametricLIFNode",
        "QIFNode",
        "EIFNode",
        "IzhikevichNode",
        "Leaky",
        "Synaptic",
        "RLeaky",
        "RSynaptic",
        "Alpha",
        "Lapicque",
        "LoihiCubaLIF",
    }
)
_NON_LEAKY = frozenset({"IFNode", "NonSpikingIFNode"})

#: the columns :func:`layer_geometry` fills (None where a column does not apply)
COLUMNS = (
    "family",
    "leak",
    "in_channels",
    "out_channels",
    "groups",
    "kernel",
    "kernel_strided",
    "has_bias",
    "kernel_h",
    "kernel_w",
    "neuron_type",
)


def _names(module: nn.Module) -> set[str]:
    return {k.__name__ for k in type(module).__mro__}


def neuron_leak(module: nn.Module) -> bool | None:
    """True for a leaky neuron type, False for an integrate-and-fire one, None when unknown.

    A module that describes itself (a ``neuron_spec()`` method returning an object with ``leaky``, as
    fsve.neurons.NeuronSpec) is taken at its word; library classes are known by name."""
    own = getattr(module, "neuron_spec", None)
    if callable(own):
        return bool(own().leaky)
    names = _names(module)
    if names & _LEAKY:
        return True
    return False if names & _NON_LEAKY else None


def layer_geometry(module: nn.Module, spiking: bool) -> dict:
    """The :data:`COLUMNS` of ``module`` (``spiking``: the counter registered it as a neuron)."""
    g = dict.fromkeys(COLUMNS)
    g["family"] = "other"
    if spiking:
        g["family"] = "neuron"
        g["leak"] = neuron_leak(module)
        g["neuron_type"] = type(module).__name__
        return g
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        g["family"] = "conv"
        g["in_channels"], g["out_channels"], g["groups"] = module.in_channels, module.out_channels, module.groups
        g["kernel"] = math.prod(module.kernel_size)
        g["kernel_strided"] = math.prod(
            math.ceil(k / s) for k, s in zip(module.kernel_size, module.stride, strict=True)
        )
        g["has_bias"] = module.bias is not None
        if len(module.kernel_size) == 2:  # the 2-D kernel SpikeSim prices
            g["kernel_h"], g["kernel_w"] = module.kernel_size
    elif isinstance(module, nn.Linear):
        g["family"] = "linear"
        g["in_channels"], g["out_channels"], g["groups"] = module.in_features, module.out_features, 1
        g["kernel"] = g["kernel_strided"] = 1
        g["has_bias"] = module.bias is not None
    return g
