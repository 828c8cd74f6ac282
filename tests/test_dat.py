"""Tests of the ``.dat`` spike-stream codec against SpikeCV-style loop references."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from data_helpers import check_equal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from spikedata.dat import (
    check_head_columns,
    dat_info,
    encode_dat,
    read_dat,
    read_dat_folder,
    write_dat,
)
from spikedata.dat import read_dat_loop as spikecv_read
from spklip_energy.errors import ConfigError, DatError, ManifestError

# --------------------------------------------------------------------------- references


def loop_write_bytes(spikes: np.ndarray, flipud: bool = False) -> bytes:
    """Pack a ``[T, H, W]`` 0/1 stream frame by frame, LSB first, padding once at the end."""
    bits = []
    for frame in np.asarray(spikes):
        if flipud:
            frame = np.flipud(frame)
        bits.append(np.asarray(frame, dtype=np.int64).reshape(-1))
    stream = np.concatenate(bits)
    pad = (-len(stream)) % 8  # no stray byte when already aligned (SpikeCV's bug)
    stream = np.concatenate([stream, np.zeros(pad, dtype=np.int64)])
    weights = np.left_shift(1, np.arange(8))
    return (stream.reshape(-1, 8) * weights).sum(axis=1).astype(np.uint8).tobytes()


def random_stream(rng: np.random.Generator, frames: int, height: int, width: int, p: float = 0.3):
    """A random 0/1 uint8 stream of shape ``[frames, height, width]``."""
    return (rng.random((frames, height, width)) < p).astype(np.uint8)


# --------------------------------------------------------------------------- bit-exact decoding

ALIGNED_SIZES = [(240, 320), (1, 8), (4, 6), (13, 16), (250, 400)]


@pytest.mark.parametrize("flipud", [False, True])
@pytest.mark.parametrize("height,width", ALIGNED_SIZES)
def test_read_matches_spikecv_comparator(tmp_path, height, width, flipud):
    rng = np.random.default_rng(height * 1000 + width)
    spikes = random_stream(rng, 4, height, width)
    path = tmp_path / "clip.dat"
    path.write_bytes(loop_write_bytes(spikes, flipud=flipud))
    expected = spikecv_read(path, height, width, flipud=flipud)
    found = read_dat(path, height, width, flipud=flipud)
    assert found.dtype == np.uint8, f"expected dtype uint8, found {found.dtype}"
    check_equal(expected, found, f"read_dat {height}x{width} flipud={flipud}")
    check_equal(spikes, found, "decoded stream vs. written stream")


@pytest.mark.parametrize("flipud", [False, True])
def test_read_random_bytes_matches_spikecv(tmp_path, flipud):
    """Arbitrary bytes (high bits included, negative as int8) decode as SpikeCV decodes them."""
    rng = np.random.default_rng(7)
    path = tmp_path / "noise.dat"
    path.write_bytes(rng.integers(0, 256, size=3 * 240 * 320 // 8, dtype=np.uint8).tobytes())
    check_equal(
        spikecv_read(path, 240, 320, flipud=flipud),
        read_dat(path, 240, 320, flipud=flipud),
        f"random bytes flipud={flipud}",
    )


def test_high_bit_byte(tmp_path):
    """0x80 is -128 as int8; SpikeCV still reads it as pixel 7 of the byte."""
    path = tmp_path / "hi.dat"
    path.write_bytes(bytes([0x80, 0xFF]))
    found = read_dat(path, 2, 8)
    expected = np.array([[[0, 0, 0, 0, 0, 0, 0, 1], [1] * 8]], dtype=np.uint8)
    check_equal(expected, found, "bytes 0x80 0xFF")
    check_equal(spikecv_read(path, 2, 8, flipud=False), found, "bytes 0x80 0xFF vs. SpikeCV")


@pytest.mark.parametrize("flipud", [False, True])
def test_sps10_head_columns(tmp_path, flipud):
    rng = np.random.default_rng(10)
    raw = random_stream(rng, 3, 250, 416)
    path = tmp_path / "sps10.dat"
    path.write_bytes(loop_write_bytes(raw, flipud=flipud))
    expected = np.delete(spikecv_read(path, 250, 416, flipud=flipud), np.arange(400, 416), axis=2)
    found = read_dat(path, 250, 416, flipud=flipud, head_columns=16)
    check_equal(expected, found, f"sps10 head_columns=16 flipud={flipud}")
    assert found.shape == (3, 250, 400), f"expected shape (3, 250, 400), found {found.shape}"


@pytest.mark.parametrize("flipud", [False, True])
def test_unaligned_frame_size_packs_back_to_back(tmp_path, flipud):
    """5x7 = 35 bits a frame: frames are packed back to back and padded once at the end."""
    rng = np.random.default_rng(35)
    spikes = random_stream(rng, 9, 5, 7, p=0.5)
    oriented = spikes[:, ::-1, :] if flipud else spikes
    expected_bytes = np.packbits(oriented.reshape(-1), bitorder="little").tobytes()
    assert len(expected_bytes) == math.ceil(9 * 35 / 8)

    found_bytes = encode_dat(spikes, flipud=flipud)
    assert found_bytes == expected_bytes, "encode_dat 5x7: expected np.packbits of the flat stream"
    assert loop_write_bytes(spikes, flipud=flipud) == expected_bytes, "loop writer disagrees"

    path = tmp_path / "odd.dat"
    path.write_bytes(expected_bytes)
    check_equal(spikes, read_dat(path, 5, 7, flipud=flipud), f"read 5x7 flipud={flipud}")
    for start, count in [(0, 1), (1, 1), (3, 4), (8, 1), (2, None)]:
        n = 9 - start if count is None else count
        check_equal(
            spikes[start : start + n],
            read_dat(path, 5, 7, flipud=flipud, start=start, count=count),
            f"5x7 frames start={start} count={count}",
        )


# --------------------------------------------------------------------------- writing

WRITE_SIZES = [(240, 320), (1, 8), (5, 7), (3, 3), (250, 416)]


@pytest.mark.parametrize("flipud", [False, True])
@pytest.mark.parametrize("height,width", WRITE_SIZES)
def test_write_matches_loop_writer(tmp_path, height, width, flipud):
    rng = np.random.default_rng(height + width)
    spikes = random_stream(rng, 3, height, width)
    path = write_dat(tmp_path / "w.dat", spikes, flipud=flipud)
    found = path.read_bytes()
    expected = loop_write_bytes(spikes, flipud=flipud)
    assert len(found) == len(expected), f"expected {len(expected)} bytes, found {len(found)}"
    assert found == expected, f"write_dat {height}x{width} flipud={flipud}: bytes differ"


@pytest.mark.parametrize("flipud", [False, True])
@pytest.mark.parametrize("height,width", WRITE_SIZES)
@pytest.mark.parametrize("dtype", [np.uint8, np.bool_, np.int64, np.float32])
def test_roundtrip_identity(tmp_path, height, width, flipud, dtype):
    rng = np.random.default_rng(1)
    spikes = random_stream(rng, 5, height, width).astype(dtype)
    path = write_dat(tmp_path / "rt.dat", spikes, flipud=flipud)
    check_equal(
        spikes.astype(np.uint8),
        read_dat(path, height, width, flipud=flipud),
        f"round trip {height}x{width} {np.dtype(dtype).name} flipud={flipud}",
    )


def test_flipud_flag_flips_rows(tmp_path):
    rng = np.random.default_rng(2)
    spikes = random_stream(rng, 2, 6, 8)
    path = write_dat(tmp_path / "f.dat", spikes, flipud=False)
    check_equal(spikes[:, ::-1, :], read_dat(path, 6, 8, flipud=True), "flipped read")


@pytest.mark.parametrize("frames", [1, 7, 250])
def test_write_size_exact_no_stray_byte(tmp_path, frames):
    spikes = np.zeros((frames, 240, 320), dtype=np.uint8)
    path = write_dat(tmp_path / "z.dat", spikes)
    expected = math.ceil(frames * 240 * 320 / 8)
    found = path.stat().st_size
    assert found == expected, f"expected {expected} bytes, found {found}"


def test_write_leaves_no_temporary_files(tmp_path):
    write_dat(tmp_path / "a.dat", np.ones((2, 4, 4), dtype=np.uint8))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.dat"], f"expected only a.dat, found {names}"


@pytest.mark.parametrize(
    "bad",
    [
        np.full((2, 4, 4), 2, dtype=np.uint8),
        np.full((2, 4, 4), 0.5, dtype=np.float32),
        np.full((2, 4, 4), -1, dtype=np.int8),
        np.full((2, 4, 4), np.nan),
    ],
    ids=["two", "half", "minus-one", "nan"],
)
def test_write_rejects_non_binary(tmp_path, bad):
    with pytest.raises(DatError, match="binary"):
        write_dat(tmp_path / "bad.dat", bad)
    assert not (tmp_path / "bad.dat").exists(), "expected no file after a failed write"


@pytest.mark.parametrize("shape", [(4, 4), (8,), (1, 2, 4, 4), (), (0, 4, 4)])
def test_write_rejects_wrong_shape(tmp_path, shape):
    with pytest.raises(DatError):
        write_dat(tmp_path / "bad.dat", np.zeros(shape, dtype=np.uint8))


# --------------------------------------------------------------------------- frame ranges


@pytest.fixture(scope="module")
def big_clip(tmp_path_factory):
    """A 200-frame 240x320 clip on disk and its spikes."""
    rng = np.random.default_rng(200)
    spikes = random_stream(rng, 200, 240, 320, p=0.2)
    path = write_dat(tmp_path_factory.mktemp("big") / "big.dat", spikes)
    return path, spikes


@pytest.mark.parametrize("start,count", [(0, 1), (0, None), (17, 5), (150, 10), (199, 1), (199, None), (0, 200)])
def test_frame_range_equals_slice(big_clip, start, count):
    path, spikes = big_clip
    full = read_dat(path, 240, 320)
    n = 200 - start if count is None else count
    part = read_dat(path, 240, 320, start=start, count=count)
    check_equal(full[start : start + n], part, f"frames start={start} count={count}")
    check_equal(spikes[start : start + n], part, "frame range vs. written stream")


def test_frame_range_maps_only_its_bytes(big_clip, monkeypatch):
    path, spikes = big_clip
    calls = []
    real_memmap = np.memmap

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_memmap(*args, **kwargs)

    monkeypatch.setattr(np, "memmap", spy)
    part = read_dat(path, 240, 320, start=150, count=10)
    check_equal(spikes[150:160], part, "frames 150..159")
    assert len(calls) == 1, f"expected one memmap call, found {len(calls)}"
    frame_bytes = 240 * 320 // 8
    offset, shape = calls[0].get("offset"), calls[0].get("shape")
    assert offset == 150 * frame_bytes, f"expected offset {150 * frame_bytes}, found {offset}"
    assert tuple(np.atleast_1d(shape)) == (10 * frame_bytes,), f"expected shape ({10 * frame_bytes},), found {shape}"


def test_dat_info(big_clip):
    path, _ = big_clip
    info = dat_info(path, 240, 320)
    assert (info.frames, info.height, info.width, info.n_bytes) == (200, 240, 320, 200 * 9600), (
        f"expected (200, 240, 320, 1920000), found {info}"
    )


# --------------------------------------------------------------------------- errors


def _raises_naming(path: Path, fn, *args, error: type[Exception] = DatError, **kwargs) -> Exception:
    with pytest.raises(error) as exc:
        fn(path, *args, **kwargs)
    assert path.name in str(exc.value), f"expected {path.name!r} in the message, found {exc.value}"
    return exc.value


def test_truncated_file(tmp_path):
    path = write_dat(tmp_path / "trunc.dat", np.ones((3, 240, 320), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[:-1])
    _raises_naming(path, read_dat, 240, 320)
    path.write_bytes(data + b"\0")  # e.g. SpikeCV's stray padding byte
    _raises_naming(path, read_dat, 240, 320)
    path.write_bytes(data[:100])  # less than one frame
    _raises_naming(path, read_dat, 240, 320)


def test_empty_missing_directory(tmp_path):
    empty = tmp_path / "empty.dat"
    empty.write_bytes(b"")
    _raises_naming(empty, read_dat, 4, 4)
    _raises_naming(tmp_path / "missing.dat", read_dat, 4, 4)
    folder = tmp_path / "folder.dat"
    folder.mkdir()
    _raises_naming(folder, read_dat, 4, 4)


@pytest.mark.parametrize(
    "kwargs,error",
    [
        # beyond the file's frames: a DatError; an argument no file could satisfy: a ConfigError
        ({"start": -1}, ConfigError),
        ({"start": 4}, DatError),
        ({"start": 100}, DatError),
        ({"count": 0}, ConfigError),
        ({"count": -2}, ConfigError),
        ({"count": 5}, DatError),
        ({"start": 3, "count": 2}, DatError),
        ({"head_columns": 8}, ConfigError),
        ({"head_columns": -1}, ConfigError),
    ],
)
def test_out_of_range_arguments(tmp_path, kwargs, error):
    """Both name the file; an argument's refusal also names the argument."""
    path = write_dat(tmp_path / "range.dat", np.zeros((4, 2, 8), dtype=np.uint8))
    exc = _raises_naming(path, read_dat, 2, 8, error=error, **kwargs)
    if error is ConfigError:
        assert next(iter(kwargs)).split("_")[0] in str(exc), f"expected the argument named, found {exc}"


