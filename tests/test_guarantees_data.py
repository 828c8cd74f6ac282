"""Issue 12 guarantees on the data side: sizes checked before allocating, arguments checked in the
library, clips kept inside their dataset, head columns and flips carried to training, temporaries
neither named in messages nor left behind.

Each CLI case asserts exit status 2, exactly one stderr line naming the value or the user's file,
no traceback and no partial output.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import check_user_error, run_main
from data_helpers import H, W, make_clip, write_jsonl

from spikedata import clips as clips_mod
from spikedata import digits as digits_mod
from spikedata.camera import CameraConfig, load_frames, simulate_spikes, upsample_linear
from spikedata.clips import ClipSelection, SpikeClips, builtin_dataset, read_clip
from spikedata.dat import read_dat, write_dat
from spikedata.digits import DigitsConfig, generate_digits
from spikedata.manifest import index_folder, load_manifest
from spikedata.preview import save_preview, stream_stats
from spikedata.reconstruct import tfi, tfp
from spklip_energy.errors import (
    ConfigError,
    DatError,
    ManifestError,
    MediaError,
    ResourceError,
    SpklipWarning,
)

# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _no_memory_env(monkeypatch):
    """Every test starts from the default memory limit; those that need a small one set it."""
    monkeypatch.delenv("SPKLIP_MAX_MEMORY", raising=False)


def record(path: str, label: str = "walk", frames: int = 5, **extra) -> dict:
    return {"path": path, "label": label, "frames": frames, "height": H, "width": W, **extra}


@pytest.fixture
def small_set(tmp_path) -> Path:
    root = tmp_path / "set"
    for i, name in enumerate(("walk/a.dat", "walk/b.dat")):
        make_clip(root / name, 5, seed=i)
    return root


@pytest.fixture
def frames_npy(tmp_path) -> Path:
    path = tmp_path / "frames.npy"
    np.save(path, np.linspace(0.0, 1.0, 3 * 4 * 4, dtype=np.float32).reshape(3, 4, 4))
    return path


def sparse_file(path: Path, size: int) -> Path:
    with open(path, "wb") as fh:
        fh.truncate(size)  # a hole: no disk used
    return path


# --------------------------------------------------------------------------- .dat: sizes and arguments


def test_show_refuses_a_4gib_stream_before_reading(tmp_path, capsys, monkeypatch):
    """`data show` on a 4 GiB .dat (262144 frames of 256x512) under a 1 GiB limit: refused from the
    file size, naming the file and the frames; no preview written, the file never mapped."""
    big = sparse_file(tmp_path / "huge.dat", 4 * 2**30)
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "1GiB")

    def no_map(*a, **k):
        raise AssertionError("expected the size check to refuse before mapping the file")

    monkeypatch.setattr(np, "memmap", no_map)
    out = tmp_path / "preview.png"
    rc, stdout, err = run_main(capsys, "data", "show", big, "--height", 256, "--width", 512, "--out", out)
    check_user_error(rc, err, "huge.dat", "262144")
    assert stdout == "", f"expected nothing on stdout, found {stdout!r}"
    assert not out.exists(), f"expected no preview at {out}"


def test_read_dat_refuses_over_the_limit_and_reads_within(tmp_path, monkeypatch):
    """The library refuses the same read (ResourceError naming file and frames); a --count that
    fits is read."""
    big = sparse_file(tmp_path / "huge.dat", 4 * 2**30)
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "1GiB")
    with pytest.raises(ResourceError, match=r"huge\.dat.*262144 frames"):
        read_dat(big, 256, 512)
    with pytest.raises(ResourceError, match="100000"):
        read_dat(big, 256, 512, start=5, count=100_000)
    part = read_dat(big, 256, 512, start=100, count=3)
    assert part.shape == (3, 256, 512) and not part.any(), f"expected 3 empty frames, found {part.shape}"


@pytest.mark.parametrize(
    "kwargs,needle,error",
    [
        ({"start": -1}, "start", ConfigError),
        ({"count": 0}, "count", ConfigError),
        ({"count": -3}, "count", ConfigError),
        ({"count": 2.5}, "count", ConfigError),
        ({"start": True}, "start", ConfigError),
        ({"head_columns": 1.5}, "head_columns", ConfigError),
        ({"head_columns": W}, f"head_columns must be in [0, {W})", ConfigError),
        ({"height": 0}, "height", DatError),
        ({"width": -8}, "width", DatError),
        ({"height": "8"}, None, None),  # a numeric string is an integer
    ],
)
def test_read_dat_checks_its_arguments(tmp_path, kwargs, needle, error):
    """A bad argument is a ConfigError, a frame size that cannot describe a file a DatError: both name
    the file and the value."""
    path = write_dat(tmp_path / "args.dat", np.zeros((4, H, W), dtype=np.uint8))
    args = {"height": H, "width": W, **kwargs}
    if needle is None:
        assert read_dat(path, **args).shape == (4, H, W)
        return
    with pytest.raises(error) as info:
        read_dat(path, **args)
    assert "args.dat" in str(info.value) and needle in str(info.value), f"found {info.value}"


@pytest.mark.parametrize("option,value", [("--count", "0"), ("--start", "-1"), ("--height", "0")])
def test_show_bad_range_is_one_line(tmp_path, capsys, option, value):
    path = write_dat(tmp_path / "s.dat", np.zeros((4, H, W), dtype=np.uint8))
    argv = {"--height": str(H), "--width": str(W), option: value}
    rc, out, err = run_main(capsys, "data", "show", path, *[x for kv in argv.items() for x in kv])
    check_user_error(rc, err, option.lstrip("-"))
    assert out == ""


# --------------------------------------------------------------------------- preview and stats


@pytest.mark.parametrize("value", ["0", "-2"])
def test_show_columns_must_be_positive(tmp_path, capsys, value):
    path = write_dat(tmp_path / "s.dat", np.zeros((60, H, W), dtype=np.uint8))
    out = tmp_path / "p.png"
    rc, stdout, err = run_main(
        capsys, "data", "show", path, "--height", H, "--width", W, "--out", out, "--columns", value
    )
    check_user_error(rc, err, "columns", value)
    assert stdout == "" and not out.exists(), "expected no output and no preview"


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_show_fps_must_be_positive_finite(tmp_path, capsys, value):
    path = write_dat(tmp_path / "s.dat", np.zeros((4, H, W), dtype=np.uint8))
    rc, stdout, err = run_main(capsys, "data", "show", path, "--height", H, "--width", W, "--fps", value)
    check_user_error(rc, err, "fps")
    assert stdout == ""


def test_preview_and_stats_check_their_arguments(tmp_path):
    spikes = np.zeros((60, H, W), dtype=np.uint8)
    for fps in (0, -1.0, math.nan, math.inf, "x"):
        with pytest.raises(ConfigError, match="fps"):
            stream_stats(spikes, fps=fps)
    assert stream_stats(spikes, fps=100)["firing_rate_hz"] == 0.0
    for columns in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="columns"):
            save_preview(spikes, tmp_path / "p.png", columns=columns)
    with pytest.raises(ResourceError, match="1000000000"):  # refused, not a 10**9-point linspace
        save_preview(spikes, tmp_path / "p.png", columns=10**9)
    assert not (tmp_path / "p.png").exists()


# --------------------------------------------------------------------------- simulate and camera


def test_simulate_upsample_refused_from_the_sizes(tmp_path, capsys, frames_npy):
    out = tmp_path / "out.dat"
    rc, stdout, err = run_main(capsys, "data", "simulate", frames_npy, out, "--upsample", 10**12)
    check_user_error(rc, err, "1000000000000")
    assert stdout == "" and not out.exists() and list(tmp_path.iterdir()) == [frames_npy]


def test_upsample_linear_checks_before_allocating(monkeypatch):
    frames = np.zeros((3, 4, 4), dtype=np.float32)
    with pytest.raises(ResourceError, match="upsample factor 1000000000000"):
        upsample_linear(frames, 10**12)
    for bad in (0, -1, 2.5, "x"):
        with pytest.raises(ConfigError, match="upsample"):
            upsample_linear(frames, bad)
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "10KB")
    with pytest.raises(ResourceError):  # 101 frames of 4x4 float32 and temporaries: about 26 KB
        upsample_linear(frames, 50)
    assert upsample_linear(frames, 2).shape == (5, 4, 4)


@pytest.mark.parametrize(
    "option,value,needle",
    [
        ("--seed", "-1", "-1"),
        ("--seed", str(2**40), str(2**40)),
        ("--theta", "nan", "nan"),
        ("--theta", "0", "theta"),
        ("--alpha", "-1", "alpha"),
        ("--alpha", "inf", "inf"),
        ("--photons", "0", "photons"),
        ("--photons", "nan", "nan"),
        ("--dark-current", "-0.5", "-0.5"),
        ("--dark-current", "inf", "inf"),
        ("--hot-pixels", "1.5", "1.5"),
        ("--row-artifacts", "-0.1", "-0.1"),
        ("--max-frames", "0", "got 0"),
        ("--max-frames", "-2", "got -2"),
    ],
)
def test_simulate_bad_settings_are_one_line(tmp_path, capsys, frames_npy, option, value, needle):
    out = tmp_path / "out.dat"
    rc, stdout, err = run_main(capsys, "data", "simulate", frames_npy, out, option, value)
    check_user_error(rc, err, needle)
    assert stdout == "" and not out.exists(), "expected no output .dat"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"theta": math.nan},
        {"theta": -1.0},
        {"alpha": math.inf},
        {"alpha": 0},
        {"photons_per_step": math.nan},
        {"photons_per_step": 0},
        {"photons_per_step": 1e300},
        {"dark_current": math.nan},
        {"dark_current": -1},
        {"hot_pixel_current": math.inf},
        {"row_artifact_current": -0.1},
        {"hot_pixel_fraction": 1.5},
        {"hot_pixel_fraction": math.nan},
        {"row_artifact_fraction": -0.01},
        {"random_init": "yes"},
        {"theta": "x"},
    ],
)
def test_camera_config_validates_every_field(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        CameraConfig(**kwargs)


def test_simulate_spikes_checks_seed_and_size(monkeypatch):
    frames = np.full((4, 4, 4), 0.5, dtype=np.float32)
    for seed in (-1, 2**40, 1.5, [1, -2]):
        with pytest.raises(ConfigError, match="seed"):
            simulate_spikes(frames, seed=seed)
    assert simulate_spikes(frames, seed=[3, 4]).shape == (4, 4, 4)
    with pytest.raises(MediaError, match="dtype"):
        simulate_spikes(np.full((2, 2, 2), 1 + 1j))
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "100")
    with pytest.raises(ResourceError, match="4 frames of 4x4"):
        simulate_spikes(frames)


class _Plant:
    """Unpickling this would create ``marker``: proves that nothing is unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("kind", ["str", "object", "complex", "structured", "nan"])
