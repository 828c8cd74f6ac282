"""Pictures and summary figures of spike streams (PNG grids of raw spikes, TFP and TFI)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spklip_energy.atomic import atomic_path
from spklip_energy.errors import SpklipError
from spklip_energy.limits import check_count
from spklip_energy.options import check_positive_float, check_positive_int

from .reconstruct import tfi, tfp

#: Most time points one preview grid shows (a wider grid is unreadable and slow to draw).
MAX_COLUMNS = 100

__all__ = ["MAX_COLUMNS", "check_columns", "preview_rows", "save_image_grid", "save_preview", "stream_stats"]


def stream_stats(spikes: np.ndarray, fps: float | None = None) -> dict:
    """Frames, size, firing rate (spikes per pixel per frame) and mean spikes per pixel.

    ``fps`` (the read-out rate in Hz, positive and finite) adds the firing rate in Hz.
    """
    if fps is not None:
        fps = check_positive_float(fps, "fps")
    s = np.asarray(spikes)
    if s.ndim != 3:
        raise SpklipError(f"spikes must have shape [T, H, W], got {tuple(s.shape)}")
    t_len, h, w = s.shape
    total = int(np.count_nonzero(s))
    stats = {
        "frames": int(t_len),
        "height": int(h),
        "width": int(w),
        "spikes": total,
        "firing_rate": total / max(s.size, 1),
        "mean_spikes_per_pixel": total / max(h * w, 1),
    }
    if fps is not None:
        stats["firing_rate_hz"] = stats["firing_rate"] * fps
    return stats


def check_columns(columns, name: str = "columns") -> int:
    """The number of preview columns: a positive integer up to :data:`MAX_COLUMNS`."""
    columns = check_positive_int(columns, name)
    check_count(columns, MAX_COLUMNS, "the number of preview columns", f"{name} {columns}")
    return columns


def _time_points(n_frames: int, margin: int, columns: int) -> np.ndarray:
    lo, hi = margin, n_frames - margin - 1
    if hi < lo:
        raise SpklipError(f"a stream of {n_frames} frames is too short to preview with window {margin}")
    return np.unique(np.linspace(lo, hi, columns).round().astype(int))


def preview_rows(
    spikes: np.ndarray, columns: int = 8, tfp_half_window: int = 16, tfi_half_window: int = 20
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Images for the preview grid: ``[rows, columns, H, W]`` uint8, row names, frame indices.

    ``columns`` (1 to :data:`MAX_COLUMNS`) is the number of time points; a stream
    with fewer usable frames gives fewer.
    """
    columns = check_columns(columns)
    s = np.asarray(spikes)
    if s.ndim != 3:
        raise SpklipError(f"spikes must have shape [T, H, W], got {tuple(s.shape)}")
    margin = min(max(tfp_half_window, tfi_half_window), (s.shape[0] - 1) // 2)
    r_p, r_i = min(tfp_half_window, margin), min(tfi_half_window, margin)
    ts = _time_points(s.shape[0], margin, columns)
    raw = s[ts].astype(np.uint8) * 255
    # reconstruct only the frames needed: a window around each time point
    p = np.stack([tfp(s[t - r_p : t + r_p + 1], r_p)[0] for t in ts])
    i = np.stack([tfi(s[t - r_i : t + r_i + 1], r_i)[0] for t in ts])
    names = ["spikes", f"TFP (r={r_p})", f"TFI (w={r_i})"]
    return np.stack([raw, p, i]), names, ts


def save_preview(
    spikes: np.ndarray,
    out: str | os.PathLike,
    title: str | None = None,
    columns: int = 8,
) -> Path:
    """Write a PNG grid: raw spike frames, TFP and TFI reconstructions at evenly spaced times."""
    columns = check_columns(columns)
    grid, names, ts = preview_rows(spikes, columns=columns)
    return save_image_grid(grid, names, [f"t={t}" for t in ts], out, title=title)


def save_image_grid(
    images: np.ndarray,
    row_names: Sequence[str],
    column_names: Sequence[str],
    out: str | os.PathLike,
    title: str | None = None,
    stretch: bool = True,
) -> Path:
    """Save ``[rows, columns, H, W]`` grayscale images as one labelled PNG (atomic write).

    With ``stretch`` each row is displayed from 0 to its own maximum, since
    reconstructions of a camera with threshold 5 never exceed 255/5.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows, cols, h, w = images.shape
    cell = 1.35
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(cell * cols * max(w / h, 0.5) + 0.6, cell * rows + (0.5 if title else 0.2)),
        squeeze=False,
    )
    for r in range(rows):
        vmax = max(int(images[r].max()), 1) if stretch else 255
        for c in range(cols):
            ax = axes[r][c]
            ax.imshow(images[r, c], cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and c < len(column_names):
                ax.set_title(column_names[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_names[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    target = Path(out)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target
