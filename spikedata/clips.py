"""``SpikeClips``: a torch ``Dataset`` over any manifest-described spike-video set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spklip_energy.atomic import remove_stale_siblings
from spklip_energy.errors import ConfigError, DatError
from spklip_energy.limits import check_memory
from spklip_energy.options import check_bool, check_nonneg_int, check_positive_int

from .dat import check_head_columns, read_dat
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
        if self.frames is not None:
            self.frames = check_positive_int(self.frames, "frames")
        if self.crop is not None:
            if isinstance(self.crop, (str, bytes)) or len(self.crop) != 2:
                raise ConfigError(f"crop must be (height, width), got {self.crop!r}")
            self.crop = (
                check_positive_int(self.crop[0], "crop height"),
                check_positive_int(self.crop[1], "crop width"),
            )
        self.flipud = check_bool(self.flipud, "flipud")
        self.head_columns = check_nonneg_int(self.head_columns, "head_columns")

    def geometry(self, rec: ClipRecord) -> tuple[int, bool]:
        """Head columns dropped and whether rows are flipped for ``rec``.

        What the manifest record says about how the clip is stored wins; the
        selection's values apply to records that say nothing (``head_columns`` 0,
        ``flipud`` false).
        """
        return rec.head_columns or self.head_columns, rec.flipud or self.flipud


def read_clip(rec: ClipRecord, start: int, count: int, sel: ClipSelection) -> np.ndarray:
    """Frames ``[start, start + count)`` of a clip stored as one .dat or a folder of .dat files.

    Head columns are dropped and rows flipped as the record (or, where it says
    nothing, the selection) asks: the result is ``[count, height, width - head_columns]``.
    """
    head, flip = sel.geometry(rec)
    kw = dict(flipud=flip, head_columns=head)
    if not rec.path.is_dir():
        return read_dat(rec.path, rec.height, rec.width, start=start, count=count, **kw)
    out, pos = [], 0
    for part in sorted(rec.path.glob("*.dat")):
        n = part.stat().st_size * 8 // (rec.height * rec.width)
        lo, hi = max(start, pos), min(start + count, pos + n)
        if lo < hi:
            out.append(read_dat(part, rec.height, rec.width, start=lo - pos, count=hi - lo, **kw))
        pos += n
    if not out:
        raise DatError(f"{rec.path}: cannot read {count} frames from frame {start}; the clip has {pos}")
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
        # the selection's head columns apply to the clips whose records give none (theirs are checked)
        bare = [c.width for c in self.clips if not c.head_columns]
        if bare:
            check_head_columns(self.selection.head_columns, min(bare), f"{self.manifest.root}: head_columns")
        h = {c.height for c in self.clips}
        w = {c.width - self.selection.geometry(c)[0] for c in self.clips}
        crop = self.selection.crop
        if crop is None and (len(h) > 1 or len(w) > 1):
            raise ConfigError(f"{self.manifest.root}: clips differ in frame size; choose a crop")
        if crop is not None and (crop[0] > min(h) or crop[1] > min(w)):
            raise ConfigError(f"crop {crop[0]}x{crop[1]} is larger than the clips ({min(h)}x{min(w)})")
        # one item: the frames read (and padded) at the largest clip size, and the padded copy
        check_memory(
            2 * self.frames * max(h) * max(w),
            f"{self.manifest.root}: one item of {self.frames} frames of {max(h)}x{max(w)}",
            f"frames {self.frames}",
        )
        self.height, self.width = crop if crop is not None else (h.pop(), w.pop())

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def captions(self) -> list[str]:
        return [c.caption for c in self.clips]

    @property
    def clip_ids(self) -> list[str]:
        """Each clip's path relative to the dataset folder (POSIX form), in dataset order: what
        identifies the clips a model was evaluated on, so that two evaluations can be paired."""
        base = Path(self.manifest.root).resolve()
        return [
            c.path.relative_to(base).as_posix() if c.path.is_relative_to(base) else c.path.as_posix()
            for c in self.clips
        ]

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


def remove_stale_temporaries(root: str | os.PathLike | None = None) -> list[Path]:
    """Remove what killed runs left in the built-in cache, for every cached variant (``atomic_dir``
    itself cleans only its own target's): temporaries of a process that no longer runs, or, named
    without a process id, older than a day. Returns what was removed."""
    return remove_stale_siblings(Path(root) if root is not None else builtin_root(), r"digits-[^./]+")


#: What ``--data`` accepts besides a folder: name -> (dataset preset, camera variant).
BUILTIN_DATA = {
    "builtin": ("quick", "sim"),
    "builtin-sim": ("quick", "sim"),
    "builtin-sensor": ("quick", "sensor"),
    "builtin-bench": ("bench", "sim"),
}


def builtin_dataset(variant: str = "sim", seed: int = 0, progress=None, preset: str = "quick") -> Path:
    """Path of a built-in dataset (``preset``, camera ``variant``), generating it on first use.

    Before generating, temporaries that killed runs left in the cache are removed
    (:func:`remove_stale_temporaries`).
    """
    from .digits import digits_preset, generate_digits

    cfg = digits_preset(preset, variant=variant, seed=seed)
    path = builtin_root() / cfg.builtin_name()
    if not (path / "manifest.jsonl").is_file():
        remove_stale_temporaries(path.parent)
        generate_digits(path, cfg, overwrite=True, progress=progress)
    return path


def resolve_builtin(data: str | os.PathLike, progress=None) -> Path | None:
    """The cached dataset a ``--data`` name such as ``builtin-bench`` stands for (generated on first
    use), or None when ``data`` is not one of :data:`BUILTIN_DATA`."""
    if isinstance(data, os.PathLike) or str(data) not in BUILTIN_DATA:
        return None
    preset, variant = BUILTIN_DATA[str(data)]
    return builtin_dataset(variant, progress=progress, preset=preset)