def test_simulate_refuses_arrays_that_are_not_intensities(tmp_path, capsys, kind):
    src = tmp_path / f"{kind}.npy"
    marker = tmp_path / "pickle-ran"
    if kind == "str":
        np.save(src, np.full((2, 3, 3), "a"))
    elif kind == "object":
        arr = np.empty((2, 3, 3), dtype=object)
        arr[0, 0, 0] = _Plant(marker)
        np.save(src, arr, allow_pickle=True)
    elif kind == "complex":
        np.save(src, np.ones((2, 3, 3), dtype=np.complex64))
    elif kind == "structured":
        np.save(src, np.zeros((2, 3, 3), dtype=[("a", "f4"), ("b", "i4")]))
    else:
        np.save(src, np.full((2, 3, 3), np.nan, dtype=np.float32))
    out = tmp_path / "out.dat"
    rc, stdout, err = run_main(capsys, "data", "simulate", src, out)
    check_user_error(rc, err, src.name)
    assert not marker.exists(), "expected no pickled code to run"
    assert stdout == "" and not out.exists()
    with pytest.raises(MediaError, match=src.name):
        load_frames(src)


def test_npz_of_strings_names_the_file(tmp_path):
    src = tmp_path / "a.npz"
    np.savez(src, frames=np.full((2, 3, 3), "x"))
    with pytest.raises(MediaError, match=r"a\.npz.*dtype"):
        load_frames(src)