def test_check_head_columns():
    """One check for every reader: an integer in [0, width), the refusal naming the value and the width."""
    assert check_head_columns(0, 8) == 0 and check_head_columns("7", 8) == 7
    for value in (8, 9, -1):
        with pytest.raises(ConfigError, match=rf"^head_columns must be in \[0, 8\).*got {value}$"):
            check_head_columns(value, 8)
    for value in (1.5, True, "x"):
        with pytest.raises(ConfigError, match="head_columns"):
            check_head_columns(value, 8)
    with pytest.raises(ManifestError, match=r"^m\.jsonl:3: field 'head_columns' must be in \[0, 4\)"):
        check_head_columns(4, 4, "m.jsonl:3: field 'head_columns'", ManifestError)


def test_read_dat_folder_checks_head_columns(tmp_path):
    write_dat(tmp_path / "a.dat", np.zeros((2, 2, 8), dtype=np.uint8))
    with pytest.raises(ConfigError, match=rf"{tmp_path.name}: head_columns must be in \[0, 8\)"):
        read_dat_folder(tmp_path, 2, 8, head_columns=8)


@pytest.mark.parametrize("height,width", [(0, 8), (8, 0), (-1, 8)])
def test_bad_geometry(tmp_path, height, width):
    path = write_dat(tmp_path / "geo.dat", np.zeros((1, 2, 8), dtype=np.uint8))
    with pytest.raises(DatError):
        read_dat(path, height, width)


