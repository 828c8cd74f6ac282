"""E-SDSA: the spike-driven self-attention of the FSVE's temporal Transformer (Eq. 9-11).

Tokens are the temporal blocks; tensors are ``[T, B, n, D]`` (SNN steps, clips,
blocks, features) and every step is computed at once (multi-step). One
:class:`ESDSABlock`:

1. ``S = SN(U)``: the residual stream as spikes, so every linear layer below
   reads spikes (synaptic operations, not MACs);
2. ``Q_S, K_S, V_S = SN(Linear(S))`` per head (Eq. 9, ``SN(x) = Theta(x - alpha E|x|)``);
3. ``A = Theta(Q_S K_S^T - V_th / scale)`` with ``scale = d_head^-1/2``: Eq. 10's
   ``SN(Q_S K_S^T * scale)`` with Eq. 11's threshold re-parameterisation, a
   fixed threshold on the integer spike-spike products (no softmax);
4. ``U + BN(Linear(A V_S))``; then the MLP ``U + BN(Linear(SN(Linear(SN(U)))))``.

BatchNorm stands in for LayerNorm (spike-driven models keep normalisation
foldable into the weights). :class:`SpikeMatMul` is a module of its own so the
energy counter sees the spike-spike products: for binary operands it counts one
synaptic operation per non-zero product.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .neurons import Heaviside, SpikeNorm


class SpikeMatMul(nn.Module):
    """``a @ b`` (batched); counted as accumulates of spike pairs when both are binary."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a @ b


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the feature dim of ``[..., D]`` tokens (statistics over steps, clips and blocks)."""

    def flat_forward(self, x: torch.Tensor) -> torch.Tensor:
        """BatchNorm of ``[N, D]`` (what a distributed run synchronises, ``spklip_energy.distributed``)."""
        return super().forward(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.flat_forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


class ESDSA(nn.Module):
    """Multi-head E-SDSA on ``[T, B, n, D]`` (see the module docstring)."""

    def __init__(
        self, dim: int, heads: int, sn_alpha: float = 1.0, attn_threshold: float = 0.5, lens: float = 0.5
    ) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads={heads} must divide dim={dim}")
        self.heads = heads
        self.head_dim = dim // heads
        self.sn_in = SpikeNorm(sn_alpha, lens)
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=False) for _ in range(3))
        self.q_sn, self.k_sn, self.v_sn = (SpikeNorm(sn_alpha, lens) for _ in range(3))
        self.qk = SpikeMatMul()
        self.attn_sn = Heaviside(attn_threshold, scale=self.head_dim**-0.5, lens=lens)
        self.av = SpikeMatMul()
        self.proj = nn.Linear(dim, dim)
        self.proj_bn = TokenBatchNorm(dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        *lead, n, _ = x.shape
        return x.reshape(*lead, n, self.heads, self.head_dim).transpose(-3, -2)  # [..., h, n, dh]

    def attention_map(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(binary attention ``[T, B, h, n, n]``, binary values ``[T, B, h, n, dh]``)."""
        s = self.sn_in(u)
        q = self._heads(self.q_sn(self.q(s)))
        k = self._heads(self.k_sn(self.k(s)))
        v = self._heads(self.v_sn(self.v(s)))
        return self.attn_sn(self.qk(q, k.transpose(-1, -2))), v

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        a, v = self.attention_map(u)
        x = self.av(a, v)  # integer spike counts
        x = x.transpose(-3, -2).reshape(u.shape)
        return self.proj_bn(self.proj(x))


class SpikingMLP(nn.Module):
    def __init__(self, dim: int, ratio: int, sn_alpha: float = 1.0, lens: float = 0.5) -> None:
        super().__init__()
        self.sn_in = SpikeNorm(sn_alpha, lens)
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.sn_hidden = SpikeNorm(sn_alpha, lens)
        self.fc2 = nn.Linear(dim * ratio, dim)
        self.bn = TokenBatchNorm(dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.bn(self.fc2(self.sn_hidden(self.fc1(self.sn_in(u)))))


class ESDSABlock(nn.Module):
    """``U + E-SDSA(U)``, then ``+ MLP``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_ratio: int,
        sn_alpha: float = 1.0,
        attn_threshold: float = 0.5,
        lens: float = 0.5,
    ) -> None:
        super().__init__()
        self.attn = ESDSA(dim, heads, sn_alpha, attn_threshold, lens)
        self.mlp = SpikingMLP(dim, mlp_ratio, sn_alpha, lens)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = u + self.attn(u)
        return u + self.mlp(u)


class SpikingTransformer(nn.Module):
    """A stack of :class:`ESDSABlock` over ``[T, B, n, D]`` (``layers`` as in torch's encoder)."""

    def __init__(
        self,
        dim: int,
        depth: int,
        heads: int,
        mlp_ratio: int,
        sn_alpha: float = 1.0,
        attn_threshold: float = 0.5,
        lens: float = 0.5,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ESDSABlock(dim, heads, mlp_ratio, sn_alpha, attn_threshold, lens) for _ in range(depth)
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            u = block(u)
        return u


__all__ = ["ESDSA", "ESDSABlock", "SpikeMatMul", "SpikingMLP", "SpikingTransformer", "TokenBatchNorm"]
