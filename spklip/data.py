"""Datasets for SPKLIP: spike clips with captions, cut and cropped to a config's size."""

from __future__ import annotations

import os
from pathlib import Path

from spikedata.clips import ClipSelection, SpikeClips, resolve_builtin
from spikedata.manifest import Manifest, load_manifest
from spklip_energy.errors import ConfigError, MediaError

from .config import SPKLIPConfig


def resolve_data(data: str | os.PathLike, progress=None) -> Path:
    """``builtin``, ``builtin-bench``, ... (:data:`~spikedata.clips.BUILTIN_DATA`) -> the cached
    built-in dataset; else the given path."""
    return resolve_builtin(data, progress=progress) or Path(data)


def clips_for(cfg: SPKLIPConfig, manifest: Manifest, split: str | None) -> SpikeClips:
    """The clips of ``split`` as the model wants them: ``cfg.frames`` frames, centre-cropped to
    ``cfg.height x cfg.width`` when the clips are larger (the paper crops 416x250 to 320x240)."""
    sample = manifest.split(split)
    if not sample:
        raise ConfigError(f"{manifest.root}: split {split!r} holds no clips")
    h = min(c.height for c in sample)
    w = min(c.image_width for c in sample)  # head columns (sps10) are dropped on reading
    if h < cfg.height or w < cfg.width:
        raise MediaError(
            f"{manifest.root}: clips are {h}x{w}, smaller than preset {cfg.preset!r} needs ({cfg.height}x{cfg.width})"
        )
    crop = (
        None
        if (h, w) == (cfg.height, cfg.width) and all((c.height, c.image_width) == (h, w) for c in sample)
        else (cfg.height, cfg.width)
    )
    sel = ClipSelection(frames=cfg.frames, offset="start", crop=crop)
    return SpikeClips(manifest, split=split, selection=sel)


def load_splits(
    cfg: SPKLIPConfig, data: str | os.PathLike, splits: tuple[str, ...] = ("train", "val"), progress=None
) -> tuple[Manifest, dict[str, SpikeClips]]:
    """Load a dataset and the requested splits (a missing split is an error)."""
    root = resolve_data(data, progress=progress)
    manifest = load_manifest(root)
    return manifest, {s: clips_for(cfg, manifest, s) for s in splits}
