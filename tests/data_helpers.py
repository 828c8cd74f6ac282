"""Small spike clips and manifests for the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikedata.dat import write_dat

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


def check_equal(expected: np.ndarray, found: np.ndarray, what: str, dtype: bool = False) -> None:
    """Assert equal shapes and values (bit-exact; the dtype too with ``dtype``), reporting the first
    difference as expected/found."""
    expected, found = np.asarray(expected), np.asarray(found)
    if dtype:
        assert found.dtype == expected.dtype, f"{what}: expected dtype {expected.dtype}, found {found.dtype}"
    assert found.shape == expected.shape, f"{what}: expected shape {expected.shape}, found {found.shape}"
    bad = np.argwhere(found != expected)
    assert bad.size == 0, (
        f"{what}: {len(bad)} values differ; first at {tuple(bad[0])}: "
        f"expected {expected[tuple(bad[0])]}, found {found[tuple(bad[0])]}"
    )
