"""Ablations of SPKLIP on the built-in data (the forms of the paper's Tables 2-4), measured.

Trains the chosen preset once per variant with the same seed and data, evaluates
each on the test split, and prints a Markdown table (also written with --out):
photon-conservation slicing on/off (Table 2), 3/5/7 temporal blocks (Table 3),
SA on/off and STAR-Net on/off (Table 4). Parameters and MACs per clip are
counted by this project's energy counter.

    python benchmarks/ablations.py [--preset tiny] [--epochs N] [--seed 0] [--out docs/ablations.md]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from spklip_energy.data import builtin_dataset
from spklip_energy.data.manifest import load_manifest
from spklip_energy.energy import profile
from spklip_energy.model import build_spklip, preset_config
from spklip_energy.model.data import clips_for
from spklip_energy.model.io import load_spklip
from spklip_energy.model.training import evaluate_model, train

VARIANTS = {
    "full model": {},
    "no photon-conservation slicing (Table 2)": {"hsfe.slicing": False},
    "3 blocks (Table 3)": {"hsfe.n_blocks": 3, "hsfe.window_step": 94},
    "7 blocks (Table 3)": {"hsfe.n_blocks": 7, "hsfe.window_step": 31},
    "no SA (Table 4)": {"hsfe.sa": False},
    "no STAR-Net: pooling (Table 4)": {"starnet.enabled": False},
}


def macs_per_clip(cfg) -> int:
    m = build_spklip(cfg).eval()
    x = (torch.rand(1, cfg.frames, cfg.height, cfg.width) < 0.05).to(torch.uint8)
    t = profile(m.visual, x, samples=1).totals
    return t["macs"] + t["sops"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", help="comma-separated variant numbers (1-based) to run")
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    root = builtin_dataset()
    manifest = load_manifest(root)
    chosen = list(VARIANTS.items())
    if args.only:
        chosen = [chosen[int(i) - 1] for i in args.only.split(",")]
    rows = []
    for name, ov in chosen:
        cfg = preset_config(args.preset, {**ov, "train.seed": args.seed})
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            res = train(cfg, root, Path(d) / "run", epochs=args.epochs)
            wall = time.perf_counter() - t0
            loaded = load_spklip(res.checkpoint)
            test = evaluate_model(loaded.model, loaded.tokenizer, clips_for(cfg, manifest, "test"),
                                  torch.device("cpu"))
        params = sum(p.numel() for p in build_spklip(cfg).visual.parameters())
        row = {"variant": name, "overrides": ov, "params": params, "ops_per_clip": macs_per_clip(cfg),
               "top1": test["top1"], "top5": test["top5"], "R@1": test["R@1"], "R@5": test["R@5"],
               "train_s": round(wall, 1), "epochs": len(res.history)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    lines = [
        f"# Ablations on the built-in spike digits ({args.preset} preset, seed {args.seed})",
        "",
        "Test split (40 clips, 8 classes); top-1/top-5 are zero-shot class accuracy against the class "
        "prompts, R@k text-to-video retrieval with each clip's caption. Chance: top-1 12.5 %, R@5 12.5 %.",
        "",
        "| variant | overrides | visual params | ops/clip (MAC+SOP) | top-1 | top-5 | R@1 | R@5 | train time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ov = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in r["overrides"].items()) or "—"
        lines.append(f"| {r['variant']} | {ov} | {r['params']:,} | {r['ops_per_clip'] / 1e6:.1f} M | "
                     f"{100 * r['top1']:.1f} % | {100 * r['top5']:.1f} % | {100 * r['R@1']:.1f} % | "
                     f"{100 * r['R@5']:.1f} % | {r['train_s']:.0f} s ({r['epochs']} epochs) |")
    lines += ["", "Command: `python benchmarks/ablations.py --preset " + args.preset + f" --seed {args.seed}`", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
