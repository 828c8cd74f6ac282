"""The spiking CNN of the FSVE: spikingjelly's MS-ResNet with the paper's LIF and tdBN.

spikingjelly 2.0's :class:`~spikingjelly.activation_based.model.ms_resnet.MSResNet`
gives the membrane-shortcut topology (each residual branch fires before its
convolution, the shortcut carries membrane potential, so every convolution but the
stem's and the downsampling 1x1s reads spikes). Two things differ from the paper
and are changed here:

* neurons: :func:`~fsve.neurons.make_neuron` (``fsve.neuron``; the LIF: leak, threshold and
  Eq. 8's surrogate width from :class:`FSVEConfig`) instead of spikingjelly's
  ``Rect(alpha=2)``;
* normalisation: with ``norm="tdbn"`` every BatchNorm becomes spikingjelly's
  ``ThresholdDependentBatchNorm2d`` (statistics over time and batch, weight
  initialised to ``alpha * V_th``); the BN closing a residual branch and the
  downsampling BN, which meet at an addition, use ``alpha / sqrt(2)`` (Zheng et
  al., 2021). ``norm="bn"`` keeps spikingjelly's BN.

:class:`SpikingCNN` maps HSFE features ``[T, N, C, H, W]`` to per-step embeddings
``[T, N, D]``: stem, stages, a final LIF, global average pooling, a linear layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from spikingjelly.activation_based import layer
from spikingjelly.activation_based.model.ms_resnet import MSResNet

from spklip.config import FSVEConfig

from .neurons import make_neuron


def _tdbn_like(bn: nn.BatchNorm2d, alpha: float, v_th: float) -> layer.ThresholdDependentBatchNorm2d:
    return layer.ThresholdDependentBatchNorm2d(alpha, v_th, bn.num_features, eps=bn.eps, momentum=bn.momentum)


def use_tdbn(net: nn.Module, alpha: float, v_th: float) -> int:
    """Replace every BatchNorm2d of an MS-ResNet by tdBN; returns how many were replaced."""
    merging: set[int] = set()
    for block in net.modules():
        if hasattr(block, "bn2") and hasattr(block, "downsample"):
            merging.add(id(block.bn2))
            if block.downsample is not None:
                merging.update(id(m) for m in block.downsample.modules() if isinstance(m, nn.BatchNorm2d))
    count = 0
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d) and not isinstance(child, layer.ThresholdDependentBatchNorm2d):
                a = alpha / math.sqrt(2.0) if id(child) in merging else alpha
                setattr(parent, name, _tdbn_like(child, a, v_th))
                count += 1
    return count


class SpikingCNN(nn.Module):
    """MS-ResNet over ``[T, N, C, H, W]`` -> ``[T, N, embed_dim]`` (see the module docstring)."""

    def __init__(self, cfg: FSVEConfig, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg

        def lif(**_ignored) -> nn.Module:
            return make_neuron(cfg)

        body = MSResNet(
            T=cfg.time_steps,
            in_channels=in_channels,
            num_classes=embed_dim,
            layers=tuple(cfg.layers),
            base_channels=cfg.width,
            stem_kernel_size=3,
            stem_stride=cfg.stem_stride,
            spiking_neuron=lif,
        )
        if cfg.norm == "tdbn":
            use_tdbn(body, cfg.tdbn_alpha, cfg.v_threshold)
        self.stem = body.stem
        self.layer1, self.layer2, self.layer3 = body.layer1, body.layer2, body.layer3
        self.layer4 = body.layer4 if body.layer4 is not None else nn.Identity()
        self.head_lif = body.head_lif
        self.avgpool = body.avgpool
        self.flatten = layer.Flatten(start_dim=1, step_mode="m")
        self.head = body.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(self.head_lif(x))  # firing rates of the last stage, per step
        return self.head(self.flatten(x))


__all__ = ["SpikingCNN", "use_tdbn"]