def test_array_sized_from_its_header_before_reading(tmp_path, monkeypatch):
    """A 100-byte .npy whose header claims 4 TB is refused from the header; max_frames reads only the
    frames it keeps (memory-mapped)."""
    src = tmp_path / "claims.npy"
    with open(src, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (10**6, 1000, 1000)})
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "1GiB")
    with pytest.raises(ResourceError, match=r"claims\.npy.*1000000 frames"):
        load_frames(src)
    big = tmp_path / "big.npy"
    arr = np.lib.format.open_memmap(big, mode="w+", dtype=np.uint8, shape=(300, 1000, 1000))
    arr[:2] = 255
    del arr
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "50MB")
    with pytest.raises(ResourceError, match="300 frames"):
        load_frames(big)
    got = load_frames(big, max_frames=2)
    assert got.shape == (2, 1000, 1000) and got.dtype == np.float32 and got.min() == 1.0


def test_image_folder_estimated_before_stacking(tmp_path, monkeypatch):
    import imageio.v2 as iio

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        iio.imwrite(folder / f"{i}.png", np.full((32, 32), 40 * i, dtype=np.uint8))
    calls = []
    real = iio.imread
    monkeypatch.setattr(iio, "imread", lambda f, *a, **k: calls.append(f) or real(f, *a, **k))
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "20KB")  # 5 frames of 32x32 float32, twice: 40 KB
    with pytest.raises(ResourceError, match="imgs.*5 frames of 32x32"):
        load_frames(folder)
    assert len(calls) == 1, f"expected one image decoded before refusing, found {len(calls)}"
    assert load_frames(folder, max_frames=2).shape == (2, 32, 32)
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="max_frames"):
            load_frames(folder, max_frames=bad)


# --------------------------------------------------------------------------- make-digits


@pytest.mark.parametrize(
    "option,value",
    [
        ("--frames", 10**12),
        ("--clips-per-class", 10**11),
        ("--height", 10**9),
        ("--width", 10**9),
    ],
)
def test_make_digits_refuses_huge_sizes(tmp_path, capsys, option, value):
    out = tmp_path / "ds"
    rc, stdout, err = run_main(capsys, "data", "make-digits", out, option, value, "--json")
    check_user_error(rc, err, str(value))
    assert stdout == "" and list(tmp_path.iterdir()) == [], (
        f"expected nothing written, found {list(tmp_path.iterdir())}"
    )


@pytest.mark.parametrize(
    "option,value",
    [("--seed", "-1"), ("--seed", str(2**33)), ("--frames", "0"), ("--clips-per-class", "2"), ("--height", "-16")],
)
def test_make_digits_bad_values_are_one_line(tmp_path, capsys, option, value):
    rc, stdout, err = run_main(capsys, "data", "make-digits", tmp_path / "ds", option, value, "--json")
    check_user_error(rc, err, value)
    assert stdout == "" and list(tmp_path.iterdir()) == []


def test_make_digits_memory_estimated_per_clip(tmp_path, capsys, monkeypatch):
    """Per-clip memory (render + batch) over the limit is refused before rendering."""
    monkeypatch.setenv("SPKLIP_MAX_MEMORY", "10MB")
    rc, stdout, err = run_main(
        capsys,
        "data",
        "make-digits",
        tmp_path / "ds",
        "--clips-per-class",
        3,
        "--frames",
        2,
        "--height",
        1000,
        "--width",
        1000,
        "--json",
    )
    check_user_error(rc, err, "height 1000", "memory")
    assert list(tmp_path.iterdir()) == []


