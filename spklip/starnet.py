"""STAR-Net: an attention-pooling ResNet per temporal block, then a Transformer over blocks.

* :class:`MAPResNet` (CLIP's "modified ResNet"): a stem of three 3x3 convolutions
  (strides configurable: public code 2/1/1, paper 2/2/2) each with BatchNorm and
  ReLU, then 2x2 average pooling; four stages of bottlenecks (1x1 -> 3x3 ->
  average-pool(stride) -> 1x1, expansion 4, anti-aliased downsampling on the
  shortcut); multi-head attention pooling over the ``H/32 x W/32`` tokens (plus a
  mean token) with learnable positional embeddings.
  ``[N, C_in, H, W]`` -> ``[N, embed_dim]``.
* :class:`StarNet`: the same MAPResNet (shared weights) on every block, a
  ``TransformerEncoder`` over the ``n`` block embeddings (sequence-first, post-LN,
  no positional encoding, as the public code) and a mean over blocks.
  ``[B * n, C_in, H, W]`` -> ``F_s [B, embed_dim]``.
* :class:`BlockPooling`: the Table 4 ablation without STAR-Net: global average
  pooling and a linear layer per block, mean over blocks.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .config import StarNetConfig, starnet_grid


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> AvgPool(stride) -> 1x1 (x4), with an anti-aliased shortcut."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU()
        self.pool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.act3 = nn.ReLU()
        self.downsample = None
        if stride > 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                nn.AvgPool2d(stride) if stride > 1 else nn.Identity(),
                nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(self.pool(out)))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act3(out + identity)


class AttentionPool2d(nn.Module):
    """Multi-head attention pooling: the mean token attends to all spatial tokens.

    ``[N, C, H, W]`` -> ``[N, out_dim]``. Tokens: the spatial mean followed by the
    ``H*W`` positions, each plus a learnable positional embedding.
    """

    def __init__(self, tokens: int, dim: int, heads: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(tokens + 1, dim) / dim**0.5)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout)
        self.proj = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).permute(2, 0, 1)  # [HW, N, C]
        tokens = torch.cat([tokens.mean(dim=0, keepdim=True), tokens], dim=0)
        tokens = tokens + self.positional_embedding[:, None, :].to(tokens.dtype)
        out, _ = self.attn(tokens[:1], tokens, tokens, need_weights=False)
        return self.proj(out[0])


class MAPResNet(nn.Module):
    """ResNet with attention pooling, applied to one temporal block's features."""

    def __init__(self, cfg: StarNetConfig, in_channels: int, height: int, width: int, embed_dim: int) -> None:
        super().__init__()
        w = cfg.width
        s1, s2, s3 = cfg.stem_strides
        self.stem = nn.Sequential(
            *_conv_bn_relu(in_channels, w // 2, s1),
            *_conv_bn_relu(w // 2, w // 2, s2),
            *_conv_bn_relu(w // 2, w, s3),
            nn.AvgPool2d(2),
        )
        stages, inplanes = [], w
        for i, (blocks, stride) in enumerate(zip(cfg.layers, (1, 2, 2, 2), strict=True)):
            planes = w * 2**i
            layer = [Bottleneck(inplanes, planes, stride)]
            inplanes = planes * Bottleneck.expansion
            layer += [Bottleneck(inplanes, planes) for _ in range(blocks - 1)]
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        gh, gw = starnet_grid(cfg, height, width)
        if gh < 1 or gw < 1:
            raise ValueError(f"input {height}x{width} is too small for STAR-Net's downsampling")
        self.attnpool = AttentionPool2d(gh * gw, inplanes, cfg.heads, embed_dim, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.attnpool(x)


class StarNet(nn.Module):
    """MAPResNet per block, Transformer over blocks, mean over blocks."""

    def __init__(
        self, cfg: StarNetConfig, in_channels: int, height: int, width: int, embed_dim: int, n_blocks: int
    ) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.spatial = MAPResNet(cfg, in_channels, height, width, embed_dim)
        self.position = BlockPosition(n_blocks, embed_dim) if cfg.temporal_position else nn.Identity()
        layer = nn.TransformerEncoderLayer(embed_dim, cfg.temporal_heads, cfg.temporal_ffn, cfg.dropout)
        self.temporal = nn.TransformerEncoder(layer, cfg.temporal_layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        per_block = self.spatial(features)  # [B * n, D]
        seq = per_block.reshape(-1, self.n_blocks, per_block.shape[-1]).transpose(0, 1)  # [n, B, D]
        return self.temporal(self.position(seq)).mean(dim=0)


class BlockPosition(nn.Module):
    """Learned embedding of each block's position in time, added to ``[n, B, D]``."""

    def __init__(self, n_blocks: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_blocks, 1, dim) * 0.02)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return seq + self.weight


class BlockPooling(nn.Module):
    """Without STAR-Net: global average pooling and a linear layer per block, mean over blocks."""

    def __init__(self, in_channels: int, embed_dim: int, n_blocks: int) -> None:
        super().__init__()
        self.n_blocks = n_blocks
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.proj = nn.Linear(in_channels, embed_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        per_block = self.proj(self.flatten(self.pool(features)))
        return per_block.reshape(-1, self.n_blocks, per_block.shape[-1]).mean(dim=1)


__all__ = ["AttentionPool2d", "BlockPooling", "BlockPosition", "Bottleneck", "MAPResNet", "StarNet"]
