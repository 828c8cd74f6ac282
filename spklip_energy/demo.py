"""The main job on the built-in data, as ``make demo`` runs it.

1. Generate the built-in spike-digits dataset (if missing) and a preview of one
   test clip per class.
2. Write checkpoints of the zoo's ANN and SNN reference models (seeded,
   untrained until the training milestone lands).
3. Profile each on the same test clips and write an energy report for the SNN
   and an ANN-vs-SNN comparison in the paper's Table 6 form.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .analysis import analyse_checkpoint, comparison_row
from .checkpoint import save_checkpoint
from .data.clips import ClipSelection, read_clip
from .data.digits import MOTIONS, DigitsConfig, generate_digits
from .data.manifest import load_manifest
from .data.preview import save_image_grid
from .data.reconstruct import tfp
from .reports.writer import write_comparison, write_report
from .zoo import build_model, default_card

#: The reference models the demo compares, ANN first (ratios are to it).
DEMO_KINDS = ("test-ann-cnn", "test-sj-snn", "test-snntorch-snn")


def write_class_preview(data: Path, out_png: Path, half_window: int = 16) -> Path:
    """TFP of one test clip per class at eight times, as one PNG grid."""
    m = load_manifest(data)
    rows = []
    ts = None
    for motion in MOTIONS:
        rec = next(c for c in m.clips if c.label == motion and c.split == "test")
        s = read_clip(rec, 0, rec.frames, ClipSelection())
        r = half_window
        ts = np.linspace(r, rec.frames - r - 1, 8).round().astype(int)
        rows.append(np.stack([tfp(s[t - r : t + r + 1], r)[0] for t in ts]))
    return save_image_grid(
        np.stack(rows), list(MOTIONS), [f"t={t}" for t in ts], out_png,
        title=f"built-in spike digits: TFP (r={half_window}) of one test clip per class",
    )


def run_demo(out: str | Path, seed: int = 0, samples: int = 16,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run the demo into ``out``; returns what it wrote and measured."""
    out = Path(out)
    data = out / "data"

    def step(name):
        return (lambda done, total: progress(name, done, total)) if progress else None

    if not (data / "manifest.jsonl").is_file():
        generate_digits(data, DigitsConfig(seed=seed), overwrite=True, progress=step("rendering clips"))
    preview = write_class_preview(data, out / "digits-preview.png")
    ckpt_dir = out / "checkpoints"
    rows, summaries = [], {}
    for kind in DEMO_KINDS:
        card = default_card(kind, seed=seed)
        card["note"] = "untrained: weights as initialised by the seed"
        path = save_checkpoint(ckpt_dir / f"{kind}.pt", build_model(card), card)
        summary, per_layer = analyse_checkpoint(path, data=data, samples=samples, progress=step(f"profiling {kind}"))
        summaries[kind] = summary
        rows.append(comparison_row(summary, kind))
        if kind == "test-sj-snn":
            write_report(out / "report-test-sj-snn", summary, per_layer)
    cost = summaries[DEMO_KINDS[0]]["cost_model"]["name"]
    write_comparison(out / "compare", rows, cost, samples)
    return {
        "data": str(data),
        "preview": str(preview),
        "checkpoints": [str(ckpt_dir / f"{k}.pt") for k in DEMO_KINDS],
        "report": str(out / "report-test-sj-snn"),
        "comparison": str(out / "compare"),
        "rows": rows,
        "summaries": summaries,
    }
