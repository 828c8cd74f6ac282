"""The figure of ``spklip-energy convert``: accuracy and energy per clip against T, the ANN as reference."""

from __future__ import annotations

from reports.plots import _plt, _png


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


__all__ = ["sweep_png"]
