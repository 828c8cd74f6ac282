"""A dataset at a glance: the library side of ``data inspect`` (and of the demo's and ``make-digits``'
first lines)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def dataset_summary(root: str | os.PathLike, max_clips: int | None = None) -> dict:
    """What ``data inspect`` reports of the dataset at ``root``: clips per split and class, frames, sizes,
    and the firing rate measured over the first ``max_clips`` clips (all of them by default)."""
    from .clips import ClipSelection, read_clip  # torch: loaded when a dataset is read, not by the CLI's start
    from .manifest import load_manifest

    m = load_manifest(root)
    splits: dict[str, int] = {}
    per_class: dict[str, int] = {}
    for c in m.clips:
        splits[c.split] = splits.get(c.split, 0) + 1
        per_class[c.label] = per_class.get(c.label, 0) + 1
    sample = m.clips if max_clips is None else m.clips[:max_clips]
    spikes = pixels = slots = 0
    for c in sample:
        s = read_clip(c, 0, c.frames, ClipSelection())
        n = int(np.count_nonzero(s))
        spikes, pixels, slots = spikes + n, pixels + c.height * c.image_width, slots + s.size
    return {
        "root": str(root),
        "name": m.meta.get("name", Path(root).name),
        "clips": len(m.clips),
        "classes": m.classes,
        "clips_per_split": splits,
        "clips_per_class": per_class,
        "frames": sorted({c.frames for c in m.clips}),
        "size": sorted({f"{c.height}x{c.image_width}" for c in m.clips}),
        "firing_rate": spikes / max(slots, 1),
        "mean_spikes_per_pixel": spikes / max(pixels, 1),
        "clips_measured": len(sample),
    }


def summary_text(s: dict) -> str:
    """:func:`dataset_summary` as three lines."""
    splits = ", ".join(f"{k} {v}" for k, v in s["clips_per_split"].items())
    return (
        f"{s['name']}: {s['clips']} clips in {len(s['classes'])} classes ({', '.join(s['classes'])})\n"
        f"splits: {splits}; frames {s['frames']}; size {', '.join(s['size'])}\n"
        f"firing rate {s['firing_rate']:.4f} spikes/pixel/frame, "
        f"{s['mean_spikes_per_pixel']:.2f} spikes per pixel per clip "
        f"(over {s['clips_measured']} clips)"
    )


__all__ = ["dataset_summary", "summary_text"]
