"""The counted layers of one profile as plain numpy columns, which every energy model prices.

A pandas frame costs tens of microseconds per column operation; the models do a few hundred of
them, and pricing must stay a small fraction of one forward pass (``benchmarks/bench_profile.py``).
So the frame is turned into arrays once (:meth:`Layers.from_frame`) and the models do numpy
arithmetic on whole columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: numeric columns (float64, missing values 0)
NUMERIC = (
    "calls",
    "macs",
    "sops",
    "neuron_updates",
    "weight_reads",
    "state_reads",
    "state_writes",
    "act_reads",
    "act_writes",
    "mem_accesses",
    "weight_buffer",
    "state_buffer",
    "act_buffer",
    "in_buffer",
    "out_buffer",
    "in_call",
    "out_call",
    "out_call_step",
    "in_spikes",
    "in_elems",
    "out_spikes",
    "out_elems",
    "in_channels",
    "out_channels",
    "groups",
    "kernel",
    "kernel_strided",
    "kernel_h",
    "kernel_w",
)
#: other columns (object arrays)
LABELS = ("name", "type", "family")


@dataclass
class Layers:
    """Columns of equal length: :data:`NUMERIC` as float arrays, :data:`LABELS` as object arrays,
    ``leak`` (1 leaky, 0 IF, NaN unknown or not a neuron), ``has_bias`` and ``binary`` (bool)."""

    cols: dict[str, np.ndarray]

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Layers:
        n = len(df)
        cols: dict[str, np.ndarray] = {}
        for c in NUMERIC:
            cols[c] = (
                pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan) if c in df else np.zeros(n)
            )
            if c not in ("kernel_h", "kernel_w"):
                cols[c] = np.nan_to_num(cols[c], nan=0.0)
        for c in LABELS:
            cols[c] = df[c].to_numpy(dtype=object) if c in df else np.full(n, "", dtype=object)
        leak = df["leak"].to_numpy(dtype=object) if "leak" in df else np.full(n, None, dtype=object)
        cols["leak"] = np.array([1.0 if v is True else 0.0 if v is False else np.nan for v in leak])
        cols["has_bias"] = (
            np.array([v is True or v == 1.0 for v in df["has_bias"]]) if "has_bias" in df else np.zeros(n, bool)
        )
        cols["binary"] = (
            df["binary_input"].fillna(False).astype(bool).to_numpy() if "binary_input" in df else np.zeros(n, bool)
        )
        return cls(cols)

    @classmethod
    def from_records(cls, records: list[dict]) -> Layers:
        """From the profiler's per-layer records (no pandas: this is the fast path)."""
        table = np.array([[r.get(c) for c in NUMERIC] for r in records], dtype=float).reshape(-1, len(NUMERIC))
        filled = np.where(np.isnan(table), 0.0, table)  # None became NaN: 0 but for a non-2-D layer's kernel
        cols = {c: (table if c in ("kernel_h", "kernel_w") else filled)[:, j].copy() for j, c in enumerate(NUMERIC)}
        for c in LABELS:
            cols[c] = np.array([r.get(c, "") for r in records], dtype=object)
        cols["leak"] = np.array(
            [1.0 if r.get("leak") is True else 0.0 if r.get("leak") is False else np.nan for r in records], dtype=float
        )
        cols["has_bias"] = np.array([r.get("has_bias") is True for r in records], dtype=bool)
        cols["binary"] = np.array([bool(r.get("binary_input")) for r in records], dtype=bool)
        return cls(cols)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.cols[key]

    def __len__(self) -> int:
        return len(self.cols["name"])

    def take(self, index) -> Layers:
        return Layers({k: v[index] for k, v in self.cols.items()})

    def with_cols(self, **cols) -> Layers:
        out = dict(self.cols)
        for k, v in cols.items():
            out[k] = np.broadcast_to(np.asarray(v, dtype=out[k].dtype if k in out else None), (len(self),)).copy()
        return Layers(out)

    @staticmethod
    def concat(*tables: Layers) -> Layers:
        keys = tables[0].cols.keys()
        return Layers({k: np.concatenate([t.cols[k] for t in tables]) for k in keys})

    def is_(self, family: str) -> np.ndarray:
        return self.cols["family"] == family

    def fan_in(self) -> np.ndarray:
        """Weights one output of a conv or linear layer reads (``C_in / groups x kernel``)."""
        return self["in_channels"] / np.where(self["groups"] > 0, self["groups"], 1) * self["kernel"]

    def fan_out(self, strided: bool = False) -> np.ndarray:
        """Outputs one input event reaches (``C_out / groups x kernel``, or Lemaire's ceil(k/S) kernel)."""
        k = self["kernel_strided"] if strided else self["kernel"]
        return self["out_channels"] / np.where(self["groups"] > 0, self["groups"], 1) * k


@dataclass
class Priced:
    """What a model says about each layer: low and high energy (pJ; equal for a point estimate),
    whether it priced the layer and why not, and the components (pJ arrays by name)."""

    low: np.ndarray
    high: np.ndarray
    priced: np.ndarray
    reason: np.ndarray
    components: dict[str, np.ndarray]

    @classmethod
    def point(cls, total, priced, reason, **components) -> Priced:
        total = np.where(priced, np.asarray(total, dtype=float), 0.0)
        return cls(total, total.copy(), np.asarray(priced, bool), np.asarray(reason, dtype=object), components)
