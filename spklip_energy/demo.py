"""The main job on the built-in data, as ``make demo`` runs it.

1. Generate the built-in spike-digits dataset (if missing) and a preview of one
   test clip per class.
2. Train the tiny SPKLIP on it (the preset's epochs; a few minutes on 2 cores),
   evaluate it on the test split (zero-shot class accuracy, text-to-video
   retrieval) and write its energy report.
3. Write checkpoints of the zoo's reference ANN and SNNs (seeded, untrained),
   profile them on the same test clips, and compare everything in the form of
   the paper's Table 6.
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
from .model.config import preset_config
from .model.training import train, write_eval
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


def run_demo(out: str | Path, seed: int = 0, samples: int = 16, train_spklip: bool = True,
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
    spklip_eval = None
    if train_spklip:
        run = out / "spklip-tiny"
        last = run / "last.pt"
        cfg = preset_config("tiny", {"train.seed": seed})
        if not last.is_file():
            bar = step("training tiny SPKLIP")
            train(cfg, data, run, progress=(lambda p: bar(p["epoch"] - 1 + p["step"] / p["steps"], p["epochs"]))
                  if bar else None)
        spklip_eval = write_eval(last, data, split="test", out_png=run / "confusion.png")
        summary, per_layer = analyse_checkpoint(last, data=data, samples=samples,
                                                progress=step("profiling spklip-tiny"))
        write_report(out / "report-spklip-tiny", summary, per_layer)
        summaries["spklip-tiny"] = summary
        rows.append(comparison_row(summary, "spklip-tiny"))
    for kind in DEMO_KINDS:
        card = default_card(kind, seed=seed)
        card["note"] = "untrained: weights as initialised by the seed"
        path = save_checkpoint(ckpt_dir / f"{kind}.pt", build_model(card), card)
        summary, per_layer = analyse_checkpoint(path, data=data, samples=samples, progress=step(f"profiling {kind}"))
        summaries[kind] = summary
        rows.append(comparison_row(summary, kind))
        if kind == "test-sj-snn":
            write_report(out / "report-test-sj-snn", summary, per_layer)
    cost = next(iter(summaries.values()))["cost_model"]["name"]
    write_comparison(out / "compare", rows, cost, samples)
    return {
        "data": str(data),
        "preview": str(preview),
        "checkpoints": [str(ckpt_dir / f"{k}.pt") for k in DEMO_KINDS],
        "report": str(out / "report-test-sj-snn"),
        "spklip_eval": {k: v for k, v in (spklip_eval or {}).items() if k != "confusion"} or None,
        "comparison": str(out / "compare"),
        "rows": rows,
        "summaries": summaries,
    }
