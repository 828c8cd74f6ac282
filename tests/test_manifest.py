"""Tests of dataset manifests: :func:`load_manifest` and :func:`index_folder`."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
from data_helpers import H, W, make_clip, write_jsonl
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikedata.digits import MOTIONS, DigitsConfig, generate_digits
from spikedata.manifest import ClipRecord, Manifest, index_folder, load_manifest
from spklip_energy.errors import ManifestError

# --------------------------------------------------------------------------- helpers


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV file with a header row."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def record(path, label: str | None = None, frames: int = 5, **extra) -> dict:
    """A manifest record of an ``H x W`` clip; the label defaults to the path's class folder."""
    if label is None:
        label = path.split("/")[0] if isinstance(path, str) else "walk"
    return {"path": path, "label": label, "frames": frames, "height": H, "width": W, **extra}


def raises_naming(source, *needles: str) -> ManifestError:
    """Call ``load_manifest(source)``; assert a ManifestError whose message holds every needle."""
    with pytest.raises(ManifestError) as info:
        load_manifest(source)
    msg = str(info.value)
    for needle in needles:
        assert needle in msg, f"expected {needle!r} in the error message, found {msg!r}"
    return info.value


@pytest.fixture
def small_set(tmp_path) -> Path:
    """A hand-made dataset: two classes, two clips each, 5 frames of 8x16."""
    root = tmp_path / "set"
    for i, (label, name) in enumerate([("walk", "a.dat"), ("walk", "b.dat"), ("run", "c.dat"), ("run", "d.dat")]):
        make_clip(root / label / name, 5, seed=i)
    return root


@pytest.fixture
def digits(tmp_path) -> Path:
    """A small built-in spike-digits dataset (3 clips per class, 20 frames of 16x16)."""
    return generate_digits(tmp_path / "digits", DigitsConfig(clips_per_class=3, height=16, width=16, frames=20))


# --------------------------------------------------------------------------- valid datasets


def test_generated_dataset(digits):
    """The generated dataset loads with its classes, prompts, splits and extra fields."""
    m = load_manifest(digits)
    assert isinstance(m, Manifest), f"expected a Manifest, found {type(m).__name__}"
    assert m.root == digits, f"expected root {digits}, found {m.root}"
    assert m.classes == list(MOTIONS), f"expected classes {list(MOTIONS)}, found {m.classes}"
    assert len(m.clips) == 3 * len(MOTIONS), f"expected 24 clips, found {len(m.clips)}"
    assert m.meta["name"] == "spike-digits", f"expected meta name spike-digits, found {m.meta.get('name')}"
    assert set(m.class_prompts) == set(MOTIONS), f"expected prompts for every class, found {sorted(m.class_prompts)}"
    assert m.class_prompts["left"] != "left", "expected a sentence as the prompt of 'left', found the bare label"
    for split in ("train", "val", "test"):
        n = len(m.split(split))
        assert n == len(MOTIONS), f"expected {len(MOTIONS)} clips in split {split}, found {n}"
    assert m.split(None) == m.clips, "expected split(None) to return every clip"
    for c in m.clips:
        assert isinstance(c, ClipRecord), f"expected ClipRecord, found {type(c).__name__}"
        assert c.path.is_absolute() and c.path.is_file(), f"expected an existing absolute path, found {c.path}"
        assert (c.frames, c.height, c.width) == (20, 16, 16), (
            f"expected 20x16x16, found {c.frames}x{c.height}x{c.width}"
        )
        assert c.caption.startswith("a handwritten"), f"expected a digit caption, found {c.caption!r}"
        assert m.label_index(c.label) == c.extra["label_index"], (
            f"expected label index {c.extra['label_index']}, found {m.label_index(c.label)}"
        )
        for key in ("digit", "speed", "position", "sample_index", "spikes"):
            assert key in c.extra, f"expected extra field {key!r}, found {sorted(c.extra)}"
        for key in ("path", "label", "frames", "caption", "split"):
            assert key not in c.extra, f"expected {key!r} not to be an extra field"


