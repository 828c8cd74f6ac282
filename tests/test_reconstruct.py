"""TFP/TFI reconstructions against per-frame loop references of SpikeCV's algorithms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import check_equal

from spikedata.reconstruct import firing_rate, tfi, tfp
from spklip_energy.errors import SpklipError

# --------------------------------------------------------------------------- references


def spikecv_tfp(spikes: np.ndarray, half_win_length: int) -> np.ndarray:
    """SpikeCV ``TFP.spikes2images``: per-frame torch float32 window mean times 255, to uint8."""
    T, H, W = spikes.shape
    r = half_win_length
    s = torch.from_numpy(np.ascontiguousarray(spikes)).float()
    images = torch.zeros([T - 2 * r, H, W])
    for ts in range(r, T - r):
        images[ts - r] = s[ts - r : ts + r + 1].mean(dim=0) * 255
    return images.numpy().astype(np.uint8)


def spikecv_tfi(spikes: np.ndarray, max_search_half_window: int) -> np.ndarray:
    """SpikeCV ``TFI.spikes2images``: per-frame loops over spike indices, float32."""
    T, H, W = spikes.shape
    w = max_search_half_window
    s = torch.from_numpy(np.ascontiguousarray(spikes)).float()
    pre_idx = -1 * torch.ones([T, H, W])
    cur_idx = -1 * torch.ones([T, H, W])
    for t in range(T):
        if t > 0:
            pre_idx[t] = cur_idx[t - 1]
            cur_idx[t] = cur_idx[t - 1]
        cur_idx[t][s[t] == 1] = t
    diff = cur_idx - pre_idx
    interval = -1 * torch.ones([T, H, W])
    for t in range(T - 1, -1, -1):
        fired = diff[t] != 0
        interval[t][fired] = diff[t][fired]
        if t < T - 1:
            interval[t][~fired] = interval[t + 1][~fired]
    interval[interval == -1] = 257
    interval[pre_idx == -1] = 257
    images = 255 / interval
    return images[w : T - w].numpy().astype(np.uint8)


def random_stream(seed: int, frames: int, height: int, width: int, rate: float) -> np.ndarray:
    """A random 0/1 uint8 stream; ``rate`` is the firing probability (per pixel row, varied)."""
    rng = np.random.default_rng(seed)
    p = np.clip(rate * rng.uniform(0.0, 2.0, size=(1, height, 1)), 0.0, 1.0)
    return (rng.random((frames, height, width)) < p).astype(np.uint8)


# --------------------------------------------------------------------------- bit-exact parity

RATES = [0.0, 0.02, 0.1, 0.3, 0.5, 0.9, 1.0]


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("half_window", [0, 1, 2, 5, 16, 32])
def test_tfp_matches_spikecv(rate, half_window):
    spikes = random_stream(int(rate * 100) + half_window, 2 * half_window + 23, 9, 11, rate)
    check_equal(spikecv_tfp(spikes, half_window), tfp(spikes, half_window), f"TFP r={half_window}", dtype=True)


@pytest.mark.parametrize("window", [*range(1, 65), 100, 127, 200])
def test_tfp_every_window_length(window):
    """Every spike count k of every window n = 2r + 1 up to 129 gives SpikeCV's byte."""
    r = window
    n = 2 * r + 1
    # pixel k holds k spikes in its first window; later windows slide over other counts
    spikes = np.zeros((n + 8, 1, n + 1), dtype=np.uint8)
    for k in range(n + 1):
        spikes[:k, 0, k] = 1
    check_equal(spikecv_tfp(spikes, r), tfp(spikes, r), f"TFP r={r} all counts", dtype=True)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("half_window", [1, 2, 5, 20])
def test_tfi_matches_spikecv(rate, half_window):
    spikes = random_stream(int(rate * 1000) + half_window, 2 * half_window + 31, 8, 10, rate)
    check_equal(spikecv_tfi(spikes, half_window), tfi(spikes, half_window), f"TFI w={half_window}", dtype=True)


