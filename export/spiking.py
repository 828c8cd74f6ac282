"""Make the spiking encoders traceable: an export-only LIF and batch-agnostic reshapes.

Two things in spikingjelly get in the way of a graph with a dynamic batch axis:

* ``LIFNode``'s multi-step forward dispatches to a kernel chosen at run time (a
  native CUDA kernel or Triton on GPUs, a torch reference on the CPU; the
  ``SJ_LIF_*`` environment variables force one). Only the torch reference traces.
  :func:`onnx_friendly` therefore swaps each LIF's multi-step forward, for the
  duration of the export, for a plain torch loop over the time steps with the
  FSVE's recurrence (:func:`lif_recurrence`)::

      u_t = decay * v_{t-1} + x_t            (decay = 1 - 1/tau, decay_input=False)
      s_t = [u_t >= v_threshold]
      v_t = u_t * (1 - s_t)                   (hard reset to v_reset = 0)

  which is ``u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t``. Other settings
  (``decay_input=True``, a soft reset, ``v_reset != 0``) are refused.
* ``functional.seq_to_ann_forward`` (every multi-step conv, BN, tdBN, pooling)
  restores ``[T, B, ...]`` with ``unflatten(0, (T, B))``, which the TorchScript
  exporter records with the traced batch size as a constant. During the export
  it is replaced by ``reshape(T, -1, ...)``: same values, batch left free.

The time loop is unrolled in the graph (``T = fsve.time_steps`` copies of each
neuron update); neuron state starts at zero in every run, as
``functional.reset_net`` does at the start of every forward.

The IF neurons of a converted checkpoint (``IFNode``, ``HalfThresholdIFNode``,
:class:`~convert.neurons.ConvertedIF`: single-step, soft reset) run inside the
rate-coded wrapper's Python loop over T, which the tracer unrolls; their
``single_step_forward`` is swapped for the same arithmetic without spikingjelly's
surrogate function (:func:`if_step`)::

      h_t = v_{t-1} + x_t (+ bias)     s_t = [h_t >= v_threshold]     v_t = h_t - s_t * v_threshold

starting at the neuron's reset value (0, or θ/2).
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Iterator

import torch
import torch.nn as nn

from spklip_energy.errors import CheckpointError


def lif_recurrence(x_seq: torch.Tensor, decay: float, v_threshold: float) -> torch.Tensor:
    """Spikes ``[T, ...]`` of a LIF with hard reset to 0 from rest, as a traceable loop."""
    v = torch.zeros_like(x_seq[0])
    out = []
    for t in range(x_seq.shape[0]):
        u = decay * v + x_seq[t]
        s = (u >= v_threshold).to(x_seq.dtype)
        v = u * (1.0 - s)
        out.append(s)
    return torch.stack(out)


def if_params(name: str, node, target: str = "ONNX") -> tuple[float, float] | None:
    """``(v_threshold, initial v)`` of a converted run's single-step soft-reset IF neuron; None for other
    neurons; a one-line :class:`CheckpointError` for an IF neuron this path cannot export."""
    from spikingjelly.activation_based import neuron

    if not isinstance(node, (neuron.IFNode, neuron.HalfThresholdIFNode)):
        return None
    if node.step_mode != "s" or node.v_reset is not None or not isinstance(node.v_threshold, (int, float)):
        raise CheckpointError(
            f"module {name} ({type(node).__name__}) cannot be exported to {target}: only "
            "single-step soft-reset IF neurons with a scalar threshold are exported"
        )
    v0 = node._memories_rv.get("v", 0.0)
    return float(node.v_threshold), float(v0)


def if_step(self, x: torch.Tensor, _vth: float, _v0: float) -> torch.Tensor:
    """One traceable step of a soft-reset IF neuron (see the module doc); state in ``self.v``."""
    bias = getattr(self, "bias", None)
    if isinstance(bias, torch.Tensor) and bias.numel():
        shape = [1] * x.dim()
        shape[1] = bias.numel()
        x = x + bias.to(x.dtype).view(shape)
    v = self.v if isinstance(self.v, torch.Tensor) else torch.full_like(x, _v0)
    h = v + x
    s = (h >= _vth).to(x.dtype)
    self.v = h - s * _vth
    return s


def check_lif(name: str, node, target: str = "ONNX") -> tuple[float, float]:
    """(decay, v_threshold) of a LIF with ``decay_input=False`` and a hard reset to 0, the FSVE's neuron;
    anything else is refused with one line naming module ``name`` and the export ``target``."""
    from spikingjelly.activation_based import neuron

    if not isinstance(node, neuron.LIFNode):
        raise CheckpointError(
            f"module {name} ({type(node).__name__}) cannot be exported to {target}: only the "
            "FSVE's LIF neurons have an export path"
        )
    tau = float(node.tau)
    problems = []
    if getattr(node, "decay_input", False):
        problems.append("decay_input=True")
    if node.v_reset is None or float(node.v_reset) != 0.0:
        problems.append(f"v_reset={node.v_reset!r} (only a hard reset to 0 is exported)")
    if not tau > 1.0:
        problems.append(f"tau={tau!r}")
    if not isinstance(node.v_threshold, (int, float)):
        problems.append("a tensor-valued v_threshold")
    elif not (math.isfinite(node.v_threshold) and node.v_threshold > 0):
        problems.append(f"v_threshold={node.v_threshold!r} (must be positive and finite)")
    if problems:
        raise CheckpointError(f"module {name} cannot be exported to {target}: LIF with {', '.join(problems)}")
    return 1.0 - 1.0 / tau, float(node.v_threshold)


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
        ifp = if_params(where, node)
        if ifp is not None:
            steps.append((node, ifp))
            continue
        params = check_lif(where, node)
        if node.step_mode != "m":
            raise CheckpointError(
                f"module {where} cannot be exported to ONNX: single-step LIF neurons are not supported"
            )
        patched.append((node, params))
    original = functional.seq_to_ann_forward
    try:
        for node, (decay, vth) in patched:

            def msf(self, x_seq, _d=decay, _v=vth):
                return lif_recurrence(x_seq, _d, _v)

            node.multi_step_forward = types.MethodType(msf, node)
        for node, (vth, v0) in steps:

            def ssf(self, x, _vth=vth, _v0=v0):
                return if_step(self, x, _vth, _v0)

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


__all__ = ["if_params", "if_step", "lif_recurrence", "onnx_friendly", "spiking_nodes"]