def test_manifest_file_as_source(digits):
    """A manifest file path loads the same clips as its folder."""
    by_folder = load_manifest(digits)
    by_file = load_manifest(digits / "manifest.jsonl")
    assert by_file.root == digits, f"expected root {digits}, found {by_file.root}"
    assert [c.path for c in by_file.clips] == [c.path for c in by_folder.clips], (
        "expected the same clips from the folder and from its manifest file"
    )


def test_jsonl_defaults_and_extra_fields(small_set):
    """Caption defaults to the label, split to train; unknown fields land in ``extra``."""
    write_jsonl(
        small_set / "manifest.jsonl",
        [
            record("walk/a.dat", caption="a person walks", split="val", camera="cam1", score=0.5),
            record("walk/b.dat", tags=["x", "y"]),
            record("run/c.dat", caption="", split=""),
            {k: v for k, v in record("run/d.dat").items() if k not in ("caption", "split")},
        ],
    )
    m = load_manifest(small_set)
    a, b, c, d = m.clips
    assert a.caption == "a person walks", f"expected the given caption, found {a.caption!r}"
    assert a.split == "val", f"expected split val, found {a.split!r}"
    assert a.extra == {"camera": "cam1", "score": 0.5}, f"expected extra camera/score, found {a.extra}"
    assert b.extra == {"tags": ["x", "y"]}, f"expected extra tags, found {b.extra}"
    for rec in (b, c, d):
        assert rec.caption == rec.label, f"expected caption {rec.label!r}, found {rec.caption!r}"
        assert rec.split == "train", f"expected split train, found {rec.split!r}"
    assert m.classes == ["run", "walk"], f"expected sorted labels as classes, found {m.classes}"
    assert m.class_prompts == {"run": "run", "walk": "walk"}, f"expected label prompts, found {m.class_prompts}"
    assert m.meta == {}, f"expected no meta without dataset.json, found {m.meta}"
    assert a.path == (small_set / "walk" / "a.dat").resolve(), f"expected an absolute path, found {a.path}"


def test_jsonl_blank_lines_and_integral_floats(small_set):
    """Blank lines are skipped; integral floats (as pandas writes counts) are whole numbers; numeric
    strings are not numbers in JSON and are refused, naming the line."""
    text = "\n" + json.dumps(record("walk/a.dat", frames=5.0)) + "\n   \n" + json.dumps(record("run/c.dat")) + "\n"
    (small_set / "manifest.jsonl").write_text(text)
    m = load_manifest(small_set)
    assert [c.frames for c in m.clips] == [5, 5], f"expected frames [5, 5], found {[c.frames for c in m.clips]}"
    assert all(isinstance(c.frames, int) for c in m.clips), "expected integer frames"
    (small_set / "manifest.jsonl").write_text(json.dumps({**record("run/c.dat"), "height": " 8"}) + "\n")
    with pytest.raises(ManifestError, match=r"manifest.jsonl:1: field 'height' must be a JSON number"):
        load_manifest(small_set)


def test_csv_manifest(small_set):
    """A CSV manifest: defaults, extra columns kept as strings, numbers parsed."""
    write_csv(
        small_set / "manifest.csv",
        ["path", "label", "frames", "height", "width", "caption", "split", "subject"],
        [
            ["walk/a.dat", "walk", 5, H, W, "someone walking", "test", "s01"],
            ["walk/b.dat", "walk", 5, H, W, "", "", "s02"],
            ["run/c.dat", "run", 5, H, W, "", "val", ""],
        ],
    )
    m = load_manifest(small_set)
    assert len(m.clips) == 3, f"expected 3 clips, found {len(m.clips)}"
    a, b, c = m.clips
    assert (a.caption, a.split) == ("someone walking", "test"), (
        f"expected caption/split, found {a.caption!r}/{a.split!r}"
    )
    assert (b.caption, b.split) == ("walk", "train"), f"expected defaults walk/train, found {b.caption!r}/{b.split!r}"
    assert c.split == "val", f"expected split val, found {c.split!r}"
    assert a.extra == {"subject": "s01"}, f"expected extra subject s01, found {a.extra}"
    assert (a.frames, a.height, a.width) == (5, H, W), f"expected 5x{H}x{W}, found {a.frames}x{a.height}x{a.width}"


