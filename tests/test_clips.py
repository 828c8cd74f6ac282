"""Tests of :class:`SpikeClips`, :func:`read_clip` and the built-in dataset cache."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import check_equal
from torch.utils.data import DataLoader

from spikedata import clips as clips_mod
from spikedata import digits as digits_mod
from spikedata.clips import (
    ClipSelection,
    SpikeClips,
    builtin_dataset,
    builtin_root,
    read_clip,
)
from spikedata.dat import read_dat, write_dat
from spikedata.digits import MOTIONS, DigitsConfig, generate_digits
from spikedata.manifest import ClipRecord, load_manifest
from spklip_energy.errors import ConfigError

SMALL = dict(clips_per_class=3, height=16, width=16, frames=20)


@pytest.fixture
def digits(tmp_path) -> Path:
    """A small spike-digits dataset: 8 classes x 3 clips of 20 frames, 16x16."""
    return generate_digits(tmp_path / "digits", DigitsConfig(**SMALL))


@pytest.fixture
def wide_set(tmp_path) -> Path:
    """Two 12x20 clips of 30 frames with dense random spikes, as one class."""
    root = tmp_path / "wide"
    rng = np.random.default_rng(7)
    lines = []
    for i in range(2):
        spikes = (rng.random((30, 12, 20)) < 0.5).astype(np.uint8)
        write_dat(root / "cls" / f"c{i}.dat", spikes)
        lines.append({"path": f"cls/c{i}.dat", "label": "cls", "frames": 30, "height": 12, "width": 20})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return root


# --------------------------------------------------------------------------- items


def test_items_match_files(digits):
    """Items: keys, dtype, shape, 0/1 values, label index, caption, and the file's spikes."""
    ds = SpikeClips(digits)
    m = load_manifest(digits)
    assert len(ds) == len(m.clips), f"expected {len(m.clips)} items, found {len(ds)}"
    assert ds.classes == list(MOTIONS), f"expected classes {list(MOTIONS)}, found {ds.classes}"
    assert (ds.frames, ds.height, ds.width) == (20, 16, 16), (
        f"expected 20x16x16, found {ds.frames}x{ds.height}x{ds.width}"
    )
    for i, rec in enumerate(m.clips):
        item = ds[i]
        assert set(item) == {"spikes", "label", "caption", "index"}, f"expected 4 keys, found {sorted(item)}"
        s = item["spikes"]
        assert isinstance(s, torch.Tensor), f"expected a tensor, found {type(s).__name__}"
        assert s.dtype == torch.uint8, f"expected uint8, found {s.dtype}"
        assert tuple(s.shape) == (20, 16, 16), f"expected shape (20, 16, 16), found {tuple(s.shape)}"
        values = set(torch.unique(s).tolist())
        assert values <= {0, 1}, f"expected values 0/1, found {sorted(values)}"
        assert item["label"] == MOTIONS.index(rec.label), (
            f"expected label {MOTIONS.index(rec.label)}, found {item['label']}"
        )
        assert item["label"] == rec.extra["label_index"], "expected the manifest's label_index"
        assert item["caption"] == rec.caption, f"expected caption {rec.caption!r}, found {item['caption']!r}"
        assert item["index"] == i, f"expected index {i}, found {item['index']}"
        check_equal(read_dat(rec.path, 16, 16), s.numpy(), f"item {i} vs. read_dat")
    assert ds.captions == [c.caption for c in m.clips], "expected captions in manifest order"
    assert ds.labels == [MOTIONS.index(c.label) for c in m.clips], "expected labels in manifest order"
    assert ds.class_prompts == [m.class_prompts[c] for c in MOTIONS], "expected prompts in class order"


