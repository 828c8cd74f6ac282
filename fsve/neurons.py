"""Spiking units of the FSVE: the LIF neuron of Eq. 7-8 and the SN thresholding of Eq. 9.

* :func:`make_lif`: spikingjelly's multi-step ``LIFNode`` set to the paper's
  dynamics. With ``decay_input=False`` and a hard reset to 0 it integrates
  ``u_t = decay * u_{t-1} * (1 - s_{t-1}) + x_t`` and fires ``s_t = [u_t >= V_th]``;
  ``decay = 1 - 1/tau`` (0.25, so tau = 4/3, as the public MS-ResNet code).
  The surrogate is spikingjelly's ``Rect`` with ``alpha = 1 / (2 * lens)``: its
  gradient ``alpha * 1{|u - V_th| < 0.5 / alpha}`` is Eq. 8's
  ``1/(2 lens) * 1{|u - V_th| <= lens}`` (open instead of closed window edges).
* :class:`SpikeNorm` (SN, Eq. 9): ``Theta(x - alpha * E|x|)`` with a learnable
  ``alpha``; ``E|x|`` is taken per sample (over all its other dims, detached) so a
  clip's spikes do not depend on what else is in the batch.
* :class:`Heaviside`: a fixed-threshold SN, used for the attention map where
  Eq. 11 moves the scale into the threshold.
* :class:`NeuronSpec` / :func:`describe_neuron`: the one description of a
  membrane neuron's dynamics that the exporters (ONNX, NIR, Lava) translate and
  :meth:`NeuronSpec.run` replays; :func:`register_neuron` describes a library
  class, a class of this project defines ``neuron_spec()``.
* :data:`FSVE_NEURONS` / :func:`make_neuron`: the neurons ``fsve.neuron`` can
  name, each a factory of the FSVE's config (CONTRIBUTING.md: adding one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from spikingjelly.activation_based import neuron, surrogate


def rect_surrogate(lens: float) -> surrogate.Rect:
    """Eq. 8's rectangular surrogate of half-width ``lens``."""
    if not lens > 0:
        raise ValueError(f"lens must be positive, got {lens!r}")
    return surrogate.Rect(alpha=1.0 / (2.0 * lens))