def test_jsonl_preferred_over_csv(small_set):
    """With both manifests present the JSONL one is read."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat")])
    write_csv(
        small_set / "manifest.csv",
        ["path", "label", "frames", "height", "width"],
        [["walk/b.dat", "walk", 5, H, W], ["run/c.dat", "run", 5, H, W]],
    )
    m = load_manifest(small_set)
    assert len(m.clips) == 1, f"expected the 1 clip of manifest.jsonl, found {len(m.clips)}"


def test_folder_of_dat_clip(tmp_path):
    """A clip stored as a folder of .dat parts (SPKLIP layout) is accepted; frames are summed."""
    root = tmp_path / "set"
    for i, n in enumerate((4, 7, 3)):
        make_clip(root / "wave" / "clip0" / f"{i:03d}.dat", n, seed=i)
    (root / "wave" / "clip0" / "notes.txt").write_text("ignored")
    write_jsonl(root / "manifest.jsonl", [record("wave/clip0", label="wave", frames=14)])
    m = load_manifest(root)
    assert m.clips[0].frames == 14, f"expected 14 frames, found {m.clips[0].frames}"
    assert m.clips[0].path.is_dir(), f"expected a folder path, found {m.clips[0].path}"
    write_jsonl(root / "manifest.jsonl", [record("wave/clip0", label="wave", frames=13)])
    raises_naming(root, "manifest.jsonl:1", "13", "14", "clip0")


def test_folder_of_dat_clip_errors(tmp_path):
    """A clip folder without .dat parts, or with a truncated part, is rejected naming it."""
    root = tmp_path / "set"
    (root / "wave" / "empty").mkdir(parents=True)
    write_jsonl(root / "manifest.jsonl", [record("wave/empty", label="wave")])
    raises_naming(root, "manifest.jsonl:1", "empty", "no .dat")
    make_clip(root / "wave" / "clip1" / "000.dat", 3)
    bad = root / "wave" / "clip1" / "001.dat"
    make_clip(bad, 3)
    bad.write_bytes(bad.read_bytes()[:-1])
    write_jsonl(root / "manifest.jsonl", [record("wave/clip1", label="wave", frames=6)])
    raises_naming(root, "manifest.jsonl:1", "001.dat")


def test_check_files_false_skips_file_checks(small_set):
    """``check_files=False`` accepts records naming missing files."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/nothere.dat", frames=99)])
    m = load_manifest(small_set, check_files=False)
    assert m.clips[0].frames == 99, f"expected 99 frames, found {m.clips[0].frames}"