def test_make_digits_overwrite_keeps_a_folder_with_a_users_file(tmp_path, capsys):
    """--overwrite replaces a dataset it wrote, never a folder holding something else: one line naming
    the first foreign entry, the folder as it was."""
    out = tmp_path / "ds"
    args = ("data", "make-digits", out, "--clips-per-class", 3, "--frames", 4, "--height", 16, "--width", 16, "--json")
    rc, stdout, err = run_main(capsys, *args)
    assert rc == 0, err
    (out / "thesis.tex").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    rc, stdout, err = run_main(capsys, *args, "--overwrite", "--seed", 5)
    check_user_error(rc, err, str(out), "'thesis.tex'")
    assert stdout == "" and {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "expected no temporary folder left"
    (out / "thesis.tex").unlink()
    rc, stdout, err = run_main(capsys, *args, "--overwrite", "--seed", 5)
    assert rc == 0, err
    assert json.loads((out / "dataset.json").read_text())["config"]["seed"] == 5


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"clips_per_class": 2}, "clips_per_class must be at least 3, got 2"),
        ({"height": 15}, "height must be at least 16, got 15"),
        ({"width": 8}, "width must be at least 16, got 8"),
        ({"frames": 1}, "frames must be at least 2, got 1"),
    ],
)
def test_digits_config_minimums(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        DigitsConfig(**kwargs)


@pytest.mark.parametrize("fn,name", [(tfp, "TFP half window"), (tfi, "TFI half window")])
def test_reconstruction_half_window_checked(fn, name):
    spikes = np.zeros((8, 2, 2), dtype=np.uint8)
    for value in (-1, 1.5, "x"):
        with pytest.raises(ConfigError, match=name):
            fn(spikes, value)


def test_make_digits_checks_free_disk_space(tmp_path, capsys, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 10**6 - 1000, 1000))
    out = tmp_path / "ds"
    rc, stdout, err = run_main(
        capsys,
        "data",
        "make-digits",
        out,
        "--clips-per-class",
        3,
        "--frames",
        20,
        "--height",
        16,
        "--width",
        16,
        "--json",
    )
    check_user_error(rc, err, str(out), "disk")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"seed": -1}, "seed"),
        ({"seed": 2**40}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"clips_per_class": "many"}, "clips_per_class"),
        ({"clips_per_class": 3.5}, "clips_per_class"),
        ({"frames": True}, "frames"),
        ({"height": None}, "height"),
        ({"variant": "real"}, "variant"),
    ],
)
def test_digits_config_validates_every_field(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        DigitsConfig(**kwargs)


def test_digits_config_work_ceiling():
    with pytest.raises(ResourceError, match="clips_per_class 100000000000"):
        DigitsConfig(clips_per_class=10**11)
    with pytest.raises(ResourceError, match="frames 1000000000000"):
        DigitsConfig(frames=10**12)
    with pytest.raises(ConfigError, match="batch_clips"):
        generate_digits(
            "/nonexistent/never", DigitsConfig(clips_per_class=3, height=16, width=16, frames=2), batch_clips=0
        )


def test_write_failure_names_the_users_folder_not_the_temporary(tmp_path, capsys, monkeypatch):
    """A write that fails inside the temporary folder is reported against the user's --out folder."""

    def full(*a, **k):  # as a full disk fails: naming the file in the real temporary folder
        (tmp,) = tmp_path.glob(".ds.*.tmp")
        raise OSError(28, "No space left on device", str(tmp / "left" / "x.dat"))

    monkeypatch.setattr(digits_mod, "encode_dat", full)
    out = tmp_path / "ds"
    rc, stdout, err = run_main(
        capsys,
        "data",
        "make-digits",
        out,
        "--clips-per-class",
        3,
        "--frames",
        4,
        "--height",
        16,
        "--width",
        16,
        "--json",
    )
    line = check_user_error(rc, err, str(out), "No space left")
    assert ".tmp" not in line, f"expected no temporary name in {line!r}"
    assert list(tmp_path.iterdir()) == [], f"expected nothing left, found {list(tmp_path.iterdir())}"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_builtin_generation_removes_stale_temporaries(tmp_path, monkeypatch):
    """Temporaries in the dataset cache left by killed runs (a dead process's, or unnamed ones older
    than this process) are removed when generation starts; a live run's and a fresh one stay."""
    monkeypatch.setenv("SPKLIP_ENERGY_DATA", str(tmp_path))
    monkeypatch.setattr(
        digits_mod, "DigitsConfig", functools.partial(DigitsConfig, clips_per_class=3, height=16, width=16, frames=4)
    )
    other = "digits-v1-sensor-seed7-32x250x64x64"
    dead = tmp_path / f".{other}.{_dead_pid()}.k3j4h5.tmp"
    old = tmp_path / f".{other}.a8b7c6d5.tmp"
    old_swap = tmp_path / f".{other}.z9y8x7.old"
    live = tmp_path / f".{other}.{os.getpid()}.q1w2e3.tmp"
    fresh = tmp_path / f".{other}.f1r2e3s4.tmp"
    unrelated = tmp_path / ".mine.tmp"
    for d in (dead, old, old_swap, live, fresh, unrelated):
        (d / "left").mkdir(parents=True)
        (d / "left" / "x.dat").write_bytes(b"\0" * 16)
    long_ago = time.time() - 7 * 24 * 3600
    for d in (old, old_swap):
        os.utime(d, (long_ago, long_ago))
    path = builtin_dataset()
    assert (path / "manifest.jsonl").is_file()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    expected = sorted(p.name for p in (live, fresh, unrelated))
    assert left == expected, f"expected only {expected} to remain, found {left}"


def test_remove_stale_temporaries_keeps_a_running_generation(tmp_path):
    """A temporary whose process still runs is never removed, however old."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        tmp = tmp_path / f".digits-v1-sim-seed0-3x4x16x16.{proc.pid}.abc.tmp"
        tmp.mkdir()
        os.utime(tmp, (0, 0))
        assert clips_mod.remove_stale_temporaries(tmp_path) == []
        assert tmp.is_dir()
    finally:
        proc.kill()
        proc.wait()
    assert clips_mod.remove_stale_temporaries(tmp_path) == [tmp]


# --------------------------------------------------------------------------- manifests stay inside


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink-file", "symlink-folder"])
def test_clip_paths_outside_the_dataset_are_refused(tmp_path, capsys, small_set, kind):
    outside = tmp_path / "elsewhere"
    make_clip(outside / "o.dat", 5, seed=9)
    if kind == "dotdot":
        rel = "../../etc/passwd"
    elif kind == "absolute":
        rel = str(outside / "o.dat")
    elif kind == "symlink-file":
        (small_set / "walk" / "link.dat").symlink_to(outside / "o.dat")
        rel = "walk/link.dat"
    else:
        (small_set / "run").symlink_to(outside)
        rel = "run/o.dat"
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record(rel, label="walk")])
    rc, stdout, err = run_main(capsys, "data", "inspect", small_set)
    check_user_error(rc, err, "manifest.jsonl:2", "outside" if kind != "absolute" else "absolute")
    assert stdout == ""
    with pytest.raises(ManifestError, match="manifest.jsonl:2"):
        load_manifest(small_set, check_files=False)


def test_paths_that_stay_inside_are_accepted(small_set):
    (small_set / "walk" / "alias.dat").symlink_to(small_set / "walk" / "a.dat")
    write_jsonl(
        small_set / "manifest.jsonl", [record("walk/a.dat"), record("walk/../walk/b.dat"), record("walk/alias.dat")]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SpklipWarning)  # alias.dat is a.dat
        m = load_manifest(small_set)
    assert len(m.clips) == 3


def test_index_refuses_a_symbolic_link_loop(tmp_path):
    root = tmp_path / "raw"
    make_clip(root / "walk" / "a.dat", 3)
    (root / "walk" / "loop.dat").symlink_to(root / "walk" / "loop.dat")
    with pytest.raises(ManifestError, match="loop.dat: unusable clip path"):
        index_folder(root, H, W)


def test_index_flipud_takes_real_booleans(sps_like):
    root, _ = sps_like
    assert index_folder(root, 8, 32, flipud=np.bool_(True))[0]["flipud"] is True
    with pytest.raises(ConfigError, match="flipud must be true or false, got 1"):
        index_folder(root, 8, 32, flipud=1)


def test_index_refuses_a_clip_linked_outside(tmp_path):
    root = tmp_path / "raw"
    make_clip(root / "walk" / "a.dat", 3)
    make_clip(tmp_path / "secret" / "s.dat", 3)
    (root / "walk" / "s.dat").symlink_to(tmp_path / "secret" / "s.dat")
    with pytest.raises(ManifestError, match="s.dat.*outside"):
        index_folder(root, H, W)


def test_duplicate_records_warn_naming_the_lines(small_set):
    write_jsonl(
        small_set / "manifest.jsonl",
        [
            record("walk/a.dat", id="x1"),
            record("walk/b.dat", id="x2"),
            record("walk/./a.dat", id="x3"),
            record("walk/b.dat", id="x4"),
            record("walk/a.dat", id="x1"),
        ],
    )
    with pytest.warns(SpklipWarning) as caught:
        m = load_manifest(small_set)
    assert len(m.clips) == 5
    assert len(caught) == 1, f"expected one warning, found {[str(w.message) for w in caught]}"
    msg = str(caught[0].message)
    for needle in ("manifest.jsonl", "lines 1, 3 and 5", "lines 2 and 4", "lines 1 and 5", "x1"):
        assert needle in msg, f"expected {needle!r} in {msg!r}"
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", id=1), record("walk/b.dat", id=2)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpklipWarning)
        load_manifest(small_set)  # no duplicates, no warning


def test_duplicate_records_are_one_warning_line_in_the_cli(small_set, capsys):
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record("walk/b.dat"), record("walk/a.dat")])
    rc, stdout, err = run_main(capsys, "data", "inspect", small_set, "--json")
    assert rc == 0, f"expected success, found {rc}: {err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("spklip-energy: warning:"), f"found {lines!r}"
    assert "lines 1 and 3" in lines[0] and "walk/a.dat" in lines[0], lines[0]


# --------------------------------------------------------------------------- head columns and flips


@pytest.fixture
def sps_like(tmp_path) -> tuple[Path, np.ndarray]:
    """One class folder holding one 8x32 clip of 6 frames (16 head columns, as sps10 has)."""
    root = tmp_path / "sps"
    spikes = make_clip(root / "walk" / "v.dat", 6, seed=3, height=8, width=32)
    return root, spikes


def test_index_carries_head_columns_and_flipud_to_reading(sps_like):
    root, spikes = sps_like
    records = index_folder(root, 8, 32, head_columns=16, flipud=True)
    assert [(r["head_columns"], r["flipud"]) for r in records] == [(16, True)]
    write_jsonl(root / "manifest.jsonl", records)
    m = load_manifest(root)
    rec = m.clips[0]
    assert (rec.head_columns, rec.flipud, rec.width, rec.image_width) == (16, True, 32, 16)
    direct = read_dat(root / "walk" / "v.dat", 8, 32, head_columns=16, flipud=True)
    assert direct.shape == (6, 8, 16)
    np.testing.assert_array_equal(direct, spikes[:, ::-1, :16])
    np.testing.assert_array_equal(read_clip(rec, 0, 6, ClipSelection()), direct)
    np.testing.assert_array_equal(read_clip(rec, 2, 3, ClipSelection()), direct[2:5])
    ds = SpikeClips(m)
    assert (ds.height, ds.width) == (8, 16)
    np.testing.assert_array_equal(ds[0]["spikes"].numpy(), direct)


def test_training_clips_receive_head_columns_and_flipud(tmp_path):
    """model.data.clips_for sizes clips by their image width: an sps10-like 64x(64+16) clip indexed with
    head_columns=16 and flipud feeds the tiny preset (64x64) exactly the image, rows flipped."""
    from spklip.config import preset_config
    from spklip.data import clips_for

    cfg = preset_config("tiny")
    root = tmp_path / "sps"
    spikes = make_clip(root / "walk" / "v.dat", cfg.frames, seed=5, height=cfg.height, width=cfg.width + 16)
    write_jsonl(root / "manifest.jsonl", index_folder(root, cfg.height, cfg.width + 16, head_columns=16, flipud=True))
    ds = clips_for(cfg, load_manifest(root), "train")
    np.testing.assert_array_equal(ds[0]["spikes"].numpy(), spikes[:, ::-1, : cfg.width])


@pytest.mark.parametrize("head,flip", [(32, False), (-1, False), (2.5, False), (0, "yes")])
def test_index_folder_checks_head_columns_and_flipud(sps_like, head, flip):
    root, _ = sps_like
    with pytest.raises(ConfigError, match="head_columns" if flip is False else "flipud"):
        index_folder(root, 8, 32, head_columns=head, flipud=flip)


@pytest.mark.parametrize("value", [32, -1, 1.5, "x", True])
def test_manifest_head_columns_checked(sps_like, value):
    root, _ = sps_like
    write_jsonl(
        root / "manifest.jsonl",
        [{"path": "walk/v.dat", "label": "walk", "frames": 6, "height": 8, "width": 32, "head_columns": value}],
    )
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:1.*head_columns"):
        load_manifest(root)


def test_cli_index_writes_head_columns_and_flipud(sps_like, capsys):
    """`data index --head-columns 16 --flipud` puts both into every record (needs the CLI to pass them)."""
    root, spikes = sps_like
    rc, stdout, err = run_main(
        capsys, "data", "index", root, "--height", 8, "--width", 32, "--head-columns", 16, "--flipud", "--json"
    )
    assert rc == 0, err
    recs = [json.loads(line) for line in (root / "manifest.jsonl").read_text().splitlines()]
    assert [(r["head_columns"], r["flipud"]) for r in recs] == [(16, True)]
    clip = load_manifest(root).clips[0]
    np.testing.assert_array_equal(read_clip(clip, 0, 6, ClipSelection()), spikes[:, ::-1, :16])


@pytest.mark.parametrize("value", ["32", "40", "-1"])
def test_cli_index_head_columns_out_of_range(sps_like, capsys, value):
    root, _ = sps_like
    rc, stdout, err = run_main(capsys, "data", "index", root, "--height", 8, "--width", 32, "--head-columns", value)
    check_user_error(rc, err, "head", value)
    assert not (root / "manifest.jsonl").exists()


def test_clip_selection_checks_and_sizes(small_set):
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record("walk/b.dat")])
    for kwargs in (
        {"frames": 0},
        {"frames": 2.5},
        {"crop": (0, 4)},
        {"crop": (4,)},
        {"head_columns": -1},
        {"flipud": "yes"},
    ):
        with pytest.raises(ConfigError):
            ClipSelection(**kwargs)
    with pytest.raises(ResourceError, match="frames 1000000000000"):
        SpikeClips(small_set, selection=ClipSelection(frames=10**12))
    with pytest.raises(ConfigError, match="head_columns"):
        SpikeClips(small_set, selection=ClipSelection(head_columns=W))


# --------------------------------------------------------------------------- record and dataset.json types


def inspect_refused(capsys, dataset: Path, *needles) -> str:
    rc, stdout, err = run_main(capsys, "data", "inspect", dataset, "--json")
    assert stdout == "", f"expected nothing on stdout, found {stdout!r}"
    return check_user_error(rc, err, *needles)


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("frames", "5", "field 'frames' must be a JSON number without a fraction, got a string '5'"),
        ("frames", 5.5, "field 'frames' must be a JSON number without a fraction"),
        ("frames", True, "field 'frames' must be a JSON number without a fraction, got a boolean True"),
        ("frames", [5], "field 'frames' must be a JSON number without a fraction, got a list"),
        ("height", "8", "field 'height' must be a JSON number without a fraction, got a string '8'"),
        ("width", " 16", "field 'width' must be a JSON number without a fraction"),
        ("head_columns", "0", "field 'head_columns' must be a JSON number without a fraction"),
        ("head_columns", 16, "field 'head_columns' must be in [0, 16) (the frame width is 16), got 16"),
        ("label_index", 10**9, "field 'label_index' must be in [0, 1)"),
        ("label_index", -1, "field 'label_index' must be in [0, 1)"),
        ("label_index", 1, "field 'label_index' must be in [0, 1) (the dataset's 1 classes), got 1"),
        ("label_index", "x", "field 'label_index' must be a JSON number without a fraction, got a string 'x'"),
        ("label_index", False, "field 'label_index' must be a JSON number without a fraction, got a boolean False"),
        ("split", 3, "field 'split' must be a string, got an integer 3"),
        ("caption", 5, "field 'caption' must be a string, got an integer 5"),
        ("caption", ["a", "b"], "field 'caption' must be a string, got a list"),
        ("label", 7.0, "field 'label' must be a string or a JSON integer, got a number 7.0"),
        ("label", True, "field 'label' must be a string or a JSON integer, got a boolean True"),
        ("label", ["walk"], "field 'label' must be a string or a JSON integer, got a list"),
        ("label", None, "record lacks field(s) label"),  # a required field: null is no value
        ("frames", None, "record lacks field(s) frames"),
        ("path", 5, "field 'path' must be a string"),
        ("flipud", "yes", "field 'flipud' must be a JSON boolean (true or false), got a string 'yes'"),
        ("flipud", 1, "field 'flipud' must be a JSON boolean"),
        ("id", [1], "field 'id' must be a string or a JSON integer, got a list"),
        ("id", 1.5, "field 'id' must be a string or a JSON integer"),
    ],
)
def test_jsonl_record_fields_are_strictly_typed(small_set, capsys, field, value, needle):
    """Each field of a JSONL record has one JSON type; the refusal names the manifest line and the value."""
    rec = {**record("walk/b.dat"), field: value}
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), rec])
    inspect_refused(capsys, small_set, "manifest.jsonl:2", needle)
    with pytest.raises(ManifestError, match=r"manifest\.jsonl:2"):
        load_manifest(small_set, check_files=False)


def test_jsonl_optional_fields_of_the_right_type_are_read(small_set):
    write_jsonl(
        small_set / "manifest.jsonl",
        [
            record("walk/a.dat", label_index=0, split="holdout-2", caption="", id="a", flipud=False, head_columns=0),
            record("walk/b.dat", caption="a person walks", id=7),
        ],
    )
    a, b = load_manifest(small_set).clips
    assert (a.split, a.caption, a.extra, a.flipud) == ("holdout-2", "walk", {"label_index": 0, "id": "a"}, False)
    assert (b.split, b.caption, b.extra) == ("train", "a person walks", {"id": 7})  # absent: the defaults


def test_jsonl_null_optional_fields_are_absent(small_set, capsys):
    """pandas writes null for a missing value: an optional field holding null takes its default, as an
    empty CSV cell does (it used to be refused)."""
    nulls = dict(caption=None, split=None, head_columns=None, flipud=None, label_index=None, id=None)
    write_jsonl(
        small_set / "manifest.jsonl",
        [record("walk/a.dat", **nulls), record("walk/b.dat", split="val", caption=None, id=None)],
    )
    a, b = load_manifest(small_set).clips
    assert (a.caption, a.split, a.head_columns, a.flipud, a.extra) == ("walk", "train", 0, False, {}), a
    assert (b.caption, b.split, b.extra) == ("walk", "val", {}), b
    rc, stdout, err = run_main(capsys, "data", "inspect", small_set, "--json")
    assert rc == 0 and err == "", f"expected the manifest read, found {rc}: {err!r}"


def test_integer_labels_are_read_as_their_text(tmp_path, capsys):
    """A JSON integer label (pandas writes a numeric class column so) is the class of that name, in
    records and in dataset.json's classes alike."""
    root = tmp_path / "set"
    for name in ("3/a.dat", "10/b.dat"):
        make_clip(root / name, 5)
    write_jsonl(
        root / "manifest.jsonl",
        [record("3/a.dat", label=3, label_index=1), record("10/b.dat", label="10", label_index=0)],
    )
    m = load_manifest(root)
    assert [c.label for c in m.clips] == ["3", "10"] and m.classes == ["10", "3"], m
    (root / "dataset.json").write_text(json.dumps({"classes": [3, "10"], "class_prompts": {"3": "three"}}))
    m = load_manifest(root)
    assert m.classes == ["3", "10"] and m.class_prompts == {"3": "three", "10": "10"}, m
    assert [m.label_index(c.label) for c in m.clips] == [0, 1]
    rc, stdout, err = run_main(capsys, "data", "inspect", root, "--json")
    assert rc == 0 and err == "", f"expected the dataset read, found {rc}: {err!r}"


def write_csv(path: Path, rows: list[dict]) -> Path:
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(str(r.get(k, "")) for k in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("frames", "5.0", "field 'frames' must be a whole number written in digits, got a string '5.0'"),
        ("frames", "1e1", "field 'frames' must be a whole number written in digits"),
        ("frames", "\u0665", "field 'frames' must be a whole number written in digits"),  # an Arabic-Indic five
        ("height", "true", "field 'height' must be a whole number written in digits"),
        ("width", "0x10", "field 'width' must be a whole number written in digits"),
        ("head_columns", "1.5", "field 'head_columns' must be a whole number written in digits"),
        ("label_index", "x", "field 'label_index' must be a whole number written in digits"),
        ("label_index", "3", "field 'label_index' must be in [0, 1)"),
        ("label_index", "-1", "field 'label_index' must be in [0, 1)"),
        ("flipud", "maybe", "field 'flipud' must be true or false (or 1/0, yes/no), got a string 'maybe'"),
    ],
)
def test_csv_record_fields_are_parsed_strictly_from_their_text(small_set, capsys, field, value, needle):
    rows = [
        {**record("walk/a.dat"), "label_index": 0, "flipud": "no", "head_columns": 0},
        {**record("walk/b.dat"), "label_index": 0, "flipud": "no", "head_columns": 0, field: value},
    ]
    write_csv(small_set / "manifest.csv", rows)
    inspect_refused(capsys, small_set, "manifest.csv:3", needle)


