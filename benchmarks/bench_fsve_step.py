"""One training step of the FSVE against the same-preset ANN SPKLIP, side by side.

For each model at one preset (``spklip``, ``fsve-hybrid``, ``fsve-full`` with the ANN front end and
with the spiking front end in both encodings): the median wall time of a full training step (forward
of both towers, contrastive loss, backward, AdamW step) on a random binary batch, measured in
alternation so that drift hits all alike. Prints the ratio to the ANN; the target is <= 3x for
``fsve-full`` (its default: the spiking front end) on this CPU.

    python benchmarks/bench_fsve_step.py [--preset tiny] [--batch 16] [--repeat 5] [--threads N] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spklip import build_spklip, preset_config
from spklip.loss import clip_loss

TARGET = 3.0
#: name -> config overrides; the target applies to "fsve-full" (its defaults)
MODELS = {
    "spklip": {"model": "spklip"},
    "fsve-hybrid": {"model": "fsve-hybrid"},
    "fsve-full (ANN front end)": {"model": "fsve-full", "fsve.hsfe": "ann"},
    "fsve-full": {"model": "fsve-full"},
    "fsve-full (repeat)": {"model": "fsve-full", "fsve.hsfe_encoding": "repeat"},
}


def _step_fn(overrides: dict, preset: str, batch: int):
    cfg = preset_config(preset, overrides)
    model = build_spklip(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(batch, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).to(torch.uint8)
    tokens = torch.randint(4, cfg.text.vocab_size, (batch, cfg.text.context_length), generator=g)
    labels = torch.arange(batch)

    def step() -> None:
        out = model(spikes, tokens)
        loss = clip_loss(out.spike_features, out.text_features, out.logit_scale, labels=labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = tuple(MODELS)
    fns, params = zip(*(_step_fn(MODELS[n], args.preset, args.batch) for n in names), strict=True)
    for fn in fns:  # warm-up
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(args.repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    med = [statistics.median(t) for t in times]
    rows = [
        {"model": n, "params": p, "step_s": m, "ratio_to_ann": m / med[0]}
        for n, p, m in zip(names, params, med, strict=True)
    ]
    result = {
        "preset": args.preset,
        "batch": args.batch,
        "repeat": args.repeat,
        "threads": torch.get_num_threads(),
        "target_ratio": TARGET,
        "rows": rows,
        "target_met": rows[names.index("fsve-full")]["ratio_to_ann"] <= TARGET,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"training step, preset {args.preset}, batch {args.batch}, {torch.get_num_threads()} threads, "
        f"median of {args.repeat}"
    )
    for r in rows:
        print(f"  {r['model']:<26} {r['params']:>9,d} params  {r['step_s']:.3f} s  {r['ratio_to_ann']:.2f}x ANN")
    full = rows[names.index("fsve-full")]
    print(
        f"fsve-full / ANN = {full['ratio_to_ann']:.2f} (target <= {TARGET}): "
        f"{'met' if result['target_met'] else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
