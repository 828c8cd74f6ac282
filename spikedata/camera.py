"""A spike-camera simulator: per-pixel integrate-and-fire on grayscale frames.

The model is the paper's Eq. 1 discretised as in its appendix A.8.2 (and
SpikeCV's ``video_to_spike``): every pixel integrates ``alpha * I_t`` per
read-out step, fires one spike when the charge reaches ``theta`` and subtracts
``theta``:

    V_t = V_{t-1} + alpha * I_t + d,      S_t = [V_t >= theta],      V_t <- V_t - theta * S_t

with ``I_t`` the grayscale intensity in [0, 1], ``d`` the dark current per
step, and at most one spike per pixel and step. Optional non-idealities:
a random initial charge uniform in [0, theta) (SpikeCV's ``init_noise``),
photon shot noise (``I_t`` replaced by ``Poisson(photons_per_step * I_t) /
photons_per_step``), dark current, hot pixels (a fraction of pixels with a
large extra dark current) and row artefacts (whole rows with extra charge, the
horizontal "sensor line" pattern of real sps10 data, paper appendix A.2).

Temporal up-sampling: the paper raises frame rates 10x-50x with a learned
frame interpolator (appendix A.8.1) whose weights are not public; we offer
linear interpolation between consecutive frames instead (:func:`upsample_linear`).
"""

from __future__ import annotations

import os
import struct
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spklip_energy.errors import ConfigError, MediaError, first_line
from spklip_energy.limits import check_memory
from spklip_energy.options import (
    check_bool,
    check_float,
    check_fraction,
    check_nonneg_float,
    check_positive_float,
    check_positive_int,
    check_seed,
)

#: Luma weights (ITU-R BT.601) used to turn RGB into grayscale.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")

#: Largest mean photon count of one pixel in one step (numpy's Poisson sampler refuses means near
#: 2**63): the ceiling of ``photons_per_step`` (photons per unit intensity) and of the brightest
#: frame's intensity times ``photons_per_step``.
MAX_PHOTONS_PER_STEP = 1e15
#: numpy dtype kinds that hold intensities: bool, unsigned and signed integers, floats.
_NUMERIC_KINDS = "buif"


@dataclass
class CameraConfig:
    """Settings of the simulated spike camera (intensities are in [0, 1])."""

    theta: float = 5.0  # firing threshold on accumulated charge (paper A.8.2: 5.0)
    alpha: float = 1.0  # photoelectric conversion rate: charge per unit intensity per step
    random_init: bool = False  # start each integrator uniform in [0, theta)
    photons_per_step: float | None = None  # photon shot noise at this many photons per unit intensity; None = off
    dark_current: float = 0.0  # charge added to every pixel every step
    hot_pixel_fraction: float = 0.0  # fraction of pixels with extra dark current
    hot_pixel_current: float = 2.0  # extra charge per step of a hot pixel
    row_artifact_fraction: float = 0.0  # fraction of rows with extra charge (horizontal line artefacts)
    row_artifact_current: float = 0.5  # extra charge per step on an artefact row

    def __post_init__(self) -> None:
        # every number finite and in range (NaN would silently turn off or saturate the camera)
        self.theta = check_positive_float(self.theta, "theta")
        self.alpha = check_positive_float(self.alpha, "alpha")
        self.random_init = check_bool(self.random_init, "random_init")
        if self.photons_per_step is not None:
            self.photons_per_step = check_float(
                self.photons_per_step, "photons_per_step", 0.0, MAX_PHOTONS_PER_STEP, strict_min=True
            )
        for name in ("dark_current", "hot_pixel_current", "row_artifact_current"):
            setattr(self, name, check_nonneg_float(getattr(self, name), name))
        for name in ("hot_pixel_fraction", "row_artifact_fraction"):
            setattr(self, name, check_fraction(getattr(self, name), name))

    def to_dict(self) -> dict:
        return asdict(self)