def test_csv_text_fields_are_read(small_set):
    write_csv(
        small_set / "manifest.csv",
        [
            {**record("walk/a.dat"), "frames": " 5 ", "label_index": "0", "flipud": "Yes", "split": "", "caption": ""},
            {**record("walk/b.dat"), "frames": "+5", "label_index": "", "flipud": "", "split": "val", "caption": "c"},
        ],
    )
    a, b = load_manifest(small_set).clips
    assert (a.frames, a.extra["label_index"], a.flipud, a.split, a.caption) == (5, 0, True, "train", "walk")
    assert (b.frames, b.flipud, b.split, b.caption) == (5, False, "val", "c") and "label_index" not in b.extra


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("flipud", "yes", "field 'flipud' must be a JSON boolean (true or false), got a string 'yes'"),
        ("flipud", [True], "field 'flipud' must be a JSON boolean"),
        ("flipud", 1, "field 'flipud' must be a JSON boolean"),
        ("flipud", {}, "field 'flipud' must be a JSON boolean"),
        ("name", 5, "field 'name' must be a string, got an integer 5"),
        ("name", ["x"], "field 'name' must be a string, got a list"),
        ("name", {}, "field 'name' must be a string, got an object"),
        ("format_version", "1", "field 'format_version' must be a positive JSON integer, got a string '1'"),
        ("format_version", 0, "field 'format_version' must be a positive JSON integer"),
        ("format_version", 1.5, "field 'format_version' must be a positive JSON integer"),
        ("format_version", True, "field 'format_version' must be a positive JSON integer"),
        ("config", 5, "field 'config' must be an object, got an integer 5"),
        ("config", [], "field 'config' must be an object, got a list"),
        ("config", None, "field 'config' must be an object, got null"),
        ("camera", "sim", "field 'camera' must be an object"),
        ("classes", 5, "field 'classes' must be a non-empty list of class names"),
        ("classes", "walk", "field 'classes' must be a non-empty list of class names"),
        ("classes", [], "field 'classes' must be a non-empty list of class names"),
        ("classes", ["walk", 3.0], "field 'classes' must be a non-empty list of class names"),
        ("classes", ["walk", True], "field 'classes' must be a non-empty list of class names"),
        ("classes", ["walk", None], "field 'classes' must be a non-empty list of class names"),
        ("classes", ["walk", ""], "field 'classes' must be a non-empty list of class names"),
        ("classes", ["walk", 3, "3"], "field 'classes' names '3' more than once"),
        ("classes", ["walk", "walk"], "field 'classes' names 'walk' more than once"),
        ("classes", ["run"], "clips use labels not in 'classes': 'walk'"),
        ("class_prompts", 5, "field 'class_prompts' must be an object mapping class names to prompt strings"),
        ("class_prompts", ["a walk"], "field 'class_prompts' must be an object"),
        ("class_prompts", {"walk": 3}, "field 'class_prompts' must be an object"),
        ("symmetries", [], "field 'symmetries' must be an object of flips"),
        ("symmetries", {"hflip": {"classes": {"walk": 1}}}, "field 'symmetries' must be an object of flips"),
        ("clips", -1, "field 'clips' must be a non-negative JSON integer"),
        ("source", 5, "field 'source' must be a string"),
    ],
)
def test_dataset_json_fields_are_type_checked(small_set, capsys, field, value, needle):
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat"), record("walk/b.dat")])
    (small_set / "dataset.json").write_text(json.dumps({"name": "mine", "classes": ["walk", "run"], field: value}))
    inspect_refused(capsys, small_set, "dataset.json", needle)


