"""The ``bench`` dataset preset: size, classes that need speed, disjoint handwriting, distractors."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import numpy as np
import pytest

from spikedata.clips import BUILTIN_DATA, builtin_root
from spikedata.digits import (
    MOTION_SPEED_CLASSES,
    MOTIONS,
    SPEEDS,
    DigitsConfig,
    _load_handwriting,
    _trajectory,
    class_prompts,
    digits_preset,
    generate_digits,
    plan_clips,
    render_clip,
    task_symmetries,
)
from spklip_energy.errors import ConfigError
from tests.cli_helpers import check_user_error, run_main


@pytest.fixture(scope="module")
def handwriting():
    return _load_handwriting()


def test_bench_plan_has_800_test_clips_in_16_balanced_classes(handwriting):
    _, labels = handwriting
    cfg = digits_preset("bench")
    specs = plan_clips(cfg, labels)
    per_split = Counter(s.split for s in specs)
    assert per_split == {"train": 480, "val": 96, "test": 800}, f"found {dict(per_split)}"
    assert len(cfg.classes) == 16 == len(set(cfg.classes))
    test_classes = Counter(s.label for s in specs if s.split == "test")
    assert set(test_classes.values()) == {50}, f"test clips per class: {test_classes}"
    for s in specs:  # the class fixes both the motion and the speed
        assert s.label == f"{s.motion}_{s.speed}", f"clip {s.index}: {s.label} vs {s.motion}/{s.speed}"


def test_bench_handwriting_disjoint_across_splits_including_distractors(handwriting):
    _, labels = handwriting
    cfg = digits_preset("bench", distractors=2)
    used: dict[str, set[int]] = {"train": set(), "val": set(), "test": set()}
    for s in plan_clips(cfg, labels):
        used[s.split].add(s.sample_index)
        used[s.split].update(d.sample_index for d in s.distractors)
        assert len(s.distractors) == 2
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]


def test_quick_preset_plan_unchanged_by_the_new_fields(handwriting):
    """The default dataset's clips are planned as before the bench preset existed (same draws)."""
    _, labels = handwriting
    specs = plan_clips(digits_preset("quick"), labels)
    assert len(specs) == 8 * 32 and {s.label for s in specs} == set(MOTIONS)
    text = json.dumps([[s.split, s.motion, s.sample_index, s.speed, s.position, s.verb, s.seed] for s in specs])
    # digest of the session-4 plan (commit 035f1bc), so that cached `builtin` datasets stay valid
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == QUICK_PLAN_DIGEST


QUICK_PLAN_DIGEST = "f7f7bdb4ecfa0b42"


def test_speed_classes_differ_in_travel_only():
    from spikedata.digits import ClipSpec

    slow = ClipSpec(0, "test", "left", 3, 0, "slowly", "in the middle", "moves {s} to the left", 1)
    quick = ClipSpec(0, "test", "left", 3, 0, "quickly", "in the middle", "moves {s} to the left", 1)
    xs, xq = _trajectory(slow, 50)[0], _trajectory(quick, 50)[0]
    assert np.isclose(xs[0] - xs[-1], SPEEDS["slowly"] / SPEEDS["quickly"] * (xq[0] - xq[-1]))


def test_prompts_and_symmetries_cover_every_class():
    prompts = class_prompts("motion-speed")
    assert set(prompts) == set(MOTION_SPEED_CLASSES) and len(set(prompts.values())) == 16
    assert prompts["left_slowly"] == "a handwritten digit moving slowly to the left"
    sym = task_symmetries("motion-speed")
    assert sym["hflip"]["classes"]["left_quickly"] == "right_quickly"
    assert sym["vflip"]["classes"]["rotate_cw_slowly"] == "rotate_ccw_slowly"
    assert set(sym["hflip"]["classes"]) <= set(MOTION_SPEED_CLASSES)


def test_distractor_is_drawn_dimmer_than_the_digit(handwriting):
    images, labels = handwriting
    cfg = DigitsConfig(clips_per_class=3, height=32, width=32, frames=8, distractors=1, task="motion-speed")
    spec = plan_clips(cfg, labels)[0]
    spec0 = type(spec)(**{**spec.__dict__, "distractors": ()})
    plain = render_clip(
        spec0,
        images[spec.sample_index],
        DigitsConfig(clips_per_class=3, height=32, width=32, frames=8, task="motion-speed"),
    )
    base = render_clip(spec0, images[spec.sample_index], cfg)
    with_d = render_clip(spec, images[spec.sample_index], cfg, [images[spec.distractors[0].sample_index]])
    assert np.allclose(plain, base), "without distractors the clip is as before"
    diff = with_d - base
    assert diff.max() > 0.02, "the distractor must show"
    with pytest.raises(ConfigError, match="distractors need as many images"):
        render_clip(spec, images[spec.sample_index], cfg)


def test_generated_bench_dataset_layout(tmp_path):
    cfg = digits_preset("bench", split_clips=(1, 1, 2), height=16, width=16, frames=12, distractors=1)
    root = generate_digits(tmp_path / "b", cfg)
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["classes"] == list(MOTION_SPEED_CLASSES)
    assert meta["config"]["preset"] == "bench"
    recs = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert Counter(r["split"] for r in recs) == {"train": 16, "val": 16, "test": 32}
    for r in recs:
        assert r["label"] == f"{r['path'].split('/')[0]}" and r["label_index"] == meta["classes"].index(r["label"])
        assert len(r["distractors"]) == 1


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"task": "motion-colour"}, "unknown dataset task"),
        ({"ink_min": 0.9, "ink_max": 0.5}, "ink_min 0.9 is above ink_max"),
        ({"ink_min": 1.5}, "ink_min"),
        ({"split_clips": (3, 3)}, "three counts"),
        ({"split_clips": (3, 0, 3)}, "split_clips[1]"),
        ({"distractors": 50}, "distractors per clip"),
    ],
)
def test_bad_dataset_fields(fields, needle):
    with pytest.raises(ConfigError, match=None) as err:
        DigitsConfig(**fields)
    assert needle in str(err.value), str(err.value)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="unknown dataset preset 'huge'; choose one of quick, bench"):
        digits_preset("huge")


def test_cli_make_digits_bench_preset(tmp_path, capsys):
    rc, out, err = run_main(
        capsys,
        "data",
        "make-digits",
        str(tmp_path / "b"),
        "--preset",
        "bench",
        "--clips-per-class",
        "3",
        "--height",
        "16",
        "--width",
        "16",
        "--frames",
        "10",
        "--json",
    )
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["classes"] == list(MOTION_SPEED_CLASSES)
    assert summary["clips"] == 48
    rc, out, err = run_main(capsys, "data", "make-digits", str(tmp_path / "c"), "--preset", "huge")
    check_user_error(rc, err, "--preset", "huge")


def test_builtin_bench_names_its_own_cache_folder():
    assert BUILTIN_DATA["builtin-bench"] == ("bench", "sim")
    quick = digits_preset("quick").builtin_name()
    bench = digits_preset("bench").builtin_name()
    assert quick == "digits-v1-sim-seed0-32x250x64x64", "the default cache name must not change"
    assert bench.startswith("digits-v1-bench-sim-seed0-") and bench != quick
    assert builtin_root().name  # resolvable without generating anything
