"""Training step of the visual encoder with the front end fused against branch by branch, side by side.

The speed-ups of issue 17 change no result beyond floating-point summation order
(tests/test_training_speed.py checks maps and gradients):

* the MTF branches' first convolutions run as one convolution over the whole block (each
  branch's weights at its own frames, zeros elsewhere), their second ones as one convolution
  with block-diagonal weights (ANN front end); the spiking front end's first convolutions as
  one per time step;
* integer spike frames are pooled as integers over a reshaped view (``SpikeAvgPool2d``,
  ``SpikeMaxPool2d``) before they become float.

Three ways, side by side: branch by branch (a no-op forward hook on the branches, which is
what makes the front end run as written, as the energy profiler sees it) with the frames
pooled in float (``AvgPool2d`` / ``MaxPool2d``'s own path); branch by branch with integer
pooling; fused with integer pooling, as training runs. Each model: one optimiser-free step =
forward of a batch of binary spike clips, a loss, backward; the ways alternate ``--repeat``
times on the same batch and thread count; the script prints the median milliseconds per step
and the ratios.

    python benchmarks/bench_front_end.py [--models spklip,fsve-hybrid,fsve-full,fsve-full-plain]
        [--batch 16] [--threads 1] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from spklip import build_spklip, preset_config
from spklip_energy.demo import DEMO_MODELS


def _front_end(visual: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in visual.modules() if type(m).__name__ in ("HSFE", "SpikingHSFE"))


def _step(visual: torch.nn.Module, spikes: torch.Tensor) -> float:
    t0 = time.perf_counter()
    visual.zero_grad(set_to_none=True)
    out = visual(spikes)
    out.float().pow(2).mean().backward()
    return time.perf_counter() - t0


def measure(model: str, batch: int, repeat: int, seed: int = 0) -> dict:
    cfg = preset_config("tiny", {**DEMO_MODELS[model], "train.seed": seed})
    torch.manual_seed(seed)
    visual = build_spklip(cfg).visual.train()
    g = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(batch, cfg.frames, cfg.height, cfg.width, generator=g) < 0.1).to(torch.uint8)
    front = _front_end(visual)
    modes = ("written, float pooling", "written", "fused")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for i in range(repeat + 1):  # the first round warms every path up and is not kept
        for mode in modes:
            handle = front.branches.register_forward_pre_hook(lambda *a: None) if mode != "fused" else None
            # float frames take AvgPool2d / MaxPool2d's own path; uint8 ones the integer pooling
            dt = _step(visual, spikes.float() if mode == "written, float pooling" else spikes)
            if handle is not None:
                handle.remove()
            if i:
                times[mode].append(dt)
    ms = {m: 1000 * statistics.median(times[m]) for m in modes}
    return {
        "model": model,
        "batch": batch,
        "ms": ms,
        "speedup_fused": ms["written"] / ms["fused"],
        "speedup_both": ms["written, float pooling"] / ms["fused"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEMO_MODELS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(m, args.batch, args.repeat) for m in args.models.split(",")]
    if args.json:
        print(json.dumps({"threads": args.threads, "repeat": args.repeat, "rows": rows}))
        return
    print(
        f"visual encoder training step (forward + backward), tiny preset, batch {args.batch}, "
        f"{args.threads} thread(s), median of {args.repeat}:"
    )
    for r in rows:
        ms = r["ms"]
        print(
            f"  {r['model']:<16} branch by branch, float pooling {ms['written, float pooling']:5.0f} ms | "
            f"branch by branch {ms['written']:5.0f} ms | fused {ms['fused']:5.0f} ms | speed-up from "
            f"fusing {r['speedup_fused']:4.2f}x, from both {r['speedup_both']:4.2f}x"
        )


if __name__ == "__main__":
    main()
