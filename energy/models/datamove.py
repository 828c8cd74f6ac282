"""A data-movement bound of the Eyeriss kind: best-to-worst energy over the memory hierarchy.

Chen, Emer, Sze, ISCA 2016 (Table IV; reproduced in Sze et al., Proc. IEEE 105(12):2295, 2017)
give the energy of one 16-bit access at each level of a spatial accelerator, normalised to one
MAC: register file 1, array (inter-PE) 2, global buffer 6, DRAM 200 (65 nm; status S: read in
two secondaries). A value with reuse factors a, b, c, d at the DRAM, buffer, array and RF levels
costs ``a E_DRAM + ab E_GB + abc E_arr + abcd E_RF``; a partial sum
``(2a-1) E_DRAM + 2a(b-1) E_GB + ab(c-1) E_arr + 2abc(d-1) E_RF``.

The reuse factors come from the dataflow mapping, which a PyTorch trace does not fix. So this
model gives a range, under stated assumptions:

* every value enters from DRAM ``dram_passes`` times per inference (a; default 1, the sheet's
  bound), weights once per ``batch`` inferences (default 1);
* **best**: all remaining reuse in the register file (b = c = 1, d = uses);
* **worst**: no reuse below the global buffer (b = uses, c = d = 1): each use is a buffer read.

Per layer the values are its weights (every conv and linear layer loads them, spikes or not), its
inputs (real values, or one word per input spike for a spike input: an address event) and its
outputs; M operations accumulate into the outputs (a dense layer M - O times beyond each output's
first, an event-driven one M times: every synaptic event reads and writes its output's
potential, which keeps the bound affine in the spike count).

A neuron layer keeps its potentials on chip (a read and a write per update: RF at best,
global buffer at worst). A layer without arithmetic (activation, flatten, max-pooling) is taken as
fused into its neighbours. Arithmetic is priced with the Horowitz 45 nm figures of the word width
(16-bit: fp16 MAC 1.5 pJ, add 0.4 pJ) and the normalised costs are scaled by that MAC: a mix of
the table's 65 nm ratios with a 45 nm MAC, flagged in every report.
"""

from __future__ import annotations

import numpy as np

from ..costs import CONSTANTS, HOROWITZ_2014
from .base import EnergyModel, ModelInfo, PriceContext
from .table import Layers, Priced

EYERISS = (
    "Chen, Emer, Sze, ISCA 2016, Table IV (normalised energy per 16-bit access, 65 nm), as reproduced in "
    "Sze et al., Proc. IEEE 105(12):2295, 2017; status S (secondaries)"
)
LEVELS = {"rf": 1.0, "array": 2.0, "gb": 6.0, "dram": 200.0}
WORD_BITS = 16


class DataMovementModel(EnergyModel):
    def __init__(
        self,
        rf: float = LEVELS["rf"],
        array: float = LEVELS["array"],
        gb: float = LEVELS["gb"],
        dram: float = LEVELS["dram"],
        dram_passes: float = 1.0,
        batch: int = 1,
    ) -> None:
        self.levels = {"rf": float(rf), "array": float(array), "gb": float(gb), "dram": float(dram)}
        self.dram_passes, self.batch = float(dram_passes), int(batch)
        self.scale = CONSTANTS["fp16_mac_pj"].value
        self.info = ModelInfo(
            name="eyeriss",
            title="Eyeriss-style data-movement bound (best-to-worst reuse)",
            citation=f"{EYERISS}; {HOROWITZ_2014} (fp16 arithmetic and the pJ scale)",
            status="S",
            node="mixed: 65 nm access ratios scaled by a 45 nm fp16 MAC",
            assumptions=(
                "normalised access costs RF {rf:g} / array {array:g} / global buffer {gb:g} / DRAM {dram:g} "
                "per 16-bit word, x {scale:g} pJ (Horowitz 45 nm fp16 MAC)".format(**self.levels, scale=self.scale),
                f"every value enters from DRAM {self.dram_passes:g} time(s) per inference; weights once per "
                f"{self.batch} inference(s)",
                "best: all other reuse in the register file; worst: every use read from the global buffer",
                "one word per input spike (address event); neuron potentials stay on chip",
                "layers without arithmetic are fused into their neighbours",
                "mixes process nodes (65 nm ratios, 45 nm MAC)",
                "quantized pricing: int8 arithmetic, data movement scaled by bits / 16",
            ),
            constants={
                **{
                    f"{k}_norm": {"value": v, "unit": "x MAC", "source": EYERISS, "status": "S"}
                    for k, v in self.levels.items()
                },
                "scale_pj": {"value": self.scale, "unit": "pJ", "source": HOROWITZ_2014 + " fp16 MAC", "status": "S+"},
            },
            bound=True,
        )

    def price(self, layers: Layers, ctx: PriceContext) -> Priced:
        lv, a = self.levels, self.dram_passes
        p = ctx.precision
        prec = "fp16" if p.native else "int8"
        e_mac, e_ac = CONSTANTS[f"{prec}_mac_pj"].value, CONSTANTS[f"{prec}_ac_pj"].value
        e_add = CONSTANTS[f"{prec}_add_pj"].value
        w_scale = self.scale * (1.0 if p.native else p.weight_bits / WORD_BITS)
        a_scale = self.scale * (1.0 if p.native else p.act_bits / WORD_BITS)
        m = layers["macs"] + layers["sops"]
        busy = (m > 0) | layers.is_("conv") | layers.is_("linear")
        w = np.where(busy, layers["weight_buffer"] * ctx.samples / self.batch, 0.0)
        i = np.where(busy, np.where(layers["binary"], layers["in_spikes"], layers["act_reads"]), 0.0)
        o = np.where(busy, layers["act_writes"], 0.0)
        upd = layers["neuron_updates"]
        # accumulations into outputs beyond each output's first: dense, d - 1 per output; event-driven, every
        # synaptic event reads and writes its output's potential (so the energy is affine in the spike count)
        acc = np.where(layers["binary"], m, np.maximum(m - o, 0.0))
        d, gb, ar, rf = lv["dram"], lv["gb"], lv["array"], lv["rf"]
        # weights and inputs: a E_DRAM + ab E_GB + abc E_arr + abcd E_RF; partial sums:
        # (2a-1) E_DRAM + 2a(b-1) E_GB + ab(c-1) E_arr + 2abc(d-1) E_RF; potentials: a read and a write
        best_w = w * a * (d + gb + ar) + m * rf
        best_io = i * a * (d + gb + ar) + m * rf + o * (2 * a - 1) * d + 2 * acc * rf
        worst_w = w * a * d + m * (gb + ar + rf)
        worst_io = i * a * d + m * (gb + ar + rf) + o * (2 * a - 1) * d + 2 * acc * gb
        compute = layers["macs"] * e_mac + layers["sops"] * e_ac + upd * e_add
        best = best_w * w_scale + best_io * a_scale + 2 * upd * rf * self.scale
        worst = worst_w * w_scale + worst_io * a_scale + 2 * upd * gb * self.scale
        ok = np.ones(len(layers), bool)
        reason = np.where(busy | layers.is_("neuron"), "", "no arithmetic: fused into its neighbours")
        return Priced(
            compute + best,
            compute + worst,
            ok,
            reason.astype(object),
            {"compute": compute, "movement_best": best, "movement_worst": worst},
        )
