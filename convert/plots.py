"""The figure of ``spklip-energy convert``: accuracy and energy per clip against T, the ANN as reference."""

from __future__ import annotations

from ..reports.plots import _plt, _png


def sweep_png(rows: list[dict], title: str) -> bytes:
    """Two panels: zero-shot top-1 vs T, and energy per clip (compute, memory, total) vs T.

    ``rows``: the ANN row (``timesteps`` None) and one row per T.
    """
    plt = _plt()
    ann = next((r for r in rows if r["timesteps"] is None), None)
    snn = sorted((r for r in rows if r["timesteps"] is not None), key=lambda r: r["timesteps"])
    ts = [r["timesteps"] for r in snn]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    a.plot(ts, [100 * r["top1"] for r in snn], marker="o", label="converted (SNN)")
    if ann is not None:
        a.axhline(100 * ann["top1"], linestyle="--", color="gray", label="ANN")
    a.set_xscale("log", base=2)
    _t_ticks(a, ts)
    a.set_xlabel("time steps T")
    a.set_ylabel("zero-shot top-1 (%)")
    a.set_ylim(0, 100)
    a.legend(fontsize=8)
    for key, label, color in (("total_j", "total", "C0"), ("compute_j", "compute", "C1"),
                              ("memory_j", "memory", "C2")):
        b.plot(ts, [r[key] for r in snn], marker="o", color=color, label=f"{label} (SNN)")
        if ann is not None:
            b.axhline(ann[key], linestyle="--", color=color, alpha=0.6, label=f"{label} (ANN)")
    b.set_xscale("log", base=2)
    _t_ticks(b, ts)
    b.set_yscale("log")
    b.set_xlabel("time steps T")
    b.set_ylabel("energy per clip (J, paper preset)")
    b.legend(fontsize=7)
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
