"""The SPKLIP model: spike visual encoder (HSFE + STAR-Net), text encoder, learnable temperature.

With ``cfg.model`` ``fsve-hybrid`` or ``fsve-full`` STAR-Net is replaced by the
spiking encoder of :mod:`fsve.encoder`, and with ``cfg.front_end`` ``spiking``
(``fsve-full``'s default) the HSFE by the spiking one of :mod:`fsve.hsfe`,
which hands the spiking CNN spikes ``[T, B * n, C, H', W']`` (text tower unchanged).

``SPKLIP.encode_spikes``: spikes ``[B, F, H, W]`` (binary; uint8, bool or float)
-> ``F_s [B, embed_dim]``. ``SPKLIP.encode_text``: tokens ``[B, L]`` ->
``[B, embed_dim]``. ``forward`` returns :class:`SPKLIPOutput` whatever the
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from spklip_energy.errors import MediaError

from .config import SPKLIPConfig
from .hsfe import HSFE, feature_size, temporal_blocks
from .loss import LogitScale
from .starnet import BlockPooling, StarNet
from .text import TextEncoder


@dataclass
class SPKLIPOutput:
    """What one forward returns: both embeddings (not normalised) and the logit scale."""

    spike_features: torch.Tensor  # [B, embed_dim]
    text_features: torch.Tensor | None  # [B, embed_dim] or None without tokens
    logit_scale: torch.Tensor  # scalar, exp(clamped log-scale)


class SpikeVisualEncoder(nn.Module):
    """HSFE on every temporal block (as one batch), then STAR-Net or block pooling."""

    def __init__(self, cfg: SPKLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.front_end == "spiking":
            from fsve.hsfe import SpikingHSFE  # spikingjelly is only needed for the FSVE

            self.hsfe = SpikingHSFE(cfg)
        else:
            self.hsfe = HSFE(cfg.hsfe)
        h, w = feature_size(cfg.hsfe, cfg.height, cfg.width)
        if cfg.model != "spklip":
            from fsve.encoder import SpikingStarNet  # spikingjelly is only needed for the FSVE

            self.starnet = SpikingStarNet(cfg, cfg.hsfe.features)
        elif cfg.starnet.enabled:
            self.starnet = StarNet(cfg.starnet, cfg.hsfe.features, h, w, cfg.embed_dim, cfg.hsfe.n_blocks)
        else:
            self.starnet = BlockPooling(cfg.hsfe.features, cfg.embed_dim, cfg.hsfe.n_blocks)

    def check_input(self, spikes: torch.Tensor) -> None:
        c = self.cfg
        if spikes.dim() != 4 or tuple(spikes.shape[2:]) != (c.height, c.width) or spikes.shape[1] < c.frames:
            raise MediaError(
                f"spikes for preset {c.preset!r} must have shape [B, {c.frames}, {c.height}, {c.width}], "
                f"found {list(spikes.shape)}"
            )

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        self.check_input(spikes)
        blocks = temporal_blocks(spikes[:, : self.cfg.frames], self.cfg.hsfe, dtype=None)
        return self.starnet(self.hsfe(blocks))


class SPKLIP(nn.Module):
    """Spike-video / text contrastive model (paper section 3)."""

    def __init__(self, cfg: SPKLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = SpikeVisualEncoder(cfg)
        self.text = TextEncoder(cfg.text, cfg.embed_dim)
        self.logit_scale = LogitScale(cfg.logit_scale_init, cfg.logit_scale_max)

    def encode_spikes(self, spikes: torch.Tensor) -> torch.Tensor:
        return self.visual(spikes)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text(tokens)

    def forward(self, spikes: torch.Tensor, tokens: torch.Tensor | None = None) -> SPKLIPOutput:
        spike_features = self.encode_spikes(spikes)
        text_features = self.encode_text(tokens) if tokens is not None else None
        return SPKLIPOutput(spike_features, text_features, self.logit_scale())


def build_spklip(cfg: SPKLIPConfig, seed: int | None = None) -> SPKLIP:
    """A freshly initialised SPKLIP; deterministic for ``seed`` (global RNG state untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed if seed is None else seed)
        return SPKLIP(cfg)
