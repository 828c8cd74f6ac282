"""``SpikeClips``: a torch ``Dataset`` over any manifest-described spike-video set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError
from .dat import read_dat
from .manifest import ClipRecord, Manifest, load_manifest


@dataclass
class ClipSelection:
    """How a fixed-length window is cut from each clip."""

    frames: int | None = None  # frames per sample; None = the clip's own length (all equal)
    offset: str = "start"  # "start" or "center": where the window sits in a longer clip
    crop: tuple[int, int] | None = None  # centre crop (height, width); the paper crops to 240x320
    flipud: bool = False  # flip rows on reading (SpikeCV's reader default is True)
    head_columns: int = 0  # right-most columns to drop (16 for sps10 files)

    def __post_init__(self) -> None:
        if self.offset not in ("start", "center"):
            raise ConfigError(f"offset must be 'start' or 'center', got {self.offset!r}")
        if self.frames is not None and self.frames <= 0:
            raise ConfigError(f"frames must be positive, got {self.frames}")


def read_clip(rec: ClipRecord, start: int, count: int, sel: ClipSelection) -> np.ndarray:
    """Frames ``[start, start + count)`` of a clip stored as one .dat or a folder of .dat files."""
    kw = dict(flipud=sel.flipud, head_columns=sel.head_columns)
    if not rec.path.is_dir():
        return read_dat(rec.path, rec.height, rec.width, start=start, count=count, **kw)
    out, pos = [], 0
    for part in sorted(rec.path.glob("*.dat")):
        n = part.stat().st_size * 8 // (rec.height * rec.width)
        lo, hi = max(start, pos), min(start + count, pos + n)
        if lo < hi:
            out.append(read_dat(part, rec.height, rec.width, start=lo - pos, count=hi - lo, **kw))
        pos += n
    return np.concatenate(out, axis=0)


class SpikeClips(Dataset):
    """Spike clips with labels and captions.

    Items are dicts: ``spikes`` (uint8 tensor ``[T, H, W]``, values 0/1), ``label``
    (class index), ``caption`` (str), ``index`` (position in this dataset).
    Clips shorter than ``frames`` are zero-padded at the end. Only the needed
    frame range is read from disk, and no file stays open between items, so the
    dataset works with ``DataLoader`` worker processes.
    """

    def __init__(
        self,
        source: str | os.PathLike | Manifest,
        split: str | None = None,
        selection: ClipSelection | None = None,
    ) -> None:
        self.manifest = source if isinstance(source, Manifest) else load_manifest(source)
        self.selection = selection or ClipSelection()
        self.clips = self.manifest.split(split)
        if not self.clips:
            raise ConfigError(f"{self.manifest.root}: no clips in split {split!r}")
        self.classes = self.manifest.classes
        lengths = {c.frames for c in self.clips}
        if self.selection.frames is None and len(lengths) > 1:
            raise ConfigError(
                f"{self.manifest.root}: clips differ in length ({min(lengths)}-{max(lengths)} frames); "
                "choose a fixed number of frames"
            )
        self.frames = self.selection.frames or lengths.pop()
        h = {c.height for c in self.clips}
        w = {c.width - self.selection.head_columns for c in self.clips}
        crop = self.selection.crop
        if crop is None and (len(h) > 1 or len(w) > 1):
            raise ConfigError(f"{self.manifest.root}: clips differ in frame size; choose a crop")
        if crop is not None and (crop[0] > min(h) or crop[1] > min(w)):
            raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the clips ({min(h)}x{min(w)})")
        self.height, self.width = crop if crop is not None else (h.pop(), w.pop())

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def captions(self) -> list[str]:
        return [c.caption for c in self.clips]

    @property
    def labels(self) -> list[int]:
        return [self.manifest.label_index(c.label) for c in self.clips]

    @property
    def class_prompts(self) -> list[str]:
        return [self.manifest.class_prompts[c] for c in self.classes]

    def __getitem__(self, index: int) -> dict:
        rec = self.clips[index]
        n = min(self.frames, rec.frames)
        start = 0 if self.selection.offset == "start" else (rec.frames - n) // 2
        spikes = read_clip(rec, start, n, self.selection)
        if n < self.frames:
            pad = np.zeros((self.frames - n,) + spikes.shape[1:], dtype=np.uint8)
            spikes = np.concatenate([spikes, pad], axis=0)
        if self.selection.crop is not None:
            ch, cw = self.selection.crop
            top, left = (spikes.shape[1] - ch) // 2, (spikes.shape[2] - cw) // 2
            spikes = spikes[:, top : top + ch, left : left + cw]
        return {
            "spikes": torch.from_numpy(np.ascontiguousarray(spikes)),
            "label": self.manifest.label_index(rec.label),
            "caption": rec.caption,
            "index": index,
        }


def builtin_root() -> Path:
    """Where the built-in dataset is cached (``$SPKLIP_ENERGY_DATA`` or ``~/.cache``)."""
    env = os.environ.get("SPKLIP_ENERGY_DATA")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "spklip-energy"


def builtin_dataset(variant: str = "sim", seed: int = 0, progress=None) -> Path:
    """Path of the default built-in dataset, generating it on first use."""
    from .digits import FORMAT_VERSION, DigitsConfig, generate_digits

    cfg = DigitsConfig(variant=variant, seed=seed)
    name = f"digits-v{FORMAT_VERSION}-{variant}-seed{seed}-{cfg.clips_per_class}x{cfg.frames}x{cfg.height}x{cfg.width}"
    path = builtin_root() / name
    if not (path / "manifest.jsonl").is_file():
        generate_digits(path, cfg, overwrite=True, progress=progress)
    return path
