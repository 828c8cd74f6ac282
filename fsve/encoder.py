"""The FSVE's replacement for STAR-Net: a spiking CNN per block, then a temporal Transformer.

Input: the ANN HSFE's features of every block ``[B * n, C, H, W]`` (as STAR-Net gets
them), presented to the spiking MS-ResNet (:class:`SpikingCNN`) for ``fsve.time_steps``
SNN steps (``[T, B * n, C, H, W]``), or the spiking HSFE's spikes, already
``[T, B * n, C, H, W]``; either gives per-step block embeddings ``[T, B * n, D]``. Then:

* ``fsve-hybrid``: the mean over steps, block positions and STAR-Net's ANN
  Transformer over blocks, mean over blocks (the paper's "CNN replaced by its SNN
  counterpart", A.7);
* ``fsve-full``: block positions, the spiking E-SDSA Transformer at every step,
  mean over steps and blocks.

Neuron state is reset at the start of every forward, so clips never leak into
each other. Submodule names follow STAR-Net (``spatial``, ``position``,
``temporal.layers``) so few-shot adaptation names the same layers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional

from spklip.config import SPKLIPConfig
from spklip.starnet import BlockPosition

from .esdsa import SpikingTransformer
from .msresnet import SpikingCNN
from .plaincnn import SpikingPlainCNN


class SpikingStarNet(nn.Module):
    def __init__(self, cfg: SPKLIPConfig, in_channels: int) -> None:
        super().__init__()
        if cfg.model not in ("fsve-hybrid", "fsve-full"):
            raise ValueError(f"SpikingStarNet builds fsve-hybrid or fsve-full, not {cfg.model!r}")
        f, s = cfg.fsve, cfg.starnet
        self.full = cfg.model == "fsve-full"
        self.n_blocks = cfg.hsfe.n_blocks
        self.time_steps = f.time_steps
        self.spatial = (SpikingPlainCNN if f.cnn == "plain" else SpikingCNN)(f, in_channels, cfg.embed_dim)
        self.position = BlockPosition(self.n_blocks, cfg.embed_dim)
        if self.full:
            self.temporal = SpikingTransformer(
                cfg.embed_dim, f.attn_layers, f.attn_heads, f.mlp_ratio, f.sn_alpha, f.attn_threshold, f.lens
            )
        else:
            layer = nn.TransformerEncoderLayer(cfg.embed_dim, s.temporal_heads, s.temporal_ffn, s.dropout)
            self.temporal = nn.TransformerEncoder(layer, s.temporal_layers, enable_nested_tensor=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        functional.reset_net(self)
        if features.dim() == 5:  # spikes of the spiking HSFE, already [T, B*n, C, H, W]
            x = features
        else:  # analog features of the ANN HSFE, the same at every step
            x = features.unsqueeze(0).expand(self.time_steps, *features.shape)
        per_block = self.spatial(x)  # [T, B*n, D]
        t, bn, d = per_block.shape
        if self.full:
            seq = per_block.reshape(t, -1, self.n_blocks, d)  # [T, B, n, D]
            seq = seq + self.position.weight.reshape(1, 1, self.n_blocks, d)
            return self.temporal(seq).mean(dim=(0, 2))
        seq = per_block.mean(dim=0).reshape(-1, self.n_blocks, d).transpose(0, 1)  # [n, B, D]
        return self.temporal(self.position(seq)).mean(dim=0)


__all__ = ["SpikingStarNet"]
