"""Per-layer firing rates of a spiking model, recorded with forward hooks.

``with FiringRates(model) as rates: model(x)`` then ``rates.summary()`` gives
``{layer name: fraction of outputs that were spikes}`` over all calls made
inside the block (LIF/IF nodes of spikingjelly and the FSVE's SN units).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from spikingjelly.activation_based.neuron import BaseNode

from .neurons import Heaviside, SpikeNorm

SPIKING_TYPES = (BaseNode, SpikeNorm, Heaviside)


class FiringRates:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._spikes: dict[str, torch.Tensor] = {}
        self._total: dict[str, int] = {}
        self._handles: list = []

    def __enter__(self) -> FiringRates:
        for name, module in self.model.named_modules():
            if isinstance(module, SPIKING_TYPES):
                self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def record(module, inputs, output):
            out = output[0] if isinstance(output, tuple) else output
            s = out.detach().float().sum()
            self._spikes[name] = self._spikes.get(name, 0) + s
            self._total[name] = self._total.get(name, 0) + out.numel()

        return record

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def summary(self) -> dict[str, float]:
        return {name: float(self._spikes[name]) / max(self._total[name], 1) for name in self._spikes}


__all__ = ["FiringRates"]