def _extra_current(cfg: CameraConfig, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Per-pixel charge added every step: dark current, hot pixels, artefact rows."""
    *lead, h, w = shape
    extra = np.full((h, w), cfg.dark_current, dtype=np.float32)
    if cfg.hot_pixel_fraction > 0:
        extra[rng.random((h, w)) < cfg.hot_pixel_fraction] += cfg.hot_pixel_current
    if cfg.row_artifact_fraction > 0:
        extra[rng.random(h) < cfg.row_artifact_fraction, :] += cfg.row_artifact_current
    return extra


def check_seed_value(seed, name: str = "seed"):
    """A seed for ``np.random.default_rng``: ``None``, a non-negative integer or a sequence of them."""
    if seed is None:
        return None
    if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
        if not seed:
            raise ConfigError(f"{name} must not be an empty sequence")
        return [check_seed(s, name) for s in seed]
    return check_seed(seed, name)


def simulate_spikes(
    frames: np.ndarray,
    config: CameraConfig | None = None,
    seed: int | Sequence[int] | None = 0,
) -> np.ndarray:
    """Turn grayscale frames ``[T, H, W]`` (or a batch ``[N, T, H, W]``) in [0, 1] into spikes.

    Returns uint8 0/1 spikes of the same shape. Deterministic for a given seed
    (a non-negative integer, a sequence of them, or ``None`` for fresh entropy).
    The recurrence over time is inherent to integrate-and-fire; each step is one
    vectorised operation over all pixels (and clips).
    """
    cfg = config or CameraConfig()
    seed = check_seed_value(seed)
    shape = tuple(np.shape(frames))
    if len(shape) not in (3, 4):
        raise MediaError(f"frames must have shape [T, H, W] or [N, T, H, W], got {shape}")
    dtype = getattr(frames, "dtype", None)
    if dtype is not None and dtype.kind not in _NUMERIC_KINDS:
        raise MediaError(f"frames must hold real numbers, got dtype {dtype}")
    n_el = int(np.prod(shape, dtype=object))
    # float32 input copy, uint8 output, a few float32 per-step planes of N*H*W
    check_memory(
        n_el * 5 + 8 * n_el // max(shape[-3], 1) * 4,
        f"simulating spikes of shape {shape}",
        f"{shape[-3]} frames of {shape[-2]}x{shape[-1]}" + (f", {shape[0]} clips" if len(shape) == 4 else ""),
    )
    try:
        x = np.asarray(frames, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise MediaError(f"frames must hold real numbers ({exc})") from None
    if x.size == 0:
        raise MediaError(f"frames must be non-empty, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise MediaError("frames contain NaN or infinite values")
    if cfg.photons_per_step is not None and float(x.max()) * cfg.photons_per_step > MAX_PHOTONS_PER_STEP:
        raise MediaError(
            f"frames reach intensity {float(x.max()):g}; with photons_per_step {cfg.photons_per_step:g} "
            "the photon counts overflow (intensities are expected in [0, 1])"
        )
    batched = x.ndim == 4
    if not batched:
        x = x[None]
    n, t_len, h, w = x.shape
    rng = np.random.default_rng(seed)
    theta = np.float32(cfg.theta)
    if cfg.random_init:
        v = rng.uniform(0.0, cfg.theta, size=(n, h, w)).astype(np.float32)
    else:
        v = np.zeros((n, h, w), dtype=np.float32)
    extra = np.stack([_extra_current(cfg, (h, w), rng) for _ in range(n)])
    out = np.empty((n, t_len, h, w), dtype=np.uint8)
    alpha = np.float32(cfg.alpha)
    for t in range(t_len):
        inten = np.clip(x[:, t], 0.0, None)
        if cfg.photons_per_step is not None:
            lam = np.float32(cfg.photons_per_step)
            inten = rng.poisson(inten * lam).astype(np.float32) / lam
        v += alpha * inten + extra
        fired = v >= theta
        v -= theta * fired
        out[:, t] = fired
    return out if batched else out[0]


def upsample_linear(frames: np.ndarray, factor: int) -> np.ndarray:
    """Insert ``factor - 1`` linearly interpolated frames between consecutive frames.

    ``[T, H, W] -> [(T - 1) * factor + 1, H, W]``; ``factor=1`` returns the input.
    The memory the result needs is checked (:func:`~spklip_energy.limits.check_memory`)
    from the sizes before anything is allocated.
    """
    factor = check_positive_int(factor, "upsample factor")
    shape = tuple(np.shape(frames))
    if len(shape) < 1 or factor == 1 or shape[0] < 2:
        return np.asarray(frames, dtype=np.float32)
    t_len = shape[0]
    n_out = (t_len - 1) * factor + 1
    plane = int(np.prod(shape[1:], dtype=object))
    # the result, its two gathered inputs and one product (float32), and three index arrays
    check_memory(
        n_out * plane * 4 * 4 + n_out * 8 * 3,
        f"up-sampling {t_len} frames of {'x'.join(map(str, shape[1:]))} to {n_out} frames",
        f"upsample factor {factor}",
    )
    x = np.asarray(frames, dtype=np.float32)
    pos = np.arange((t_len - 1) * factor + 1, dtype=np.float64) / factor
    i0 = np.minimum(np.floor(pos).astype(np.int64), t_len - 2)
    frac = (pos - i0).astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    return (1.0 - frac) * x[i0] + frac * x[i0 + 1]


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Convert an image (H x W, H x W x 3/4, any integer or float dtype) to float32 in [0, 1]."""
    arr = np.asarray(image)
    if arr.dtype.kind not in _NUMERIC_KINDS:
        raise MediaError(f"an image must hold integers or real numbers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.integer):
        scale = float(np.iinfo(arr.dtype).max)
        arr = arr.astype(np.float32) / scale
    else:
        arr = arr.astype(np.float32)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3] @ _LUMA
    elif arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise MediaError(f"expected a grayscale or RGB image, got shape {tuple(np.shape(image))}")
    return arr


#: What numpy and zipfile raise for an array file they cannot read (a bad header, truncated data, a
#: corrupt or unsupported archive member). Anything else (a bug, MemoryError) is not caught.
_ARRAY_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    OSError,
    EOFError,
    SyntaxError,
    tokenize.TokenError,  # numpy re-parses an old-style header with tokenize
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,  # zipfile: a compression method or feature it does not support
)
try:
    import lzma

    _ARRAY_ERRORS += (lzma.LZMAError,)
