"""The library side of ``spklip-energy convert``: convert a checkpoint, sweep T, save.

:func:`convert_checkpoint` loads an ANN SPKLIP checkpoint, calibrates the
chosen layers on train-split clips, and for the ANN and each T measures
zero-shot top-1 on the test split (:func:`~spklip_energy.model.training.evaluate_model`)
and energy per clip (hook-based counter, ``paper`` cost preset by default), then
writes the converted checkpoint (kind ``spklip-converted``) and the plot. It never
prints; progress goes through ``progress(phase, done, total)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..checkpoint import Checkpoint, load_checkpoint, refuse_nonfinite
from ..energy.estimate import estimate_energy, resolve_cost
from ..energy.profiler import profile
from ..errors import ConfigError
from ..limits import check_memory
from ..model.config import visual_forward_bytes
from ..options import check_int_list, check_positive_int, check_seed, pick_device
from .calibrate import check_method
from .layers import ConversionError, parse_layers
from .ratecode import MAX_TIMESTEPS, set_timesteps
from .structure import DEFAULT_PERCENTILE, convert_spklip

#: Kinds that are spiking already (besides the zoo's spiking kinds).
SPIKING_KINDS = ("fsve-hybrid", "fsve-full", "spklip-converted")

Progress = Callable[[str, int, int], None]


def check_ann_checkpoint(ck: Checkpoint) -> None:
    """Refuse anything but an ANN SPKLIP checkpoint, with one sentence."""
    if ck.kind == "spklip":
        return
    spiking = ck.kind in SPIKING_KINDS
    if not spiking:
        from ..zoo import MODEL_KINDS

        spec = MODEL_KINDS.get(ck.kind)
        spiking = bool(spec and spec.spiking)
    if spiking:
        raise ConversionError(f"{ck.path}: is already spiking (kind {ck.kind!r}); convert takes an ANN SPKLIP "
                              "checkpoint (kind 'spklip')")
    raise ConversionError(f"{ck.path}: is a {ck.kind!r} checkpoint; convert takes an ANN SPKLIP checkpoint "
                          "(kind 'spklip')")


def parse_timesteps(text: str | list[int]) -> list[int]:
    """``"4,8,16"`` -> ``[4, 8, 16]`` (sorted, unique, each in 1..:data:`MAX_TIMESTEPS`: every step is one
    pass of the converted layers per clip, so T multiplies the work of a sweep; see docs/convert.md).

    The ceiling applies to new conversions only: a converted checkpoint keeps the T it was saved with."""
    try:
        ts = check_int_list(text, "--timesteps", 1, MAX_TIMESTEPS)
    except ConfigError as exc:
        raise ConversionError(str(exc)) from None
    return sorted(set(ts))


class ClipBatches(Sequence):
    """Batches of spike clips ``[B, F, H, W]`` read from a dataset when indexed (nothing cached)."""

    def __init__(self, ds, indices: list[int], batch_size: int, device: torch.device | str = "cpu") -> None:
        self.ds, self.indices, self.batch_size, self.device = ds, list(indices), batch_size, device

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = self.indices[i * self.batch_size : (i + 1) * self.batch_size]
        return torch.stack([self.ds[j]["spikes"] for j in part]).to(self.device)


def energy_per_clip(visual: torch.nn.Module, batches: list[torch.Tensor], cost="paper") -> dict:
    """Counts and energy per clip of the visual encoder on ``batches`` (what ``report`` counts)."""
    n = sum(int(b.shape[0]) for b in batches)

    def forward(module):
        for b in batches:
            module(b)

    res = profile(visual, forward=forward, samples=n)
    e = estimate_energy(res, cost)["totals"]
    t = res.totals
    return {
        "macs": t["macs"] / n, "sops": t["sops"] / n, "neuron_updates": t["neuron_updates"] / n,
        "mem_accesses": t["mem_accesses"] / n,
        "compute_j": e["table6_compute_j"] / n, "memory_j": e["memory_j"] / n, "total_j": e["total_j"] / n,
        "memory_ratio": e["memory_ratio"], "not_counted": [r["name"] for r in res.not_counted],
    }


def convert_checkpoint(
    ckpt: str | os.PathLike,
    layers: str,
    timesteps: list[int],
    out: str | os.PathLike,
    *,
    calib: int = 32,
    method: str = "max",
    percentile: float = DEFAULT_PERCENTILE,
    data: str | os.PathLike | None = None,
    keep: int | None = None,
    samples: int = 8,
    batch_size: int = 8,
    plot: str | os.PathLike | None = None,
    cost: str = "paper",
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
) -> dict:
    """Convert ``layers`` of an ANN SPKLIP checkpoint; accuracy and energy for the ANN and each T.

    Writes the converted checkpoint (for ``keep``, default the largest T) to ``out`` and the
    plot to ``plot`` (default: ``out`` with suffix ``.convert.png``). Returns a JSON-ready dict.
    """
    from ..data.manifest import load_manifest
    from ..model.data import clips_for, resolve_data
    from ..model.io import load_spklip, save_spklip
    from ..model.training import evaluate_model

    # every option is checked before anything is loaded or allocated
    ts = parse_timesteps(timesteps)
    if keep is not None:
        keep = check_positive_int(keep, "--keep")
        if keep not in ts:
            raise ConversionError(f"--keep {keep} is not one of --timesteps {','.join(map(str, ts))}")
    keep = ts[-1] if keep is None else keep
    calib = check_positive_int(calib, "--calib")
    samples = check_positive_int(samples, "--samples")
    batch_size = check_positive_int(batch_size, "--batch-size")
    seed = check_seed(seed, "seed")
    method, percentile = check_method(method, percentile, "--percentile")
    parse_layers(layers)  # the names; which of them this model has is checked once its config is known
    dev = pick_device(device)
    resolve_cost(cost)

    ck = load_checkpoint(ckpt)
    check_ann_checkpoint(ck)
    refuse_nonfinite(ck, "a converted model would compute nothing but NaN")
    loaded = load_spklip(ck)
    cfg = loaded.model.cfg
    names = parse_layers(layers, cfg.starnet.enabled)
    src = data if data is not None else ck.card.get("data", {}).get("path", "builtin")
    manifest = load_manifest(resolve_data(src))
    if not manifest.split("train"):
        raise ConversionError(f"{manifest.root}: no calibration data: its train split is empty")
    n_train, n_test = len(manifest.split("train")), len(manifest.split("test"))
    batch = min(batch_size, max(min(calib, n_train), n_test, 1))  # what one forward pass can hold
    kept = min(samples, n_test) * cfg.frames * cfg.height * cfg.width  # the profiled clips (uint8), held throughout
    # a pass of the converted model: the ANN's activations and, for each rate-coded run, its membranes
    check_memory(visual_forward_bytes(cfg, batch, names) + kept,
                 f"converting {ck.path.name} ({batch} clips per forward pass, {min(samples, n_test)} profiled "
                 "clips held)",
                 f"--batch-size {batch_size}, --samples {samples}, --layers {'+'.join(names)}, {cfg.frames} frames "
                 f"of {cfg.height}x{cfg.width}")
    train_ds, test_ds = clips_for(cfg, manifest, "train"), clips_for(cfg, manifest, "test")
    order = np.random.default_rng(seed).permutation(len(train_ds)).tolist()
    calib_batches = ClipBatches(train_ds, order[:calib], batch_size, dev)
    energy_batches = list(ClipBatches(test_ds, list(range(min(samples, len(test_ds)))), batch_size, dev))

    def report(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(phase, done, total)

    ann = loaded.model.to(dev).eval()
    converted, spec = convert_spklip(ann, names, keep, calib_batches, method, percentile,
                                     progress=lambda d, t: report("calibrating", d, t))
    steps, done = 2 * (1 + len(ts)), 0
    rows, evals = [], {}
    for t in [None, *ts]:
        model = ann if t is None else converted
        if t is not None:
            set_timesteps(model, t)
        label = "ANN" if t is None else f"T={t}"
        report(f"evaluating {label}", done, steps)
        res = evaluate_model(model, loaded.tokenizer, test_ds, dev, batch_size=batch_size)
        done += 1
        report(f"profiling {label}", done, steps)
        with torch.no_grad():
            energy = energy_per_clip(model.visual, energy_batches, cost)
        done += 1
        evals[t] = res
        rows.append({"timesteps": t, "top1": res["top1"], "top5": res["top5"], "R@5": res["R@5"], **energy})
    report("saving", done, steps)
    set_timesteps(converted, keep)
    spec["timesteps"] = keep
    card = ck.card
    ev = dict(evals[keep]) | {"split": "test", "data": str(src)}
    extra = {
        "conversion": spec,
        "eval": ev,
        "data": card.get("data", {"path": str(resolve_data(src))}),
        "classes": card.get("classes", list(test_ds.classes)),
        "class_prompts": card.get("class_prompts", list(test_ds.class_prompts)),
        "source": {"checkpoint": str(ck.path), "kind": ck.kind,
                   "train": {k: v for k, v in card.get("train", {}).items() if k != "optimizer"}},
        "convert_sweep": {"rows": rows, "cost": cost, "samples": sum(int(b.shape[0]) for b in energy_batches),
                          "test_clips": len(test_ds)},
    }
    path = save_spklip(out, converted.cpu(), loaded.tokenizer, extra)
    png = Path(plot) if plot is not None else path.with_suffix(".convert.png")
    from .plots import sweep_png

    image = sweep_png(rows, f"{ck.path.name}: {'+'.join(names)} converted ({method}), test split of {src}")
    with atomic_path(png) as tmp:
        tmp.write_bytes(image)
    return {
        "checkpoint": str(path),
        "source": str(ck.path),
        "conversion": spec,
        "kept_timesteps": keep,
        "rows": rows,
        "plot": str(png),
        "data": str(src),
        "calib_clips": spec["calib_clips"],
        "test_clips": len(test_ds),
        "energy_samples": extra["convert_sweep"]["samples"],
        "cost": cost,
    }


def sweep_table(result: dict) -> str:
    """The terminal table: one row for the ANN and one per T."""
    cost = result["cost"]
    head = (f"{'T':>5} {'top-1':>7} {'compute J':>11} {'memory J':>11} {'total J':>11} {'SOPs':>11} "
            f"{'MACs':>11} {'neuron upd.':>11}")
    lines = [f"per clip, {cost} cost preset, energy over {result['energy_samples']} test clips, top-1 "
             f"(zero-shot) over {result['test_clips']}:", head]
    for r in result["rows"]:
        t = "ANN" if r["timesteps"] is None else str(r["timesteps"])
        lines.append(f"{t:>5} {100 * r['top1']:6.1f}% {r['compute_j']:11.3e} {r['memory_j']:11.3e} "
                     f"{r['total_j']:11.3e} {r['sops']:11.3e} {r['macs']:11.3e} {r['neuron_updates']:11.3e}")
    return "\n".join(lines)


__all__ = ["SPIKING_KINDS", "ClipBatches", "check_ann_checkpoint", "convert_checkpoint",
           "energy_per_clip", "parse_timesteps", "sweep_table"]
