"""ANN vs. hybrid vs. full-spiking SPKLIP over several seeds, on equal budgets (issue 6's ordering target).

For each seed: train the tiny ANN SPKLIP from scratch, then train three models
from it with the same recipe and epochs (``train --init``): the ANN again (the
equal-budget control), ``fsve-hybrid`` and ``fsve-full``. Each is evaluated on
the test split; the table gives every run and the mean +- std over seeds.

    python benchmarks/fsve_seeds.py [--seeds 0,1,2] [--preset tiny] [--work DIR] [--out docs/fsve-seeds.md]

Runs are kept under ``--work`` (default ``runs/fsve-seeds``) and reused when
their ``last.pt`` exists, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from spklip_energy.data import builtin_dataset
from spklip_energy.data.manifest import load_manifest
from spklip_energy.model import preset_config
from spklip_energy.model.data import clips_for
from spklip_energy.model.io import load_spklip
from spklip_energy.model.training import evaluate_model, train

#: (row name, model, trained from the seed's ANN?)
ARMS = (
    ("ANN (first run)", "spklip", False),
    ("ANN control (+ same budget again)", "spklip", True),
    ("fsve-hybrid (from ANN)", "fsve-hybrid", True),
    ("fsve-full (from ANN)", "fsve-full", True),
)


def run_arm(preset: str, model: str, seed: int, root: Path, run: Path, init: Path | None) -> dict:
    last = run / "last.pt"
    wall = None
    if not last.is_file():
        cfg = preset_config(preset, {"model": model, "train.seed": seed})
        t0 = time.perf_counter()
        train(cfg, root, run, init=init)
        wall = round(time.perf_counter() - t0, 1)
    loaded = load_spklip(last)
    manifest = load_manifest(root)
    test = evaluate_model(loaded.model, loaded.tokenizer, clips_for(loaded.model.cfg, manifest, "test"),
                          torch.device("cpu"))
    return {"top1": test["top1"], "R@5": test["R@5"], "train_s": wall, "checkpoint": str(last)}


def pct(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{100 * xs[0]:.1f}"
    return f"{100 * statistics.mean(xs):.1f} +- {100 * statistics.stdev(xs):.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--work", type=Path, default=Path("runs/fsve-seeds"))
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    root = builtin_dataset()
    results: dict[str, dict[int, dict]] = {name: {} for name, _, _ in ARMS}
    for seed in seeds:
        ann = None
        for name, model, from_ann in ARMS:
            tag = model + ("-from-ann" if from_ann else "")
            r = run_arm(args.preset, model, seed, root, args.work / f"seed{seed}" / tag, ann if from_ann else None)
            if not from_ann:
                ann = Path(r["checkpoint"])
            results[name][seed] = r
            print(json.dumps({"seed": seed, "arm": name, **r}), flush=True)
    head = " | ".join(f"seed {s}" for s in seeds)
    lines = [
        f"# ANN vs. hybrid vs. full-spiking SPKLIP over seeds ({args.preset} preset, built-in data)",
        "",
        "Test top-1 (40 clips, 8 classes; one clip = 2.5 points), zero-shot against the class prompts. "
        "Every arm after the first is trained from that seed's first ANN with the same recipe and "
        "epochs, so the control and the spiking variants have equal budgets.",
        "",
        f"| arm | {head} | mean +- std | R@5 mean |",
        "|---|" + "---|" * (len(seeds) + 2),
    ]
    for name, _, _ in ARMS:
        top1 = [results[name][s]["top1"] for s in seeds]
        r5 = [results[name][s]["R@5"] for s in seeds]
        cells = " | ".join(f"{100 * t:.1f}" for t in top1)
        lines.append(f"| {name} | {cells} | {pct(top1)} | {100 * statistics.mean(r5):.1f} |")
    lines += ["", f"Command: `python benchmarks/fsve_seeds.py --seeds {args.seeds} --preset {args.preset}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
