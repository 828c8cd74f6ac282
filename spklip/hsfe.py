"""Hierarchical Spike Feature Extractor (HSFE): temporal blocks, MTF, SA and the trunk.

Inputs/outputs (B clips, F frames, H x W pixels, n blocks):

* :func:`temporal_blocks`: spikes ``[B, F, H, W]`` -> blocks ``[B * n, 2r+1, H, W]``
  (block ``i`` is frames ``[i * step, i * step + 2r + 1)``), gathered with one
  index, so every block of every clip runs through one shared extractor as a batch.
* :class:`HSFE`: ``[B * n, 2r+1, H, W]`` -> features ``[B * n, features, H', W']``.

MTF (multi-scale temporal filtering): branch ``k`` weights its frames by a
learnable temporal mask ``M_k`` (one weight per frame, initialised to 1; the
public code has none, the paper describes it) and filters them with
``conv3x3(C_k -> w) -> ReLU -> conv3x3(w -> 1)``. The mask (and ``input_scale``)
is folded into the first convolution's weights, ``conv(s * x * M) = conv_{W[:, c] * M[c] * s}(x)``
(:class:`MaskedConv2d`), so that layer reads the spikes themselves: on binary input it is
accumulate-only at any mask value, and the counter sees it so. With photon-conservation
slicing, branch ``k`` sees the central ``2r+1 - 2k * channel_step`` frames, so
the branches have different virtual exposure windows (paper Eq. 3); without it
every branch sees all frames. SA: per-pixel weights over the branch maps,
``sigmoid(conv3x3(relu(conv3x3(est))))``. Trunk: ``conv3x3(branches ->
features) + ReLU``, then residual BasicBlocks, plus a long skip.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.fx import _symbolic_trace
from torch.nn.modules import module as _module

from .config import HSFEConfig


def block_indices(cfg: HSFEConfig) -> torch.Tensor:
    """Frame indices ``[n_blocks, 2r+1]`` of every block."""
    starts = torch.arange(cfg.n_blocks) * cfg.window_step
    return starts[:, None] + torch.arange(cfg.block_frames())[None, :]


def temporal_blocks(spikes: torch.Tensor, cfg: HSFEConfig, dtype: torch.dtype | None = torch.float32) -> torch.Tensor:
    """``[B, F, H, W]`` -> ``[B * n_blocks, 2r+1, H, W]`` (``dtype``; None keeps the input's, e.g. uint8
    spikes for :class:`HSFE`, which pools them before converting), one gather for all blocks."""
    b, _, h, w = spikes.shape
    idx = block_indices(cfg).to(spikes.device).reshape(-1)
    blocks = spikes.index_select(1, idx).reshape(b * cfg.n_blocks, cfg.block_frames(), h, w)
    return blocks if dtype is None else blocks.to(dtype)


def pool_integer_windows(x: torch.Tensor, p: int, combine, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Reduce each p x p window (kernel = stride = p, no padding) of integer frames ``[..., H, W]`` with the
    elementwise ``combine`` (``torch.add``, ``torch.maximum``) over a reshaped view, in ``dtype`` (None:
    the input's): elementwise calls over strided views are many times faster than converting to float
    first or reducing the view with ``sum``/``amax``. Returns ``[..., H // p, W // p]``, still integer."""
    h, w = x.shape[-2] // p, x.shape[-1] // p
    y = x[..., : h * p, : w * p].reshape(*x.shape[:-2], h, p, w, p)
    rows = y.select(-3, 0) if dtype is None else y.select(-3, 0).to(dtype)  # [..., h, w, p]
    for i in range(1, p):
        rows = combine(rows, y.select(-3, i))
    out = rows.select(-1, 0)
    for j in range(1, p):
        out = combine(out, rows.select(-1, j))
    return out


