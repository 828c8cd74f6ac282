"""Tests of the ``spklip-energy`` command line (``data`` verbs and ``demo``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import check_no_leftovers, check_user_error, files_under, run_main, run_sub

from spikedata.dat import read_dat, write_dat
from spikedata.digits import MOTIONS
from spklip_energy.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers


def random_spikes(frames: int, height: int, width: int, seed: int = 0, p: float = 0.2) -> np.ndarray:
    """A random 0/1 uint8 stream."""
    return (np.random.default_rng(seed).random((frames, height, width)) < p).astype(np.uint8)


# --------------------------------------------------------------------------- help

HELP_CASES = [
    ((), "energy analysis for spike-camera video-language models"),
    (("data",), "Spike-camera data tools"),
    (("data", "show"), "Decode a SpikeCV .dat file"),
    (("data", "simulate"), "integrate-and-fire spike-camera simulator"),
    (("data", "make-digits"), "Render moving handwritten digits"),
    (("data", "inspect"), "Load a dataset through its manifest"),
    (("data", "index"), "into a manifest.jsonl"),
    (("demo",), "Generate the built-in spike-digits dataset"),
]


@pytest.mark.parametrize("verbs,purpose", HELP_CASES, ids=[" ".join(c[0]) or "top" for c in HELP_CASES])
def test_help(capsys, verbs, purpose):
    """``--help`` exits 0 and states the verb's purpose."""
    with pytest.raises(SystemExit) as info:
        main([*verbs, "--help"])
    out, err = capsys.readouterr()
    assert info.value.code == 0, f"expected exit 0, found {info.value.code}"
    flat = " ".join(out.split())
    assert purpose in flat, f"expected {purpose!r} in the help text, found:\n{out}"
    assert "usage:" in out, "expected a usage line"


def test_help_subprocess():
    """``python -m spklip_energy.cli --help`` exits 0 and lists the verbs."""
    proc = run_sub("--help")
    assert proc.returncode == 0, f"expected exit 0, found {proc.returncode}: {proc.stderr}"
    for verb in ("data", "demo"):
        assert verb in proc.stdout, f"expected verb {verb!r} in the help, found:\n{proc.stdout}"


def test_version(capsys):
    """``--version`` prints the version."""
    from spklip_energy import __version__

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    out, _ = capsys.readouterr()
    assert info.value.code == 0, f"expected exit 0, found {info.value.code}"
    assert __version__ in out, f"expected {__version__} in {out!r}"


# --------------------------------------------------------------------------- data make-digits / inspect


def test_make_digits_json(capsys, tmp_path):
    """A small dataset: the JSON summary matches the files on disk."""
    out = tmp_path / "digits"
    rc, stdout, err = run_main(
        capsys,
        "data",
        "make-digits",
        out,
        "--clips-per-class",
        3,
        "--height",
        16,
        "--width",
        16,
        "--frames",
        24,
        "--json",
    )
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    summary = json.loads(stdout)
    assert summary["clips"] == 24, f"expected 24 clips, found {summary['clips']}"
    assert summary["classes"] == list(MOTIONS), f"expected classes {list(MOTIONS)}, found {summary['classes']}"
    assert summary["clips_per_split"] == {"train": 8, "val": 8, "test": 8}, (
        f"expected 8 clips per split, found {summary['clips_per_split']}"
    )
    assert summary["clips_per_class"] == {m: 3 for m in MOTIONS}, (
        f"expected 3 per class, found {summary['clips_per_class']}"
    )
    assert summary["frames"] == [24] and summary["size"] == ["16x16"], (
        f"expected frames [24] and size 16x16, found {summary['frames']} {summary['size']}"
    )
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    total = sum(int(read_dat(out / r["path"], 16, 16).sum()) for r in records)
    assert summary["firing_rate"] == pytest.approx(total / (24 * 24 * 16 * 16)), (
        f"expected firing rate {total / (24 * 24 * 256)}, found {summary['firing_rate']}"
    )
    assert summary["mean_spikes_per_pixel"] == pytest.approx(total / (24 * 256)), (
        f"expected {total / (24 * 256)} spikes per pixel, found {summary['mean_spikes_per_pixel']}"
    )
    assert summary["clips_measured"] == 24, f"expected 24 clips measured, found {summary['clips_measured']}"
    check_no_leftovers(tmp_path)


