"""Training time before and after the speed-ups of issue 13, side by side in one run.

The speed-ups change no result (tests/test_training_speed.py checks that):

* locked-image tuning reuses the locked visual tower's features (``LockedFeatures``): each
  train clip's features are computed once per flip state instead of once per epoch, and the
  validation clips' once per run;
* spike frames are pooled as integers before they become float (``SpikeAvgPool2d``).

"before" runs the same training with both undone: the locked features recomputed for every
batch, and the clips handed to the model as float (AvgPool2d in float). Both trainings use
the same seed, data subset and thread count, in alternation (``--repeat``), and the script
prints the median wall time of each stage and the ratio.

    python benchmarks/bench_train_speed.py [--data builtin-bench] [--clips 96] [--epochs 3]
        [--pretrain-epochs 1] [--repeat 1] [--threads 2] [--model spklip] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from spikedata.clips import SpikeClips
from spklip import preset_config
from spklip import training as T


def _subset(data: str, clips: int, out: Path) -> Path:
    """A copy of the first ``clips`` train clips and ``clips // 4`` val clips of a dataset."""
    import shutil

    from spklip.data import resolve_data

    root = resolve_data(data)
    keep = {"train": clips, "val": max(clips // 4, 1)}
    lines = []
    for line in (root / "manifest.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if keep.get(rec["split"], 0) > 0:
            keep[rec["split"]] -= 1
            (out / rec["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rec["path"], out / rec["path"])
            lines.append(line)
    (out / "dataset.json").write_text((root / "dataset.json").read_text())
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return out


def _run(mode: str, cfg, data: Path, work: Path) -> dict:
    """One training; ``mode`` "before" undoes the speed-ups. Returns seconds per stage."""
    real_call, real_get, real_eval = T.LockedFeatures.__call__, SpikeClips.__getitem__, T.evaluate_model
    stages: dict[str, float] = {}
    if mode == "before":

        def recompute(self, spikes, keys):
            with torch.no_grad():
                return self.model.encode_spikes(spikes.to(self.device))

        def as_float(self, index):
            item = real_get(self, index)
            return {**item, "spikes": item["spikes"].float()}

        def evaluate(*a, embedded=None, **k):  # validation embeddings recomputed every epoch
            return real_eval(*a, **k)

        T.LockedFeatures.__call__ = recompute
        SpikeClips.__getitem__ = as_float
        T.evaluate_model = evaluate
    real_pretrain = T.pretrain_visual

    def timed_pretrain(*a, **k):
        t0 = time.perf_counter()
        out = real_pretrain(*a, **k)
        stages["pretrain_s"] = time.perf_counter() - t0
        return out

    T.pretrain_visual = timed_pretrain
    try:
        t0 = time.perf_counter()
        res = T.train(cfg, data, work / f"{mode}-{time.perf_counter_ns()}")
        stages["total_s"] = time.perf_counter() - t0
    finally:
        T.LockedFeatures.__call__, SpikeClips.__getitem__, T.evaluate_model = real_call, real_get, real_eval
        T.pretrain_visual = real_pretrain
    stages["contrastive_s"] = stages["total_s"] - stages.get("pretrain_s", 0.0)
    stages["val_top1"] = res.history[-1]["val_top1"]
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="builtin-bench")
    ap.add_argument("--clips", type=int, default=96, help="train clips (default 96)")
    ap.add_argument("--epochs", type=int, default=3, help="contrastive epochs (default 3)")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default="spklip")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset_config(
        "tiny", {"model": args.model, "train.epochs": args.epochs, "train.pretrain_epochs": args.pretrain_epochs}
    )
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = _subset(args.data, args.clips, Path(tmp) / "data")
        for _ in range(args.repeat):
            for mode in ("before", "after"):
                runs[mode].append(_run(mode, cfg, data, Path(tmp)))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in runs.items()}
    result = {
        "model": args.model,
        "threads": args.threads,
        "train_clips": args.clips,
        "epochs": args.epochs,
        "pretrain_epochs": args.pretrain_epochs,
        "repeat": args.repeat,
        "before": med["before"],
        "after": med["after"],
        "speedup_total": med["before"]["total_s"] / med["after"]["total_s"],
        "speedup_pretrain": med["before"]["pretrain_s"] / med["after"]["pretrain_s"],
        "speedup_contrastive": med["before"]["contrastive_s"] / med["after"]["contrastive_s"],
        "same_val_top1": med["before"]["val_top1"] == med["after"]["val_top1"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"{args.model}, tiny preset, {args.clips} train clips, {args.pretrain_epochs} pre-training + "
        f"{args.epochs} contrastive epochs, {args.threads} threads, median of {args.repeat}:"
    )
    for stage in ("pretrain_s", "contrastive_s", "total_s"):
        b, a = med["before"][stage], med["after"][stage]
        print(f"  {stage[:-2]:<12} before {b:7.1f} s   after {a:7.1f} s   speed-up {b / a:4.2f}x")
    print(
        f"  final val top-1: before {100 * med['before']['val_top1']:.1f} %, after "
        f"{100 * med['after']['val_top1']:.1f} % ({'same' if result['same_val_top1'] else 'DIFFERENT'})"
    )


if __name__ == "__main__":
    main()
