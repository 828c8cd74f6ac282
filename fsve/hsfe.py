"""The spiking HSFE: the FSVE's front end, reading the camera's spikes as they are.

The ANN HSFE (:mod:`spklip.hsfe`) with every unit made spiking, as the
authors' public spiking HSFE does (each convolution followed by tdBN and a LIF, SA
gated by a LIF instead of a sigmoid, residual blocks with tdBN and LIFs), and the
trunk's residual blocks written as MS-ResNet blocks (membrane shortcuts), so that
every convolution reads binary spikes:

* **time steps**: a temporal block ``[N, 2r+1, H, W]`` becomes ``fsve.time_steps``
  steps (``fsve.hsfe_encoding``): ``subwindows`` gives step ``t`` the ``t``-th of
  ``T`` consecutive slices of the block's frames (the other frames read as zeros),
  so the front end sees the stream's own timing; ``repeat`` gives every step the
  whole block (the public code's direct encoding). Either way the first convolution
  reads each spike once (:class:`StepMaskedConv2d`: per-step slices of its weights,
  or one convolution whose current is repeated).
* **downsampling** (``hsfe.input_pool`` = p > 1): a p x p max pool, the OR of the
  pixels' spikes, so the input stays binary (the ANN averages them into fractions).
* **MTF**: per branch, its frames -> :class:`~spklip.hsfe.MaskedConv2d`
  (the temporal mask folded into the weights: accumulate-only on spikes at any mask
  value) -> tdBN -> LIF -> conv3x3 (w -> 1) -> tdBN -> LIF.
* **SA**: ``est * LIF(tdBN(conv(LIF(tdBN(conv(est))))))``: a spike gate on spike maps
  (an AND).
* **trunk**: ``t = tdBN(conv(est))`` (a membrane input), then MS-ResNet blocks
  ``t + tdBN(conv(LIF(tdBN(conv(LIF(tdBN(conv(LIF(t)))))))))``, the long skip
  added to the membrane, and one LIF whose spikes ``[T, N, features, H/p, W/p]``
  go to the spiking CNN, whose stem therefore reads spikes too.

Neuron state is reset at the start of every forward: clips never leak into each other.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer

from spklip.config import SPKLIPConfig
from spklip.hsfe import (
    MaskedConv2d,
    fused_branch_weights,
    integer_pooling_applies,
    pool_integer_windows,
    runs_as_written,
)

from .neurons import make_neuron


class StepMaskedConv2d(MaskedConv2d):
    """The front end's first convolution: reads a block's frames once, ``[N, C, H, W]``, and gives every
    step's input current, ``[T, N, C_out, H', W']``.

    With ``windows`` (sub-windows: step ``t`` sees channels ``windows[t] = [a, b)`` only) step ``t`` is
    the convolution of those channels with the matching slice of the folded weights: the same as
    convolving the block with the other frames zeroed (:func:`encode_steps`), computed from the frames
    that are there. Without (``repeat``: every step sees the whole block) the convolution is computed
    once and its current repeated. Either way each spike is read once, and the counter sees the
    block itself (binary): SOPs = spikes x fan-out.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        steps: int,
        windows: list[tuple[int, int]] | None = None,
        mask: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, mask=mask)
        self.steps, self.windows = steps, windows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.folded_weight()
        if self.windows is None:
            y = self._conv_forward(x, w, self.bias)
            return y.unsqueeze(0).expand(self.steps, *y.shape)
        outs = []
        for a, b in self.windows:
            if b > a:
                outs.append(F.conv2d(x[:, a:b], w[:, a:b], self.bias, self.stride, self.padding))
            else:  # no frame of this branch in this step: the bias alone
                shape = (x.shape[0], self.out_channels, *x.shape[-2:])
                outs.append(self.bias.view(1, -1, 1, 1).expand(shape) if self.bias is not None else x.new_zeros(shape))
        return torch.stack(outs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", steps={self.steps}, windows={self.windows}"


def step_windows(frames: int, steps: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` of each of ``steps`` consecutive, near-equal slices of ``frames`` frames."""
    frames, steps = int(frames), int(steps)
    edges = [round(i * frames / steps) for i in range(steps + 1)]
    return [(edges[i], edges[i + 1]) for i in range(steps)]


def encode_steps(blocks: torch.Tensor, steps: int, encoding: str) -> torch.Tensor:
    """Binary blocks ``[N, F, H, W]`` (any dtype) -> float steps ``[T, N, F, H, W]``, still binary: what each
    step of an encoding sees (module docstring), written out. :class:`StepMaskedConv2d` computes the first
    convolution of these steps without building them."""
    x = blocks if blocks.is_floating_point() else blocks.float()
    if encoding == "repeat":
        return x.unsqueeze(0).expand(steps, *x.shape)
    if encoding != "subwindows":
        raise ValueError(f"unknown encoding {encoding!r}")
    keep = torch.zeros(steps, x.shape[1], dtype=x.dtype, device=x.device)
    for t, (lo, hi) in enumerate(step_windows(x.shape[1], steps)):
        keep[t, lo:hi] = 1
    return x.unsqueeze(0) * keep[:, None, :, None, None]


class SpikeMaxPool2d(nn.MaxPool2d):
    """``MaxPool2d(p)`` (kernel = stride = p, no padding) that pools integer spike frames as integers, the
    maximum of each p x p window by elementwise maxima over a reshaped view
    (:func:`~spklip.hsfe.pool_integer_windows`; 20x faster than ``amax`` over the view), before
    converting them to float: about 10x faster than :class:`torch.nn.MaxPool2d` on the float frames of a
    training batch, the same result. Float input, ONNX export and tracing take the parent's path."""

    def __init__(self, p: int) -> None:
        super().__init__(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not integer_pooling_applies(x):
            return super().forward(x if x.is_floating_point() else x.float())
        return pool_integer_windows(x, self.p, torch.maximum).float()


class _Units:
    """Factories for the front end's layers, all multi-step, with the FSVE's neuron and norm."""

    def __init__(self, cfg: SPKLIPConfig) -> None:
        self.f = cfg.fsve

    def lif(self) -> nn.Module:
        return make_neuron(self.f)

    def conv(self, cin: int, cout: int) -> nn.Module:
        return layer.Conv2d(cin, cout, 3, padding=1, bias=False, step_mode="m")

    def norm(self, channels: int, merging: bool = False) -> nn.Module:
        """tdBN (or BN with ``fsve.norm=bn``); ``alpha / sqrt(2)`` where two branches meet at an add."""
        if self.f.norm == "bn":
            return layer.BatchNorm2d(channels, step_mode="m")
        alpha = self.f.tdbn_alpha / math.sqrt(2.0) if merging else self.f.tdbn_alpha
        return layer.ThresholdDependentBatchNorm2d(alpha, self.f.v_threshold, channels)  # multi-step only


class SpikingMTFBranch(nn.Module):
    """Frames ``[lo, hi)`` of the block -> masked conv, per step (:class:`StepMaskedConv2d`) -> tdBN -> LIF
    -> conv -> tdBN -> LIF. ``windows``: the block's sub-windows (None: ``repeat``)."""

    def __init__(
        self, lo: int, hi: int, width: int, mask: bool, units: _Units, steps: int, windows: list[tuple[int, int]] | None
    ) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi
        own = None if windows is None else [(min(max(a, lo), hi) - lo, min(max(b, lo), hi) - lo) for a, b in windows]
        self.conv1 = StepMaskedConv2d(hi - lo, width, steps, own, mask=mask)
        self.bn1, self.lif1 = units.norm(width), units.lif()
        self.conv2, self.bn2, self.lif2 = units.conv(width, 1), units.norm(1), units.lif()

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        return self.after_conv1(self.conv1(block[:, self.lo : self.hi]))

    def after_conv1(self, current: torch.Tensor) -> torch.Tensor:
        """The first convolution's current ``[T, N, width, H, W]`` -> the branch's spike map."""
        s = self.lif1(self.bn1(current))
        return self.lif2(self.bn2(self.conv2(s)))


class SpikingSpatialAttention(nn.Module):
    """``est * LIF(tdBN(conv(LIF(tdBN(conv(est))))))``: per-pixel spike gates over the branch maps."""

    def __init__(self, branches: int, hidden: int, units: _Units) -> None:
        super().__init__()
        self.conv1, self.bn1, self.lif1 = units.conv(branches, hidden), units.norm(hidden), units.lif()
        self.conv2, self.bn2, self.gate = units.conv(hidden, branches), units.norm(branches), units.lif()

    def gate_spikes(self, est: torch.Tensor) -> torch.Tensor:
        """The gate ``LIF(tdBN(conv(LIF(tdBN(conv(est))))))`` alone."""
        return self.gate(self.bn2(self.conv2(self.lif1(self.bn1(self.conv1(est))))))

    def forward(self, est: torch.Tensor) -> torch.Tensor:
        return est * self.gate_spikes(est)


class MSBlock(nn.Module):
    """An MS-ResNet block on membrane input: ``x + body(x)``, the body three (LIF -> conv -> tdBN)."""

    def __init__(self, width: int, units: _Units) -> None:
        super().__init__()
        self.body = nn.Sequential(
            units.lif(),
            units.conv(width, width),
            units.norm(width),
            units.lif(),
            units.conv(width, width),
            units.norm(width),
            units.lif(),
            units.conv(width, width),
            units.norm(width, merging=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SpikingHSFE(nn.Module):
    """Binary blocks ``[N, 2r+1, H, W]`` -> spikes ``[T, N, features, H/p, W/p]`` (module docstring)."""

    def __init__(self, cfg: SPKLIPConfig) -> None:
        super().__init__()
        h, f = cfg.hsfe, cfg.fsve
        self.cfg = h
        units = _Units(cfg)
        self.pool = SpikeMaxPool2d(h.input_pool) if h.input_pool > 1 else nn.Identity()
        self.steps = f.time_steps
        self.windows = windows = (
            step_windows(h.block_frames(), f.time_steps) if f.hsfe_encoding == "subwindows" else None
        )
        self.branches = nn.ModuleList(
            SpikingMTFBranch(*h.branch_frames(k), h.branch_width, h.temporal_mask, units, f.time_steps, windows)
            for k in range(h.branches)
        )
        self.sa = SpikingSpatialAttention(h.branches, h.sa_hidden, units) if h.sa else nn.Identity()
        self.head = nn.Sequential(units.conv(h.branches, h.features), units.norm(h.features))
        self.trunk = nn.Sequential(*[MSBlock(h.features, units) for _ in range(h.trunk_blocks)])
        self.out_lif = units.lif()

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)
        return self.trunk_spikes(self.sa(self.mtf(self.pooled(blocks))))

    def pooled(self, blocks: torch.Tensor) -> torch.Tensor:
        """Binary blocks ``[N, F, H, W]`` -> the float blocks the branches read ``[N, F, H/p, W/p]``."""
        x = self.pool(blocks)  # pooled as integers: an OR
        return x if x.is_floating_point() else x.float()

    def mtf(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled blocks -> the branches' spike maps, concatenated: ``[T, N, branches, H, W]``.

        The branches' first convolutions run as one per step over the whole block (their weights at
        their own frames, zeros elsewhere: :func:`~spklip.hsfe.fused_branch_weights`), the
        same currents as each branch's :class:`StepMaskedConv2d`, in ``T`` calls instead of
        ``T x branches``; each branch then goes on with its own tdBN and LIFs. As written, one branch
        after another, whenever the layers are watched (the energy profiler) or traced or exported."""
        firsts = [b.conv1 for b in self.branches]
        if not all(
            type(b) is SpikingMTFBranch and type(c) is StepMaskedConv2d
            for b, c in zip(self.branches, firsts, strict=True)
        ) or runs_as_written([self.branches]):
            return torch.cat([branch(x) for branch in self.branches], dim=2)
        w, bias = fused_branch_weights(self.branches, x.shape[1])
        stride, padding = firsts[0].stride, firsts[0].padding
        if firsts[0].windows is None:  # repeat: one convolution, its current at every step
            y = F.conv2d(x, w, bias, stride, padding)
            current = y.unsqueeze(0).expand(self.steps, *y.shape)
        else:
            current = torch.stack([F.conv2d(x[:, a:b], w[:, a:b], bias, stride, padding) for a, b in self.windows])
        parts = current.split([c.out_channels for c in firsts], dim=2)
        return torch.cat([branch.after_conv1(part) for branch, part in zip(self.branches, parts, strict=True)], dim=2)

    def trunk_spikes(self, est: torch.Tensor) -> torch.Tensor:
        """The SA's output ``[T, N, branches, H, W]`` -> the front end's spikes: head, trunk, long skip, LIF."""
        t = self.head(est)
        return self.out_lif(self.trunk(t) + t)


_TRUNK_TWIN = {"0": "1", "2": "4", "4": "7"}  # ANN BasicBlock body (conv, relu, conv, relu, conv) -> MSBlock


def ann_twin(key: str) -> str | None:
    """The name in :class:`SpikingHSFE` of the ANN HSFE's tensor ``key`` (relative to the HSFE, e.g.
    ``trunk.0.body.2.weight``) when the spiking front end has a twin of that layer, else None.

    Convolution weights carry over (and the first convolutions' biases and temporal masks); the
    ANN's later biases do not (a tdBN follows each spiking convolution instead)."""
    p = key.split(".")
    if p[0] == "branches" and len(p) == 4 and (p[2] == "conv1" or (p[2] == "conv2" and p[3] == "weight")):
        return key
    if p[0] == "sa" and len(p) == 3 and p[1] in ("conv1", "conv2") and p[2] == "weight":
        return key
    if key == "head.0.weight":
        return key
    if p[0] == "trunk" and len(p) == 5 and p[2] == "body" and p[4] == "weight" and p[3] in _TRUNK_TWIN:
        return f"trunk.{p[1]}.body.{_TRUNK_TWIN[p[3]]}.weight"
    return None


__all__ = [
    "MSBlock",
    "SpikeMaxPool2d",
    "StepMaskedConv2d",
    "ann_twin",
    "SpikingHSFE",
    "SpikingMTFBranch",
    "SpikingSpatialAttention",
    "encode_steps",
    "step_windows",
]