def test_dataset_json_classes_and_prompts(small_set):
    """dataset.json fixes the class order and prompts (missing prompts default to the class name)."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record("run/c.dat", label="run")])
    (small_set / "dataset.json").write_text(
        json.dumps({"classes": ["walk", "run", "jump"], "class_prompts": {"walk": "a person walking"}})
    )
    m = load_manifest(small_set)
    assert m.classes == ["walk", "run", "jump"], f"expected dataset.json class order, found {m.classes}"
    assert m.class_prompts == {"walk": "a person walking", "run": "run", "jump": "jump"}, (
        f"expected prompts with defaults, found {m.class_prompts}"
    )
    assert m.label_index("run") == 1, f"expected index 1 for run, found {m.label_index('run')}"


# --------------------------------------------------------------------------- errors


def test_missing_folder(tmp_path):
    """A missing dataset path is named."""
    raises_naming(tmp_path / "nowhere", "nowhere")


def test_folder_without_manifest(small_set):
    """A folder without a manifest is named, and the error suggests indexing."""
    raises_naming(small_set, str(small_set), "manifest", "index")


@pytest.mark.parametrize(
    "name,text",
    [
        ("manifest.jsonl", ""),
        ("manifest.jsonl", "\n  \n\n"),
        ("manifest.csv", ""),
        ("manifest.csv", "path,label,frames,height,width\n"),
    ],
)
def test_empty_manifest(small_set, name, text):
    """A manifest listing no clips is rejected naming it."""
    (small_set / name).write_text(text)
    raises_naming(small_set, name, "no clips")


def test_unknown_manifest_type(small_set):
    """A manifest file with another suffix is rejected naming it."""
    path = small_set / "list.txt"
    path.write_text(json.dumps(record("walk/a.dat")) + "\n")
    raises_naming(path, "list.txt")


def test_invalid_json_line(small_set):
    """An invalid JSON line is named with its line number."""
    (small_set / "manifest.jsonl").write_text(
        json.dumps(record("walk/a.dat")) + "\n{not json\n" + json.dumps(record("run/c.dat", label="run")) + "\n"
    )
    raises_naming(small_set, "manifest.jsonl:2", "JSON")


@pytest.mark.parametrize("value", [[1, 2], "a record", 5, None])
def test_record_not_an_object(small_set, value):
    """A JSON line that is not an object is rejected with its line number."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), value])
    raises_naming(small_set, "manifest.jsonl:2")


@pytest.mark.parametrize("field", ["path", "label", "frames", "height", "width"])
def test_missing_required_field(small_set, field):
    """A record without a required field is named with the line and the field."""
    rec = record("walk/a.dat")
    del rec[field]
    write_jsonl(small_set / "manifest.jsonl", [record("walk/b.dat"), rec])
    raises_naming(small_set, "manifest.jsonl:2", field)


def test_missing_field_csv(small_set):
    """A CSV row with an empty required cell is named with its line (header is line 1)."""
    write_csv(
        small_set / "manifest.csv",
        ["path", "label", "frames", "height", "width"],
        [["walk/a.dat", "walk", 5, H, W], ["walk/b.dat", "", 5, H, W]],
    )
    raises_naming(small_set, "manifest.csv:3", "label")


def test_csv_row_too_long(small_set):
    """A CSV row with more cells than the header is named with its line."""
    (small_set / "manifest.csv").write_text("path,label,frames,height,width\nwalk/a.dat,walk,5,8,16,surplus\n")
    raises_naming(small_set, "manifest.csv:2", "more cells")


@pytest.mark.parametrize(
    "field,value",
    [
        ("frames", "five"),
        ("frames", 2.5),
        ("frames", True),
        ("frames", [5]),
        ("frames", -5),
        ("frames", 0),
        ("height", -8),
        ("width", "16px"),
        ("width", {"w": 16}),
    ],
)
def test_bad_integer_field(small_set, field, value):
    """Non-integer, zero or negative numbers are rejected naming the line and the field."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", **{field: value})])
    raises_naming(small_set, "manifest.jsonl:1", field)


def test_path_not_a_string(small_set):
    """A path that is not a string is rejected naming the line."""
    write_jsonl(small_set / "manifest.jsonl", [record(["walk", "a.dat"])])
    raises_naming(small_set, "manifest.jsonl:1", "path")


def test_record_names_missing_file(small_set):
    """A record naming a missing clip file is rejected naming line and file."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record("walk/gone.dat")])
    raises_naming(small_set, "manifest.jsonl:2", "gone.dat", "missing")


def test_frames_mismatch(small_set):
    """A frame count that disagrees with the file size is rejected naming both."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", frames=6)])
    raises_naming(small_set, "manifest.jsonl:1", "a.dat", "6", "5")


def test_frame_size_mismatch(small_set):
    """A stated frame size the file size does not fit is rejected naming the file."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", height=7, width=16, frames=5)])
    raises_naming(small_set, "manifest.jsonl:1", "a.dat")


def test_truncated_dat(digits):
    """A truncated .dat referenced by the manifest is rejected naming it."""
    m = load_manifest(digits)
    victim = m.clips[3].path
    victim.write_bytes(victim.read_bytes()[:-3])
    raises_naming(digits, "manifest.jsonl:4", victim.name, "whole number")