def test_accepts_manifest_object(digits):
    """A loaded Manifest can be passed instead of a path."""
    m = load_manifest(digits)
    ds = SpikeClips(m, split="test")
    assert ds.manifest is m, "expected the given Manifest to be used"
    assert len(ds) == len(MOTIONS), f"expected {len(MOTIONS)} test clips, found {len(ds)}"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_filtering(digits, split):
    """Only the clips of the chosen split are items, in manifest order."""
    ds = SpikeClips(digits, split=split)
    expected = [c.path for c in load_manifest(digits).clips if c.split == split]
    found = [c.path for c in ds.clips]
    assert found == expected, f"expected {len(expected)} {split} clips, found {len(found)}"
    assert len(ds) == len(MOTIONS), f"expected {len(MOTIONS)} clips, found {len(ds)}"
    assert all(c.split == split for c in ds.clips), "expected every clip in the chosen split"


def test_unknown_split(digits):
    """An empty split is a ConfigError."""
    with pytest.raises(ConfigError, match="nosuch"):
        SpikeClips(digits, split="nosuch")


# --------------------------------------------------------------------------- selections


def test_longer_selection_zero_pads_end(wide_set):
    """A window longer than the clip holds the whole clip, then zeros."""
    ds = SpikeClips(wide_set, selection=ClipSelection(frames=45))
    full = read_dat(wide_set / "cls" / "c0.dat", 12, 20)
    s = ds[0]["spikes"].numpy()
    assert s.shape == (45, 12, 20), f"expected shape (45, 12, 20), found {s.shape}"
    check_equal(full, s[:30], "first 30 frames")
    assert not s[30:].any(), f"expected zero padding, found {int(s[30:].sum())} spikes"
    for offset in ("start", "center"):
        s2 = SpikeClips(wide_set, selection=ClipSelection(frames=45, offset=offset))[0]["spikes"].numpy()
        check_equal(s, s2, f"offset={offset} on a short clip")


@pytest.mark.parametrize("n", [1, 8, 29, 30])
@pytest.mark.parametrize("offset", ["start", "center"])
def test_shorter_selection(wide_set, n, offset):
    """A shorter window is the clip's start, or its centre with offset='center'."""
    full = read_dat(wide_set / "cls" / "c1.dat", 12, 20)
    ds = SpikeClips(wide_set, selection=ClipSelection(frames=n, offset=offset))
    start = 0 if offset == "start" else (30 - n) // 2
    check_equal(full[start : start + n], ds[1]["spikes"].numpy(), f"{offset} window of {n}")


def test_centre_offset_value(wide_set):
    """The centre window of 10 in 30 frames starts at frame 10."""
    full = read_dat(wide_set / "cls" / "c0.dat", 12, 20)
    s = SpikeClips(wide_set, selection=ClipSelection(frames=10, offset="center"))[0]["spikes"].numpy()
    check_equal(full[10:20], s, "centre window")


@pytest.mark.parametrize("crop", [(12, 20), (8, 8), (5, 13), (1, 1)])
def test_centre_crop(wide_set, crop):
    """A crop is the centred slice of the full frame."""
    full = read_dat(wide_set / "cls" / "c0.dat", 12, 20)
    ch, cw = crop
    top, left = (12 - ch) // 2, (20 - cw) // 2
    ds = SpikeClips(wide_set, selection=ClipSelection(crop=crop))
    assert (ds.height, ds.width) == crop, f"expected size {crop}, found {(ds.height, ds.width)}"
    check_equal(full[:, top : top + ch, left : left + cw], ds[0]["spikes"].numpy(), f"crop {crop}")


def test_crop_with_window_and_padding(wide_set):
    """Crop, centre window and padding combine."""
    full = read_dat(wide_set / "cls" / "c1.dat", 12, 20)
    s = SpikeClips(wide_set, selection=ClipSelection(frames=6, offset="center", crop=(4, 6)))[1]
    check_equal(full[12:18, 4:8, 7:13], s["spikes"].numpy(), "cropped centre window")
    s = SpikeClips(wide_set, selection=ClipSelection(frames=33, crop=(4, 6)))[1]["spikes"].numpy()
    check_equal(full[:, 4:8, 7:13], s[:30], "cropped padded window")
    assert not s[30:].any(), "expected zero padding after the clip"