except ImportError:  # a Python built without lzma: zipfile cannot open such members either
    pass


def _image_errors() -> tuple[type[BaseException], ...]:
    """What imageio and Pillow raise for an image they cannot decode: the documented errors, ``struct.error``
    on some truncated headers, the decompression-bomb guard, and what Pillow's TIFF decoder raises on
    corrupt tags (IndexError, TypeError, ZeroDivisionError, seen when fuzzing). Only the decoding call is
    guarded, so these cannot come from this project's own code."""
    from PIL import Image

    return (
        ValueError,
        OSError,
        EOFError,
        SyntaxError,
        struct.error,
        Image.DecompressionBombError,
        IndexError,
        TypeError,
        ZeroDivisionError,
    )


#: imageio-ffmpeg reports a video it cannot open as OSError and a frame it cannot read as RuntimeError.
_VIDEO_ERRORS = (ValueError, OSError, EOFError, RuntimeError)


def _gray_plane(shape: tuple[int, ...]) -> tuple[int, int]:
    """Rows and columns of the grayscale image an image array of ``shape`` gives."""
    return (shape[0], shape[1]) if len(shape) >= 2 else (0, 0)


def _check_frames_memory(src: Path, n_frames: int, frame_shape: tuple[int, ...], itemsize: int = 0) -> None:
    """Refuse loading ``n_frames`` frames (the decoded copies plus the float32 stack) over the limit."""
    h, w = _gray_plane(frame_shape)
    pixels = int(np.prod(frame_shape, dtype=object)) if frame_shape else 0
    check_memory(
        n_frames * (pixels * itemsize + h * w * 4 * 2),
        f"{src}: loading {n_frames} frames of {h}x{w}",
        f"{n_frames} frames; use fewer with max_frames (--max-frames)",
    )


def _stack(frames: list[np.ndarray], source: Path) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise MediaError(f"{source}: frames differ in size ({sorted(shapes)})")
    return np.stack(frames).astype(np.float32, copy=False)


