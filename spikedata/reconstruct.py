"""Image reconstructions from spike streams: TFP and TFI, as SpikeCV defines them.

Both follow ``SpikeCV/spkProc/reconstruction/{tfp,tfi}.py`` output for output
(uint8, float32 arithmetic, truncation), but are vectorised over time instead
of looping per frame.

TFP (texture from playback): the spike rate in a window of ``2r + 1`` frames,

    image_t = uint8(255 * mean(S[t - r .. t + r])),   t = r .. T - r - 1.

TFI (texture from interval): light intensity is inversely proportional to the
inter-spike interval. For frame ``t`` let ``n(t)`` be the first spike at or
after ``t`` and ``p(t)`` the last spike strictly before ``t``; then

    image_t = uint8(255 / (n(t) - p(t))),

with the interval set to 257 where either spike does not exist, and ``w``
frames cropped from each end (SpikeCV's ``max_search_half_window``).
"""

from __future__ import annotations

import numpy as np

from spklip_energy.errors import SpklipError
from spklip_energy.limits import check_memory
from spklip_energy.options import check_nonneg_int

#: Interval SpikeCV substitutes where a pixel has no spike on one side.
TFI_MISSING_INTERVAL = 257


def _as_stream(spikes: np.ndarray) -> np.ndarray:
    arr = np.asarray(spikes)
    if arr.ndim != 3:
        raise SpklipError(f"spikes must have shape [T, H, W], got {tuple(arr.shape)}")
    return arr


def tfp(spikes: np.ndarray, half_window: int = 16) -> np.ndarray:
    """TFP reconstruction of every frame with a full window: ``[T - 2r, H, W]`` uint8."""
    s = _as_stream(spikes)
    T, r = s.shape[0], check_nonneg_int(half_window, "TFP half window")
    if T - 2 * r <= 0:
        raise SpklipError(f"a stream of {T} frames is too short for TFP half window {r}")
    # int32 cumulative sums and window counts, the float32 mean and the uint8 result
    check_memory(
        13 * s.size + 4 * s[0].size,
        f"TFP of {T} frames of {'x'.join(map(str, s.shape[1:]))}",
        f"{T} frames; reconstruct a shorter range",
    )
    n = 2 * r + 1
    csum = np.zeros((T + 1,) + s.shape[1:], dtype=np.int32)
    np.cumsum(s, axis=0, dtype=np.int32, out=csum[1:])
    counts = csum[n:] - csum[:-n]
    mean = counts.astype(np.float32) / np.float32(n)
    return (mean * np.float32(255)).astype(np.uint8)


def tfi(spikes: np.ndarray, half_window: int = 20) -> np.ndarray:
    """TFI reconstruction: ``[T - 2w, H, W]`` uint8 (``w = half_window``)."""
    s = _as_stream(spikes)
    T, w = s.shape[0], check_nonneg_int(half_window, "TFI half window")
    if T - 2 * w <= 0:
        raise SpklipError(f"a stream of {T} frames is too short for TFI half window {w}")
    # boolean copy, five int32 index planes, the float32 interval and the uint8 result
    check_memory(
        26 * s.size,
        f"TFI of {T} frames of {'x'.join(map(str, s.shape[1:]))}",
        f"{T} frames; reconstruct a shorter range",
    )
    s = s.astype(bool, copy=False)
    t = np.arange(T, dtype=np.int32).reshape(-1, 1, 1)
    # last spike at or before t (-1 if none), then shifted: last spike strictly before t
    last = np.maximum.accumulate(np.where(s, t, -1), axis=0)
    prev = np.empty_like(last)
    prev[0] = -1
    prev[1:] = last[:-1]
    # first spike at or after t (T if none)
    nxt = np.minimum.accumulate(np.where(s, t, T)[::-1], axis=0)[::-1]
    interval = (nxt - prev).astype(np.float32)
    interval[(nxt == T) | (prev == -1)] = TFI_MISSING_INTERVAL
    image = (np.float32(255) / interval).astype(np.uint8)
    return image[w : T - w]


def firing_rate(spikes: np.ndarray) -> float:
    """Fraction of (pixel, frame) slots holding a spike."""
    s = _as_stream(spikes)
    return float(np.count_nonzero(s)) / max(s.size, 1)
