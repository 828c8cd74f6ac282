"""A chain-form spiking CNN for deployment to chips whose netlists are chains (Loihi via netx).

``fsve.cnn = "plain"`` swaps the MS-ResNet of :mod:`.msresnet` for the same stages
without the membrane shortcuts: stem (conv + BN, analog: it reads the HSFE
features), then per stage ``layers[i]`` blocks of ``LIF -> conv3x3 -> BN`` twice
(the first convolution of stages 2.. has stride 2), a final LIF, global average
pooling and a linear layer. Every convolution after the stem reads spikes and
feeds exactly one LIF population, so with BN folded into the convolution it is
one netx ``conv`` layer (:mod:`export.lava_export`). The residual
additions of MS-ResNet have no netx form (netx layers form a chain), which is why
this variant exists.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from spikingjelly.activation_based import layer

from spklip.config import FSVEConfig

from .msresnet import use_tdbn
from .neurons import make_neuron

#: BN weight at initialisation (spikingjelly's MS-ResNet uses the same 0.5 before tdBN replaces it).
_BN_WEIGHT = 0.5


def _conv_bn(c_in: int, c_out: int, stride: int, kernel: int = 3) -> list[nn.Module]:
    bn = layer.BatchNorm2d(c_out, step_mode="m")
    nn.init.constant_(bn.weight, _BN_WEIGHT)
    return [layer.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False, step_mode="m"), bn]


class SpikingPlainCNN(nn.Module):
    """Chain spiking CNN over ``[T, N, C, H, W]`` -> ``[T, N, embed_dim]`` (see the module docstring)."""

    def __init__(self, cfg: FSVEConfig, in_channels: int, embed_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(*_conv_bn(in_channels, cfg.width, cfg.stem_stride))
        chain: list[nn.Module] = []
        c = cfg.width
        for i, n in enumerate(cfg.layers):
            c_out = cfg.width * 2**i
            for b in range(n):
                stride = 2 if (i > 0 and b == 0) else 1
                chain += [make_neuron(cfg), *_conv_bn(c, c_out, stride)]
                chain += [make_neuron(cfg), *_conv_bn(c_out, c_out, 1)]
                c = c_out
        self.stages = nn.Sequential(*chain)
        self.head_lif = make_neuron(cfg)
        self.avgpool = layer.AdaptiveAvgPool2d((1, 1), step_mode="m")
        self.flatten = layer.Flatten(start_dim=1, step_mode="m")
        self.head = layer.Linear(c, embed_dim, step_mode="m")
        if cfg.norm == "tdbn":
            use_tdbn(self, cfg.tdbn_alpha, cfg.v_threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.head_lif(self.stages(self.stem(x))))
        return self.head(self.flatten(x))


__all__ = ["SpikingPlainCNN"]
