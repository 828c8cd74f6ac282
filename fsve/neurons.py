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
"""

from __future__ import annotations

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


__all__ = ["Heaviside", "SpikeNorm", "lif_kernel", "make_lif", "rect_spike", "rect_surrogate"]