def test_head_columns_and_flipud(wide_set):
    """head_columns drops right-most columns; flipud flips rows."""
    full = read_dat(wide_set / "cls" / "c0.dat", 12, 20)
    ds = SpikeClips(wide_set, selection=ClipSelection(head_columns=4))
    assert ds.width == 16, f"expected width 16, found {ds.width}"
    check_equal(full[:, :, :16], ds[0]["spikes"].numpy(), "head_columns=4")
    ds = SpikeClips(wide_set, selection=ClipSelection(head_columns=4, flipud=True))
    check_equal(full[:, ::-1, :16], ds[0]["spikes"].numpy(), "head_columns=4 flipud")


def test_selection_flipud_and_head_columns_checks(wide_set):
    """flipud is a real boolean (numpy's too); the selection's head columns must leave image columns of
    the narrowest clip whose record gives none, and the refusal names the dataset and the width."""
    assert ClipSelection(flipud=np.bool_(True)).flipud is True
    for value in (1, "yes", None):
        with pytest.raises(ConfigError, match="flipud must be true or false"):
            ClipSelection(flipud=value)
    with pytest.raises(ConfigError, match=r"wide: head_columns must be in \[0, 20\).*got 20"):
        SpikeClips(wide_set, selection=ClipSelection(head_columns=20))
    assert SpikeClips(wide_set, selection=ClipSelection(head_columns=19)).width == 1


def test_selection_errors(wide_set):
    """Bad selections are ConfigErrors."""
    with pytest.raises(ConfigError, match="offset"):
        ClipSelection(offset="middle")
    with pytest.raises(ConfigError, match="frames"):
        ClipSelection(frames=0)
    with pytest.raises(ConfigError, match="crop"):
        SpikeClips(wide_set, selection=ClipSelection(crop=(13, 4)))


def test_unequal_lengths_need_frames(wide_set):
    """Clips of different lengths need a fixed window."""
    rng = np.random.default_rng(3)
    write_dat(wide_set / "cls" / "c2.dat", (rng.random((12, 12, 20)) < 0.5).astype(np.uint8))
    with open(wide_set / "manifest.jsonl", "a") as fh:
        fh.write(json.dumps({"path": "cls/c2.dat", "label": "cls", "frames": 12, "height": 12, "width": 20}) + "\n")
    with pytest.raises(ConfigError, match="differ in length"):
        SpikeClips(wide_set)
    ds = SpikeClips(wide_set, selection=ClipSelection(frames=20))
    s = ds[2]["spikes"].numpy()
    assert s.shape == (20, 12, 20), f"expected shape (20, 12, 20), found {s.shape}"
    assert not s[12:].any(), "expected the 12-frame clip zero-padded to 20"


# --------------------------------------------------------------------------- folder-of-dat clips


@pytest.fixture
def parted_clip(tmp_path) -> tuple[ClipRecord, np.ndarray]:
    """A clip stored as a folder of three .dat parts (7, 5 and 9 frames of 6x12)."""
    rng = np.random.default_rng(11)
    parts = [(rng.random((n, 6, 12)) < 0.5).astype(np.uint8) for n in (7, 5, 9)]
    folder = tmp_path / "set" / "wave" / "clip0"
    for i, p in enumerate(parts):
        write_dat(folder / f"part{i:02d}.dat", p)
    (folder / "notes.txt").write_text("ignored")
    rec = ClipRecord(path=folder, label="wave", frames=21, height=6, width=12, caption="wave")
    return rec, np.concatenate(parts)


@pytest.mark.parametrize(
    "start,count",
    [(0, 21), (0, 7), (0, 8), (6, 2), (7, 5), (6, 7), (5, 10), (11, 3), (12, 9), (20, 1), (3, 18)],
)
def test_read_clip_across_parts(parted_clip, start, count):
    """read_clip on a folder of .dat parts equals the slice of their concatenation."""
    rec, full = parted_clip
    found = read_clip(rec, start, count, ClipSelection())
    check_equal(full[start : start + count], found, f"frames [{start}, {start + count})")
    assert found.dtype == np.uint8, f"expected uint8, found {found.dtype}"


