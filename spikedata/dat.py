"""SpikeCV-compatible ``.dat`` spike-stream codec.

Format (SpikeCV ``spkData/load_dat.py`` / ``save_dat.py``; spike cameras write
the same): a headerless sequence of binary frames, 1 bit per pixel. Pixel
``p = row * W + col`` of frame ``t`` is stream bit ``t * H * W + p``; bit ``b``
lives in byte ``b // 8`` at position ``b % 8``, least significant bit first.
When ``H * W`` is a multiple of 8 (every real sensor and the SPKLIP sizes) this
is "pixel ``p`` of a frame at byte ``p // 8``, bit ``p % 8``", frames
concatenated byte-aligned. Otherwise frames are packed back to back and the
stream is zero-padded to a whole byte once, at the end.

``flipud`` flips the rows. The camera's image is upside down, so SpikeCV's
reader and writer flip by default; SPKLIP's loader reads with ``flipud=False``.
Both are offered; our default is ``False`` so that a write/read pair with the
same flag is the identity and SPKLIP data reads as the authors read it.

SpikeCV's writer pads ``8 - (n mod 8)`` zero bits even when ``n mod 8 == 0``,
appending a stray zero byte to every stream whose size is already byte-aligned
(its own reshape then fails). :func:`write_dat` pads only a non-zero remainder.

Real-camera files (sps10: 250 x 416) carry 16 "head" columns at the right edge
(columns 400-415) that hold no image; ``head_columns=16`` drops them, as
SpikeCV's ``with_head=True`` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spklip_energy.atomic import atomic_path
from spklip_energy.errors import ConfigError, DatError, SpklipError
from spklip_energy.limits import check_memory
from spklip_energy.options import check_int, check_nonneg_int, check_positive_int

#: Geometry of the sps10 real spike camera as stored on disk (rows, raw columns, head columns).
SPS10_HEIGHT, SPS10_RAW_WIDTH, SPS10_HEAD_COLUMNS = 250, 416, 16


@dataclass(frozen=True)
class DatInfo:
    """What the size of a ``.dat`` file says about it."""

    path: str
    frames: int  # whole frames in the file
    height: int
    width: int  # raw width on disk (including any head columns)
    n_bytes: int


def _check_geometry(height: int, width: int, where: object = None) -> tuple[int, int]:
    try:
        h, w = check_int(height, "height"), check_int(width, "width")
    except ConfigError:
        h = w = 0
    if h <= 0 or w <= 0:
        msg = f"frame size must be positive integers, got height={height!r} width={width!r}"
        raise DatError(f"{where}: {msg}" if where is not None else msg)
    return h, w


def check_head_columns(value, width: int, name: str = "head_columns", error: type[SpklipError] = ConfigError) -> int:
    """The number of right-most head columns to drop from frames ``width`` columns wide: an integer in
    ``[0, width)``, so that at least one image column is left.

    ``name`` is what the message calls the value (a parameter, an option, a manifest line's field);
    a non-integer is a :class:`ConfigError`, an integer out of range an ``error`` (default ConfigError).
    """
    head = check_int(value, name)
    if not 0 <= head < width:
        raise error(f"{name} must be in [0, {width}) (the frame width is {width}), got {head}")
    return head


def decoded_bytes(count: int, height: int, width: int, head_columns: int = 0) -> int:
    """Peak memory of decoding ``count`` frames: the uint8 result plus the unpacked or packed copy."""
    out = count * height * (width - head_columns)
    aligned = width % 8 == 0 and head_columns % 8 == 0
    return out + (count * height * width // 8 if aligned else count * height * width)


def dat_info(path: str | os.PathLike, height: int, width: int) -> DatInfo:
    """Validate that ``path`` holds a whole number of ``height x width`` frames.

    Raises :class:`DatError` naming the file when it is missing, is not a regular
    file, is empty, or its size is not that of a whole number of frames.
    """
    height, width = _check_geometry(height, width, path)
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise DatError(f"{p}: no such spike file") from None
    except OSError as exc:
        raise DatError(f"{p}: cannot read spike file ({exc.strerror})") from None
    if not p.is_file():
        raise DatError(f"{p}: not a regular file")
    n_bytes = st.st_size
    bits_per_frame = height * width
    frames = (n_bytes * 8) // bits_per_frame
    if n_bytes == 0 or frames == 0:
        raise DatError(
            f"{p}: {n_bytes} bytes is less than one {height}x{width} frame ({(bits_per_frame + 7) // 8} bytes)"
        )
    if (frames * bits_per_frame + 7) // 8 != n_bytes:
        raise DatError(
            f"{p}: {n_bytes} bytes is not a whole number of {height}x{width} frames "
            f"({bits_per_frame / 8:g} bytes each; truncated or wrong frame size?)"
        )
    return DatInfo(str(p), frames, int(height), int(width), n_bytes)


def read_dat(
    path: str | os.PathLike,
    height: int,
    width: int,
    flipud: bool = False,
    start: int = 0,
    count: int | None = None,
    head_columns: int = 0,
) -> np.ndarray:
    """Decode frames ``[start, start + count)`` of a ``.dat`` spike stream.

    Parameters
    ----------
    path : the ``.dat`` file.
    height, width : frame size as stored on disk (``width`` includes head columns).
    flipud : flip rows, as SpikeCV's reader does by default.
    start, count : frame range; ``count=None`` reads to the end. Only the bytes of
        that range are read (the file is memory-mapped).
    head_columns : number of right-most columns to drop (16 for sps10 files).

    Returns
    -------
    ``np.ndarray`` of shape ``[count, height, width - head_columns]``, dtype uint8, values 0/1.

    Raises :class:`DatError` naming the file for a file that does not hold the
    frames asked for, :class:`ConfigError` naming the file and the argument for a
    ``start``, ``count`` or ``head_columns`` that is not an integer in range.
    """
    height, width = _check_geometry(height, width, path)
    head_columns = check_head_columns(head_columns, width, f"{path}: head_columns")
    start = check_nonneg_int(start, f"{path}: start frame")
    if count is not None:
        count = check_positive_int(count, f"{path}: frame count")
    info = dat_info(path, height, width)
    if start >= info.frames:
        raise DatError(f"{path}: start frame {start} outside the file's {info.frames} frames")
    whole = count is None
    if whole:
        count = info.frames - start
    if start + count > info.frames:
        raise DatError(f"{path}: cannot read {count} frames from frame {start}; the file has {info.frames}")
    check_memory(
        decoded_bytes(count, height, width, head_columns),
        f"{path}: decoding {count} frames of {height}x{width - head_columns}",
        f"all {count} frames from frame {start}; read fewer with --count"
        if whole
        else f"--count {count} from frame {start}",
    )
    hw = height * width
    bit0, bit1 = start * hw, (start + count) * hw
    byte0, byte1 = bit0 // 8, (bit1 + 7) // 8
    aligned = width % 8 == 0 and head_columns % 8 == 0
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r", offset=byte0, shape=(byte1 - byte0,))
        if aligned:
            return _read_aligned(raw, count, height, width, flipud, head_columns)
        bits = np.unpackbits(raw, bitorder="little")
    except (OSError, ValueError) as exc:
        raise DatError(f"{path}: cannot map spike file ({exc})") from None
    finally:
        raw = None  # release the mapping promptly
    lead = bit0 - byte0 * 8
    frames = bits[lead : lead + count * hw].reshape(count, height, width)
    if head_columns:
        frames = frames[:, :, : width - head_columns]
    if flipud:
        frames = frames[:, ::-1, :]
    return np.ascontiguousarray(frames)


def _read_aligned(raw: np.ndarray, count: int, height: int, width: int, flipud: bool, head_columns: int) -> np.ndarray:
    """Fast path when rows are whole bytes: crop and flip the packed bytes, then unpack once."""
    packed = raw.reshape(count, height, width // 8)
    if head_columns:
        packed = packed[:, :, : (width - head_columns) // 8]
    if flipud:
        packed = packed[:, ::-1, :]
    out_width = packed.shape[-1] * 8
    flat = np.unpackbits(np.ascontiguousarray(packed).reshape(-1), bitorder="little")
    return flat.reshape(count, height, out_width)


def read_dat_loop(path: str | os.PathLike, height: int, width: int, *, flipud: bool) -> np.ndarray:
    """SpikeCV's ``load_dat.py`` decoding written out as its per-frame loop (int8 bytes, one comparator
    test per pixel and frame): the reference :func:`read_dat` is checked against (tests/test_dat.py) and
    timed against (benchmarks/bench_read_dat.py). Byte-aligned frames only (``height * width`` a
    multiple of 8), no size checks: for files this project wrote or tests made."""
    raw = np.fromfile(path, dtype=np.int8)
    pixels = height * width
    frame_bytes = pixels // 8
    pix = np.arange(pixels).reshape(height, width)
    comparator, byte_of = np.left_shift(1, np.mod(pix, 8)), pix // 8
    frames = len(raw) // frame_bytes
    out = np.zeros((frames, height, width), dtype=np.uint8)
    for t in range(frames):
        frame = np.bitwise_and(raw[t * frame_bytes : (t + 1) * frame_bytes][byte_of], comparator) == comparator
        out[t] = np.flipud(frame) if flipud else frame
    return out


def encode_dat(spikes: np.ndarray, flipud: bool = False) -> bytes:
    """Pack a ``[T, H, W]`` array of 0/1 spikes into ``.dat`` bytes (see module doc)."""
    arr = np.asarray(spikes)
    if arr.ndim != 3:
        raise DatError(f"spikes must have shape [T, H, W], got shape {tuple(arr.shape)}")
    if arr.size == 0:
        raise DatError(f"spikes must be non-empty, got shape {tuple(arr.shape)}")
    t_len, h, w = arr.shape
    if h * w < 8 and (t_len * h * w) % 8:
        # the end padding would read back as extra frames: the format cannot tell them apart
        raise DatError(
            f"a {h}x{w} stream of {t_len} frames cannot be stored unambiguously "
            "(frames under 8 pixels need T*H*W divisible by 8)"
        )
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise DatError("spikes must be binary (0/1 or bool)")
        arr = arr.astype(bool)
    if flipud:
        arr = arr[:, ::-1, :]
    # np.packbits pads only a non-zero remainder (unlike SpikeCV's writer).
    return np.packbits(arr.reshape(-1), bitorder="little").tobytes()


def write_dat(path: str | os.PathLike, spikes: np.ndarray, flipud: bool = False) -> Path:
    """Write a ``[T, H, W]`` 0/1 array as a ``.dat`` file, atomically.

    The file appears complete or not at all (temporary file, then rename).
    """
    data = encode_dat(spikes, flipud=flipud)
    target = Path(path)
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def read_dat_folder(
    folder: str | os.PathLike,
    height: int,
    width: int,
    flipud: bool = False,
    head_columns: int = 0,
) -> np.ndarray:
    """Concatenate every ``*.dat`` in ``folder`` (sorted by name) along time.

    This is the SPKLIP public loader's layout, where one video is a folder of
    short ``.dat`` files.
    """
    height, width = _check_geometry(height, width, folder)
    head_columns = check_head_columns(head_columns, width, f"{folder}: head_columns")
    files = sorted(Path(folder).glob("*.dat"))
    if not files:
        raise DatError(f"{folder}: folder holds no .dat files")
    total = sum(dat_info(f, height, width).frames for f in files)
    check_memory(  # the parts and their concatenation
        decoded_bytes(total, height, width, head_columns) + total * height * (width - head_columns),
        f"{folder}: decoding {total} frames of {height}x{width - head_columns} from {len(files)} files",
        f"all {total} frames of the folder",
    )
    parts = [read_dat(f, height, width, flipud=flipud, head_columns=head_columns) for f in files]
    return np.concatenate(parts, axis=0)