def test_empty_dat(small_set):
    """An empty .dat referenced by the manifest is rejected naming it."""
    (small_set / "walk" / "a.dat").write_bytes(b"")
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat")])
    raises_naming(small_set, "manifest.jsonl:1", "a.dat")


def test_label_not_in_classes(digits):
    """Labels missing from dataset.json's classes are rejected naming dataset.json and the label."""
    meta = json.loads((digits / "dataset.json").read_text())
    meta["classes"] = [c for c in meta["classes"] if c != "zoom_out"]
    (digits / "dataset.json").write_text(json.dumps(meta))
    raises_naming(digits, "dataset.json", "zoom_out")


def test_dataset_json_invalid(small_set):
    """A dataset.json that is not valid JSON, or not an object, is rejected naming it."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat")])
    (small_set / "dataset.json").write_text("{classes: ")
    raises_naming(small_set, "dataset.json")
    (small_set / "dataset.json").write_text("[1, 2]")
    raises_naming(small_set, "dataset.json")


@pytest.mark.parametrize("name", ["manifest.jsonl", "manifest.csv"])
def test_non_utf8_manifest(small_set, name):
    """A manifest that is not UTF-8 is rejected naming it."""
    (small_set / name).write_bytes(b"path,label\n\xff\xfe\xfa walk\n")
    raises_naming(small_set, name, "UTF-8")


def test_deeply_nested_json_line(small_set):
    """A pathologically nested JSON line is a ManifestError, not a RecursionError."""
    (small_set / "manifest.jsonl").write_text("[" * 100_000 + "\n")
    raises_naming(small_set, "manifest.jsonl:1")


@pytest.mark.parametrize(
    "rel",
    ["walk/a\x00.dat", "walk/\ud800.dat", "walk/" + "x" * 300 + ".dat"],
    ids=["nul", "lone-surrogate", "name-too-long"],
)
def test_unusable_path(small_set, rel):
    """A record path the OS cannot use (NUL byte, lone surrogate, over-long name) is a ManifestError."""
    write_jsonl(small_set / "manifest.jsonl", [record(rel)])
    raises_naming(small_set, "manifest.jsonl:1")


@pytest.mark.parametrize(
    "meta",
    [{"classes": 5}, {"classes": None}, {"class_prompts": ["walk"]}, {"class_prompts": "x"}],
)
def test_dataset_json_wrong_types(small_set, meta):
    """dataset.json fields of the wrong type are a ManifestError naming dataset.json."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat")])
    (small_set / "dataset.json").write_text(json.dumps(meta))
    raises_naming(small_set, "dataset.json")


# --------------------------------------------------------------------------- index_folder


def test_index_folder(tmp_path):
    """Folder-per-class layout with .dat files and folders of .dat parts is indexed."""
    root = tmp_path / "raw"
    make_clip(root / "jump" / "v1.dat", 4, seed=1)
    make_clip(root / "jump" / "v2.dat", 6, seed=2)
    make_clip(root / "sit" / "v3" / "p0.dat", 2, seed=3)
    make_clip(root / "sit" / "v3" / "p1.dat", 5, seed=4)
    (root / "sit" / "readme.txt").write_text("not a clip")
    (root / "sit" / "empty_clip").mkdir()
    make_clip(root / ".hidden" / "v9.dat", 3)
    (root / "top.dat").write_bytes(b"\0" * 16)  # files in the root are not classes
    records = index_folder(root, H, W)
    got = [(r["path"], r["label"], r["frames"]) for r in records]
    expected = [("jump/v1.dat", "jump", 4), ("jump/v2.dat", "jump", 6), ("sit/v3", "sit", 7)]
    assert got == expected, f"expected {expected}, found {got}"
    for r in records:
        assert r["caption"] == r["label"], f"expected caption {r['label']!r}, found {r['caption']!r}"
        assert (r["height"], r["width"], r["split"]) == (H, W, "train"), f"expected {H}x{W} train, found {r}"
    write_jsonl(root / "manifest.jsonl", records)
    m = load_manifest(root)
    assert m.classes == ["jump", "sit"], f"expected classes jump, sit; found {m.classes}"
    assert [c.frames for c in m.clips] == [4, 6, 7], f"expected frames [4, 6, 7], found {[c.frames for c in m.clips]}"


