"""Training throughput of the presets, one process against DistributedDataParallel, side by side in one run.

One timed unit is the contrastive training step ``train`` runs (the clip and text towers' forward with
the features of the global batch gathered, the symmetric contrastive loss, backward, gradient clipping,
AdamW): ``--batch`` clips per global batch of random spikes at the preset's geometry, ``--steps`` timed
steps after one warm-up step. For each preset it runs one process with ``--threads`` threads, then
``torchrun``-style N processes (``--nproc``) with ``--threads / N`` threads each on the CPU (gloo) or one
GPU each (nccl), and prints clips/s in total and per process, and the speed-up over one process.

    python benchmarks/bench_scale.py [--presets tiny,small,reference] [--nproc 2] [--batch 8] [--steps 3]
        [--device cpu|cuda] [--threads 2] [--json]

On the 2-core CPU of the project's machines the two processes share the two cores the one process had,
so the speed-up says what DDP costs (communication, smaller per-process batches), not what a second
machine or GPU would add; the README has the figures and, where one was lent, the GPU's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def _step_rate(preset: str, batch: int, steps: int, device: str) -> dict:
    """Run in one process of a (possibly one-process) world: clips/s of the contrastive step."""
    from spklip.config import preset_config
    from spklip.loss import clip_loss
    from spklip.model import build_spklip
    from spklip.training import _optimizer_step, _parallel, _Towers
    from spklip_energy.distributed import close_world, init_world, local_device, split_bounds
    from spklip_energy.precision import autocast, grad_scaler, resolve_precision

    world = init_world(torch.device(device))
    dev = local_device(world, torch.device(device))
    try:
        cfg = preset_config(preset, {"model": "spklip"})
        torch.manual_seed(0)
        model = build_spklip(cfg).to(dev).train()
        towers = _parallel(_Towers(model, None, world), world, dev)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-4)
        precision = resolve_precision("auto", dev)
        scaler = grad_scaler(precision, dev)
        g = torch.Generator().manual_seed(1)
        spikes = (torch.rand(batch, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).to(torch.uint8)
        tokens = torch.randint(1, cfg.text.vocab_size, (batch, cfg.text.context_length), generator=g)
        labels = torch.arange(batch)
        lo, hi = split_bounds(batch, world)
        times = []
        for i in range(steps + 1):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            with autocast(precision, dev):
                f, t, s, _ = towers(spikes[lo:hi].to(dev), [], tokens[lo:hi].to(dev), None)
                loss = clip_loss(f.float(), t.float(), s, labels=labels.to(dev), soft=True)
            _optimizer_step(loss, opt, params, 1.0, scaler)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:  # the first step warms up
                times.append(time.perf_counter() - t0)
        return {
            "rank": world.rank,
            "processes": world.size,
            "seconds_per_step": sum(times) / len(times),
            "clips_per_s": batch / (sum(times) / len(times)),
            "precision": precision,
        }
    finally:
        close_world(world)


def _run(preset: str, nproc: int, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rate.json"
        worker = [
            __file__,
            "--worker",
            preset,
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--device",
            args.device,
            "--out",
            str(out),
        ]
        threads = max(1, args.threads // nproc) if args.device == "cpu" else args.threads
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        cmd = (
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *worker]
            if nproc > 1
            else [sys.executable, *worker]
        )
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            raise SystemExit(f"{preset} on {nproc} process(es) failed:\n{r.stderr[-2000:]}")
        rate = json.loads(out.read_text())
        rate["threads_per_process"] = threads
        return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", default="tiny,small,reference")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8, help="clips per global batch (default 8)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step (default 3)")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all (default: the cores)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        rate = _step_rate(args.worker, args.batch, args.steps, args.device)
        if rate["rank"] == 0:
            Path(args.out).write_text(json.dumps(rate))
        return
    rows = []
    for preset in args.presets.split(","):
        one = _run(preset, 1, args)
        many = _run(preset, args.nproc, args)
        rows.append(
            {
                "preset": preset,
                "device": args.device,
                "batch": args.batch,
                "one": one,
                "ddp": many,
                "speedup": many["clips_per_s"] / one["clips_per_s"],
            }
        )
        if not args.json:
            print(
                f"{preset:>9} ({args.device}, global batch {args.batch}): 1 process {one['clips_per_s']:.3g} clips/s "
                f"({one['threads_per_process']} threads); {args.nproc} processes {many['clips_per_s']:.3g} clips/s, "
                f"{many['clips_per_s'] / args.nproc:.3g} per process ({many['threads_per_process']} thread(s) each); "
                f"DDP/one {rows[-1]['speedup']:.2f}x",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