def test_tfi_long_sparse_stream():
    """Intervals beyond 255 (and missing spikes on either side) at a very low rate."""
    spikes = random_stream(5, 700, 4, 6, 0.004)
    check_equal(spikecv_tfi(spikes, 20), tfi(spikes, 20), "TFI sparse, 700 frames", dtype=True)


@pytest.mark.parametrize("dtype", [np.bool_, np.int64, np.float32])
def test_input_dtypes(dtype):
    spikes = random_stream(9, 60, 5, 5, 0.2)
    check_equal(spikecv_tfp(spikes, 4), tfp(spikes.astype(dtype), 4), f"TFP {np.dtype(dtype)}", dtype=True)
    check_equal(spikecv_tfi(spikes, 4), tfi(spikes.astype(dtype), 4), f"TFI {np.dtype(dtype)}", dtype=True)


def test_defaults_match_spikecv():
    spikes = random_stream(11, 80, 6, 7, 0.15)
    check_equal(spikecv_tfp(spikes, 16), tfp(spikes), "TFP default r=16", dtype=True)
    check_equal(spikecv_tfi(spikes, 20), tfi(spikes), "TFI default w=20", dtype=True)


# --------------------------------------------------------------------------- analytic values


def test_constant_rate_pixel():
    """A pixel firing every 5 frames: TFP r=2 sees 1 spike in 5, TFI an interval of 5."""
    spikes = np.zeros((100, 2, 3), dtype=np.uint8)
    spikes[::5, 0, 0] = 1
    spikes[:, 1, 2] = 1  # always firing
    p = tfp(spikes, 2)
    assert p.shape == (96, 2, 3), f"expected TFP shape (96, 2, 3), found {p.shape}"
    assert np.all(p[:, 0, 0] == 51), f"expected TFP 51, found {np.unique(p[:, 0, 0])}"
    assert np.all(p[:, 1, 2] == 255), f"expected TFP 255, found {np.unique(p[:, 1, 2])}"
    assert np.all(p[:, 1, 0] == 0), f"expected TFP 0, found {np.unique(p[:, 1, 0])}"
    i = tfi(spikes, 20)
    assert i.shape == (60, 2, 3), f"expected TFI shape (60, 2, 3), found {i.shape}"
    assert np.all(i[:, 0, 0] == 51), f"expected TFI 51, found {np.unique(i[:, 0, 0])}"
    assert np.all(i[:, 1, 2] == 255), f"expected TFI 255, found {np.unique(i[:, 1, 2])}"
    assert np.all(i[:, 1, 0] == 0), f"expected TFI 0, found {np.unique(i[:, 1, 0])}"


def test_tfi_missing_side_is_zero():
    """Before a pixel's first spike and after its last, the interval is 257: value 0."""
    spikes = np.zeros((30, 1, 1), dtype=np.uint8)
    spikes[[10, 14], 0, 0] = 1
    found = tfi(spikes, 0)[:, 0, 0]
    expected = np.zeros(30, dtype=np.uint8)
    expected[11:15] = 255 // 4  # between the two spikes (and at the second)
    check_equal(expected, found, "TFI two spikes", dtype=True)


def test_firing_rate():
    spikes = np.zeros((4, 5, 5), dtype=np.uint8)
    spikes[0] = 1
    assert firing_rate(spikes) == 0.25, f"expected 0.25, found {firing_rate(spikes)}"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("frames,half_window", [(32, 16), (10, 16), (0, 0), (4, 2), (1, 1)])
def test_tfp_too_short(frames, half_window):
    with pytest.raises(SpklipError, match="too short"):
        tfp(np.zeros((frames, 3, 3), dtype=np.uint8), half_window)


@pytest.mark.parametrize("frames,half_window", [(40, 20), (10, 20), (0, 0), (2, 1)])
def test_tfi_too_short(frames, half_window):
    with pytest.raises(SpklipError, match="too short"):
        tfi(np.zeros((frames, 3, 3), dtype=np.uint8), half_window)


@pytest.mark.parametrize("fn", [tfp, tfi])
def test_bad_input(fn):
    with pytest.raises(SpklipError):
        fn(np.zeros((50, 3), dtype=np.uint8), 2)
    with pytest.raises(SpklipError):
        fn(np.zeros((50, 3, 3), dtype=np.uint8), -1)
