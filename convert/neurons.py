"""The IF neuron of a converted run: soft reset, a chosen initial membrane potential, a calibrated bias.

spikingjelly's ``IFNode(v_reset=None)`` already resets by subtraction (the residual
charge above threshold is kept, Rueckauer et al. 2017) and ``HalfThresholdIFNode``
starts at θ/2. What neither offers is the two cheap fixes of the conversion
literature as one neuron, so :class:`ConvertedIF` subclasses ``IFNode`` and adds:

* ``v_init``: the membrane potential after ``reset()``, as a fraction of the threshold.
  ``0.5`` (θ/2) centres the quantisation error of rate coding: with a constant input
  current ``x`` the spike count after T steps is ``clip(floor(T·x/θ + 1/2), 0, T)`` —
  a rounding instead of a floor (Bu et al., ICLR 2022, Theorem 2; Deng & Gu, ICLR 2021);
* ``bias``: a per-channel current added at every step (``[C]``, empty for none), set by
  bias calibration (:mod:`.biascal`, Li et al., ICML 2021 "bias correction"). On hardware
  it is the neuron's bias (Loihi's CUBA bias), i.e. folded into the preceding layer's bias,
  so it costs no operation beyond the neuron update.

The threshold is 1 in the scaled units of the threshold-balancing scalers around the
neuron (``x / s -> IF -> spikes * s``), as in spikingjelly's recipe.
"""

from __future__ import annotations

import torch
from spikingjelly.activation_based import neuron

#: initial membrane potentials offered by ``convert --v-init`` (fraction of the threshold)
V_INITS = {"zero": 0.0, "half": 0.5}


class ConvertedIF(neuron.IFNode):
    """IF neuron, threshold 1, soft reset, membrane ``v_init`` after reset, optional per-channel bias current."""

    def __init__(self, v_init: float = 0.0, channels: int = 0) -> None:
        super().__init__(v_threshold=1.0, v_reset=None)
        self.v_init = float(v_init)
        self.set_reset_value("v", self.v_init)
        self.v = self.v_init
        # a buffer, so the calibrated currents travel in the state dict; [0]: no bias
        self.register_buffer("bias", torch.zeros(int(channels)))

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias.numel():
            shape = [1] * x.dim()
            shape[1] = self.bias.numel()
            x = x + self.bias.to(x.dtype).view(shape)
        return super().single_step_forward(x)

    def neuron_spec(self):
        """The dynamics exporters translate (:class:`fsve.neurons.NeuronSpec`): IF, soft reset, ``v_init``,
        the bias current."""
        from fsve.neurons import describe_if

        return describe_if(self)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, v_init={self.v_init:g}θ, bias={'per-channel' if self.bias.numel() else 'none'}"


__all__ = ["V_INITS", "ConvertedIF"]
