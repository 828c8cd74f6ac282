"""SpikeSim (Moitra et al., IEEE TCAD 2023): IMC crossbar energy of a spiking network's convolutions.

A convolution mapped on X x X crossbars takes ``ceil(C_in/X) x ceil(C_out/X)`` processing-element
cycles per output site and time step; each cycle costs

    E_cyc = Htree + fetch + TileBuf + (X/8) x 16 x Sub + (X/8) x TempBuf + (X/8)^2 x (ADC + MUX)
            + neuron + (X/8) x k_h x k_w x E_xbar

with the constants of the authors' code (``ela_spikesim.py``; the same in spikingjelly 2.0.0's
``spikesim/config.py``), status P; X = 64, RRAM crossbars by default. The model is dense: the
energy does not depend on spike activity. It covers 2-D convolutions without groups in a spiking
network; everything else (linear layers, attention, normalisation, the neurons themselves, which
are inside E_cyc) is listed as not priced, and a non-spiking network is outside it.
"""

from __future__ import annotations

import numpy as np

from .base import EnergyModel, ModelInfo, PriceContext
from .table import Layers, Priced

SPIKESIM = (
    "Moitra et al., SpikeSim, IEEE TCAD 2023, doi 10.1109/TCAD.2023.3274918; constants from "
    "Intelligent-Computing-Lab-Yale/SpikeSim@a83c451 ela_spikesim.py (spikingjelly 2.0.0 pins c2627bc)"
)
#: pJ, from the authors' code (shared/reference/energy-models.md §6, status P)
CONSTANTS = {
    "tile_buffer_pj": 397.0,
    "temp_buffer_pj": 0.2,
    "sub_pj": 1.15e-6,
    "adc_pj": 2.03084,
    "htree_pj": 157.12,
    "mux_pj": 0.094245,
    "mem_fetch_pj": 4.64,
    "neuron_pj": 5.096,
    "rram_xbar_pj": 1.76423,
    "sram_xbar_pj": 671.089,
}
DEVICES = ("rram", "sram")


class SpikeSimModel(EnergyModel):
    def __init__(self, xbar: int = 64, device: str = "rram", **overrides: float) -> None:
        if device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}")
        self.xbar, self.device = int(xbar), device
        self.c = {**CONSTANTS, **overrides}
        name = "spikesim" if device == "rram" else f"spikesim-{device}"
        self.info = ModelInfo(
            name=name,
            title=f"SpikeSim crossbar model ({device.upper()}, {self.xbar}x{self.xbar} crossbars)",
            citation=SPIKESIM,
            status="P",
            node="not stated in the authors' code (spikingjelly records 65 nm)",
            assumptions=(
                "energy = PE cycles x E_cyc(k); cycles = ceil(C_in/X) x ceil(C_out/X) per output site and step",
                "dense: the energy does not depend on spike activity",
                "priced: 2-D convolutions without groups in a spiking network; neurons are inside E_cyc; linear "
                "layers, attention and normalisation are outside the model and listed as not priced",
            ),
            constants={k: {"value": v, "unit": "pJ", "source": SPIKESIM, "status": "P"} for k, v in self.c.items()},
        )

    def not_applicable(self, spiking: bool) -> str | None:
        return None if spiking else "SpikeSim models a spiking network on IMC crossbars; this network has no neurons"

    def cycle_pj(self, kh, kw):
        """E_cyc for a ``kh x kw`` kernel (pJ; numbers or arrays)."""
        c, b = self.c, self.xbar / 8.0
        xbar = c["rram_xbar_pj"] if self.device == "rram" else c["sram_xbar_pj"]
        patch = (
            c["htree_pj"]
            + c["mem_fetch_pj"]
            + c["tile_buffer_pj"]
            + b * 16.0 * c["sub_pj"]
            + b * c["temp_buffer_pj"]
            + b * b * (c["adc_pj"] + c["mux_pj"])
        )
        return patch + c["neuron_pj"] + b * kh * kw * xbar

    def cycles(self, layers: Layers) -> np.ndarray:
        """PE cycles of each 2-D convolution without groups (NaN elsewhere): ceil(C_in/X) x ceil(C_out/X)
        per output site and step."""
        x = self.xbar
        ok = layers.is_("conv") & ~np.isnan(layers["kernel_h"]) & (layers["groups"] == 1)
        cout = np.where(ok, layers["out_channels"], 1.0)
        sites = layers["act_writes"] / cout
        cyc = np.ceil(layers["in_channels"] / x) * np.ceil(cout / x) * sites
        return np.where(ok, cyc, np.nan)

    def price(self, layers: Layers, ctx: PriceContext) -> Priced:
        cyc = self.cycles(layers)
        ok = ~np.isnan(cyc)
        kh, kw = np.nan_to_num(layers["kernel_h"]), np.nan_to_num(layers["kernel_w"])
        energy = np.where(ok, np.nan_to_num(cyc) * self.cycle_pj(kh, kw), 0.0)
        grouped = layers.is_("conv") & (layers["groups"] != 1)
        reason = np.where(
            ok,
            "",
            np.where(grouped, "grouped convolution: outside SpikeSim", "not a 2-D convolution: outside SpikeSim"),
        )
        return Priced.point(energy, ok, reason, pe_cycle=energy)
