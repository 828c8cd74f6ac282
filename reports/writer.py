"""Write report and comparison folders, each whole: built in a temporary sibling, then swapped into place.

A failing run leaves the previous folder untouched and two runs never mix their files
(:func:`spklip_energy.atomic.replace_output_dir`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from spklip_energy.atomic import replace_output_dir

from . import plots, render

if TYPE_CHECKING:
    from energy.record import EnergyReport

REPORT_FILES = frozenset(
    {
        "report.md",
        "report.html",
        "summary.json",
        "per_layer.csv",
        "energy_per_layer.png",
        "firing_rate.png",
        "energy_by_part.png",
        "energy_models.png",
        "break_even.png",
    }
)
COMPARISON_FILES = frozenset(
    {
        "comparison.md",
        "comparison.csv",
        "comparison.html",
        "comparison.json",
        "energy_vs_accuracy.png",
        "energy_by_part.png",
        "energy_models.png",
    }
)


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _dumps(doc) -> str:
    """Strict JSON (no NaN), indented, numpy scalars as numbers: the form of every JSON file written here."""
    return json.dumps(doc, indent=2, default=_json_default, allow_nan=False) + "\n"


def summary_json(summary: EnergyReport) -> str:
    """The text of ``summary.json``: what ``report`` writes and what ``report --json`` prints."""
    return _dumps(summary.to_json())


def write_report(out_dir: str | os.PathLike, summary: EnergyReport, per_layer: pd.DataFrame) -> dict[str, Path]:
    """Write report.md, report.html, per_layer.csv, summary.json and the PNG plots into ``out_dir``
    (energy_by_part.png only for a report with parts: a SPKLIP checkpoint)."""
    out = Path(out_dir)
    kind = summary.checkpoint.kind
    cost = summary.cost_model["name"]
    files: dict[str, bytes] = {}  # PNG file name -> bytes
    captions: dict[str, str] = {}  # caption -> PNG file name, in the order the report shows them
    if summary.parts:
        files["energy_by_part.png"] = plots.energy_by_part_png(
            summary.parts, f"{kind}: energy per sample by model part under '{cost}' (compute / neuron / memory)"
        )
        captions["Energy by part"] = "energy_by_part.png"
    files["energy_per_layer.png"] = plots.energy_per_layer_png(
        per_layer, f"{kind}: energy per layer under '{cost}' (compute / neuron / memory)"
    )
    captions["Energy per layer"] = "energy_per_layer.png"
    rate = plots.firing_rate_png(per_layer, f"{kind}: firing rate per spiking layer")
    if rate is not None:
        files["firing_rate.png"] = rate
        captions["Firing rate per layer"] = "firing_rate.png"
    em = summary.energy_models
    if em:
        ranges = plots.energy_ranges_png({kind: em}, f"{kind}: energy per sample under each published model")
        if ranges is not None:
            files["energy_models.png"] = ranges
            captions["Energy under each model"] = "energy_models.png"
        be = plots.break_even_png(em, f"{kind}: spiking layers vs their ANN twins against the input rate")
        if be is not None:
            files["break_even.png"] = be
            captions["Energy against input rate, with break-even points"] = "break_even.png"
    pngs = {caption: files[name] for caption, name in captions.items()}
    texts = {
        "report.md": render.report_markdown(summary, per_layer, captions),
        "report.html": render.report_html(summary, per_layer, pngs),
        "summary.json": summary_json(summary),
        "per_layer.csv": per_layer.to_csv(index=False),
    }
    with replace_output_dir(out, "report", REPORT_FILES) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return {name: out / name for name in [*files, *texts]}


def _finite_or_none(o):
    """``o`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(o, dict):
        return {k: _finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_none(v) for v in o]
    if hasattr(o, "item") and not isinstance(o, (str, bytes)):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def comparison_json(rows: list[dict], cost_name: str, samples: int, baseline: int = 0) -> str:
    """The comparison rows as JSON, with the cost model, the samples profiled and the baseline's name."""
    doc = {"rows": rows, "cost_model": cost_name, "samples": samples, "baseline": rows[baseline]["name"]}
    return _dumps(_finite_or_none(doc))


def write_comparison(
    out_dir: str | os.PathLike, rows: list[dict], cost_name: str, samples: int, baseline: int = 0
) -> dict[str, Path]:
    """Write comparison.md, comparison.csv, comparison.html, comparison.json, energy_vs_accuracy.png and,
    when at least one row has energy by part (a SPKLIP checkpoint), energy_by_part.png; ratios and paired
    tests are to ``rows[baseline]`` (the first by default)."""
    out = Path(out_dir)
    df = render.comparison_frame(rows, baseline)
    plot = plots.energy_vs_accuracy_png(rows, f"energy per sample vs accuracy ('{cost_name}')")
    by_part = plots.energy_by_part_comparison_png(rows, f"energy per sample by model part ('{cost_name}')")
    files = {"energy_vs_accuracy.png": plot}
    md = render.comparison_markdown(df, cost_name, samples) + "\n![energy vs accuracy](energy_vs_accuracy.png)\n"
    if by_part is not None:
        files["energy_by_part.png"] = by_part
        md += "\n![energy by part](energy_by_part.png)\n"
    ranges = plots.energy_ranges_png(
        {r["name"]: r["energy_models"] for r in rows if r.get("energy_models")},
        "energy per sample under each published model",
    )
    if ranges is not None:
        files["energy_models.png"] = ranges
        md += "\n![energy under each model](energy_models.png)\n"
    texts = {
        "comparison.md": md,
        "comparison.csv": df.to_csv(index=False),
        "comparison.html": render.comparison_html(df, cost_name, samples, plot, by_part),
        "comparison.json": comparison_json(rows, cost_name, samples, baseline),
    }
    with replace_output_dir(out, "compare", COMPARISON_FILES) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        for name, text in texts.items():
            (tmp / name).write_text(text, encoding="utf-8")
    return {name: out / name for name in [*files, *texts]}


BENCHMARK_FILES = frozenset(
    {"benchmark.md", "benchmark.json", "benchmark.csv", "accuracy_vs_energy.png", "conversion_vs_t.png"}
)


def benchmark_frame(result: dict) -> pd.DataFrame:
    """One row per arm: the figures of the protocol's table, flat."""
    out = []
    for r in result["rows"]:
        vs = r.get("vs_control") or {}
        ref = r.get("vs_reference") or {}
        out.append(
            {
                "arm": r["arm"],
                "seeds": len(r["seeds"]),
                "top1_mean": r["top1_mean"],
                "top1_std": r["top1_std"],
                "top1_ci_low": r["top1_pooled"]["ci_low"],
                "top1_ci_high": r["top1_pooled"]["ci_high"],
                "diff_vs_control": vs.get("difference"),
                "diff_ci_low": (vs.get("difference_ci") or [None])[0],
                "diff_ci_high": (vs.get("difference_ci") or [None, None])[1],
                "mcnemar_p": vs.get("p_value"),
                "R@5_pooled": r["R@5_pooled"]["value"],
                "energy_total_j": r["energy_total_j"],
                "energy_compute_j": r["energy_compute_j"],
                "energy_memory_j": r["energy_memory_j"],
                "energy_vs_ann": r.get("energy_vs_ann"),
                "train_s": r["train_s"],
                "reference_arm": ref.get("arm"),
                "diff_vs_reference": ref.get("difference"),
                "diff_vs_reference_ci_low": (ref.get("difference_ci") or [None])[0],
                "diff_vs_reference_ci_high": (ref.get("difference_ci") or [None, None])[1],
                "mcnemar_p_vs_reference": ref.get("p_value"),
            }
        )
    return pd.DataFrame(out)


def write_benchmark(out_dir: str | os.PathLike, result: dict) -> dict[str, Path]:
    """Write the protocol's table (Markdown, CSV), its JSON record and the accuracy-vs-energy plot."""
    title = f"A.7 protocol: {result['data']}, preset {result['preset']}, seeds {', '.join(map(str, result['seeds']))}"
    png = plots.benchmark_png(result["rows"], title)
    from spklip_energy.benchmark import ARM_TITLES

    conv_png = plots.conversion_png(
        render.conversion_curves(result),
        ARM_TITLES,
        f"ANN-to-SNN conversion against T: {result['data']}, seeds {', '.join(map(str, result['seeds']))}",
        result["cost_model"],
    )
    with replace_output_dir(out_dir, "benchmark", BENCHMARK_FILES) as tmp:
        sweep = render.convert_sweep_markdown(result)
        (tmp / "benchmark.md").write_text(
            f"# {title}\n\n"
            + render.benchmark_markdown(result)
            + "\n![accuracy vs energy](accuracy_vs_energy.png)\n"
            + (f"\n{sweep}\n![conversion against T](conversion_vs_t.png)\n" if sweep else "")
        )
        if conv_png is not None:
            (tmp / "conversion_vs_t.png").write_bytes(conv_png)
        (tmp / "benchmark.json").write_text(json.dumps(_finite_or_none(result), indent=1, default=_json_default) + "\n")
        benchmark_frame(result).to_csv(tmp / "benchmark.csv", index=False)
        (tmp / "accuracy_vs_energy.png").write_bytes(png)
    out = Path(out_dir)
    return {name: out / name for name in sorted(BENCHMARK_FILES) if (out / name).exists()}