def test_dataset_json_of_the_right_types_is_read(small_set):
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", label_index=1), record("walk/b.dat")])
    meta = {
        "name": "mine",
        "format_version": 3,
        "classes": ["run", "walk"],
        "class_prompts": {"walk": "walking"},
        "symmetries": {"hflip": {"classes": {}, "words": {"left": "right"}}},
        "config": {"frames": 10**9},
        "camera": {},
        "flipud": True,
        "clips": 2,
        "source": "here",
        "mine": [1, {"x": None}],
    }
    (small_set / "dataset.json").write_text(json.dumps(meta))
    m = load_manifest(small_set)
    assert m.classes == ["run", "walk"] and m.class_prompts == {"run": "run", "walk": "walking"} and m.meta == meta


def test_many_duplicate_records_are_one_short_warning(small_set):
    """20 000 records of one clip (the tester's case had 100 000; each path is resolved, which takes
    seconds): one warning line naming the first lines and counting the rest."""
    write_jsonl(small_set / "manifest.jsonl", [record("walk/a.dat", id="same")] * 20_000)
    with pytest.warns(SpklipWarning) as caught:
        load_manifest(small_set, check_files=False)
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "\n" not in msg and len(msg) < 400, msg
    assert "lines 1, 2, 3, 4, 5 and 19995 more list the same clip 'walk/a.dat'" in msg, msg
    assert 'lines 1, 2, 3, 4, 5 and 19995 more list the same id "same"' in msg, msg


# --------------------------------------------------------------------------- light imports


def test_preview_columns_ceiling_imports_no_torch():
    """``data.preview.MAX_COLUMNS`` can be read (for the CLI's --columns type) without importing torch:
    the package's names are imported on first use."""
    code = "import sys; from spikedata.preview import MAX_COLUMNS; print(MAX_COLUMNS, 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["100", "False"], (done.stdout, done.stderr)


def test_data_package_exports_resolve():
    import spikedata as data

    assert sorted(data.__all__) == sorted(data._EXPORTS)
    for name in data.__all__:
        module = importlib.import_module(f"spikedata.{data._EXPORTS[name]}")
        assert getattr(data, name) is getattr(module, name), name
    with pytest.raises(AttributeError):
        data.no_such_name  # noqa: B018
