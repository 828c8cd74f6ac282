"""Every figure the project draws, as PNG bytes (the caller decides where they go): energy reports,
comparisons, the benchmark, training and evaluation, the convert sweep."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from energy.record import PartFigures


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def energy_per_layer_png(per_layer: pd.DataFrame, title: str, max_layers: int = 40) -> bytes:
    """Horizontal stacked bars: compute, neuron and memory energy of each layer (µJ)."""
    plt = _plt()
    df = per_layer
    if len(df) > max_layers:  # keep the most expensive layers, in network order
        keep = df["total_j"].nlargest(max_layers).index
        df = df.loc[sorted(keep)]
    labels = [
        f"{n} ({t})" + (" [M]" if b == "memory" else "")
        for n, t, b in zip(df["name"], df["type"], df["bound"], strict=True)
    ]
    height = max(2.5, 0.24 * len(df) + 1.2)
    fig, ax = plt.subplots(figsize=(8.5, height))
    y = range(len(df))
    left = [0.0] * len(df)
    for col, color, label in (
        ("compute_j", "#4c72b0", "compute (MAC/AC)"),
        ("neuron_j", "#55a868", "neuron updates"),
        ("memory_j", "#c44e52", "memory"),
    ):
        vals = (df[col] * 1e6).tolist()
        ax.barh(list(y), vals, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("energy per profiled batch (µJ)   [M] = memory-bound")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def firing_rate_png(per_layer: pd.DataFrame, title: str) -> bytes | None:
    """Bar chart of the firing rate of each spiking layer; None if the model has none."""
    df = per_layer[per_layer["spiking"]]
    if not len(df):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, max(2.5, 0.24 * len(df) + 1.2)))
    ax.barh(range(len(df)), df["output_rate"].tolist(), color="#8172b2")
    ax.set_yticks(range(len(df)))
    ax.set_yticklabels(df["name"].tolist(), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("firing rate (spikes per neuron per time step)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def energy_vs_accuracy_png(rows: list[dict], title: str) -> bytes:
    """Scatter of total energy per sample against accuracy (energy only where accuracy is unknown)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    have_acc = [r for r in rows if r.get("accuracy") is not None]
    if have_acc:
        for r in have_acc:
            ax.scatter(r["energy_per_sample_j"] * 1e6, 100 * r["accuracy"], s=40)
            ax.annotate(
                r["name"],
                (r["energy_per_sample_j"] * 1e6, 100 * r["accuracy"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        ax.set_ylabel("accuracy (%)")
    else:
        ax.barh(range(len(rows)), [r["energy_per_sample_j"] * 1e6 for r in rows], color="#4c72b0")
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["name"] for r in rows], fontsize=7)
        ax.set_ylabel("(no checkpoint carries an accuracy)")
    ax.set_xlabel("total energy per sample (µJ)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def benchmark_png(rows: list[dict], title: str) -> bytes:
    """Accuracy against energy per clip, one point per arm: top-1 mean over seeds with error bars of
    +- one standard deviation over seeds (thick) and the pooled 95 % interval (thin); energy on a log
    axis, its error bar +- one standard deviation over seeds."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for i, r in enumerate(rows):
        x = r["energy_total_j"] * 1e6
        y = 100 * r["top1_mean"]
        pooled = r["top1_pooled"]
        color = f"C{i}"
        ax.errorbar(
            x,
            y,
            yerr=[[y - 100 * pooled["ci_low"]], [100 * pooled["ci_high"] - y]],
            fmt="none",
            ecolor=color,
            elinewidth=0.8,
            capsize=3,
        )
        std = r["top1_std"] if r["top1_std"] == r["top1_std"] else 0.0  # nan (one seed): no bar
        xerr = r["energy_total_j_std"] * 1e6 if r["energy_total_j_std"] == r["energy_total_j_std"] else None
        ax.errorbar(
            x,
            y,
            yerr=100 * std,
            xerr=xerr,
            fmt="o",
            color=color,
            elinewidth=2.2,
            capsize=0,
            label=f"{r['title']} ({len(r['seeds'])} seeds)",
        )
    ax.set_xscale("log")
    ax.set_xlabel("energy per clip (µJ, log scale)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.text(
        0.01, -0.04, "thick bars: ± 1 std over seeds; thin bars with caps: pooled 95 % Wilson interval", fontsize=7
    )
    return _png(fig)


def conversion_png(curves: dict[str, list[dict]], titles: dict[str, str], title: str, cost: str) -> bytes | None:
    """Every conversion method on one figure: top-1 against T (mean over seeds, pooled 95 % Wilson interval)
    and energy per clip against T, the ANN (and a QCFS ANN) as horizontal lines. ``curves``: from
    :func:`~reports.render.conversion_curves`."""
    if not curves:
        return None
    plt = _plt()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    ts_all: set[int] = set()
    ann_drawn = False
    for i, (arm, curve) in enumerate(curves.items()):
        color = f"C{i}"
        pts = sorted((p for p in curve if p["timesteps"] is not None), key=lambda p: p["timesteps"])
        ts = [p["timesteps"] for p in pts]
        ts_all.update(ts)
        y = [100 * p["mean"] for p in pts]
        err = [
            [v - 100 * p["pooled"]["ci_low"] for v, p in zip(y, pts, strict=True)],
            [100 * p["pooled"]["ci_high"] - v for v, p in zip(y, pts, strict=True)],
        ]
        a.errorbar(ts, y, yerr=err, marker="o", capsize=3, color=color, label=titles.get(arm, arm))
        b.plot(ts, [p["total_j"] * 1e6 for p in pts], marker="o", color=color, label=titles.get(arm, arm))
        for p in curve:
            if p["timesteps"] is None and p["label"] == "ANN" and not ann_drawn:
                a.axhline(100 * p["mean"], color="gray", linestyle="--", label="ANN (mean over seeds)")
                b.axhline(p["total_j"] * 1e6, color="gray", linestyle="--", label="ANN")
                ann_drawn = True
            elif p["timesteps"] is None and p["label"] != "ANN":
                a.axhline(100 * p["mean"], color=color, linestyle=":", label=f"{p['label']} ({arm})")
    for ax in (a, b):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ts_all))
        ax.set_xticklabels([str(t) for t in sorted(ts_all)])
        ax.set_xlabel("time steps T")
        ax.grid(alpha=0.3)
    a.set_ylabel("test top-1 (%), mean over seeds, pooled 95 % CI")
    a.set_ylim(0, 100)
    b.set_yscale("log")
    b.set_ylabel(f"energy per clip (µJ, {cost})")
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


#: one colour per model part (spklip.parts.PARTS), the same in every plot
PART_COLORS = {
    "HSFE": "#4c72b0",
    "CNN": "#dd8452",
    "temporal Transformer": "#55a868",
    "heads": "#8172b2",
    "other": "#937860",
}


def energy_by_part_png(parts: dict[str, PartFigures], title: str) -> bytes:
    """Horizontal stacked bars, one per model part (:attr:`~energy.record.EnergyReport.parts`): its compute,
    neuron and memory energy per sample (µJ), labelled with its share of the total."""
    plt = _plt()
    names = list(parts)
    fig, ax = plt.subplots(figsize=(7.5, max(2.2, 0.45 * len(names) + 1.2)))
    y = list(range(len(names)))
    left = [0.0] * len(names)
    for col, color, label in (
        ("compute_j", "#4c72b0", "compute (MAC/AC)"),
        ("neuron_j", "#55a868", "neuron updates"),
        ("memory_j", "#c44e52", "memory"),
    ):
        vals = [getattr(parts[n], col) * 1e6 for n in names]
        ax.barh(y, vals, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(y)
    ax.set_yticklabels([f"{n} ({100 * parts[n].share:.1f} %)" for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("energy per sample (µJ)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(fig)


def energy_by_part_comparison_png(rows: list[dict], title: str) -> bytes | None:
    """Horizontal stacked bars, one per compared model that has parts: its total energy per sample (µJ)
    split by model part. None when no row has parts (no SPKLIP checkpoint among them)."""
    have = [r for r in rows if r.get("energy_by_part_j")]
    if not have:
        return None
    plt = _plt()
    seen = dict.fromkeys(p for r in have for p in r["energy_by_part_j"])
    order = [p for p in PART_COLORS if p in seen] + [p for p in seen if p not in PART_COLORS]
    fig, ax = plt.subplots(figsize=(7.5, max(2.2, 0.45 * len(have) + 1.4)))
    y = list(range(len(have)))
    left = [0.0] * len(have)
    for i, part in enumerate(order):
        vals = [r["energy_by_part_j"].get(part, 0.0) * 1e6 for r in have]
        ax.barh(y, vals, left=left, color=PART_COLORS.get(part, f"C{i}"), label=part)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(y)
    ax.set_yticklabels([r["name"] for r in have], fontsize=8)
    ax.invert_yaxis()
    left_out = len(rows) - len(have)
    ax.set_xlabel("energy per sample (µJ)" + (f"   ({left_out} model(s) without parts not shown)" if left_out else ""))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(fig)


def energy_ranges_png(variants: dict[str, dict], title: str) -> bytes | None:
    """Energy per sample under each published model, one horizontal bar (a range for a bound, a tick
    for a point estimate) per variant, pricing and model, on a log axis. ``variants`` maps a name to
    its report's ``energy_models``; None when nothing was priced."""
    bars = []  # (label, model, low, high)
    for name, em in variants.items():
        for e in em["estimates"]:
            if e["low_j"] is None or e["high_j"] <= 0:
                continue
            label = name if e["precision"] == "native" else f"{name} @ {e['precision']}"
            bars.append((label, e["model"], e["low_j"], e["high_j"]))
    if not bars:
        return None
    plt = _plt()
    models = list(dict.fromkeys(b[1] for b in bars))
    labels = list(dict.fromkeys(b[0] for b in bars))
    colors = plt.get_cmap("tab10")
    fig, ax = plt.subplots(figsize=(8.5, max(2.5, 0.22 * len(bars) + 1.5)))
    y = 0
    ticks, names = [], []
    for label in labels:
        for m in models:
            for b in bars:
                if b[0] == label and b[1] == m:
                    c = colors(models.index(m) % 10)
                    low, high = b[2], b[3]
                    if high > low * (1 + 1e-9):
                        ax.plot([low, high], [y, y], color=c, linewidth=5, solid_capstyle="butt")
                    else:
                        ax.plot([low], [y], marker="|", markersize=12, markeredgewidth=3, color=c)
                    ticks.append(y)
                    names.append(f"{label}: {m}")
                    y += 1
        y += 0.6
    ax.set_yticks(ticks)
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("energy per sample (J, log scale); bars: best-to-worst bounds, ticks: point estimates")
    ax.set_title(title, fontsize=9)
    ax.grid(axis="x", which="both", alpha=0.3)
    return _png(fig)


def break_even_png(em: dict, title: str) -> bytes | None:
    """Energy of the spiking layers against their mean input rate under each model (all rates scaled
    alike), the measured rate, and the ANN twins' energy at each pricing with the break-even points.
    None for a network without spiking layers."""
    nets = {m: be["network"] for m, be in (em.get("break_even") or {}).items() if be.get("network")}
    nets = {m: n for m, n in nets.items() if n["pricings"]}
    if not nets:
        return None
    plt = _plt()
    cols = min(3, len(nets))
    rows = -(-len(nets) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    styles = ["--", ":", "-."]
    for ax, (model, net) in zip(axes.flat, nets.items(), strict=False):
        r0 = net["input_rate"]
        e0, e1 = net["snn_no_spikes_j"], net["snn_j"]
        slope = (e1 - e0) / r0 if r0 else 0.0
        xmax = max(0.3, 2 * r0)
        for p in net["pricings"].values():
            r = p.get("break_even_rate")
            if r is not None and 0 < r < 1:
                xmax = max(xmax, min(1.0, 1.3 * r))
        ax.plot([0, xmax], [e0 * 1e6, (e0 + slope * xmax) * 1e6], color="#4c72b0", label="spiking layers")
        ax.axvline(r0, color="#55a868", linewidth=1, label=f"measured {r0:.3g}")
        for i, (name, p) in enumerate(net["pricings"].items()):
            if p["ann_j"] is None:
                continue
            ax.axhline(p["ann_j"] * 1e6, color="#c44e52", linestyle=styles[i % 3], linewidth=1, label=f"ANN {name}")
            r = p.get("break_even_rate")
            if r is not None and 0 < r <= xmax:
                ax.plot([r], [p["ann_j"] * 1e6], "o", color="#c44e52", markersize=4)
        ax.set_title(model, fontsize=8)
        ax.set_xlabel("mean input rate (spikes per input and step)", fontsize=7)
        ax.set_ylabel("µJ per sample", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5)
    for ax in list(axes.flat)[len(nets) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


# ------------------------------------------------------------------ training and evaluation (spklip)


def training_curves_png(history: list[dict]) -> bytes:
    """Training loss and validation accuracy / recall per epoch."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch")
    a.set_ylabel("contrastive loss (train)")
    for key, label in (
        ("val_top1", "val top-1 (zero-shot class)"),
        ("val_top5", "val top-5"),
        ("val_R@1", "val text→video R@1"),
        ("val_R@5", "val text→video R@5"),
    ):
        b.plot(ep, [100 * h[key] for h in history], marker="o", label=label)
    b.set_xlabel("epoch")
    b.set_ylabel("%")
    b.set_ylim(0, 100)
    b.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def confusion_png(cm: np.ndarray, classes: list[str], title: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(classes)))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)))
    ax.set_yticklabels(classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    int(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def shots_png(results: list[dict], title: str) -> bytes:
    """Accuracy against shots per class (the paper's Fig. 4 analogue)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    k = [r["shots"] for r in results]
    ax.plot(k, [100 * r["top1_after"] for r in results], marker="o", label="adapted")
    ax.plot(k, [100 * r["top1_before"] for r in results], marker="x", linestyle="--", label="before adaptation")
    ax.set_xlabel("shots per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _png(fig)


# ------------------------------------------------------------------ the convert verb


def sweep_png(rows: list[dict], title: str, layer_rows: list[dict] | None = None) -> bytes:
    """Zero-shot top-1 vs T (with 95 % intervals) and energy per clip (compute, memory, total) vs T; with
    ``layer_rows`` a third panel: top-1 and total energy as one more unit is converted.

    ``rows``: the ANN row (``timesteps`` None; a QCFS ANN row too) and one row per T.
    """
    plt = _plt()
    ann = next((r for r in rows if r["timesteps"] is None), None)
    quant = next((r for r in rows if r["timesteps"] is None and r is not ann), None)
    snn = sorted((r for r in rows if r["timesteps"] is not None), key=lambda r: r["timesteps"])
    ts = [r["timesteps"] for r in snn]
    fig, axes = plt.subplots(1, 3 if layer_rows else 2, figsize=(15 if layer_rows else 10, 3.8))
    a, b = axes[0], axes[1]
    top = [100 * r["top1"] for r in snn]
    if all("top1_ci" in r for r in snn):
        err = [
            [t - 100 * r["top1_ci"][0] for t, r in zip(top, snn, strict=True)],
            [100 * r["top1_ci"][1] - t for t, r in zip(top, snn, strict=True)],
        ]
        a.errorbar(ts, top, yerr=err, marker="o", capsize=3, label="converted (SNN), 95% Wilson")
    else:
        a.plot(ts, top, marker="o", label="converted (SNN)")
    if ann is not None:
        a.axhline(100 * ann["top1"], linestyle="--", color="gray", label="ANN")
    if quant is not None:
        a.axhline(100 * quant["top1"], linestyle=":", color="C3", label=quant.get("label", "quantized ANN"))
    a.set_xscale("log", base=2)
    _t_ticks(a, ts)
    a.set_xlabel("time steps T")
    a.set_ylabel("zero-shot top-1 (%)")
    a.set_ylim(0, 100)
    a.legend(fontsize=8)
    for key, label, color in (("total_j", "total", "C0"), ("compute_j", "compute", "C1"), ("memory_j", "memory", "C2")):
        b.plot(ts, [r[key] for r in snn], marker="o", color=color, label=f"{label} (SNN)")
        if ann is not None:
            b.axhline(ann[key], linestyle="--", color=color, alpha=0.6, label=f"{label} (ANN)")
    b.set_xscale("log", base=2)
    _t_ticks(b, ts)
    b.set_yscale("log")
    b.set_xlabel("time steps T")
    b.set_ylabel("energy per clip (J, paper preset)")
    b.legend(fontsize=7)
    if layer_rows:
        c = axes[2]
        xs = range(len(layer_rows))
        c.plot(xs, [100 * r["top1"] for r in layer_rows], marker="o", color="C0", label="top-1 (%)")
        c.set_ylabel("zero-shot top-1 (%)")
        c.set_ylim(0, 100)
        c.set_xticks(list(xs))
        c.set_xticklabels([r["layers"][-1] for r in layer_rows], fontsize=7)
        c.set_xlabel(f"converted up to (T={layer_rows[0]['timesteps']})")
        d = c.twinx()
        d.plot(xs, [r["total_j"] for r in layer_rows], marker="s", color="C1", label="total J (paper)")
        if ann is not None:
            d.axhline(ann["total_j"], linestyle="--", color="C1", alpha=0.6)
        d.set_ylabel("energy per clip (J)")
        c.legend(fontsize=7, loc="lower left")
        d.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def _t_ticks(ax, ts: list[int]) -> None:
    ax.set_xticks(ts)
    ax.set_xticklabels([str(t) for t in ts])
    ax.minorticks_off() if ax.get_yscale() == "linear" else ax.xaxis.set_minor_locator(_null())


def _null():
    from matplotlib.ticker import NullLocator

    return NullLocator()
