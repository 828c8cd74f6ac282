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
head_columns no       right-most columns that hold no image (16 for sps10 files; default 0)
flipud      no        the rows are stored upside down (default false)
==========  ========  ===============================================

Other fields are kept as they are. A folder without a manifest is indexed from
its layout (:func:`index_folder`): the class is the folder name and the caption
is the class name, as SPKLIP's own loader does.

Every clip path must lie inside the dataset folder: an absolute path, or one
that leaves the folder through ``..`` or a symbolic link, is refused naming the
manifest line. Two records of the same clip (or with the same ``id``) are
allowed but reported as a :class:`~spklip_energy.errors.SpklipWarning`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError, DatError, ManifestError, SpklipWarning
from ..options import check_nonneg_int, check_positive_int
from .dat import dat_info

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
REQUIRED_FIELDS = ("path", "label", "frames", "height", "width")
_INT_FIELDS = ("frames", "height", "width")
_GEOMETRY_FIELDS = ("head_columns", "flipud")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no", "")


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
    head_columns: int = 0  # right-most columns on disk that hold no image (dropped on reading)
    flipud: bool = False  # rows stored upside down (flipped on reading)

    @property
    def image_width(self) -> int:
        """Columns of the image once the head columns are dropped."""
        return self.width - self.head_columns


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
    head_raw, head = raw.get("head_columns"), 0
    if head_raw not in (None, ""):
        try:
            if isinstance(head_raw, bool) or (isinstance(head_raw, float) and not head_raw.is_integer()):
                raise ValueError
            head = int(head_raw)
        except (TypeError, ValueError):
            head = -1
    if not 0 <= head < values["width"]:
        raise ManifestError(
            f"{where}: field 'head_columns' must be a whole number in [0, {values['width']}), "
            f"got {raw.get('head_columns')!r}")
    flip = raw.get("flipud")
    if flip is None or isinstance(flip, bool):
        flip = bool(flip)
    elif isinstance(flip, str) and flip.strip().lower() in _TRUE + _FALSE:
        flip = flip.strip().lower() in _TRUE
    elif isinstance(flip, int) and flip in (0, 1):
        flip = bool(flip)
    else:
        raise ManifestError(f"{where}: field 'flipud' must be true or false, got {flip!r}")
    label, caption, split = str(raw["label"]), raw.get("caption"), raw.get("split") or "train"
    extra = {k: v for k, v in raw.items()
             if k not in REQUIRED_FIELDS + _GEOMETRY_FIELDS + ("caption", "split")}
    if os.path.isabs(rel):
        raise ManifestError(f"{where}: clip path {rel!r} is absolute; paths must be relative to the "
                            f"dataset folder {root}")
    try:
        path = (root / rel).resolve()
        inside = path == root.resolve() or root.resolve() in path.parents
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, lone surrogate, symlink loop ...
        raise ManifestError(f"{where}: unusable clip path {rel!r} ({exc})") from None
    if not inside:
        raise ManifestError(f"{where}: clip path {rel!r} leads outside the dataset folder {root} "
                            f"(to {path})")
    return ClipRecord(
        path=path,
        label=label,
        frames=values["frames"],
        height=values["height"],
        width=values["width"],
        caption=str(caption) if caption not in (None, "") else label,
        split=str(split),
        extra=extra,
        head_columns=head,
        flipud=flip,
    )


def _warn_duplicates(manifest_path: Path, clips: list[ClipRecord], rows: list[tuple[dict, str, int]]) -> None:
    """One :class:`SpklipWarning` naming the lines of records that list the same clip or id."""
    groups: dict[tuple[str, str], list[int]] = {}
    shown: dict[tuple[str, str], str] = {}
    for rec, (raw, _, line) in zip(clips, rows, strict=True):
        keys = [("path", str(rec.path), f"the same clip {raw['path']!r}")]
        rid = raw.get("id")
        if rid not in (None, ""):
            text = json.dumps(rid, default=str, sort_keys=True)
            keys.append(("id", text, f"the same id {text}"))
        for kind, key, what in keys:
            groups.setdefault((kind, key), []).append(line)
            shown.setdefault((kind, key), what)
    dups = [(shown[k], ls) for k, ls in groups.items() if len(ls) > 1]
    if not dups:
        return
    parts = []
    for what, ls in dups[:5]:
        parts.append(f"lines {', '.join(map(str, ls[:-1]))} and {ls[-1]} list {what}")
    more = f"; and {len(dups) - 5} more" if len(dups) > 5 else ""
    warnings.warn(f"{manifest_path}: duplicate records: {'; '.join(parts)}{more}", SpklipWarning, stacklevel=3)


def _read_records(path: Path) -> list[tuple[dict, str, int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: manifest is not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    rows: list[tuple[dict, str, int]] = []
    if path.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((json.loads(line), f"{path}:{n}", n))
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
                rows.append((row, f"{path}:{n}", n))
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
    clips = [_parse_record(raw, root, where) for raw, where, _ in rows]
    if check_files:
        for rec, (_, where, _) in zip(clips, rows, strict=True):
            _check_clip_file(rec, where)
    _warn_duplicates(manifest_path, clips, rows)
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


def index_folder(
    root: str | os.PathLike, height: int, width: int, head_columns: int = 0, flipud: bool = False
) -> list[dict]:
    """Build manifest records for a folder-per-class dataset that has no manifest.

    Each class folder holds clips as ``.dat`` files or as folders of ``.dat``
    files (SPKLIP's layout). The caption is the class name. ``head_columns``
    (0 <= N < width) and ``flipud`` describe how the files are stored; they go
    into every record, so that :func:`~spklip_energy.data.clips.read_clip` and
    training read the clips accordingly.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    head_columns = check_nonneg_int(head_columns, "head_columns")
    if head_columns >= width:
        raise ConfigError(f"head_columns must be less than the width {width}, got {head_columns}")
    if not isinstance(flipud, bool):
        raise ConfigError(f"flipud must be true or false, got {flipud!r}")
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
                target = clip.resolve()
            except (OSError, RuntimeError) as exc:  # a symbolic-link loop
                raise ManifestError(f"{clip}: unusable clip path ({exc})") from None
            if base.resolve() not in target.parents:
                raise ManifestError(f"{clip}: leads outside the dataset folder {base} (to {target})")
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
                    "head_columns": head_columns,
                    "flipud": flipud,
                    "split": "train",
                }
            )
    if not records:
        raise ManifestError(f"{base}: found no class folders holding .dat clips")
    return records
