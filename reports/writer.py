"""Write report and comparison files (all atomically: temporary file, then rename)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path
from . import plots, render


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def summary_json(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=_json_default, allow_nan=False) + "\n"


def write_report(out_dir: str | os.PathLike, summary: dict, per_layer: pd.DataFrame) -> dict[str, Path]:
    """Write report.md, report.html, per_layer.csv, summary.json and the PNG plots into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kind = summary["checkpoint"]["kind"]
    cost = summary["cost_model"]["name"]
    pngs: dict[str, bytes] = {
        "Energy per layer": plots.energy_per_layer_png(
            per_layer, f"{kind}: energy per layer under '{cost}' (compute / neuron / memory)"
        )
    }
    rate = plots.firing_rate_png(per_layer, f"{kind}: firing rate per spiking layer")
    if rate is not None:
        pngs["Firing rate per layer"] = rate
    files = {"energy_per_layer.png": pngs["Energy per layer"]}
    if rate is not None:
        files["firing_rate.png"] = rate
    paths: dict[str, Path] = {}
    for name, data in files.items():
        _write_bytes(out / name, data)
        paths[name] = out / name
    images_md = {"Energy per layer": "energy_per_layer.png"}
    if rate is not None:
        images_md["Firing rate per layer"] = "firing_rate.png"
    texts = {
        "report.md": render.report_markdown(summary, per_layer, images_md),
        "report.html": render.report_html(summary, per_layer, pngs),
        "summary.json": summary_json(summary),
        "per_layer.csv": per_layer.to_csv(index=False),
    }
    for name, text in texts.items():
        _write_text(out / name, text)
        paths[name] = out / name
    return paths


def write_comparison(out_dir: str | os.PathLike, rows: list[dict], cost_name: str, samples: int) -> dict[str, Path]:
    """Write comparison.md, comparison.csv, comparison.html and energy_vs_accuracy.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = render.comparison_frame(rows)
    plot = plots.energy_vs_accuracy_png(rows, f"energy per sample vs accuracy ('{cost_name}')")
    paths = {}
    _write_bytes(out / "energy_vs_accuracy.png", plot)
    paths["energy_vs_accuracy.png"] = out / "energy_vs_accuracy.png"
    md = render.comparison_markdown(df, cost_name, samples) + "\n![energy vs accuracy](energy_vs_accuracy.png)\n"
    for name, text in (
        ("comparison.md", md),
        ("comparison.csv", df.to_csv(index=False)),
        ("comparison.html", render.comparison_html(df, cost_name, samples, plot)),
    ):
        _write_text(out / name, text)
        paths[name] = out / name
    return paths