def test_read_clip_parts_head_columns_flipud(parted_clip):
    """Selection flags apply to every part."""
    rec, full = parted_clip
    found = read_clip(rec, 4, 10, ClipSelection(flipud=True, head_columns=3))
    check_equal(full[4:14, ::-1, :9], found, "flipped, head-cut frames [4, 14)")


def test_spike_clips_over_parted_clip(parted_clip):
    """A manifest naming a folder of parts loads through SpikeClips, centre window across parts."""
    rec, full = parted_clip
    root = rec.path.parent.parent
    (root / "manifest.jsonl").write_text(
        json.dumps({"path": "wave/clip0", "label": "wave", "frames": 21, "height": 6, "width": 12}) + "\n"
    )
    ds = SpikeClips(root, selection=ClipSelection(frames=9, offset="center"))
    check_equal(full[6:15], ds[0]["spikes"].numpy(), "centre window of 9 across parts")


# --------------------------------------------------------------------------- DataLoader


def test_dataloader_workers_match_indexing(digits):
    """A DataLoader with 2 workers yields the same batches as direct indexing."""
    ds = SpikeClips(digits, split="train", selection=ClipSelection(frames=16, offset="center", crop=(12, 12)))
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    seen = 0
    for b, batch in enumerate(loader):
        idx = list(range(4 * b, min(4 * b + 4, len(ds))))
        items = [ds[i] for i in idx]
        expected = torch.stack([it["spikes"] for it in items])
        assert batch["spikes"].dtype == torch.uint8, f"expected uint8, found {batch['spikes'].dtype}"
        check_equal(expected.numpy(), batch["spikes"].numpy(), f"batch {b} spikes")
        assert batch["label"].tolist() == [it["label"] for it in items], f"batch {b}: labels differ"
        assert list(batch["caption"]) == [it["caption"] for it in items], f"batch {b}: captions differ"
        assert batch["index"].tolist() == idx, f"batch {b}: expected indices {idx}, found {batch['index'].tolist()}"
        seen += len(idx)
    assert seen == len(ds), f"expected {len(ds)} items, found {seen}"


# --------------------------------------------------------------------------- built-in dataset


def test_builtin_root(monkeypatch, tmp_path):
    """SPKLIP_ENERGY_DATA wins; otherwise $XDG_CACHE_HOME/spklip-energy."""
    monkeypatch.setenv("SPKLIP_ENERGY_DATA", str(tmp_path / "data"))
    assert builtin_root() == tmp_path / "data", f"expected {tmp_path / 'data'}, found {builtin_root()}"
    monkeypatch.delenv("SPKLIP_ENERGY_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    expected = tmp_path / "cache" / "spklip-energy"
    assert builtin_root() == expected, f"expected {expected}, found {builtin_root()}"


def test_builtin_dataset_env(monkeypatch, tmp_path):
    """builtin_dataset generates under $SPKLIP_ENERGY_DATA once, then reuses the cache."""
    monkeypatch.setenv("SPKLIP_ENERGY_DATA", str(tmp_path))
    monkeypatch.setattr(digits_mod, "DigitsConfig", functools.partial(DigitsConfig, **SMALL))
    path = builtin_dataset()
    assert path.parent == tmp_path, f"expected a folder in {tmp_path}, found {path}"
    assert "sim" in path.name and "3x20x16x16" in path.name, f"expected the config in the name, found {path.name}"
    assert (path / "manifest.jsonl").is_file(), f"expected {path / 'manifest.jsonl'}"
    ds = SpikeClips(path, split="test")
    assert tuple(ds[0]["spikes"].shape) == (20, 16, 16), f"expected (20, 16, 16), found {tuple(ds[0]['spikes'].shape)}"

    def boom(*args, **kwargs):
        raise AssertionError("expected the cached dataset to be reused, found a regeneration")

    monkeypatch.setattr(digits_mod, "generate_digits", boom)
    again = builtin_dataset()
    assert again == path, f"expected {path}, found {again}"
    assert builtin_dataset(variant="sim", seed=0) == path, "expected the same cache for the same variant/seed"
    assert clips_mod.builtin_root() == tmp_path, "expected builtin_root to follow the env var"
