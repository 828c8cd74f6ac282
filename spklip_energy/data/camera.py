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
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, MediaError

#: Luma weights (ITU-R BT.601) used to turn RGB into grayscale.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v")


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
        if not self.theta > 0:
            raise ConfigError(f"theta must be positive, got {self.theta}")
        if not self.alpha > 0:
            raise ConfigError(f"alpha must be positive, got {self.alpha}")
        if self.photons_per_step is not None and not self.photons_per_step > 0:
            raise ConfigError(f"photons_per_step must be positive, got {self.photons_per_step}")
        for name in ("dark_current", "hot_pixel_current", "row_artifact_current"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("hot_pixel_fraction", "row_artifact_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")

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


def simulate_spikes(
    frames: np.ndarray,
    config: CameraConfig | None = None,
    seed: int | None = 0,
) -> np.ndarray:
    """Turn grayscale frames ``[T, H, W]`` (or a batch ``[N, T, H, W]``) in [0, 1] into spikes.

    Returns uint8 0/1 spikes of the same shape. Deterministic for a given seed.
    The recurrence over time is inherent to integrate-and-fire; each step is one
    vectorised operation over all pixels (and clips).
    """
    cfg = config or CameraConfig()
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise MediaError(f"frames must have shape [T, H, W] or [N, T, H, W], got {tuple(x.shape)}")
    if x.size == 0:
        raise MediaError(f"frames must be non-empty, got shape {tuple(x.shape)}")
    if not np.isfinite(x).all():
        raise MediaError("frames contain NaN or infinite values")
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
    """
    x = np.asarray(frames, dtype=np.float32)
    if factor < 1:
        raise ConfigError(f"upsample factor must be >= 1, got {factor}")
    if factor == 1 or x.shape[0] < 2:
        return x
    t_len = x.shape[0]
    pos = np.arange((t_len - 1) * factor + 1, dtype=np.float64) / factor
    i0 = np.minimum(np.floor(pos).astype(np.int64), t_len - 2)
    frac = (pos - i0).astype(np.float32).reshape(-1, *([1] * (x.ndim - 1)))
    return (1.0 - frac) * x[i0] + frac * x[i0 + 1]


def to_grayscale(image: np.ndarray) -> np.ndarray:
    """Convert an image (H x W, H x W x 3/4, any integer or float dtype) to float32 in [0, 1]."""
    arr = np.asarray(image)
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


def _stack(frames: list[np.ndarray], source: Path) -> np.ndarray:
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise MediaError(f"{source}: frames differ in size ({sorted(shapes)})")
    return np.stack(frames).astype(np.float32)


def load_frames(source: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """Load grayscale frames ``[T, H, W]`` in [0, 1] from an array, image folder or video.

    * ``.npy`` / ``.npz``: an array ``[T, H, W]`` (or ``[T, H, W, 3]``); integer arrays are
      scaled by their dtype's maximum, float arrays are taken as already in [0, 1].
    * a folder: every image in it, sorted by name.
    * a video file (mp4, avi, ...): decoded with imageio's bundled ffmpeg.
    """
    import imageio.v2 as iio  # local: only this function needs it

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
            try:
                frames.append(to_grayscale(iio.imread(f)))
            except MediaError:
                raise
            except Exception as exc:  # imageio raises many types for a bad image
                raise MediaError(f"{f}: unreadable image ({type(exc).__name__})") from None
        return _stack(frames, src)
    suffix = src.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(src, allow_pickle=False)
            if isinstance(data, np.lib.npyio.NpzFile):
                if not data.files:
                    raise MediaError(f"{src}: archive holds no array")
                data = data[data.files[0]]
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"{src}: unreadable array file ({exc})") from None
        arr = np.asarray(data)
        if arr.ndim == 4:
            arr = np.stack([to_grayscale(f) for f in arr])
        elif arr.ndim == 3 and np.issubdtype(arr.dtype, np.integer):
            arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
        if arr.ndim != 3:
            raise MediaError(f"{src}: expected an array [T, H, W], got shape {tuple(arr.shape)}")
        return arr[:max_frames].astype(np.float32)
    if suffix in IMAGE_SUFFIXES:
        try:
            return to_grayscale(iio.imread(src))[None]
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"{src}: unreadable image ({type(exc).__name__})") from None
    try:
        reader = iio.get_reader(src, format="FFMPEG")
    except Exception as exc:
        raise MediaError(f"{src}: unreadable video ({type(exc).__name__})") from None
    frames = []
    try:
        for i, frame in enumerate(reader):
            if max_frames is not None and i >= max_frames:
                break
            frames.append(to_grayscale(frame))
    except Exception as exc:
        raise MediaError(f"{src}: unreadable video ({type(exc).__name__})") from None
    finally:
        reader.close()
    if not frames:
        raise MediaError(f"{src}: video holds no frames")
    return _stack(frames, src)