def test_make_digits_overwrite(capsys, tmp_path):
    """``--overwrite`` replaces a dataset make-digits wrote (a foreign folder: test_guarantees_data)."""
    out = tmp_path / "digits"
    argv = ["data", "make-digits", out, "--clips-per-class", 3, "--height", 16, "--width", 16, "--frames", 8]
    rc, _, err = run_main(capsys, *argv)
    assert rc == 0, err
    first = files_under(out)
    rc, stdout, err = run_main(capsys, *argv, "--seed", 1, "--overwrite")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    assert "wrote 24 clips" in stdout, f"expected 'wrote 24 clips' in {stdout!r}"
    second = files_under(out)
    assert second["manifest.jsonl"] != first["manifest.jsonl"], "expected the old dataset replaced"
    check_no_leftovers(tmp_path)


def test_inspect(capsys, tmp_path):
    """``data inspect`` reports clips, classes and an independently computed firing rate."""
    root = tmp_path / "set"
    streams = {
        "a/x.dat": random_spikes(10, 8, 16, 1, 0.1),
        "b/y.dat": random_spikes(10, 8, 16, 2, 0.4),
        "b/z.dat": random_spikes(10, 8, 16, 3, 0.7),
    }
    lines = []
    for rel, s in streams.items():
        write_dat(root / rel, s)
        lines.append(
            {
                "path": rel,
                "label": rel[0],
                "frames": 10,
                "height": 8,
                "width": 16,
                "split": "val" if rel == "b/z.dat" else "train",
            }
        )
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rc, stdout, err = run_main(capsys, "data", "inspect", root, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    s = json.loads(stdout)
    total = sum(int(v.sum()) for v in streams.values())
    assert s["clips"] == 3 and s["classes"] == ["a", "b"], f"expected 3 clips in a, b; found {s}"
    assert s["clips_per_split"] == {"train": 2, "val": 1}, f"expected train 2 / val 1, found {s['clips_per_split']}"
    assert s["firing_rate"] == pytest.approx(total / (3 * 10 * 128)), (
        f"expected rate {total / 3840}, found {s['firing_rate']}"
    )
    rc, stdout, err = run_main(capsys, "data", "inspect", root, "--max-clips", 1, "--json")
    s = json.loads(stdout)
    first = int(streams["a/x.dat"].sum())
    assert s["clips_measured"] == 1, f"expected 1 clip measured, found {s['clips_measured']}"
    assert s["firing_rate"] == pytest.approx(first / 1280), f"expected rate {first / 1280}, found {s['firing_rate']}"
    rc, stdout, err = run_main(capsys, "data", "inspect", root / "manifest.jsonl")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    assert "3 clips in 2 classes" in stdout, f"expected '3 clips in 2 classes' in {stdout!r}"


# --------------------------------------------------------------------------- data show


@pytest.fixture
def stream(tmp_path) -> tuple[Path, np.ndarray]:
    """A 40-frame 16x24 random spike stream on disk."""
    spikes = random_spikes(40, 16, 24, seed=5, p=0.3)
    path = tmp_path / "clip.dat"
    write_dat(path, spikes)
    return path, spikes


def test_show_json_and_png(capsys, tmp_path, stream):
    """``data show --json --out``: exact statistics and a PNG preview."""
    path, spikes = stream
    png = tmp_path / "preview.png"
    rc, stdout, err = run_main(
        capsys,
        "data",
        "show",
        path,
        "--height",
        16,
        "--width",
        24,
        "--out",
        png,
        "--fps",
        20000,
        "--json",
    )
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    s = json.loads(stdout)
    total = int(spikes.sum())
    assert s["frames"] == 40, f"expected 40 frames, found {s['frames']}"
    assert (s["height"], s["width"]) == (16, 24), f"expected 16x24, found {s['height']}x{s['width']}"
    assert s["spikes"] == total, f"expected {total} spikes, found {s['spikes']}"
    assert s["firing_rate"] == pytest.approx(total / spikes.size), (
        f"expected firing rate {total / spikes.size}, found {s['firing_rate']}"
    )
    assert s["mean_spikes_per_pixel"] == pytest.approx(total / (16 * 24)), (
        f"expected {total / 384} spikes per pixel, found {s['mean_spikes_per_pixel']}"
    )
    assert s["firing_rate_hz"] == pytest.approx(total / spikes.size * 20000), "expected the rate in Hz"
    assert s["preview"] == str(png), f"expected preview {png}, found {s.get('preview')}"
    assert png.read_bytes()[:8] == PNG_MAGIC, "expected a PNG file"
    check_no_leftovers(tmp_path)


def test_show_range_head_columns_text(capsys, stream):
    """``--start/--count/--head-columns`` select frames and columns; text output is one line."""
    path, spikes = stream
    rc, stdout, err = run_main(
        capsys,
        "data",
        "show",
        path,
        "--height",
        16,
        "--width",
        24,
        "--start",
        10,
        "--count",
        20,
        "--head-columns",
        4,
        "--json",
    )
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    s = json.loads(stdout)
    part = spikes[10:30, :, :20]
    assert (s["frames"], s["width"]) == (20, 20), f"expected 20 frames of width 20, found {s}"
    assert s["spikes"] == int(part.sum()), f"expected {int(part.sum())} spikes, found {s['spikes']}"
    assert s["mean_spikes_per_pixel"] == pytest.approx(part.sum() / (16 * 20)), "expected mean over 16x20 pixels"
    rc, stdout, err = run_main(capsys, "data", "show", path, "--height", 16, "--width", 24)
    assert rc == 0 and stdout.startswith(str(path)), f"expected a line about {path}, found {stdout!r}"
    assert "frames 40" in stdout, f"expected 'frames 40' in {stdout!r}"


# --------------------------------------------------------------------------- data simulate


def test_simulate_npy_exact(capsys, tmp_path):
    """Constant intensity 0.5 with theta 5: every pixel fires on frames 9, 19, 29."""
    frames = np.full((30, 8, 12), 0.5, dtype=np.float32)
    src, out = tmp_path / "frames.npy", tmp_path / "out.dat"
    np.save(src, frames)
    rc, stdout, err = run_main(capsys, "data", "simulate", src, out, "--theta", 5, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    spikes = read_dat(out, 8, 12)
    assert spikes.shape == (30, 8, 12), f"expected shape (30, 8, 12), found {spikes.shape}"
    expected = np.zeros_like(spikes)
    expected[9::10] = 1
    assert int(spikes.sum()) == 3 * 96, f"expected {3 * 96} spikes, found {int(spikes.sum())}"
    assert np.array_equal(spikes, expected), (
        f"expected spikes on frames 9, 19, 29 only, found frames {sorted(set(np.nonzero(spikes)[0].tolist()))}"
    )
    s = json.loads(stdout)
    assert s["spikes"] == 288 and s["input_frames"] == 30, f"expected 288 spikes from 30 frames, found {s}"
    assert s["mean_spikes_per_pixel"] == pytest.approx(3.0), (
        f"expected 3 spikes per pixel, found {s['mean_spikes_per_pixel']}"
    )
    assert s["camera"]["theta"] == 5.0, f"expected theta 5 in the camera record, found {s['camera']}"
    check_no_leftovers(tmp_path)


def test_simulate_upsample(capsys, tmp_path):
    """``--upsample 3`` turns T frames into (T - 1) * 3 + 1."""
    src, out = tmp_path / "frames.npy", tmp_path / "up.dat"
    np.save(src, np.full((5, 8, 8), 0.5, dtype=np.float32))
    rc, stdout, err = run_main(capsys, "data", "simulate", src, out, "--upsample", 3, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    spikes = read_dat(out, 8, 8)
    assert spikes.shape[0] == (5 - 1) * 3 + 1, f"expected 13 frames, found {spikes.shape[0]}"
    assert int(spikes.sum()) == 64 and spikes[9].all(), (
        f"expected one spike per pixel on frame 9, found {int(spikes.sum())}"
    )
    s = json.loads(stdout)
    assert (s["input_frames"], s["frames"], s["upsample"]) == (5, 13, 3), f"expected 5 -> 13 frames, found {s}"


def test_simulate_image_folder(capsys, tmp_path):
    """A folder of PNG images (sorted by name; other files ignored) is simulated, with a preview."""
    import imageio.v2 as iio

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        iio.imwrite(folder / f"f{i:02d}.png", np.full((10, 14), 255, dtype=np.uint8))
    (folder / "readme.txt").write_text("not an image")
    out, png = tmp_path / "imgs.dat", tmp_path / "imgs.png"
    rc, stdout, err = run_main(capsys, "data", "simulate", folder, out, "--preview", png, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    spikes = read_dat(out, 10, 14)
    assert spikes.shape == (6, 10, 14), f"expected shape (6, 10, 14), found {spikes.shape}"
    expected = np.zeros_like(spikes)
    expected[4] = 1  # intensity 1, theta 5: one spike on frame 4
    assert np.array_equal(spikes, expected), (
        f"expected one spike per pixel on frame 4, found {int(spikes.sum())} spikes"
    )
    assert png.read_bytes()[:8] == PNG_MAGIC, "expected a PNG preview"
    assert json.loads(stdout)["input_frames"] == 6, "expected 6 input frames"
    rc, stdout, err = run_main(capsys, "data", "simulate", folder, out, "--max-frames", 3, "--json")
    assert rc == 0 and read_dat(out, 10, 14).shape[0] == 3, "expected --max-frames 3 to keep 3 frames"


def test_simulate_video(capsys, tmp_path):
    """A tiny mp4 is decoded and simulated frame by frame."""
    import imageio.v2 as iio

    video = tmp_path / "clip.mp4"
    writer = iio.get_writer(video, format="FFMPEG", fps=10)
    for i in range(6):
        writer.append_data(np.full((32, 32, 3), 40 * i, dtype=np.uint8))
    writer.close()
    out = tmp_path / "video.dat"
    rc, stdout, err = run_main(capsys, "data", "simulate", video, out, "--theta", 1, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    spikes = read_dat(out, 32, 32)
    assert spikes.shape == (6, 32, 32), f"expected shape (6, 32, 32), found {spikes.shape}"
    per_frame = spikes.reshape(6, -1).mean(axis=1)
    assert per_frame[0] == 0 and per_frame[-1] > 0.5, (
        f"expected a black first frame and a bright end, found firing {per_frame.tolist()}"
    )
    assert json.loads(stdout)["input_frames"] == 6, "expected 6 decoded frames"


# --------------------------------------------------------------------------- data index


def test_index_then_inspect(capsys, tmp_path):
    """``data index`` writes a manifest for a folder-per-class layout; ``inspect`` then reads it."""
    root = tmp_path / "raw"
    write_dat(root / "jump" / "v1.dat", random_spikes(6, 8, 8, 1))
    write_dat(root / "sit" / "v2" / "p0.dat", random_spikes(4, 8, 8, 2))
    write_dat(root / "sit" / "v2" / "p1.dat", random_spikes(2, 8, 8, 3))
    rc, stdout, err = run_main(capsys, "data", "index", root, "--height", 8, "--width", 8, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    s = json.loads(stdout)
    assert s == {
        "manifest": str(root / "manifest.jsonl"),
        "clips": 2,
        "classes": ["jump", "sit"],
    }, f"expected 2 clips in jump, sit; found {s}"
    recs = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    assert [(r["path"], r["frames"]) for r in recs] == [("jump/v1.dat", 6), ("sit/v2", 6)], f"found {recs}"
    other = tmp_path / "elsewhere" / "m.jsonl"
    rc, stdout, err = run_main(capsys, "data", "index", root, "--height", 8, "--width", 8, "--out", other)
    assert rc == 0 and other.is_file(), f"expected a manifest at {other}: {err}"
    assert "indexed 2 clips in 2 classes" in stdout, f"expected the summary, found {stdout!r}"
    rc, stdout, err = run_main(capsys, "data", "inspect", root, "--json")
    assert rc == 0, f"expected exit 0, found {rc}: {err}"
    assert json.loads(stdout)["clips"] == 2, "expected inspect to see 2 clips"
    check_no_leftovers(tmp_path)


# --------------------------------------------------------------------------- bad input


def case_truncated_dat(tmp: Path):
    path = tmp / "broken.dat"
    write_dat(path, random_spikes(10, 16, 16))
    path.write_bytes(path.read_bytes()[:-5])
    png = tmp / "out.png"
    return ["data", "show", path, "--height", 16, "--width", 16, "--out", png], "broken.dat", [png]


def case_missing_dat(tmp: Path):
    png = tmp / "out.png"
    return (
        ["data", "show", tmp / "absent.dat", "--height", 16, "--width", 16, "--out", png],
        "absent.dat",
        [png],
    )


def case_empty_dataset(tmp: Path):
    (tmp / "emptyset").mkdir()
    return ["data", "inspect", tmp / "emptyset"], "emptyset", []


def case_manifest_missing_file(tmp: Path):
    root = tmp / "set"
    write_dat(root / "a" / "x.dat", random_spikes(4, 8, 8))
    lines = [
        {"path": "a/x.dat", "label": "a", "frames": 4, "height": 8, "width": 8},
        {"path": "a/ghost.dat", "label": "a", "frames": 4, "height": 8, "width": 8},
    ]
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return ["data", "inspect", root], "ghost.dat", []


def case_unreadable_video(tmp: Path):
    video = tmp / "noise.mp4"
    video.write_bytes(np.random.default_rng(0).bytes(4096))
    out = tmp / "noise.dat"
    return (
        ["data", "simulate", video, out, "--preview", tmp / "noise.png"],
        "noise.mp4",
        [out, tmp / "noise.png"],
    )


def case_corrupt_image(tmp: Path):
    import imageio.v2 as iio

    folder = tmp / "imgs"
    folder.mkdir()
    for i in range(3):
        iio.imwrite(folder / f"f{i}.png", np.full((8, 8), 100, dtype=np.uint8))
    (folder / "f3.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    out = tmp / "imgs.dat"
    return ["data", "simulate", folder, out], "f3.png", [out]


def case_index_empty(tmp: Path):
    (tmp / "noclasses").mkdir()
    return (
        ["data", "index", tmp / "noclasses", "--height", 8, "--width", 8],
        "noclasses",
        [tmp / "noclasses" / "manifest.jsonl"],
    )


def case_missing_input_frames(tmp: Path):
    out = tmp / "x.dat"
    return ["data", "simulate", tmp / "nothing.npy", out], "nothing.npy", [out]


def case_simulate_output_is_folder(tmp: Path):
    src = tmp / "frames.npy"
    np.save(src, np.full((4, 8, 8), 0.5, dtype=np.float32))
    (tmp / "outdir").mkdir()
    return ["data", "simulate", src, tmp / "outdir"], "outdir", []


def case_show_preview_is_folder(tmp: Path):
    path = tmp / "ok.dat"
    write_dat(path, random_spikes(10, 8, 8))
    (tmp / "pngdir").mkdir()
    return (
        ["data", "show", path, "--height", 8, "--width", 8, "--out", tmp / "pngdir"],
        "pngdir",
        [],
    )


def case_index_out_under_file(tmp: Path):
    write_dat(tmp / "set" / "a" / "x.dat", random_spikes(3, 8, 8))
    (tmp / "plainfile").write_text("a file, not a folder")
    out = tmp / "plainfile" / "manifest.jsonl"
    return (
        ["data", "index", tmp / "set", "--height", 8, "--width", 8, "--out", out],
        "plainfile",
        [],
    )


BAD_CASES = {
    "truncated-dat": case_truncated_dat,
    "missing-dat": case_missing_dat,
    "empty-dataset-folder": case_empty_dataset,
    "manifest-names-missing-file": case_manifest_missing_file,
    "unreadable-video": case_unreadable_video,
    "corrupt-image": case_corrupt_image,
    "index-empty-folder": case_index_empty,
    "missing-simulate-input": case_missing_input_frames,
    "simulate-output-is-folder": case_simulate_output_is_folder,
    "show-preview-is-folder": case_show_preview_is_folder,
    "index-out-under-a-file": case_index_out_under_file,
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_in_process(capsys, tmp_path, case):
    """Bad input: status 2, one stderr line naming the file, no output, no temporary files."""
    argv, needle, outputs = BAD_CASES[case](tmp_path)
    before = files_under(tmp_path)
    rc, stdout, err = run_main(capsys, *argv)
    check_user_error(rc, err, needle)
    assert stdout == "", f"expected no stdout, found {stdout!r}"
    check_no_leftovers(tmp_path, *outputs)
    assert files_under(tmp_path) == before, "expected the folder unchanged by a failed command"


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_subprocess(tmp_path, case):
    """The same bad input in a fresh interpreter: exit 2, one line, no traceback, nothing written."""
    argv, needle, outputs = BAD_CASES[case](tmp_path)
    before = files_under(tmp_path)
    proc = run_sub(*argv)
    check_user_error(proc.returncode, proc.stderr, needle)
    check_no_leftovers(tmp_path, *outputs)
    assert files_under(tmp_path) == before, "expected the folder unchanged by a failed command"


def test_make_digits_refuses_non_empty(tmp_path):
    """make-digits into a non-empty folder without --overwrite fails and leaves it as it was."""
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    (out / "sub").mkdir()
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = files_under(tmp_path)
    proc = run_sub(
        "data",
        "make-digits",
        out,
        "--clips-per-class",
        3,
        "--height",
        16,
        "--width",
        16,
        "--frames",
        8,
    )
    check_user_error(proc.returncode, proc.stderr, "taken")
    assert "--overwrite" in proc.stderr, f"expected a hint at --overwrite, found {proc.stderr!r}"
    assert files_under(tmp_path) == before, "expected the folder's content unchanged"
    check_no_leftovers(tmp_path)


def test_unknown_choice_one_line(tmp_path):
    """An unknown choice is one prefixed stderr line naming the value, exit 2, no traceback."""
    proc = run_sub("data", "make-digits", tmp_path / "d", "--variant", "nosuchvariant")
    check_user_error(proc.returncode, proc.stderr, "nosuchvariant")
    assert not (tmp_path / "d").exists(), "expected no output folder"


# --------------------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo(tmp_path):
    """``demo`` generates the built-in data, writes digits-preview.png and prints the summary."""
    out = tmp_path / "demo"
    # the whole demo (four trainings, exports, conversion): about 4-5 min on 2 busy cores
    proc = run_sub("demo", "--out", out, "--epochs", "1", "--samples", "4", timeout=900)
    assert proc.returncode == 0, f"expected exit 0, found {proc.returncode}: {proc.stderr}"
    png = out / "digits-preview.png"
    assert png.read_bytes()[:8] == PNG_MAGIC, f"expected a PNG at {png}"
    assert (out / "data" / "manifest.jsonl").is_file(), "expected the generated dataset"
    for text in (
        "spike-digits: 256 clips in 8 classes",
        "splits:",
        "firing rate",
        f"preview written to {png}",
        "spklip-tiny on the test split: zero-shot class top-1",
        "fsve-hybrid-tiny on the test split",
        "fsve-full-tiny on the test split",
        "| fsve-full-tiny |",
        "and its spiking front end as 3 NIR chain parts: hsfe_mtf.nir snntorch ok",
        "QCFS ANN (L=8)",
        "layer sweep at T=8",
    ):
        assert text in proc.stdout, f"expected {text!r} in the demo output, found:\n{proc.stdout}"
    assert "Traceback" not in proc.stderr, f"expected no traceback, found:\n{proc.stderr}"
    check_no_leftovers(out)
    from spklip_energy.checkpoint import load_checkpoint

    card = load_checkpoint(out / "fsve-full-tiny" / "last.pt").card  # the full FSVE: distilled from the ANN
    assert card["teacher"]["from"].endswith("spklip-tiny/last.pt") and card["config"]["fsve"]["hsfe"] == "auto"


def test_demo_retrains_a_run_of_another_model(tmp_path):
    """A demo folder of an earlier version (a full FSVE with the ANN front end, or without its teacher) is not
    reused as the current full FSVE."""
    from export_helpers import small_checkpoint, small_digits

    from spklip.io import card_config
    from spklip_energy.checkpoint import load_checkpoint
    from spklip_energy.demo import _stale

    data = small_digits(tmp_path / "digits")
    old = small_checkpoint(tmp_path, data, "fsve-full", name="old", **{"fsve.hsfe": "ann"})
    new = small_checkpoint(tmp_path, data, "fsve-full", name="new")
    cfg = card_config(load_checkpoint(new))
    assert _stale(old, cfg, None) and not _stale(new, cfg, None)
    assert _stale(new, cfg, tmp_path / "ann.pt")  # trained without the teacher the demo now gives it
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert _stale(tmp_path / "junk.pt", cfg, None)