def _array_header(fh, src: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, without reading (or unpickling) the data."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except _ARRAY_ERRORS as exc:  # numpy raises ValueError, SyntaxError, EOFError ... for a bad header
        raise MediaError(f"{src}: unreadable array file ({first_line(exc)})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype)


def _check_array(src: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject or dtype.fields:
        raise MediaError(
            f"{src}: array of dtype {dtype} does not hold intensities (expected integers, floats or booleans)"
        )
    if len(shape) not in (3, 4):
        raise MediaError(f"{src}: expected an array [T, H, W], got shape {shape}")
    if 0 in shape:
        raise MediaError(f"{src}: array of shape {shape} holds no frames")


def _load_array(src: Path, max_frames: int | None) -> np.ndarray:
    """Frames of a ``.npy`` / ``.npz`` file, sized from its header before reading the data."""
    n_use = None
    try:
        if src.suffix.lower() == ".npy":
            with open(src, "rb") as fh:
                shape, dtype = _array_header(fh, src)
            _check_array(src, shape, dtype)
            n_use = shape[0] if max_frames is None else min(shape[0], max_frames)
            _check_frames_memory(src, n_use, shape[1:], dtype.itemsize)
            # memory-mapped: only the frames used are read
            data = np.load(src, mmap_mode="r", allow_pickle=False)[:n_use]
        else:
            with zipfile.ZipFile(src) as zf:
                names = [n for n in zf.namelist() if n.endswith(".npy")]
                if not names:
                    raise MediaError(f"{src}: archive holds no array")
                if zf.getinfo(names[0]).flag_bits & 0x1:  # zipfile would raise a bare RuntimeError
                    raise MediaError(f"{src}: array {names[0]!r} in the archive is encrypted")
                with zf.open(names[0]) as fh:
                    shape, dtype = _array_header(fh, src)
                _check_array(src, shape, dtype)
                n_use = shape[0] if max_frames is None else min(shape[0], max_frames)
                # the whole member is decompressed, then cut
                _check_frames_memory(src, shape[0], shape[1:], dtype.itemsize)
                with zf.open(names[0]) as fh:
                    data = np.lib.format.read_array(fh, allow_pickle=False)[:n_use]
        arr = np.asarray(data)
        if arr.ndim == 4:
            arr = np.stack([to_grayscale(f) for f in arr])
        elif np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float32)
            arr /= np.float32(np.iinfo(data.dtype).max)
        else:
            arr = arr.astype(np.float32)
    except MediaError as exc:
        msg = str(exc)
        raise MediaError(msg if msg.startswith(str(src)) else f"{src}: {msg}") from None
    except _ARRAY_ERRORS as exc:
        raise MediaError(f"{src}: unreadable array file ({first_line(exc)})") from None
    if not np.isfinite(arr).all():
        raise MediaError(f"{src}: array holds NaN or infinite values")
    return arr


def _read_image(path: Path, iio) -> np.ndarray:
    """One image file as grayscale; :class:`MediaError` naming it when it cannot be decoded."""
    try:
        image = iio.imread(path)
    except _image_errors() as exc:
        raise MediaError(f"{path}: unreadable image ({first_line(exc)})") from None
    try:
        return to_grayscale(image)
    except MediaError as exc:
        raise MediaError(f"{path}: {exc}") from None


def load_frames(source: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Load grayscale frames ``[T, H, W]`` in [0, 1] from an array, image folder or video.

    * ``.npy`` / ``.npz``: an array ``[T, H, W]`` (or ``[T, H, W, 3]``); integer arrays are
      scaled by their dtype's maximum, float arrays are taken as already in [0, 1].
      Object (pickled), string, complex and structured arrays are refused.
    * a folder: every image in it, sorted by name.
    * a video file (mp4, avi, ...): decoded with imageio's bundled ffmpeg.

    ``max_frames`` (a positive integer) keeps the first frames only. The memory
    the frames need is checked (:func:`~spklip_energy.limits.check_memory`)
    before they are read and stacked.
    """
    import imageio.v2 as iio  # local: only this function needs it

    if max_frames is not None:
        max_frames = check_positive_int(max_frames, "max_frames")
    src = Path(source)
    if not src.exists():
        raise MediaError(f"{src}: no such file or folder")
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise MediaError(f"{src}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        if max_frames is not None:
            files = files[:max_frames]
        frames = []
        for f in files:
            gray = _read_image(f, iio)
            if not frames:  # all images share the first one's size (checked when stacking)
                _check_frames_memory(src, len(files), gray.shape)
            frames.append(gray)
        return _stack(frames, src)
    suffix = src.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _load_array(src, max_frames)
    if suffix in IMAGE_SUFFIXES:
        return _read_image(src, iio)[None]
    try:
        reader = iio.get_reader(src, format="FFMPEG")
    except _VIDEO_ERRORS as exc:
        raise MediaError(f"{src}: unreadable video ({first_line(exc)})") from None
    frames = []
    try:
        stream = iter(reader)
        while max_frames is None or len(frames) < max_frames:
            try:  # only the decoding is guarded: an error of ours is not a bad video
                frame = next(stream)
            except StopIteration:
                break
            except _VIDEO_ERRORS as exc:
                raise MediaError(f"{src}: unreadable video at frame {len(frames)} ({first_line(exc)})") from None
            try:
                gray = to_grayscale(frame)
            except MediaError as exc:
                raise MediaError(f"{src}: frame {len(frames)}: {exc}") from None
            # the length is known only while decoding
            _check_frames_memory(src, len(frames) + 1, gray.shape)
            frames.append(gray)
    finally:
        reader.close()
    if not frames:
        raise MediaError(f"{src}: video holds no frames")
    return _stack(frames, src)