def test_index_folder_errors(tmp_path):
    """Missing or empty folders, and truncated clips, are ManifestErrors naming the path."""
    with pytest.raises(ManifestError, match="nowhere"):
        index_folder(tmp_path / "nowhere", H, W)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match="empty"):
        index_folder(empty, H, W)
    (empty / "cls").mkdir()
    (empty / "cls" / "notes.txt").write_text("x")
    with pytest.raises(ManifestError, match="empty"):
        index_folder(empty, H, W)
    bad = tmp_path / "bad"
    make_clip(bad / "cls" / "v.dat", 3)
    (bad / "cls" / "v.dat").write_bytes((bad / "cls" / "v.dat").read_bytes()[:-1])
    with pytest.raises(ManifestError, match="v.dat"):
        index_folder(bad, H, W)


# --------------------------------------------------------------------------- fuzzing

FIELDS = ["path", "label", "frames", "height", "width", "caption", "split", "extra"]
CLIPS = {"walk/a.dat": 5, "walk/b.dat": 5, "run/c.dat": 5, "run/d.dat": 5}
#: Paths a careless or hostile manifest may hold.
NASTY_PATHS = [
    "walk/a\x00.dat",
    "walk/\ud800.dat",
    "walk/" + "x" * 300,
    "walk/a.dat/",
    "walk/..",
    "/",
    ".",
    "walk",
    "run/d.dat/../c.dat",
    "~/a.dat",
    "walk/a.dat/x",
]
odd_paths = st.one_of(
    st.sampled_from(list(CLIPS)),
    st.sampled_from(list(CLIPS)),
    st.sampled_from(NASTY_PATHS),
    st.text(max_size=8).map(lambda t: "walk/" + t),
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, 5, 8, 16, -1, 5.0, 2.5, math.inf, -math.inf, math.nan, 1e300]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(list(CLIPS) + ["walk", "run", "", "5", " 8", "1e3", "٥"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def json_records(draw):
    """A manifest record: a clean one, or plausible fields mixed with random types and values."""
    clean = draw(st.booleans())
    rec = {}
    for key in FIELDS:
        if not clean and draw(st.integers(0, 9)) == 0:
            continue  # leave the field out
        if not clean and draw(st.integers(0, 2)) == 0:
            rec[key] = draw(json_values)
            continue
        rec[key] = {
            "path": draw(odd_paths),
            "label": draw(st.sampled_from(["walk", "run"])),
            "frames": 5,
            "height": H,
            "width": W,
            "caption": draw(st.text(max_size=10)),
            "split": draw(st.sampled_from(["train", "val", "test"])),
            "extra": draw(json_values),
        }[key]
    for key, value in draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)).items():
        rec.setdefault(key, value)
    return rec


def jsonl_text(lines: list) -> str:
    """One ``json.dumps`` line per value."""
    return "".join(json.dumps(v) + "\n" for v in lines)


