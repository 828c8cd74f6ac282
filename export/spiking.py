"""Make the spiking encoders traceable: export-time neurons and batch-agnostic reshapes.

Two things in spikingjelly get in the way of a graph with a dynamic batch axis:

* ``LIFNode``'s multi-step forward dispatches to a kernel chosen at run time (a
  native CUDA kernel or Triton on GPUs, a torch reference on the CPU; the
  ``SJ_LIF_*`` environment variables force one). Only the torch reference traces.
  :func:`onnx_friendly` therefore swaps each neuron's forward, for the duration of
  the export, for a plain torch loop over the time steps replaying its
  :class:`~fsve.neurons.NeuronSpec` (spikingjelly's own charge, fire and reset
  expressions). Exported: the FSVE's multi-step LIF (``decay_input=False``, hard
  reset to 0; :func:`lif_spec`) and, inside a converted checkpoint's rate-coded
  loop, single-step soft-reset IF neurons (``IFNode``, ``HalfThresholdIFNode``,
  :class:`~convert.neurons.ConvertedIF`, with its bias current and initial
  potential; :func:`if_spec`). Anything else is refused by module name.
* ``functional.seq_to_ann_forward`` (every multi-step conv, BN, tdBN, pooling)
  restores ``[T, B, ...]`` with ``unflatten(0, (T, B))``, which the TorchScript
  exporter records with the traced batch size as a constant. During the export
  it is replaced by ``reshape(T, -1, ...)``: same values, batch left free.

The time loop is unrolled in the graph (``T = fsve.time_steps`` copies of each
neuron update); multi-step neuron state starts at rest in every run, as
``functional.reset_net`` does at the start of every forward; a single-step
neuron's state lives on the module between the rate-coded loop's calls.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator

import torch
import torch.nn as nn

from fsve.neurons import NeuronSpec, describe_neuron
from spklip_energy.errors import CheckpointError


def _refuse(name: str, node, target: str, why: str) -> CheckpointError:
    return CheckpointError(f"module {name} ({type(node).__name__}) cannot be exported to {target}: {why}")


def lif_spec(name: str, node, target: str = "ONNX") -> NeuronSpec:
    """The spec of a LIF with ``decay_input=False`` and a hard reset to 0, the FSVE's neuron; anything else
    is refused with one line naming module ``name`` and the export ``target``."""
    spec = describe_neuron(node)
    if spec is None or spec.family != "lif":
        raise _refuse(name, node, target, "only the FSVE's LIF neurons have an export path")
    problems = spec.problems(reset_to=0.0)
    if problems:
        raise CheckpointError(f"module {name} cannot be exported to {target}: LIF with {', '.join(problems)}")
    return spec


def if_spec(name: str, node, target: str = "ONNX") -> NeuronSpec | None:
    """The spec of a converted run's single-step soft-reset IF neuron; None for other neurons; a one-line
    :class:`CheckpointError` for an IF neuron this path cannot export."""
    spec = describe_neuron(node)
    if spec is None or spec.family != "if":
        return None
    if spec.step_mode != "s" or spec.v_reset is not None or spec.v_threshold is None:
        raise _refuse(name, node, target, "only single-step soft-reset IF neurons with a scalar threshold are exported")
    return spec


def _seq_to_ann_forward(original):
    from spikingjelly.activation_based.functional.forward import _apply_modules

    def forward(x_seq, stateless_module):
        if isinstance(x_seq, tuple):
            return original(x_seq, stateless_module)
        t = x_seq.shape[0]
        y = _apply_modules(x_seq.flatten(0, 1), stateless_module)
        if isinstance(y, tuple):
            return tuple(item.reshape(t, -1, *item.shape[1:]) for item in y)
        return y.reshape(t, -1, *y.shape[1:])

    return forward


def spiking_nodes(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every spikingjelly neuron in ``model``."""
    try:
        from spikingjelly.activation_based import neuron
    except ImportError:  # an ANN-only environment: nothing spiking to patch
        return []
    return [(n, m) for n, m in model.named_modules() if isinstance(m, neuron.BaseNode)]


@contextlib.contextmanager
def onnx_friendly(model: nn.Module, prefix: str = "") -> Iterator[nn.Module]:
    """Temporarily make ``model``'s spiking layers traceable (see the module docstring).

    Raises :class:`CheckpointError` naming the first neuron that has no export
    path (e.g. the IF neurons of a converted checkpoint, which run single-step
    inside a rate-coded loop).
    """
    nodes = spiking_nodes(model)
    if not nodes:
        yield model
        return
    from spikingjelly.activation_based import functional

    patched, steps = [], []
    for name, node in nodes:
        where = f"{prefix}{name}"
        spec = if_spec(where, node)
        if spec is not None:
            steps.append((node, spec))
            continue
        spec = lif_spec(where, node)
        if node.step_mode != "m":
            raise CheckpointError(
                f"module {where} cannot be exported to ONNX: single-step LIF neurons are not supported"
            )
        patched.append((node, spec))
    original = functional.seq_to_ann_forward
    try:
        for node, spec in patched:

            def msf(self, x_seq, _spec=spec):
                return _spec.run(x_seq)[0]

            node.multi_step_forward = types.MethodType(msf, node)
        for node, spec in steps:

            def ssf(self, x, _spec=spec):
                v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x, _spec.v_init)
                s, self.v, _ = _spec.step(v, x)
                return s

            node.single_step_forward = types.MethodType(ssf, node)
        functional.seq_to_ann_forward = _seq_to_ann_forward(original)
        yield model
    finally:
        functional.seq_to_ann_forward = original
        for node, _ in patched:
            node.__dict__.pop("multi_step_forward", None)
        for node, _ in steps:
            node.__dict__.pop("single_step_forward", None)
        functional.reset_net(model)


__all__ = ["if_spec", "lif_spec", "onnx_friendly", "spiking_nodes"]