def make_lif(v_threshold: float = 0.5, decay: float = 0.25, lens: float = 0.5) -> neuron.LIFNode:
    """A multi-step LIF neuron with the FSVE's dynamics (see the module docstring)."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1) (spikingjelly needs tau > 1), got {decay!r}")
    return neuron.LIFNode(
        tau=1.0 / (1.0 - decay),
        decay_input=False,
        v_threshold=v_threshold,
        v_reset=0.0,
        surrogate_function=rect_surrogate(lens),
        detach_reset=True,
        step_mode="m",
    )


@dataclass(frozen=True)
class NeuronSpec:
    """A membrane neuron's dynamics in spikingjelly's terms, read from a module (:func:`describe_neuron`).

    Per step, from ``v = v_init``::

        charge  LIF: h = v - (v - v_reset) / tau + x     (decay_input: h = v + (x - (v - v_reset)) / tau)
                IF:  h = v + x                            (plus ``bias`` along dim 1, when there is one)
        fire    s = [h >= v_threshold]
        reset   hard (v_reset a number): v = v_reset where s;   soft (v_reset None): v = h - s * v_threshold

    (spikingjelly's ``LIFNode`` / ``IFNode`` expressions, so :meth:`run` replays them to the last bit).
    """

    family: str  # "lif" | "if"
    v_threshold: float | None  # None: tensor-valued (no exporter takes it)
    v_reset: float | None  # None: soft reset (subtract the threshold)
    tau: float | None = None  # LIF membrane time constant in steps (> 1)
    decay_input: bool = False
    v_init: float = 0.0  # the potential after a reset of the state (spikingjelly's initial v)
    step_mode: str = "m"
    bias: torch.Tensor | None = None  # a per-channel input current (converted IF neurons)

    @property
    def decay(self) -> float:
        """The share of ``v - v_reset`` kept per step: ``1 - 1/tau`` (LIF), 1 (IF)."""
        return 1.0 - 1.0 / self.tau if self.family == "lif" else 1.0

    @property
    def leaky(self) -> bool:
        return self.decay < 1.0

    def problems(self, *, reset_to: float | None = None, step_mode: str | None = None) -> list[str]:
        """What keeps this neuron from a target that needs a hard reset to ``reset_to`` (when given) and
        ``step_mode`` (when given): short phrases, empty when nothing does."""
        out = []
        if self.family == "lif" and self.decay_input:
            out.append("decay_input=True")
        if reset_to is not None and (self.v_reset is None or float(self.v_reset) != reset_to):
            out.append(f"v_reset={self.v_reset!r} (only a hard reset to {reset_to:g} is exported)")
        if self.family == "lif" and not self.tau > 1.0:
            out.append(f"tau={self.tau!r}")
        if self.v_threshold is None:
            out.append("a tensor-valued v_threshold")
        elif not (math.isfinite(self.v_threshold) and self.v_threshold > 0):
            out.append(f"v_threshold={self.v_threshold!r} (must be positive and finite)")
        if step_mode is not None and self.step_mode != step_mode:
            out.append(f"step_mode={self.step_mode!r}")
        return out

    def charge(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The membrane potential ``h`` before firing, from the potential ``v`` after the last step."""
        if self.family == "if":
            if self.bias is not None:
                shape = [1] * x.dim()
                shape[1] = self.bias.numel()
                x = x + self.bias.to(x.dtype).view(shape)
            return v + x
        vr = 0.0 if self.v_reset is None else float(self.v_reset)
        return v + (x - (v - vr)) / self.tau if self.decay_input else v - (v - vr) / self.tau + x

    def step(self, v: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: ``(spikes, v after the reset, h before it)``, spikes in ``x``'s dtype (traceable)."""
        h = self.charge(v, x)
        s = (h >= self.v_threshold).to(x.dtype)
        if self.v_reset is None:
            return s, h - s * self.v_threshold, h
        if float(self.v_reset) == 0.0:
            return s, h * (1.0 - s), h
        return s, torch.where(s.bool(), torch.full_like(h, float(self.v_reset)), h), h

    def run(self, x_seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Spikes and pre-reset potentials ``[T, ...]`` of inputs ``x_seq [T, ...]`` from rest (traceable)."""
        v = torch.full_like(x_seq[0], self.v_init)
        spikes, potentials = [], []
        for t in range(x_seq.shape[0]):
            s, v, h = self.step(v, x_seq[t])
            spikes.append(s)
            potentials.append(h)
        return torch.stack(spikes), torch.stack(potentials)


#: library neuron classes this project can describe, by exact class (a subclass may change the dynamics:
#: spikingjelly's LIAFNode subclasses LIFNode and emits analog values)
_DESCRIBERS: dict[type, Callable[[nn.Module], NeuronSpec]] = {}


def register_neuron(*classes: type) -> Callable:
    """Decorator: ``describe(module) -> NeuronSpec`` for modules of exactly these library classes."""

    def deco(describe: Callable[[nn.Module], NeuronSpec]) -> Callable[[nn.Module], NeuronSpec]:
        for cls in classes:
            _DESCRIBERS[cls] = describe
        return describe

    return deco


def describe_neuron(module: nn.Module) -> NeuronSpec | None:
    """The module's :class:`NeuronSpec`: its own ``neuron_spec()``, else the describer registered for its
    exact class; None for anything else (exporters then refuse it by name)."""
    own = getattr(module, "neuron_spec", None)
    if callable(own):
        return own()
    describe = _DESCRIBERS.get(type(module))
    return None if describe is None else describe(module)


def _scalar(v) -> float | None:
    return float(v) if isinstance(v, (int, float)) else None


def _rest(node) -> float:
    return float(node._memories_rv.get("v", 0.0))


@register_neuron(neuron.LIFNode)
def describe_lif(node) -> NeuronSpec:
    """The spec of a spikingjelly ``LIFNode`` (or a subclass with its dynamics)."""
    return NeuronSpec(
        "lif",
        _scalar(node.v_threshold),
        None if node.v_reset is None else float(node.v_reset),
        tau=float(node.tau),
        decay_input=bool(node.decay_input),
        v_init=_rest(node),
        step_mode=node.step_mode,
    )


@register_neuron(neuron.IFNode, neuron.HalfThresholdIFNode)
def describe_if(node) -> NeuronSpec:
    """The spec of a spikingjelly ``IFNode`` (or a subclass with its dynamics; a ``bias`` buffer is its
    per-channel input current)."""
    bias = getattr(node, "bias", None)
    return NeuronSpec(
        "if",
        _scalar(node.v_threshold),
        None if node.v_reset is None else float(node.v_reset),
        v_init=_rest(node),
        step_mode=node.step_mode,
        bias=bias.detach() if isinstance(bias, torch.Tensor) and bias.numel() else None,
    )


class _RectSpike(torch.autograd.Function):
    """Heaviside forward (``x >= 0``), Eq. 8's rectangle backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lens: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.lens = lens
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        window = (x.abs() <= ctx.lens).to(grad.dtype) / (2.0 * ctx.lens)
        return grad * window, None


def rect_spike(x: torch.Tensor, lens: float) -> torch.Tensor:
    """``Theta(x)`` with the rectangular surrogate gradient of half-width ``lens``."""
    return _RectSpike.apply(x, lens)


class SpikeNorm(nn.Module):
    """SN(x) = Theta(x - alpha * E|x|) (Eq. 9), alpha learnable (init ``alpha``).

    ``E|x|`` is the mean absolute value of each sample (all dims but ``sample_dim``),
    detached; the threshold is floored at ``eps`` so an all-zero input stays silent.
    """

    def __init__(self, alpha: float = 1.0, lens: float = 0.5, sample_dim: int = 1, eps: float = 1e-6) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.lens = lens
        self.sample_dim = sample_dim
        self.eps = eps

    def threshold(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample threshold, broadcastable against ``x``."""
        d = self.sample_dim % x.dim()
        dims = [i for i in range(x.dim()) if i != d]
        mean_abs = x.detach().abs().mean(dim=dims, keepdim=True) if dims else x.detach().abs()
        return self.alpha * mean_abs.clamp_min(self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rect_spike(x - self.threshold(x), self.lens)

    def extra_repr(self) -> str:
        return f"alpha={float(self.alpha):.3g}, lens={self.lens}, per-sample dim={self.sample_dim}"


class Heaviside(nn.Module):
    """A stateless spike unit with a fixed threshold: ``Theta(scale * x - v_threshold)``.

    With ``scale`` it implements Eq. 10's ``SN(x * scale)``; :meth:`integer_threshold`
    gives Eq. 11's re-parameterised ``V_th / scale``, the threshold to compare the
    unscaled (integer) ``x`` against at inference: the spikes are the same.
    """

    def __init__(self, v_threshold: float = 0.5, scale: float = 1.0, lens: float = 0.5) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale!r}")
        self.v_threshold = v_threshold
        self.scale = scale
        self.lens = lens

    def integer_threshold(self) -> float:
        return self.v_threshold / self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rect_spike(x * self.scale - self.v_threshold, self.lens)

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, scale={self.scale:.4g} (V_th/scale={self.integer_threshold():.4g})"


#: the neurons ``fsve.neuron`` can name: a factory of the FSVE config (``v_threshold``, ``decay``, ``lens``)
FSVE_NEURONS: dict[str, Callable] = {
    "lif": lambda f: make_lif(f.v_threshold, f.decay, f.lens),
}


def make_neuron(f) -> nn.Module:
    """One neuron of the kind the FSVE config ``f`` (``cfg.fsve``) names, with its dynamics."""
    return FSVE_NEURONS[f.neuron](f)


def lif_kernel(device: torch.device | str) -> str:
    """Which LIF implementation spikingjelly 2.0 runs on ``device``, for the training log.

    spikingjelly picks the kernel itself per call: on CUDA its native CUDA kernel,
    then Triton, then the torch reference (the ``SJ_LIF_*`` environment variables
    force one); on the CPU the torch reference.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type != "cuda":
        return "spikingjelly LIF: torch reference kernel (CPU)"
    return (
        "spikingjelly LIF: automatic CUDA kernel selection (native CUDA, then Triton, then torch; "
        "SJ_LIF_CUDA_IMPLEMENTATION forces one)"
    )


__all__ = [
    "FSVE_NEURONS",
    "Heaviside",
    "NeuronSpec",
    "SpikeNorm",
    "describe_if",
    "describe_lif",
    "describe_neuron",
    "lif_kernel",
    "make_lif",
    "make_neuron",
    "rect_spike",
    "rect_surrogate",
    "register_neuron",
]
