"""Lemaire et al. 2022: the analytical model of operations, addressing and memory by buffer size.

E. Lemaire, L. Cordone, A. Castagnetti, P.-E. Novac, J. Courtois, B. Miramond, "An Analytical
Estimation of Spiking Neural Networks Energy Efficiency", ICONIP 2022, LNCS pp. 574-587,
doi 10.1007/978-3-031-30105-6_48, arXiv 2210.13107. The paper text was not available; the
formulas follow ``shared/reference/energy-models.md`` section 1, rebuilt from the authors' lab's
code (qualia-plugin-snn docstrings) and spikingjelly 2.0.0's port, which agree (status S+).

Per layer, with theta_in / theta_out the input / output spikes (summed over T and the batch),
k the kernel size, S the stride, O the outputs of one call:

=======================  ==================================  ==============================
count                    non-spiking input (conv / FC)       spike input (conv / FC)
=======================  ==================================  ==============================
MAC ops                  O x C_in/g x k  /  N_in x N_out     (in the neuron: T x N if leaky)
ACC ops                  O if biased                         theta_in x C_out/g x ceil(k/S) + O if biased
                                                             (FC: theta_in x N_out)
read input               O x C_in/g x k  /  N_in             theta_in
read weights (+ bias)    O x C_in/g x k (+ O)                theta_in x C_out/g x k (+ O)
read / write potential   -                                   theta_in x C_out/g x k each
write output             O (only in a network w/o neurons)   (in the neuron: theta_out)
addressing, ACC          N_in + O (+ C_out x k per call)     theta_in x C_out/g x k
addressing, MAC          0                                   2 x theta_in (conv only)
=======================  ==================================  ==============================

An IF/LIF neuron layer of N neurons over T steps reads and writes its potential T x N times,
accumulates theta_out (the reset), adds T x N MACs when it leaks, and writes theta_out spikes to
its output FIFO. Energy = N_acc x E_add + N_mac x (E_mul + E_add) for operations and addressing
(Horowitz 45 nm int32: 0.1 and 3.1 pJ), plus every access at the cost of the buffer it hits.

The corrections the sheet documents are applied: the FC spike-input ACC count is theta_in x N_out
(the printed Eq. 2.4 has one N_in factor too many) plus the reset term theta_out (charged in the
neuron); conv addressing includes C_out (a bug in the lab's code, against its own docstring);
FC addressing with non-spiking input is N_in + N_out (spikingjelly's reading; the lab's code says
N_in x N_out, which the sheet leaves unresolved). Stride: the ACC count uses ceil(k/S), reads of
weights and potentials the full k, as the paper (and both ports) do.

Two memory modes, as the sheet documents them:

* ``lemaire-lab`` - the authors' lab's linear fit, ``E = 1.09e-5 x (elements x bits) + 13.2`` pJ
  per element access of a buffer of that many bits (qualia-plugin-snn, a least-squares line
  through Horowitz's 8 kB / 32 kB / 1 MB points);
* ``lemaire-sj`` - spikingjelly 2.0.0's piecewise-linear cost through (0, 0), (8 KiB, 10),
  (32 KiB, 20), (1 MiB, 100) pJ per 4-byte word, clamped above 1 MiB.

Buffer sizes (the ``buffers`` choice): ``sample`` (the default) sizes each buffer for one sample
at one time step - a layer's input or output, its potentials, its parameters, and a FIFO of
``fifo`` spikes for spike traffic; ``traced`` uses the traced tensors of one call instead (the
whole batch, and for a multi-step call all T steps of the input), which is what spikingjelly's
estimator does and makes its figure depend on the batch size. Validation against spikingjelly
uses ``traced``.
"""

from __future__ import annotations

import numpy as np

from ..costs import CONSTANTS, HOROWITZ_2014
from .base import EnergyModel, ModelInfo, PriceContext
from .table import Layers, Priced

KIB = 1024
LEMAIRE_2022 = (
    "Lemaire et al., ICONIP 2022, doi 10.1007/978-3-031-30105-6_48 (arXiv 2210.13107); formulas as "
    "rebuilt in shared/reference/energy-models.md §1 from LEAT-EDGE/qualia-plugin-snn@15165fe and "
    "spikingjelly 2.0.0 op_counter/analytical_energy.py"
)
#: the authors' lab's linear fit (qualia-plugin-snn EnergyEstimationMetric.py line 2173; reproduced in the sheet
#: as the least-squares line through Horowitz's (8 kB, 10), (32 kB, 20), (1 MB, 100 pJ))
LAB_SLOPE_PJ_PER_BIT = 1.09e-5
LAB_INTERCEPT_PJ = 13.2
#: spikingjelly 2.0.0's breakpoints: (capacity bytes, pJ per 4-byte word), lines 106-111 and 142-152
SJ_WORD_BYTES = 4
SJ_BREAKPOINTS = (
    (0.0, 0.0),
    (8 * KIB, CONSTANTS["sram_8kb_64bit_pj"].value),
    (32 * KIB, CONSTANTS["sram_32kb_64bit_pj"].value),
    (1024 * KIB, CONSTANTS["sram_1mb_64bit_pj"].value),
)
DEFAULT_FIFO = 1000  # spikes per FIFO: spikingjelly's default, "follows the paper"; the lab's CIFAR config too
MEMORY_MODES = ("lab", "sj")
BUFFER_MODES = ("sample", "traced")


