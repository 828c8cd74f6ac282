"""Ablations of SPKLIP (the forms of the paper's Tables 2-4) over seeds, with intervals and paired tests.

Each variant is the ANN arm of the A.7 protocol (``spklip-energy benchmark --arms ann``) with the
variant's config overrides, trained for every seed on the same data; the full model is the
protocol's own ANN (its runs are shared with ``spklip-energy benchmark``'s default work folder).
Every variant is compared with the full model of the same seed on the same test clips: exact
McNemar on the clips only one of them gets right, pooled over seeds, and the paired-bootstrap
interval of the difference. Parameters and operations per clip come from this project's counter.
Resumable like the protocol: finished runs are reused.

    python benchmarks/ablations.py [--seeds 0,1,2] [--preset tiny] [--data builtin-bench]
        [--only 2,5] [--threads 1] [--jobs 2] [--out docs/ablations.md]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from energy import profile
from spklip import build_spklip, preset_config
from spklip_energy.benchmark import BenchmarkPlan, run_benchmarks, work_dir
from spklip_energy.stats import (
    decode_hits,
    fmt_difference,
    fmt_interval,
    fmt_mean_std,
    mcnemar_exact,
)

VARIANTS = {
    "full model": {},
    "no photon-conservation slicing (Table 2)": {"hsfe.slicing": False},
    "3 blocks (Table 3)": {"hsfe.n_blocks": 3, "hsfe.window_step": 94},
    "7 blocks (Table 3)": {"hsfe.n_blocks": 7, "hsfe.window_step": 31},
    "no SA (Table 4)": {"hsfe.sa": False},
    "no STAR-Net: pooling (Table 4)": {"starnet.enabled": False},
}


def ops_per_clip(cfg) -> int:
    m = build_spklip(cfg).eval()
    x = torch.rand(1, cfg.frames, cfg.height, cfg.width, generator=torch.Generator().manual_seed(0)) < 0.05
    t = profile(m.visual, x.to(torch.uint8), samples=1).totals
    return t["macs"] + t["sops"]


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")[:40]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--data", default="builtin-bench")
    ap.add_argument("--only", help="comma-separated variant numbers (1-based) besides the full model")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per training (default 1, as the protocol run whose full-model arms are reused)",
    )
    ap.add_argument("--jobs", type=int, default=2, help="trainings side by side (default 2)")
    ap.add_argument("--work", type=Path, help="the protocol's work folder (default: benchmark's default)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for every variant (e.g. train.epochs=10)",
    )
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = list(VARIANTS.items())
    if args.only:
        chosen = [chosen[0]] + [chosen[int(i) - 1] for i in args.only.split(",") if int(i) != 1]
    base_work = work_dir(args.work, args.data, args.preset)
    common = {
        k: json.loads(v) if v[:1] in "0123456789-[{tf" else v for k, _, v in (item.partition("=") for item in args.set)
    }
    t0 = time.perf_counter()
    plans = []
    for name, overrides in chosen:
        work = base_work if not overrides else base_work.parent / "ablations" / f"{base_work.name}-{_slug(name)}"
        plans.append(
            BenchmarkPlan(
                seeds=seeds,
                preset=args.preset,
                data=args.data,
                arms=("ann",),
                work=work,
                threads=args.threads,
                jobs=args.jobs,
                overrides={**common, **overrides},
            )
        )
    # one pool for all variants and seeds: no worker waits for a variant's last seed
    outcomes = run_benchmarks(plans, args.jobs, log=lambda line: print(line, flush=True))
    results = {}
    for (name, overrides), res in zip(chosen, outcomes, strict=True):
        results[name] = {
            "overrides": overrides,
            "row": res["rows"][0],
            "records": res["records"],
            "cfg": preset_config(args.preset, {**common, **overrides}),
        }
    full = {r["seed"]: decode_hits(r["per_clip"]["top1"]) for r in results["full model"]["records"]}
    lines = [
        f"| variant | overrides | visual params | ops/clip (MAC+SOP) | top-1 mean ± std | pooled 95 % CI | "
        f"{' | '.join(f'seed {s}' for s in seeds)} | Δ vs full [95 % CI] | McNemar p | R@5 pooled | train time |",
        "|---|---|---|---|---|---|" + "---|" * len(seeds) + "---|---|---|---|",
    ]
    for name, r in results.items():
        row, cfg = r["row"], r["cfg"]
        hits = {rec["seed"]: decode_hits(rec["per_clip"]["top1"]) for rec in r["records"]}
        if name == "full model":
            diff, p = "—", "—"
        else:
            test = mcnemar_exact(np.concatenate([hits[s] for s in seeds]), np.concatenate([full[s] for s in seeds]))
            diff = fmt_difference(test["difference"], *test["difference_ci"])
            p = f"{test['p_value']:.3g}"
        ov = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in r["overrides"].items()) or "—"
        params = sum(q.numel() for q in build_spklip(cfg).visual.parameters())
        per_seed = " | ".join(f"{100 * row['top1_per_seed'][s]:.1f}" for s in seeds)
        pooled = row["top1_pooled"]
        lines.append(
            f"| {name} | {ov} | {params:,} | {ops_per_clip(cfg) / 1e6:.1f} M | "
            f"{fmt_mean_std(row['top1_mean'], row['top1_std'])} | "
            f"{fmt_interval(pooled['ci_low'], pooled['ci_high'])} | "
            f"{per_seed} | {diff} | {p} | {100 * row['R@5_pooled']['value']:.1f} | "
            f"{row['train_s'] / 60:.0f} min |"
        )
    records = [rec for r in results.values() for rec in r["records"]]
    lines += [
        "",
        f"Test top-1 (%), zero-shot, {records[0]['clips']} test clips per seed ({args.data}, preset {args.preset}, "
        f"seeds {args.seeds}, {args.threads} threads, code {', '.join(sorted({str(x['commit']) for x in records}))}). "
        "Pooled 95 % CI: Wilson over the clips of all seeds; Δ vs full and McNemar p: each variant against the "
        "full model of the same seed on the same clips, pooled over seeds (paired bootstrap for the interval).",
        "",
        f"Command: `python benchmarks/ablations.py --seeds {args.seeds} --preset {args.preset} --data {args.data}` "
        f"({(time.perf_counter() - t0) / 60:.0f} min this call)",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        tmp = args.out.with_suffix(args.out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
