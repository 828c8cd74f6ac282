"""Small spike clips and manifests for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spklip_energy.data.dat import write_dat

H, W = 8, 16  # 16 bytes per frame: byte-aligned frames


def make_clip(path: Path, frames: int, seed: int = 0, height: int = H, width: int = W) -> np.ndarray:
    """Write a random 0/1 clip ``[frames, height, width]`` to ``path`` and return it."""
    rng = np.random.default_rng(seed)
    spikes = (rng.random((frames, height, width)) < 0.3).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dat(path, spikes)
    return spikes


def write_jsonl(path: Path, records: list) -> Path:
    """Write one JSON value per line."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