# --------------------------------------------------------------------------- fuzz


def _whole_frames(n_bytes: int, hw: int) -> int:
    """Largest T with ceil(T * hw / 8) == n_bytes, or 0 if none."""
    t = 0
    while math.ceil((t + 1) * hw / 8) <= n_bytes:
        t += 1
    return t if t and math.ceil(t * hw / 8) == n_bytes else 0


@st.composite
def dat_cases(draw):
    """(bytes, height, width): half arbitrary lengths, half a whole number of frames."""
    height, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    if draw(st.booleans()):
        n_bytes = math.ceil(draw(st.integers(1, 10)) * height * width / 8)
        data = draw(st.binary(min_size=n_bytes, max_size=n_bytes))
    else:
        data = draw(st.binary(max_size=160))
    return data, height, width


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    case=dat_cases(),
    start=st.one_of(st.integers(0, 3), st.integers(-2, 40)),
    count=st.one_of(st.none(), st.integers(1, 4), st.integers(-2, 40)),
    head=st.one_of(st.just(0), st.integers(-1, 3)),
    flipud=st.booleans(),
)
def test_fuzz_read_dat(case, start, count, head, flipud):
    data, height, width = case
    hw = height * width
    frames = _whole_frames(len(data), hw)
    n = frames - start if count is None else count
    valid = frames > 0 and 0 <= start and n > 0 and start + n <= frames and 0 <= head < width
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.dat"
        path.write_bytes(data)
        try:
            out = read_dat(path, height, width, flipud=flipud, start=start, count=count, head_columns=head)
        except (DatError, ConfigError) as exc:  # a file without those frames; an argument out of range
            event(type(exc).__name__)
            assert not valid, f"expected {n} frames from frame {start}, found {type(exc).__name__}: {exc}"
            return
    event("decoded")
    assert valid, (
        f"expected DatError for {len(data)} bytes of {height}x{width}, start={start} "
        f"count={count} head={head}; found shape {out.shape}"
    )
    assert out.dtype == np.uint8, f"expected uint8, found {out.dtype}"
    assert out.shape == (n, height, width - head), f"expected shape {(n, height, width - head)}, found {out.shape}"
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    expected = bits[start * hw : (start + n) * hw].reshape(n, height, width)[:, :, : width - head]
    if flipud:
        expected = expected[:, ::-1, :]
    check_equal(expected, out, "fuzz decode")