def integer_pooling_applies(x: torch.Tensor) -> bool:
    """Whether a spike pool may take its integer path: integer input, not traced or exported."""
    return not (x.is_floating_point() or x.dim() < 2 or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


class SpikeAvgPool2d(nn.AvgPool2d):
    """``AvgPool2d(p)`` (kernel = stride = p, no padding) that pools integer spike frames exactly with
    integer additions over a reshaped view (:func:`pool_integer_windows`) before converting them to float:
    8x faster than converting first and pooling in float on a training batch (one core), with the same
    result (the mean of p*p integers is exact in float32). The sums stay in uint8 when they cannot
    overflow it (binary spikes; checked with one maximum on the CPU, 3 ms against the 20 ms that int16
    sums would add there), else int16. Float input, ONNX export and tracing take
    :class:`torch.nn.AvgPool2d`'s own path."""

    def __init__(self, p: int) -> None:
        super().__init__(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p
        if not integer_pooling_applies(x) or p * p * 255 > 32767:
            return super().forward(x if x.is_floating_point() else x.float())
        narrow = x.dtype == torch.uint8 and x.device.type == "cpu" and x.numel() > 0 and int(x.max()) * p * p <= 255
        sums = pool_integer_windows(x, p, torch.add, torch.uint8 if narrow else torch.int16)
        return sums.float().div_(p * p)


class MaskedConv2d(nn.Conv2d):
    """A convolution of ``scale * x * M[None, :, None, None]`` (``M``: one learnable weight per input
    channel, here per frame, initialised to 1), computed with the folded weight
    ``W[:, c] * M[c] * scale``: the layer reads ``x`` as it is, so binary spikes stay binary at its input
    (accumulate-only, counted as SOPs whatever ``M`` has learnt). ``mask=False`` keeps only the scale.
    The counting rules see a :class:`torch.nn.Conv2d`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        mask: bool = True,
        scale: float = 1.0,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.mask = nn.Parameter(torch.ones(in_channels)) if mask else None
        self.scale = float(scale)

    def folded_weight(self) -> torch.Tensor:
        w = self.weight
        if self.mask is not None:
            w = w * self.mask.view(1, -1, 1, 1)
        return w * self.scale if self.scale != 1.0 else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.folded_weight(), self.bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", mask={self.mask is not None}, scale={self.scale:g}"


def legacy_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Weights saved before the mask was folded (``branches.k.mask.weight``) under today's name
    (``branches.k.conv1.mask``); anything else unchanged."""
    suffix = ".mask.weight"
    if not any(k.endswith(suffix) and ".branches." in k for k in state):
        return state
    return {
        (k[: -len(suffix)] + ".conv1.mask" if k.endswith(suffix) and ".branches." in k else k): v
        for k, v in state.items()
    }


class MTFBranch(nn.Module):
    """One branch: frames ``[lo, hi)`` of the block, two 3x3 convolutions, the first with the
    temporal mask and ``scale`` folded in (:class:`MaskedConv2d`)."""

    def __init__(self, lo: int, hi: int, width: int, mask: bool, scale: float = 1.0) -> None:
        super().__init__()
        self.lo, self.hi = lo, hi
        self.conv1 = MaskedConv2d(hi - lo, width, 3, padding=1, mask=mask, scale=scale)
        self.act = nn.ReLU(inplace=False)
        self.conv2 = nn.Conv2d(width, 1, 3, padding=1)

    def forward(self, block: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(block[:, self.lo : self.hi])))


class SpatialAttention(nn.Module):
    """Per-pixel attention weights over the branch maps (SA)."""

    def __init__(self, branches: int, hidden: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(branches, hidden, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(hidden, branches, 3, padding=1)
        self.gate = nn.Sigmoid()

    def forward(self, est: torch.Tensor) -> torch.Tensor:
        return est * self.gate(self.conv2(self.act(self.conv1(est))))


class BasicBlock(nn.Module):
    """Three 3x3 convolutions with ReLUs between, added to the input, then ReLU."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


def _fx_tracing() -> bool:
    """Whether torch.fx is tracing symbolically (ann2snn's converter does)."""
    check = getattr(_symbolic_trace, "is_fx_symbolic_tracing", None)  # torch >= 2.8; before, the only kind
    return check() if check is not None else _symbolic_trace.is_fx_tracing()


def runs_as_written(modules: list[nn.Module]) -> bool:
    """Whether a forward must call ``modules`` (and what they hold) one by one rather than a fused
    equivalent: something watches them (a forward hook or pre-hook on any, or a global one: the
    energy profiler counts layer by layer) or the graph is being traced or exported (ONNX, torch.jit),
    which should show the layers as the architecture has them."""
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export() or _fx_tracing():
        return True
    if _module._global_forward_hooks or _module._global_forward_pre_hooks:
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for top in modules for m in top.modules())


def fused_branch_weights(branches: nn.ModuleList, frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The MTF branches' first convolutions as one over all ``frames`` frames of a block: weights
    ``[branches * width, frames, k, k]``, each branch's folded weights (:meth:`MaskedConv2d.folded_weight`)
    at its frames ``[lo, hi)`` and zeros elsewhere, and the biases concatenated (None when a branch has
    none). Gradients reach each branch's own weights and mask through the padding."""
    weights = [F.pad(b.conv1.folded_weight(), (0, 0, 0, 0, b.lo, frames - b.hi)) for b in branches]
    biases = [b.conv1.bias for b in branches]
    return torch.cat(weights), (None if any(v is None for v in biases) else torch.cat(biases))


class HSFE(nn.Module):
    """MTF branches -> (SA) -> trunk. ``[N, 2r+1, H, W]`` -> ``[N, features, H/p, W/p]``."""

    def __init__(self, cfg: HSFEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pool = SpikeAvgPool2d(cfg.input_pool) if cfg.input_pool > 1 else nn.Identity()
        self.branches = nn.ModuleList(
            MTFBranch(*cfg.branch_frames(k), cfg.branch_width, cfg.temporal_mask, cfg.input_scale)
            for k in range(cfg.branches)
        )
        self.sa = SpatialAttention(cfg.branches, cfg.sa_hidden) if cfg.sa else nn.Identity()
        self.head = nn.Sequential(nn.Conv2d(cfg.branches, cfg.features, 3, padding=1), nn.ReLU())
        self.trunk = nn.Sequential(*[BasicBlock(cfg.features) for _ in range(cfg.trunk_blocks)])

    def forward(self, blocks: torch.Tensor) -> torch.Tensor:
        t = self.head(self.sa(self.mtf(self.pooled(blocks))))
        return self.trunk(t) + t

    def pooled(self, blocks: torch.Tensor) -> torch.Tensor:
        """Blocks ``[N, F, H, W]`` -> the float blocks the branches read ``[N, F, H/p, W/p]`` (integer
        spikes are pooled before they become float: :class:`SpikeAvgPool2d`)."""
        x = self.pool(blocks)
        return x if x.is_floating_point() else x.float()

    def mtf(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled blocks -> the branches' maps ``[N, branches, H, W]``: fused (module docstring) unless
        the layers are watched or exported, or a branch is not the plain conv-ReLU-conv any more."""
        plain = all(
            type(b) is MTFBranch
            and type(b.act) is nn.ReLU
            and type(b.conv2) is nn.Conv2d
            and type(b.conv1) is MaskedConv2d
            for b in self.branches
        )
        if not plain or runs_as_written([self.branches]):
            return torch.cat([branch(x) for branch in self.branches], dim=1)
        first = self.branches[0].conv1
        w1, b1 = fused_branch_weights(self.branches, x.shape[1])
        hidden = F.relu(F.conv2d(x, w1, b1, first.stride, first.padding))
        # the second convolutions as one dense convolution with block-diagonal weights: each branch's
        # output reads its own hidden channels only (a grouped convolution computes the same, 3x slower
        # here: mkldnn's grouped kernels are poor at 4 channels a group)
        seconds = [branch.conv2 for branch in self.branches]
        width = seconds[0].in_channels
        w2 = torch.cat(
            [F.pad(c.weight, (0, 0, 0, 0, k * width, (len(seconds) - 1 - k) * width)) for k, c in enumerate(seconds)]
        )
        b2 = None if any(c.bias is None for c in seconds) else torch.cat([c.bias for c in seconds])
        return F.conv2d(hidden, w2, b2, seconds[0].stride, seconds[0].padding)


def feature_size(cfg: HSFEConfig, height: int, width: int) -> tuple[int, int]:
    """Spatial size of the HSFE output."""
    return height // cfg.input_pool, width // cfg.input_pool


__all__ = [
    "HSFE",
    "MTFBranch",
    "MaskedConv2d",
    "SpatialAttention",
    "SpikeAvgPool2d",
    "block_indices",
    "feature_size",
    "fused_branch_weights",
    "legacy_state",
    "runs_as_written",
    "temporal_blocks",
]
