"""Dataset manifests: which spike clips a dataset holds, with labels and captions.

A dataset is a folder with a folder per class and a ``.dat`` file (or a folder
of ``.dat`` files, as in SPKLIP's HMDB51-S/UCF101-S layout) per clip, plus a
manifest, ``manifest.jsonl`` or ``manifest.csv``, with one record per clip:

==========  ========  ===============================================
field       required  meaning
==========  ========  ===============================================
path        yes       clip file or folder, relative to the dataset root
label       yes       class name
frames      yes       number of spike frames in the clip
height      yes       frame rows as stored
width       yes       frame columns as stored (including head columns)
caption     no        text describing the clip (default: the label)
split       no        ``train`` / ``val`` / ``test`` (default: ``train``)
==========  ========  ===============================================

Other fields are kept as they are. A folder without a manifest is indexed from
its layout (:func:`index_folder`): the class is the folder name and the caption
is the class name, as SPKLIP's own loader does.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatError, ManifestError
from .dat import dat_info

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
REQUIRED_FIELDS = ("path", "label", "frames", "height", "width")
_INT_FIELDS = ("frames", "height", "width")


@dataclass
class ClipRecord:
    """One clip of a dataset."""

    path: Path  # absolute path of the .dat file or folder of .dat files
    label: str
    frames: int
    height: int
    width: int
    caption: str
    split: str = "train"
    extra: dict = field(default_factory=dict)


@dataclass
class Manifest:
    """All clips of a dataset, and what the dataset says about itself."""

    root: Path
    clips: list[ClipRecord]
    classes: list[str]
    class_prompts: dict[str, str]
    meta: dict

    def split(self, name: str | None) -> list[ClipRecord]:
        return self.clips if name is None else [c for c in self.clips if c.split == name]

    def label_index(self, label: str) -> int:
        return self.classes.index(label)


def _parse_record(raw: dict, root: Path, where: str) -> ClipRecord:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: a record must be an object, got {type(raw).__name__}")
    missing = [k for k in REQUIRED_FIELDS if raw.get(k) in (None, "")]
    if missing:
        raise ManifestError(f"{where}: record lacks field(s) {', '.join(missing)}")
    values = {}
    for k in _INT_FIELDS:
        v = raw[k]
        try:
            if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                raise ValueError
            values[k] = int(v)
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: field {k!r} must be a whole number, got {v!r}") from None
        if values[k] <= 0:
            raise ManifestError(f"{where}: field {k!r} must be positive, got {v!r}")
    rel = raw["path"]
    if not isinstance(rel, str):
        raise ManifestError(f"{where}: field 'path' must be a string, got {rel!r}")
    label, caption, split = str(raw["label"]), raw.get("caption"), raw.get("split") or "train"
    extra = {k: v for k, v in raw.items() if k not in REQUIRED_FIELDS + ("caption", "split")}
    try:
        path = (root / rel).resolve()
    except (OSError, ValueError) as exc:  # NUL byte, lone surrogate, ...
        raise ManifestError(f"{where}: unusable clip path {rel!r} ({exc})") from None
    return ClipRecord(
        path=path,
        label=label,
        frames=values["frames"],
        height=values["height"],
        width=values["width"],
        caption=str(caption) if caption not in (None, "") else label,
        split=str(split),
        extra=extra,
    )


def _read_records(path: Path) -> list[tuple[dict, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: manifest is not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    rows: list[tuple[dict, str]] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((json.loads(line), f"{path}:{n}"))
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            except RecursionError:
                raise ManifestError(f"{path}:{n}: JSON nested too deeply") from None
    elif path.suffix == ".csv":
        try:
            reader = csv.DictReader(io.StringIO(text))
            for n, row in enumerate(reader, 2):
                if None in row:
                    raise ManifestError(f"{path}:{n}: row has more cells than the header")
                rows.append((row, f"{path}:{n}"))
        except csv.Error as exc:
            raise ManifestError(f"{path}: not valid CSV ({exc})") from None
    else:
        raise ManifestError(f"{path}: unknown manifest type (use .jsonl or .csv)")
    return rows


def _check_clip_file(rec: ClipRecord, where: str) -> None:
    try:
        _check_clip_file_unguarded(rec, where)
    except OSError as exc:
        raise ManifestError(f"{where}: cannot access clip {rec.path} ({exc.strerror or exc})") from None


def _check_clip_file_unguarded(rec: ClipRecord, where: str) -> None:
    if rec.path.is_dir():
        parts = sorted(rec.path.glob("*.dat"))
        if not parts:
            raise ManifestError(f"{where}: clip folder {rec.path} holds no .dat files")
        total = 0
        for p in parts:
            try:
                total += dat_info(p, rec.height, rec.width).frames
            except DatError as exc:
                raise ManifestError(f"{where}: {exc}") from None
    else:
        if not rec.path.exists():
            raise ManifestError(f"{where}: clip file {rec.path} is missing")
        try:
            total = dat_info(rec.path, rec.height, rec.width).frames
        except DatError as exc:
            raise ManifestError(f"{where}: {exc}") from None
    if total != rec.frames:
        raise ManifestError(f"{where}: manifest says {rec.frames} frames, {rec.path} holds {total}")


def load_manifest(source: str | os.PathLike, check_files: bool = True) -> Manifest:
    """Read a dataset from its folder (with a manifest) or from a manifest file.

    With ``check_files`` every clip's file must exist and hold the stated frames.
    Raises :class:`ManifestError` naming the file (and line) and the problem.
    """
    src = Path(source)
    if not src.exists():
        raise ManifestError(f"{src}: no such dataset folder or manifest")
    if src.is_dir():
        found = [src / n for n in MANIFEST_NAMES if (src / n).is_file()]
        if not found:
            raise ManifestError(
                f"{src}: no manifest.jsonl or manifest.csv (index a plain folder with "
                "`spklip-energy data index`)"
            )
        manifest_path, root = found[0], src
    else:
        manifest_path, root = src, src.parent
    rows = _read_records(manifest_path)
    if not rows:
        raise ManifestError(f"{manifest_path}: manifest lists no clips")
    clips = [_parse_record(raw, root, where) for raw, where in rows]
    if check_files:
        for rec, (_, where) in zip(clips, rows, strict=True):
            _check_clip_file(rec, where)
    meta: dict = {}
    meta_path = root / "dataset.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ManifestError(f"{meta_path}: not valid JSON ({exc})") from None
        if not isinstance(meta, dict):
            raise ManifestError(f"{meta_path}: must hold a JSON object")
    if not isinstance(meta.get("classes", []), list):
        raise ManifestError(f"{meta_path}: 'classes' must be a list of class names")
    if not isinstance(meta.get("class_prompts", {}), dict):
        raise ManifestError(f"{meta_path}: 'class_prompts' must be an object (class -> prompt)")
    labels = sorted({c.label for c in clips})
    classes = [str(c) for c in meta.get("classes", [])] or labels
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise ManifestError(f"{meta_path}: clips use labels not in 'classes': {', '.join(unknown)}")
    prompts = {c: str(meta.get("class_prompts", {}).get(c, c)) for c in classes}
    return Manifest(root=root, clips=clips, classes=classes, class_prompts=prompts, meta=meta)


def index_folder(root: str | os.PathLike, height: int, width: int) -> list[dict]:
    """Build manifest records for a folder-per-class dataset that has no manifest.

    Each class folder holds clips as ``.dat`` files or as folders of ``.dat``
    files (SPKLIP's layout). The caption is the class name.
    """
    base = Path(root)
    if not base.is_dir():
        raise ManifestError(f"{base}: no such dataset folder")
    records = []
    for cls in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for clip in sorted(cls.iterdir()):
            if clip.is_dir():
                parts = sorted(clip.glob("*.dat"))
                if not parts:
                    continue
            elif clip.suffix == ".dat":
                parts = [clip]
            else:
                continue
            try:
                frames = sum(dat_info(p, height, width).frames for p in parts)
            except DatError as exc:
                raise ManifestError(str(exc)) from None
            records.append(
                {
                    "path": str(clip.relative_to(base)),
                    "label": cls.name,
                    "caption": cls.name,
                    "frames": frames,
                    "height": height,
                    "width": width,
                    "split": "train",
                }
            )
    if not records:
        raise ManifestError(f"{base}: found no class folders holding .dat clips")
    return records