def csv_text(rows: list[list]) -> str:
    """Rows written with the csv module."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


CSV_HEADER = ["path", "label", "frames", "height", "width", "caption", "split"]
csv_cells = st.one_of(
    st.text(max_size=10),
    st.sampled_from(list(CLIPS) + NASTY_PATHS + ["walk", "run", "5", "8", "16", "-1", "2.5", ""]),
)
csv_rows = st.one_of(
    st.lists(csv_cells, max_size=9),
    st.tuples(odd_paths, st.sampled_from(["walk", "run"]), csv_cells, csv_cells, csv_cells).map(list),
    st.tuples(odd_paths, st.sampled_from(["walk", "run"])).map(lambda r: [*r, 5, H, W]),
)
raw_manifests = st.one_of(
    st.tuples(st.sampled_from(["manifest.jsonl", "manifest.csv"]), st.binary(max_size=200)),
    st.tuples(st.sampled_from(["manifest.jsonl", "manifest.csv"]), st.text(max_size=200)),
    st.tuples(
        st.just("manifest.csv"),
        st.tuples(st.lists(csv_cells, max_size=8) | st.just(CSV_HEADER), st.lists(csv_rows, max_size=4)).map(
            lambda hr: csv_text([hr[0], *hr[1]])
        ),
    ),
)
truncations = st.dictionaries(st.sampled_from(list(CLIPS)), st.integers(0, 200), max_size=2)


def build_set(root: Path, name: str, content, truncate: dict[str, int], meta=None) -> None:
    """Write the four clips of ``CLIPS`` (truncated as asked), the manifest and dataset.json."""
    for i, (rel, frames) in enumerate(CLIPS.items()):
        path = root / rel
        make_clip(path, frames, seed=i)
        if rel in truncate:
            data = path.read_bytes()
            path.write_bytes(data[: truncate[rel] % (len(data) + 1)])
    manifest = root / name
    if isinstance(content, bytes):
        manifest.write_bytes(content)
    else:
        manifest.write_text(content, encoding="utf-8", errors="surrogatepass")
    if meta is not None:
        (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")


def load_or_manifest_error(root: Path) -> None:
    """Load the dataset; a Manifest or a ManifestError are the only allowed outcomes."""
    try:
        m = load_manifest(root)
    except ManifestError as exc:
        assert str(exc), "expected a non-empty error message"
        event("ManifestError")
        return
    except Exception as exc:  # the failure being tested for
        pytest.fail(f"expected a Manifest or ManifestError, found {type(exc).__name__}: {exc}")
    event("loaded")
    assert isinstance(m, Manifest), f"expected a Manifest, found {type(m).__name__}"
    assert m.clips, "expected a loaded manifest to hold clips"
    for c in m.clips:
        assert c.frames > 0 and c.height > 0 and c.width > 0, f"expected positive sizes, found {c}"
        assert c.label in m.classes, f"expected label {c.label!r} in classes {m.classes}"


@pytest.mark.filterwarnings("ignore::spklip_energy.errors.SpklipWarning")  # duplicates are generated on purpose
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=raw_manifests, truncate=truncations)
def test_fuzz_raw_manifest(content, truncate):
    """Random bytes, text and CSV as the manifest: a Manifest or a ManifestError, nothing else."""
    name, text = content
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        build_set(root, name, text, truncate)
        load_or_manifest_error(root)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(json_records() | json_values, min_size=1, max_size=4), truncate=truncations)
def test_fuzz_json_records(lines, truncate):
    """Random JSON records (random fields, types, values, paths) and truncated clips."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        build_set(root, "manifest.jsonl", jsonl_text(lines), truncate)
        load_or_manifest_error(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    meta=json_values
    | st.fixed_dictionaries({"classes": st.just(["walk", "run"]) | json_values, "class_prompts": json_values})
    | st.fixed_dictionaries({"class_prompts": json_values})
)
def test_fuzz_dataset_json(meta):
    """A valid manifest with a random dataset.json: a Manifest or a ManifestError, nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        build_set(root, "manifest.jsonl", jsonl_text([record(rel) for rel in CLIPS]), {}, meta=meta)
        load_or_manifest_error(root)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(0, 5 * H * W // 8), which=st.sampled_from(list(CLIPS)))
def test_fuzz_truncation_valid_manifest(cut, which):
    """Truncating one clip of a valid dataset: an error naming it, unless nothing was cut."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set"
        build_set(root, "manifest.jsonl", jsonl_text([record(rel) for rel in CLIPS]), {which: cut})
        if cut == 5 * H * W // 8:
            m = load_manifest(root)
            assert len(m.clips) == 4, f"expected 4 clips, found {len(m.clips)}"
        else:
            raises_naming(root, Path(which).name, f"manifest.jsonl:{list(CLIPS).index(which) + 1}")
