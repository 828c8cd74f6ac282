"""Dataset manifests: which spike clips a dataset holds, with labels and captions.

A dataset is a folder with a folder per class and a ``.dat`` file (or a folder
of ``.dat`` files, as in SPKLIP's HMDB51-S/UCF101-S layout) per clip, plus a
manifest, ``manifest.jsonl`` or ``manifest.csv``, with one record per clip:

==========  ========  ===============================================
field       required  meaning
==========  ========  ===============================================
path        yes       clip file or folder, relative to the dataset root
label       yes       class name (a JSON integer is read as its text: ``3`` is class ``"3"``)
frames      yes       number of spike frames in the clip
height      yes       frame rows as stored
width       yes       frame columns as stored (including head columns)
caption     no        text describing the clip (default: the label)
split       no        ``train`` / ``val`` / ``test`` (default: ``train``)
head_columns no       right-most columns that hold no image (16 for sps10 files; default 0)
flipud      no        the rows are stored upside down (default false)
label_index no        the class's position in the dataset's classes (kept in ``extra``)
id          no        a record id (a string or an integer; kept in ``extra``)
==========  ========  ===============================================

Every field is strictly typed: ``path``, ``caption`` and ``split`` are strings
(any split name), ``label`` a string or a JSON integer (its text); ``frames``,
``height``, ``width``, ``head_columns`` and ``label_index`` are JSON integers
(not booleans, numbers with a fraction, or strings), ``head_columns`` below the
width and ``label_index`` within the classes; ``flipud`` is a JSON boolean. An
optional field is omitted by leaving it out or by ``null`` (as pandas writes a
missing value); a required field must hold a value. In a CSV manifest every
value is text: integers are parsed strictly from their digits, ``flipud`` from
true/false, 1/0 or yes/no, and an empty cell omits an optional field.
``dataset.json`` beside the manifest is checked the same way
(:func:`read_dataset_json`, :data:`DATASET_FIELDS`; its ``classes`` may list
JSON integers, read as their text like labels).

Other fields are kept as they are. A folder without a manifest is indexed from
its layout (:func:`index_folder`): the class is the folder name and the caption
is the class name, as SPKLIP's own loader does.

Every clip path must lie inside the dataset folder: an absolute path, or one
that leaves the folder through ``..`` or a symbolic link, is refused naming the
manifest line. Two records of the same clip (or with the same ``id``) are
allowed but reported as a :class:`~spklip_energy.errors.SpklipWarning`, one
line naming the first few lines of each group and counting the rest.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from spklip_energy.errors import DatError, ManifestError, SpklipWarning, found, json_type, short_repr
from spklip_energy.options import check_bool, check_positive_int

from .dat import check_head_columns, dat_info

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")
REQUIRED_FIELDS = ("path", "label", "frames", "height", "width")
_INT_FIELDS = ("frames", "height", "width")
_GEOMETRY_FIELDS = ("head_columns", "flipud")
_OPTIONAL_EXTRA = ("label_index", "id")  # optional fields kept in ``extra`` when given
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")  # an integer in a CSV cell (ASCII digits only)


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


def _int_field(raw: dict, key: str, where: str, text: bool) -> int:
    """An integer field: a JSON number with no fraction (``5`` or ``5.0``, as tools such as pandas
    write counts; not a boolean or a string); in a CSV manifest (all text) the cell's text, digits
    with an optional sign."""
    v = raw[key]
    if text and isinstance(v, str) and _INT_TEXT.fullmatch(v.strip()):
        return int(v.strip())
    if not text and type(v) is int:
        return v
    if not text and type(v) is float and v.is_integer() and abs(v) < 2**53:
        return int(v)
    wanted = "a whole number written in digits" if text else "a JSON number without a fraction"
    raise ManifestError(f"{where}: field {key!r} must be {wanted}, got {found(v)}")


def _str_field(raw: dict, key: str, where: str) -> str:
    v = raw[key]
    if not isinstance(v, str):
        raise ManifestError(f"{where}: field {key!r} must be a string, got {found(v)}")
    return v


def _label_field(raw: dict, where: str) -> str:
    """The class name: a string, or a JSON integer read as its text (``3`` is class ``"3"``)."""
    v = raw["label"]
    if isinstance(v, str):
        return v
    if type(v) is int:
        return str(v)
    raise ManifestError(f"{where}: field 'label' must be a string or a JSON integer, got {found(v)}")


def _bool_field(raw: dict, key: str, where: str, text: bool) -> bool:
    """A JSON boolean; in a CSV manifest one of true/false, 1/0, yes/no (any case)."""
    v = raw[key]
    if text and isinstance(v, str) and v.strip().lower() in _TRUE + _FALSE:
        return v.strip().lower() in _TRUE
    if not text and isinstance(v, bool):
        return v
    wanted = "true or false (or 1/0, yes/no)" if text else "a JSON boolean (true or false)"
    raise ManifestError(f"{where}: field {key!r} must be {wanted}, got {found(v)}")


def _given(raw: dict, key: str, text: bool) -> bool:
    """Whether an optional field is given: present and not null in a JSON record (pandas writes null for a
    missing value); a non-empty cell in a CSV manifest (its only way to omit one)."""
    value = raw.get(key)
    return value is not None and not (text and value == "")


def _inside_dataset(root: Path, rel: str | os.PathLike, where: object) -> Path:
    """``root / rel`` resolved (symbolic links followed), when it lies inside the dataset folder ``root``;
    :class:`ManifestError` naming ``where`` and the path otherwise."""
    try:
        base = root.resolve()
        path = (root / rel).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # NUL byte, lone surrogate, symlink loop ...
        raise ManifestError(f"{where}: unusable clip path {str(rel)!r} ({exc})") from None
    if path != base and base not in path.parents:
        raise ManifestError(f"{where}: clip path {str(rel)!r} leads outside the dataset folder {root} (to {path})")
    return path


def _parse_record(raw: dict, root: Path, where: str, text: bool = False) -> ClipRecord:
    """One manifest record; ``text``: it comes from a CSV manifest, where every value is text."""
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: a record must be an object, got {json_type(raw)}")
    missing = [k for k in REQUIRED_FIELDS if raw.get(k) in (None, "")]
    if missing:
        raise ManifestError(f"{where}: record lacks field(s) {', '.join(missing)}")
    values = {}
    for k in _INT_FIELDS:
        values[k] = _int_field(raw, k, where, text)
        if values[k] <= 0:
            raise ManifestError(f"{where}: field {k!r} must be positive, got {short_repr(raw[k])}")
    rel = _str_field(raw, "path", where)
    label = _label_field(raw, where)
    head = 0
    if _given(raw, "head_columns", text):
        head = check_head_columns(
            _int_field(raw, "head_columns", where, text),
            values["width"],
            f"{where}: field 'head_columns'",
            ManifestError,
        )
    flip = _bool_field(raw, "flipud", where, text) if _given(raw, "flipud", text) else False
    caption = _str_field(raw, "caption", where) if _given(raw, "caption", text) else ""
    split = _str_field(raw, "split", where) if _given(raw, "split", text) else ""
    extra = {
        k: v
        for k, v in raw.items()
        if k not in REQUIRED_FIELDS + _GEOMETRY_FIELDS + _OPTIONAL_EXTRA + ("caption", "split")
    }
    if _given(raw, "label_index", text):
        extra["label_index"] = _int_field(raw, "label_index", where, text)  # its range: load_manifest
    if _given(raw, "id", text):
        if not text and not (isinstance(raw["id"], str) or type(raw["id"]) is int):
            raise ManifestError(f"{where}: field 'id' must be a string or a JSON integer, got {found(raw['id'])}")
        extra["id"] = raw["id"]
    if os.path.isabs(rel):
        raise ManifestError(
            f"{where}: clip path {rel!r} is absolute; paths must be relative to the dataset folder {root}"
        )
    path = _inside_dataset(root, rel, where)
    return ClipRecord(
        path=path,
        label=label,
        frames=values["frames"],
        height=values["height"],
        width=values["width"],
        caption=caption or label,
        split=split or "train",
        extra=extra,
        head_columns=head,
        flipud=flip,
    )


#: lines named per group of duplicate records (the rest are counted), and groups named per warning.
DUPLICATE_LINES_SHOWN = 5
DUPLICATE_GROUPS_SHOWN = 5


def _lines(ls: list[int]) -> str:
    """``lines 1, 3 and 5``; past :data:`DUPLICATE_LINES_SHOWN` lines, ``lines 1, 2, 3, 4, 5 and 99995 more``."""
    if len(ls) > DUPLICATE_LINES_SHOWN:
        return f"lines {', '.join(map(str, ls[:DUPLICATE_LINES_SHOWN]))} and {len(ls) - DUPLICATE_LINES_SHOWN} more"
    return f"lines {', '.join(map(str, ls[:-1]))} and {ls[-1]}"


def _warn_duplicates(manifest_path: Path, clips: list[ClipRecord], rows: list[tuple[dict, str, int]]) -> None:
    """One :class:`SpklipWarning` naming the lines of records that list the same clip or id (the first
    few lines of the first few groups: one line whatever the number of duplicates)."""
    groups: dict[tuple[str, str], list[int]] = {}
    shown: dict[tuple[str, str], str] = {}
    for rec, (raw, _, line) in zip(clips, rows, strict=True):
        keys = [("path", str(rec.path), f"the same clip {short_repr(raw['path'])}")]
        rid = raw.get("id")
        if rid not in (None, ""):
            text = json.dumps(rid, default=str, sort_keys=True)
            keys.append(("id", text, f"the same id {text if len(text) <= 60 else text[:57] + '...'}"))
        for kind, key, what in keys:
            groups.setdefault((kind, key), []).append(line)
            shown.setdefault((kind, key), what)
    dups = [(shown[k], ls) for k, ls in groups.items() if len(ls) > 1]
    if not dups:
        return
    parts = [f"{_lines(ls)} list {what}" for what, ls in dups[:DUPLICATE_GROUPS_SHOWN]]
    more = f"; and {len(dups) - DUPLICATE_GROUPS_SHOWN} more" if len(dups) > DUPLICATE_GROUPS_SHOWN else ""
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
        present = [src / n for n in MANIFEST_NAMES if (src / n).is_file()]
        if not present:
            raise ManifestError(
                f"{src}: no manifest.jsonl or manifest.csv (index a plain folder with `spklip-energy data index`)"
            )
        manifest_path, root = present[0], src
    else:
        manifest_path, root = src, src.parent
    rows = _read_records(manifest_path)
    if not rows:
        raise ManifestError(f"{manifest_path}: manifest lists no clips")
    text = manifest_path.suffix == ".csv"  # every CSV value is text: numbers are parsed from it
    clips = [_parse_record(raw, root, where, text) for raw, where, _ in rows]
    meta_path = root / "dataset.json"
    meta = read_dataset_json(meta_path) if meta_path.is_file() else {}
    labels = sorted({c.label for c in clips})
    classes = list(meta["classes"]) if "classes" in meta else labels
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        shown = ", ".join(short_repr(u) for u in unknown[:5]) + (
            f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        )
        raise ManifestError(f"{meta_path}: clips use labels not in 'classes': {shown}")
    for rec, (_, where, _) in zip(clips, rows, strict=True):
        index = rec.extra.get("label_index")
        if index is not None and not 0 <= index < len(classes):
            raise ManifestError(
                f"{where}: field 'label_index' must be in [0, {len(classes)}) (the dataset's "
                f"{len(classes)} classes), got {index}"
            )
    if check_files:
        for rec, (_, where, _) in zip(clips, rows, strict=True):
            _check_clip_file(rec, where)
    _warn_duplicates(manifest_path, clips, rows)
    prompts = {c: meta.get("class_prompts", {}).get(c, c) for c in classes}
    return Manifest(root=root, clips=clips, classes=classes, class_prompts=prompts, meta=meta)


def _is_str_map(value) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_symmetries(value) -> bool:
    """``{"hflip": {"classes": {str: str}, "words": {str: str}}, "vflip": {...}}`` (see model.augment)."""
    if not isinstance(value, dict):
        return False
    for flip in value.values():
        if not isinstance(flip, dict):
            return False
        if not all(_is_str_map(flip.get(k, {})) for k in ("classes", "words")):
            return False
    return True


#: What each field ``dataset.json`` may hold must be: field -> (test, what it must be). Other fields are
#: kept as they are (nothing reads them).
DATASET_FIELDS = {
    "name": (lambda v: isinstance(v, str), "a string"),
    "format_version": (lambda v: type(v) is int and v >= 1, "a positive JSON integer"),
    "classes": (
        lambda v: isinstance(v, list) and v and all((isinstance(c, str) and c) or type(c) is int for c in v),
        "a non-empty list of class names (non-empty strings or JSON integers)",
    ),
    "class_prompts": (_is_str_map, "an object mapping class names to prompt strings"),
    "symmetries": (
        _is_symmetries,
        'an object of flips, each {"classes": {...}, "words": {...}} mapping strings to strings',
    ),
    "config": (lambda v: isinstance(v, dict), "an object"),
    "camera": (lambda v: isinstance(v, dict), "an object"),
    "flipud": (lambda v: isinstance(v, bool), "a JSON boolean (true or false)"),
    "clips": (lambda v: type(v) is int and v >= 0, "a non-negative JSON integer"),
    "source": (lambda v: isinstance(v, str), "a string"),
}


def read_dataset_json(path: str | os.PathLike) -> dict:
    """A dataset's ``dataset.json``: a JSON object whose known fields (:data:`DATASET_FIELDS`) have their
    types; ``classes`` without repeats, returned as text (a JSON integer ``3`` is class ``"3"``, as a
    label ``3`` is). :class:`ManifestError` naming the file and the field otherwise."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"{path}: not valid JSON ({short_repr(str(exc))})") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(meta, dict):
        raise ManifestError(f"{path}: must hold a JSON object, found {json_type(meta)}")
    for key, (check, expected) in DATASET_FIELDS.items():
        if key in meta and not check(meta[key]):
            raise ManifestError(f"{path}: field {key!r} must be {expected}, got {found(meta[key])}")
    if "classes" in meta:
        meta["classes"] = [str(c) for c in meta["classes"]]
    seen: set[str] = set()
    for name in meta.get("classes", []):
        if name in seen:
            raise ManifestError(f"{path}: field 'classes' names {short_repr(name)} more than once")
        seen.add(name)
    return meta


def index_folder(
    root: str | os.PathLike, height: int, width: int, head_columns: int = 0, flipud: bool = False
) -> list[dict]:
    """Build manifest records for a folder-per-class dataset that has no manifest.

    Each class folder holds clips as ``.dat`` files or as folders of ``.dat``
    files (SPKLIP's layout). The caption is the class name. ``head_columns``
    (0 <= N < width) and ``flipud`` describe how the files are stored; they go
    into every record, so that :func:`~spikedata.clips.read_clip` and
    training read the clips accordingly.
    """
    height = check_positive_int(height, "height")
    width = check_positive_int(width, "width")
    head_columns = check_head_columns(head_columns, width)
    flipud = check_bool(flipud, "flipud")
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
            _inside_dataset(base, clip.relative_to(base), clip)
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