class LemaireModel(EnergyModel):
    """Lemaire et al. 2022 with the ``lab`` or ``sj`` memory mode (see the module doc)."""

    def __init__(
        self,
        memory: str = "lab",
        buffers: str = "sample",
        fifo: int = DEFAULT_FIFO,
        e_add_pj: float | None = None,
        e_mul_pj: float | None = None,
    ) -> None:
        if memory not in MEMORY_MODES or buffers not in BUFFER_MODES:
            raise ValueError(f"memory must be one of {MEMORY_MODES} and buffers one of {BUFFER_MODES}")
        self.memory, self.buffers, self.fifo = memory, buffers, int(fifo)
        self.e_add = CONSTANTS["int32_add_pj"].value if e_add_pj is None else float(e_add_pj)
        self.e_mul = CONSTANTS["int32_mult_pj"].value if e_mul_pj is None else float(e_mul_pj)
        mem = (
            f"memory per element access = {LAB_SLOPE_PJ_PER_BIT:g} x buffer bits + {LAB_INTERCEPT_PJ:g} pJ "
            "(the authors' lab's linear fit)"
            if memory == "lab"
            else "memory per 4-byte word by buffer size, piecewise linear through 0 / 8 KiB / 32 KiB / 1 MiB -> "
            "0 / 10 / 20 / 100 pJ, clamped above 1 MiB (spikingjelly 2.0.0)"
        )
        self.info = ModelInfo(
            name=f"lemaire-{memory}" + ("" if buffers == "sample" else f"-{buffers}"),
            title=f"Lemaire et al. 2022 analytical model, {memory} memory mode",
            citation=f"{LEMAIRE_2022}; {HOROWITZ_2014}",
            status="S+",
            node="45 nm (Horowitz int32 arithmetic and SRAM)",
            assumptions=(
                f"operations and addressing: N_acc x {self.e_add:g} pJ + N_mac x ({self.e_mul:g} + {self.e_add:g}) pJ",
                mem,
                "buffers sized for one sample at one time step"
                if buffers == "sample"
                else "buffers sized by the traced tensors of one call (batch and, for a multi-step input, T included), "
                "as spikingjelly 2.0.0 does",
                f"spike traffic through a FIFO of {self.fifo} spikes",
                "priced: convolutions, linear layers, IF and LIF neurons; normalisation, pooling, attention "
                "products and other neurons are outside the model and listed as not priced",
                "a network with spiking neurons writes no non-spiking layer output (it goes into potentials)",
                "quantized pricing: Horowitz int8 arithmetic, accesses of bits/8 bytes (sj) or per element with "
                "buffers of elements x bits (lab)",
            ),
            constants={
                "e_add_pj": {
                    "value": self.e_add,
                    "unit": "pJ",
                    "source": HOROWITZ_2014 + " (int32 add)",
                    "status": "S+",
                },
                "e_mul_pj": {
                    "value": self.e_mul,
                    "unit": "pJ",
                    "source": HOROWITZ_2014 + " (int32 mult)",
                    "status": "S+",
                },
                **(
                    {
                        "lab_slope_pj_per_bit": {
                            "value": LAB_SLOPE_PJ_PER_BIT,
                            "unit": "pJ/bit",
                            "source": "qualia-plugin-snn@15165fe line 2173",
                            "status": "S+",
                        },
                        "lab_intercept_pj": {
                            "value": LAB_INTERCEPT_PJ,
                            "unit": "pJ per access",
                            "source": "qualia-plugin-snn@15165fe line 2173",
                            "status": "S+",
                        },
                    }
                    if memory == "lab"
                    else {
                        f"sram_{int(c // KIB)}kib_word_pj": {
                            "value": pj,
                            "unit": "pJ per 4-byte word",
                            "source": "spikingjelly 2.0.0 analytical_energy.py lines 106-111 (Horowitz points)",
                            "status": "S+",
                        }
                        for c, pj in SJ_BREAKPOINTS[1:]
                    }
                ),
                "fifo_spikes": {
                    "value": self.fifo,
                    "unit": "spikes",
                    "source": "spikingjelly 2.0.0 line 206; qualia CIFAR config",
                    "status": "S",
                },
            },
        )

    # ------------------------------------------------------------------ memory

    def _access_pj(self, accesses: np.ndarray, capacity_elems: np.ndarray, bits: float) -> np.ndarray:
        """Energy of ``accesses`` element accesses to buffers of ``capacity_elems`` elements of ``bits`` bits."""
        if self.memory == "lab":
            return accesses * (LAB_SLOPE_PJ_PER_BIT * capacity_elems * bits + LAB_INTERCEPT_PJ)
        nbytes = bits / 8
        x = np.clip(capacity_elems * nbytes, SJ_BREAKPOINTS[0][0], SJ_BREAKPOINTS[-1][0])
        per_word = np.interp(x, [q[0] for q in SJ_BREAKPOINTS], [q[1] for q in SJ_BREAKPOINTS])
        return accesses * nbytes * per_word / SJ_WORD_BYTES

    # ------------------------------------------------------------------ counts

    def counts(self, layers: Layers, ctx: PriceContext) -> dict[str, np.ndarray]:
        """The model's counts per layer (0 where it does not price it), with each buffer's size."""
        conv = layers.is_("conv")
        syn = conv | layers.is_("linear")
        leak = layers["leak"]
        neu = layers.is_("neuron") & ~np.isnan(leak)
        theta_in, theta_out = layers["in_spikes"], layers["out_spikes"]
        macs, outs, ins = layers["macs"], layers["act_writes"], layers["act_reads"]
        fan, fan_s = layers.fan_out(), layers.fan_out(strided=True)
        bias = layers["has_bias"].astype(float)
        dense = macs > 0
        n_upd = layers["neuron_updates"]
        traced = self.buffers == "traced"
        per_call_addr = np.where(conv, layers["out_channels"] * layers["kernel"] * layers["calls"], 0.0)
        c = {
            "ac": np.where(syn, theta_in * fan_s + outs * bias, 0.0) + np.where(neu, theta_out, 0.0),
            "mac": np.where(syn, macs, 0.0) + np.where(neu & (leak == 1), n_upd, 0.0),
            "acc_addr": np.where(syn, theta_in * fan + np.where(dense, ins + outs + per_call_addr, 0.0), 0.0),
            "mac_addr": np.where(conv, 2 * theta_in, 0.0),
            "in_event_reads": np.where(syn, theta_in, 0.0),
            "in_dense_reads": np.where(syn & dense, np.where(conv, macs, ins), 0.0),
            "param_reads": np.where(syn, theta_in * fan + macs + outs * bias, 0.0),
            "pot_accesses": np.where(syn, theta_in * fan, 0.0) + np.where(neu, n_upd, 0.0),  # reads (= writes)
            "out_writes_dense": np.where(syn & dense, outs, 0.0) * (0.0 if ctx.spiking else 1.0),
            "out_writes_spikes": np.where(neu, theta_out, 0.0),
            "in_cap": layers["in_call"] if traced else layers["in_buffer"],
            "out_cap": layers["out_call"] if traced else layers["out_buffer"],
            "pot_cap": layers["out_call_step"]
            if traced
            else np.where(layers["state_buffer"] > 0, layers["state_buffer"], layers["out_buffer"]),
            "param_cap": layers["weight_buffer"],
        }
        c["priced"] = syn | neu
        c["mixed"] = syn & dense & (theta_in > 0)
        return c

    def price(self, layers: Layers, ctx: PriceContext) -> Priced:
        c = self.counts(layers, ctx)
        p = ctx.precision
        a_bits = 32 if p.native else p.act_bits
        w_bits = 32 if p.native else p.weight_bits
        e_add = self.e_add if p.native else CONSTANTS["int8_add_pj"].value
        e_mul = self.e_mul if p.native else CONSTANTS["int8_mult_pj"].value
        ops = c["ac"] * e_add + c["mac"] * (e_mul + e_add)
        addressing = c["acc_addr"] * self.e_add + c["mac_addr"] * (self.e_mul + self.e_add)
        fifo = float(self.fifo)
        acc = self._access_pj
        inout = (
            acc(c["in_event_reads"], fifo, 32)
            + acc(c["in_dense_reads"], c["in_cap"], a_bits)
            + acc(c["out_writes_dense"], c["out_cap"], a_bits)
            + acc(c["out_writes_spikes"], fifo, 32)
        )
        params = acc(c["param_reads"], c["param_cap"], w_bits)
        potential = 2 * acc(c["pot_accesses"], c["pot_cap"], 32)
        ok = c["priced"]
        reason = np.where(
            ok,
            np.where(c["mixed"], "spike and real-valued calls mixed: addressing approximate", ""),
            np.where(
                layers.is_("neuron"),
                "neuron type neither IF nor LIF",
                "outside the Lemaire model (only conv, linear, IF/LIF)",
            ),
        )
        return Priced.point(
            ops + addressing + inout + params + potential,
            ok,
            reason,
            ops=ops,
            addressing=addressing,
            inout=inout,
            params=params,
            potential=potential,
        )
