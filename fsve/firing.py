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

    def counts(self) -> dict[str, tuple[float, int]]:
        """Per layer (spikes, outputs) so far: what several processes sum (:meth:`merged`)."""
        return {name: (float(self._spikes[name]), int(self._total[name])) for name in self._spikes}

    @staticmethod
    def merged(parts: list[dict[str, tuple[float, int]]]) -> dict[str, float]:
        """The firing rates of several :meth:`counts` (e.g. one per rank of a distributed run), as
        :meth:`summary` gives them: per layer, all spikes over all outputs."""
        spikes: dict[str, float] = {}
        total: dict[str, int] = {}
        for part in parts:
            for name, (s, n) in part.items():
                spikes[name] = spikes.get(name, 0.0) + s
                total[name] = total.get(name, 0) + n
        return {name: spikes[name] / max(total[name], 1) for name in spikes}


__all__ = ["FiringRates"]
