"""The built-in spike-digits dataset: determinism, splits, captions, layout, variants."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from spikedata.dat import read_dat
from spikedata.digits import (
    CLASS_PROMPTS,
    DIGIT_WORDS,
    MOTIONS,
    DigitsConfig,
    generate_digits,
    plan_clips,
    render_clip,
    split_samples,
)
from spklip_energy.errors import ConfigError

SMALL = dict(clips_per_class=4, height=24, width=32, frames=40)


def _records(root):
    return [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]


def test_layout_and_manifest(tmp_path):
    root = generate_digits(tmp_path / "d", DigitsConfig(**SMALL))
    recs = _records(root)
    assert len(recs) == 4 * len(MOTIONS)
    assert len(MOTIONS) >= 8
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["classes"] == list(MOTIONS)
    assert meta["class_prompts"] == CLASS_PROMPTS
    for r in recs:
        assert r["path"].startswith(r["label"] + "/") and r["path"].endswith(".dat")
        assert (r["frames"], r["height"], r["width"]) == (40, 24, 32)
        s = read_dat(root / r["path"], 24, 32)
        assert s.shape == (40, 24, 32)
        assert int(s.sum()) == r["spikes"]
    assert not list(tmp_path.glob(".*tmp")), "no temporary folder may remain"


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = generate_digits(tmp_path / "a", DigitsConfig(**SMALL, seed=5))
    b = generate_digits(tmp_path / "b", DigitsConfig(**SMALL, seed=5))
    c = generate_digits(tmp_path / "c", DigitsConfig(**SMALL, seed=6))
    ra, rb, rc = _records(a), _records(b), _records(c)
    assert ra == rb
    for r in ra:
        assert (a / r["path"]).read_bytes() == (b / r["path"]).read_bytes()
    assert [r["caption"] for r in ra] != [r["caption"] for r in rc]


def test_splits_are_disjoint_by_handwriting_sample():
    pools = split_samples(1797, seed=0)
    assert not set(pools["train"]) & set(pools["val"])
    assert not set(pools["train"]) & set(pools["test"])
    assert not set(pools["val"]) & set(pools["test"])
    labels = np.arange(1797) % 10
    specs = plan_clips(DigitsConfig(clips_per_class=20), labels)
    used = {s: {c.sample_index for c in specs if c.split == s} for s in ("train", "val", "test")}
    assert not used["train"] & used["test"] and not used["train"] & used["val"]
    assert not used["val"] & used["test"]
    for s in ("train", "val", "test"):
        assert used[s] <= set(pools[s])
    counts = {s: sum(c.split == s for c in specs) for s in used}
    assert counts == {"train": 14 * 8, "val": 3 * 8, "test": 3 * 8}


def test_captions_name_digit_motion_speed_and_position():
    labels = np.arange(1797) % 10
    specs = plan_clips(DigitsConfig(clips_per_class=10), labels)
    direction_words = {
        "left": "left",
        "right": "right",
        "rotate_cw": "clockwise",
        "rotate_ccw": "counterclockwise",
    }
    for s in specs:
        cap = s.caption
        assert cap.startswith(f"a handwritten {DIGIT_WORDS[s.digit]} ")
        assert s.speed in cap and cap.endswith(s.position)
        if s.motion in direction_words:
            assert direction_words[s.motion] in cap
    captions = [s.caption for s in specs]
    assert len(set(captions)) > 0.8 * len(captions), "captions should mostly identify their clip"


def _centroid(img):
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img / img.sum()
    return float((xs * w).sum()), float((ys * w).sum())


@pytest.mark.parametrize("motion", ["left", "right", "up", "down", "zoom_in", "zoom_out"])
def test_rendered_motion_goes_the_named_way(motion):
    labels = np.arange(1797) % 10
    cfg = DigitsConfig(clips_per_class=3, height=48, width=48, frames=30)
    spec = next(s for s in plan_clips(cfg, labels) if s.motion == motion)
    spec.speed = "quickly"
    digit = np.zeros((1, 8, 8), dtype=np.float32)
    digit[0, 2:6, 2:6] = 1.0  # a square blob, so the centroid and area are easy to read
    frames = render_clip(spec, digit, cfg)
    ink0 = (frames[0] > 0.6).astype(float)
    ink1 = (frames[-1] > 0.6).astype(float)
    (x0, y0), (x1, y1) = _centroid(ink0), _centroid(ink1)
    moved = {
        "left": x1 - x0 < -5,
        "right": x1 - x0 > 5,
        "up": y1 - y0 < -5,
        "down": y1 - y0 > 5,
        "zoom_in": ink1.sum() > 1.5 * ink0.sum(),
        "zoom_out": ink1.sum() < 0.67 * ink0.sum(),
    }
    assert moved[motion], f"{motion}: centroid {(x0, y0)} -> {(x1, y1)}, area {ink0.sum()} -> {ink1.sum()}"


def test_rotation_direction_on_screen():
    labels = np.arange(1797) % 10
    cfg = DigitsConfig(clips_per_class=3, height=48, width=48, frames=5)
    digit = np.zeros((1, 8, 8), dtype=np.float32)
    digit[0, 3:5, 4:8] = 1.0  # a bar pointing right from the centre
    for motion, expect_down in (("rotate_cw", True), ("rotate_ccw", False)):
        spec = next(s for s in plan_clips(cfg, labels) if s.motion == motion)
        spec.speed, spec.position = "slowly", "in the centre"  # a quarter turn
        frames = render_clip(spec, digit, cfg)
        x, y = _centroid((frames[2] > 0.6).astype(float))  # after 1/8 turn
        assert (y > 24) == expect_down, f"{motion}: bar centroid at y={y:.1f}"


def test_sensor_variant_is_sparser_with_artefacts(tmp_path):
    sim = generate_digits(tmp_path / "sim", DigitsConfig(**SMALL))
    sen = generate_digits(tmp_path / "sen", DigitsConfig(**SMALL, variant="sensor"))
    rate = lambda root: np.mean([r["spikes"] for r in _records(root)])  # noqa: E731
    assert rate(sen) < 0.6 * rate(sim)
    meta = json.loads((sen / "dataset.json").read_text())
    assert meta["camera"]["hot_pixel_fraction"] > 0 and meta["camera"]["row_artifact_fraction"] > 0


def test_refuses_non_empty_folder_and_keeps_it(tmp_path):
    """Without overwrite any non-empty folder is refused; with it, a folder holding a file the generator
    does not write is refused too (naming the file) and kept as it was."""
    out = tmp_path / "d"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        generate_digits(out, DigitsConfig(**SMALL))
    with pytest.raises(ConfigError, match="'keep.txt'"):
        generate_digits(out, DigitsConfig(**SMALL), overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["d"], "expected no temporary folder left"


def test_overwrite_replaces_a_generated_dataset(tmp_path):
    out = generate_digits(tmp_path / "d", DigitsConfig(**SMALL, seed=1))
    old = (out / "manifest.jsonl").read_text()
    generate_digits(out, DigitsConfig(**SMALL, seed=2), overwrite=True)
    assert (out / "manifest.jsonl").read_text() != old
    assert sorted(p.name for p in out.iterdir()) == sorted(["dataset.json", "manifest.jsonl", *MOTIONS])


@pytest.mark.parametrize(
    "foreign,needle",
    [
        ("notes.txt", "holds 'notes.txt'"),
        ("left/notes.txt", "left/ holds 'notes.txt'"),
        ("left/train_00000.dat/x", "left/ holds 'train_00000.dat'"),  # a folder where a clip would be
    ],
)
def test_overwrite_keeps_a_folder_with_foreign_entries(tmp_path, foreign, needle):
    """A user's file at the top or inside a class folder is never deleted by --overwrite."""
    out = generate_digits(tmp_path / "d", DigitsConfig(**SMALL))
    if foreign.endswith("/x"):  # a folder where a clip would be
        (out / foreign).parent.unlink()
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("mine")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(ConfigError, match=re.escape(needle)):
        generate_digits(out, DigitsConfig(**SMALL, seed=9), overwrite=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
    assert (out / foreign).read_text() == "mine"


def test_failure_midway_leaves_nothing(tmp_path, monkeypatch):
    import spikedata.digits as digits

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(digits, "encode_dat", boom)
    with pytest.raises(RuntimeError):
        generate_digits(tmp_path / "d", DigitsConfig(**SMALL))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs", [{"variant": "real"}, {"clips_per_class": 2}, {"height": 8}, {"frames": 1}])
def test_invalid_config(kwargs):
    with pytest.raises(ConfigError):
        DigitsConfig(**kwargs)
