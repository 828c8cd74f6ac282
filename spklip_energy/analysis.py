"""Energy analysis of a checkpoint on spike data: the library side of ``report`` and ``compare``.

``analyse_checkpoint`` loads a checkpoint, builds its model, runs it on N clips
under the hook-based counter and prices the counts with a cost model; it
returns a JSON-ready summary and the per-layer table. Rendering is
:mod:`spklip_energy.reports`' job.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from . import __version__
from .checkpoint import Checkpoint, load_checkpoint
from .data.clips import ClipSelection, SpikeClips, builtin_dataset
from .energy.estimate import estimate_energy, resolve_cost
from .energy.profiler import profile
from .energy.rules import __doc__ as _rules_doc
from .errors import ConfigError, MediaError
from .zoo import build_model, prepare_input, resolve_config, run_model


def conventions() -> list[str]:
    """The counting conventions, as listed in the rules module's documentation."""
    text = (_rules_doc or "").split("Conventions", 1)[-1]
    items, cur = [], []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("* "):
            if cur:
                items.append(" ".join(cur))
            cur = [s[2:]]
        elif s and cur:
            cur.append(s)
    if cur:
        items.append(" ".join(cur))
    return [i.replace("**", "").replace("``", "") for i in items]


def load_clips(data: str | os.PathLike, samples: int, split: str | None = "test",
               progress: Callable[[int, int], None] | None = None) -> tuple[SpikeClips, str]:
    """The dataset behind ``--data``: ``builtin`` or a dataset folder/manifest."""
    if samples < 1:
        raise ConfigError(f"samples must be at least 1, got {samples}")
    if str(data) == "builtin":
        root, source = builtin_dataset(progress=progress), "builtin spike digits (test split)"
    else:
        root, source = Path(data), str(data)
    ds = SpikeClips(root, split=split if _has_split(root, split) else None, selection=ClipSelection())
    return ds, source


def _has_split(root, split) -> bool:
    from .data.manifest import load_manifest

    return split is not None and any(c.split == split for c in load_manifest(root, check_files=False).clips)


def _batches(ds: SpikeClips, samples: int, batch_size: int):
    n = min(samples, len(ds))
    for lo in range(0, n, batch_size):
        items = [ds[i] for i in range(lo, min(lo + batch_size, n))]
        yield torch.stack([it["spikes"] for it in items]), torch.tensor([it["label"] for it in items])


def analyse_checkpoint(
    ckpt: str | os.PathLike | Checkpoint,
    data: str | os.PathLike = "builtin",
    samples: int = 8,
    cost="paper",
    reuse: str = "layer",
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict, pd.DataFrame]:
    """Profile a checkpoint's model on ``samples`` clips and estimate its energy.

    Returns ``(summary, per_layer)``: ``summary`` is JSON-ready (checkpoint, data,
    counts in total and per sample, energy, Table 6 rows, cost model with sources,
    warnings, conventions); ``per_layer`` has counts and energy per layer.
    """
    cost_model = resolve_cost(cost)  # fail early on an unknown preset or a bad cost file
    ck = ckpt if isinstance(ckpt, Checkpoint) else load_checkpoint(ckpt)
    spec, cfg = resolve_config(ck.card)
    model = build_model(ck.card)
    try:
        model.load_state_dict(ck.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError(f"{ck.path}: weights do not fit model kind {spec.kind!r} ({first[0] if first else exc})") from None
    model.eval()
    ds, source = load_clips(data, samples)
    if (ds.height, ds.width) != (cfg["height"], cfg["width"]):
        raise MediaError(
            f"{source}: clips are {ds.height}x{ds.width}, model kind {spec.kind!r} expects "
            f"{cfg['height']}x{cfg['width']}"
        )
    n = min(samples, len(ds))
    correct = 0

    def forward(m):
        nonlocal correct
        done = 0
        for spikes, labels in _batches(ds, n, batch_size):
            logits = run_model(m, ck.card, prepare_input(ck.card, spikes))
            if logits.shape[-1] == len(ds.classes):
                correct += int((logits.argmax(-1).cpu() == labels).sum())
            done += len(labels)
            if progress is not None:
                progress(done, n)

    result = profile(model, forward=forward, reuse=reuse, samples=n)
    energy = estimate_energy(result, cost_model)
    per_layer = energy["per_layer"]
    if result.not_counted:
        per_layer = pd.concat([per_layer, result.per_layer[~result.per_layer["counted"]]], ignore_index=True)
    totals = result.totals
    e = energy["totals"]
    per_sample = {k: totals[k] / n for k in ("macs", "sops", "neuron_updates", "mem_reads", "mem_writes",
                                               "mem_accesses")}
    card = ck.card
    evaluation = card.get("eval") if isinstance(card.get("eval"), dict) else None
    summary = {
        "tool_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "checkpoint": {"path": str(ck.path), "kind": spec.kind, "spiking": spec.spiking, "config": cfg},
        "data": {"source": source, "samples": n, "frames": ds.frames, "height": ds.height, "width": ds.width,
                 "classes": ds.classes},
        "reuse": reuse,
        "counts": {k: v for k, v in totals.items()},
        "counts_per_sample": per_sample,
        "energy": e,
        "energy_per_sample": {k: e[k] / n for k in ("compute_j", "neuron_j", "memory_j", "total_j")},
        "table6_per_sample": {
            "computational_energy_j": e["table6_compute_j"] / n,
            "memory_access_energy_j": e["memory_j"] / n,
            "total_energy_j": e["total_j"] / n,
            "memory_energy_ratio": e["memory_ratio"],
        },
        "neuron_energy_grouping": energy["cost_model"].get("neuron_energy_in", "compute"),
        "accuracy": (evaluation or {}).get("top1"),
        "evaluation": evaluation,
        "measured_top1_on_profiled_samples": correct / n if n else None,
        "cost_model": energy["cost_model"],
        "warnings": energy["warnings"],
        "not_counted": result.not_counted,
        "conventions": conventions(),
    }
    return summary, per_layer


def comparison_row(summary: dict, name: str) -> dict:
    """The per-sample figures of one analysed checkpoint, for ``compare``."""
    c, e = summary["counts_per_sample"], summary["energy_per_sample"]
    return {
        "name": name,
        "kind": summary["checkpoint"]["kind"],
        "accuracy": summary["accuracy"],
        "macs": c["macs"],
        "sops": c["sops"],
        "neuron_updates": c["neuron_updates"],
        "mem_accesses": c["mem_accesses"],
        "compute_j": summary["table6_per_sample"]["computational_energy_j"],
        "memory_j": e["memory_j"],
        "total_j": e["total_j"],
        "memory_ratio": summary["energy"]["memory_ratio"],
        "energy_per_sample_j": e["total_j"],
        "measured_top1_on_profiled_samples": summary["measured_top1_on_profiled_samples"],
    }