# --------------------------------------------------------------------------- folders


def test_read_dat_folder_order(tmp_path):
    rng = np.random.default_rng(3)
    parts = {name: random_stream(rng, k, 6, 8) for name, k in [("b", 2), ("a", 3), ("c", 1)]}
    for name, spikes in parts.items():  # written out of order
        write_dat(tmp_path / f"{name}.dat", spikes, flipud=True)
    (tmp_path / "notes.txt").write_text("not a spike file")
    found = read_dat_folder(tmp_path, 6, 8, flipud=True)
    expected = np.concatenate([parts["a"], parts["b"], parts["c"]])
    check_equal(expected, found, "folder a, b, c")


def test_read_dat_folder_head_columns(tmp_path):
    rng = np.random.default_rng(4)
    first, second = random_stream(rng, 2, 4, 24), random_stream(rng, 3, 4, 24)
    write_dat(tmp_path / "000.dat", first)
    write_dat(tmp_path / "001.dat", second)
    found = read_dat_folder(tmp_path, 4, 24, head_columns=16)
    check_equal(np.concatenate([first, second])[:, :, :8], found, "folder with head columns")


def test_read_dat_folder_empty(tmp_path):
    with pytest.raises(DatError, match=tmp_path.name):
        read_dat_folder(tmp_path, 4, 4)
