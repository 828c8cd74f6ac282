"""The spike-camera simulator: integrate-and-fire physics, noise options, inputs."""

from __future__ import annotations

import numpy as np
import pytest

from spikedata.camera import (
    MAX_PHOTONS_PER_STEP,
    CameraConfig,
    load_frames,
    simulate_spikes,
    to_grayscale,
    upsample_linear,
)
from spklip_energy.errors import ConfigError, MediaError


def _reference_loop(frames, theta, alpha=1.0, v0=None):
    """Straight per-pixel, per-step integrate-and-fire with subtractive reset."""
    t_len, h, w = frames.shape
    out = np.zeros((t_len, h, w), dtype=np.uint8)
    for y in range(h):
        for x in range(w):
            v = np.float32(0.0 if v0 is None else v0[y, x])
            for t in range(t_len):
                v = np.float32(v + np.float32(alpha) * np.float32(frames[t, y, x]))
                if v >= np.float32(theta):
                    out[t, y, x] = 1
                    v = np.float32(v - np.float32(theta))
    return out


def test_constant_intensity_fires_every_theta_over_intensity_steps():
    frames = np.full((100, 2, 3), 0.5, dtype=np.float32)
    spikes = simulate_spikes(frames, CameraConfig(theta=5.0))
    # charge 0.5 per step reaches 5.0 at step 10, 20, ... (index 9, 19, ...)
    expected = np.zeros(100, dtype=np.uint8)
    expected[9::10] = 1
    for y in range(2):
        for x in range(3):
            assert np.array_equal(spikes[:, y, x], expected), f"pixel {(y, x)}: found {np.flatnonzero(spikes[:, y, x])}"


def test_matches_per_pixel_reference_loop():
    rng = np.random.default_rng(3)
    frames = rng.random((60, 5, 4)).astype(np.float32)
    for theta, alpha in [(5.0, 1.0), (2.0, 1.7), (1.0, 0.4)]:
        got = simulate_spikes(frames, CameraConfig(theta=theta, alpha=alpha))
        ref = _reference_loop(frames, theta, alpha)
        assert np.array_equal(got, ref), f"theta={theta} alpha={alpha}: {np.sum(got != ref)} mismatches"


def test_spike_count_equals_floor_of_total_charge_over_theta():
    rng = np.random.default_rng(4)
    frames = rng.random((250, 8, 8)).astype(np.float32)
    spikes = simulate_spikes(frames, CameraConfig(theta=5.0))
    expected = np.floor(frames.astype(np.float64).sum(0) / 5.0)
    assert np.abs(spikes.sum(0) - expected).max() <= 1  # float32 rounding at exact multiples
    assert spikes.max() == 1 and spikes.dtype == np.uint8


def test_random_initial_charge_is_seeded_and_shifts_phase():
    frames = np.full((40, 16, 16), 0.25, dtype=np.float32)
    cfg = CameraConfig(theta=5.0, random_init=True)
    a = simulate_spikes(frames, cfg, seed=1)
    b = simulate_spikes(frames, cfg, seed=1)
    c = simulate_spikes(frames, cfg, seed=2)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    first = np.argmax(a, axis=0)  # first spike time differs between pixels
    assert len(np.unique(first)) > 5


def test_dark_current_hot_pixels_and_row_artifacts_add_spikes():
    frames = np.zeros((200, 32, 32), dtype=np.float32)
    assert simulate_spikes(frames, CameraConfig()).sum() == 0
    dark = simulate_spikes(frames, CameraConfig(dark_current=0.05))
    assert dark.sum(0).min() == 200 * 0.05 // 5.0  # every pixel fires 2 times
    hot = simulate_spikes(frames, CameraConfig(hot_pixel_fraction=0.05, hot_pixel_current=2.5), seed=0)
    per_pixel = hot.sum(0)
    n_hot = int((per_pixel > 0).sum())
    assert 10 < n_hot < 120, f"expected about 5% of 1024 hot pixels, found {n_hot}"
    assert per_pixel.max() == 100  # 2.5 per step at theta 5: every second step
    rows = simulate_spikes(frames, CameraConfig(row_artifact_fraction=0.2, row_artifact_current=0.5), seed=0)
    row_counts = rows.sum((0, 2))
    lit = row_counts > 0
    assert 1 <= lit.sum() < 32
    assert np.all(row_counts[lit] == 32 * 20), "an artefact row fires on every pixel alike"


def test_photon_noise_keeps_mean_rate_and_adds_variance():
    frames = np.full((500, 16, 16), 0.5, dtype=np.float32)
    clean = simulate_spikes(frames, CameraConfig())
    noisy = simulate_spikes(frames, CameraConfig(photons_per_step=10.0), seed=0)
    assert clean.sum(0).std() == 0
    assert noisy.sum(0).std() > 0
    assert abs(noisy.mean() - clean.mean()) < 0.01


def test_batched_input_matches_single_clips():
    rng = np.random.default_rng(0)
    frames = rng.random((3, 30, 6, 6)).astype(np.float32)
    batch = simulate_spikes(frames, CameraConfig())
    for i in range(3):
        assert np.array_equal(batch[i], simulate_spikes(frames[i], CameraConfig()))


@pytest.mark.parametrize("kwargs", [{"theta": 0}, {"alpha": -1}, {"photons_per_step": 0}, {"hot_pixel_fraction": 2}])
def test_invalid_camera_settings_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        CameraConfig(**kwargs)


def test_bad_frames_raise_media_error():
    with pytest.raises(MediaError):
        simulate_spikes(np.zeros((4, 4)))
    with pytest.raises(MediaError):
        simulate_spikes(np.full((2, 2, 2), np.nan))


def test_upsample_linear_interpolates_between_frames():
    frames = np.stack([np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2))]).astype(np.float32)
    up = upsample_linear(frames, 4)
    assert up.shape == (9, 2, 2)
    assert np.allclose(up[:, 0, 0], [0, 0.25, 0.5, 0.75, 1, 0.75, 0.5, 0.25, 0])
    assert np.array_equal(upsample_linear(frames, 1), frames)
    with pytest.raises(ConfigError):
        upsample_linear(frames, 0)


def test_to_grayscale_uses_luma_and_dtype_range():
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[..., 1] = 255
    assert np.allclose(to_grayscale(rgb), 0.587, atol=1e-6)
    assert np.allclose(to_grayscale(np.full((2, 2), 65535, dtype=np.uint16)), 1.0)


def test_load_frames_from_array_images_and_video(tmp_path):
    import imageio.v2 as iio

    arr = (np.arange(5 * 8 * 8).reshape(5, 8, 8) % 256).astype(np.uint8)
    np.save(tmp_path / "a.npy", arr)
    got = load_frames(tmp_path / "a.npy")
    assert got.shape == (5, 8, 8) and np.allclose(got, arr / 255.0)

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        iio.imwrite(folder / f"f{i:02d}.png", np.full((8, 10), i * 60, dtype=np.uint8))
    got = load_frames(folder)
    assert got.shape == (4, 8, 10)
    assert np.allclose(got[:, 0, 0], np.array([0, 60, 120, 180]) / 255.0)

    video = tmp_path / "v.mp4"
    with iio.get_writer(video, format="FFMPEG", fps=10, macro_block_size=1) as w:
        for i in range(6):
            w.append_data(np.full((32, 32, 3), 40 * i, dtype=np.uint8))
    got = load_frames(video)
    assert got.shape == (6, 32, 32)
    # each frame is one grey level (40 i / 255); the codec may move it by a level or two, never its order
    levels = got.mean(axis=(1, 2)) * 255
    assert np.abs(levels - 40 * np.arange(6)).max() <= 3, levels
    assert np.ptp(got, axis=(1, 2)).max() <= 3 / 255
    assert np.all(np.diff(got.mean((1, 2))) > 0.05), "video brightness should increase frame by frame"


def test_load_frames_errors_name_the_file(tmp_path):
    with pytest.raises(MediaError, match="missing.mp4"):
        load_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00not a video" * 10)
    with pytest.raises(MediaError, match="bad.mp4"):
        load_frames(bad)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MediaError, match="empty"):
        load_frames(empty)
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(MediaError, match="flat.npy"):
        load_frames(tmp_path / "flat.npy")


# --------------------------------------------------------------------------- what counts as a bad file


def test_random_init_takes_real_booleans_only():
    assert CameraConfig(random_init=np.bool_(True)).random_init is True
    for value in (1, "yes", None):
        with pytest.raises(ConfigError, match="random_init must be true or false"):
            CameraConfig(random_init=value)


def test_photon_ceiling_is_one_constant():
    """The largest mean photon count per pixel and step bounds both photons_per_step and, for frames
    brighter than 1, the brightest frame times photons_per_step."""
    CameraConfig(photons_per_step=MAX_PHOTONS_PER_STEP)
    with pytest.raises(ConfigError, match="photons_per_step"):
        CameraConfig(photons_per_step=MAX_PHOTONS_PER_STEP * 2)
    cfg = CameraConfig(photons_per_step=MAX_PHOTONS_PER_STEP / 4)
    assert simulate_spikes(np.full((2, 2, 2), 4.0, dtype=np.float32), cfg).shape == (2, 2, 2)
    with pytest.raises(MediaError, match="intensity 5"):
        simulate_spikes(np.full((2, 2, 2), 5.0, dtype=np.float32), cfg)


def _corrupt_png(path):
    import imageio.v2 as iio

    iio.imwrite(path, np.full((8, 8), 100, dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:40])
    return path


def _npz_member_encrypted(path):
    import zipfile

    np.savez(path, a=np.zeros((2, 3, 3), dtype=np.float32))
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the member's general-purpose flags, in the central directory
    data[central + 8] |= 1
    path.write_bytes(bytes(data))
    assert zipfile.ZipFile(path).getinfo("a.npy").flag_bits & 1
    return path


@pytest.mark.parametrize(
    "name,make",
    [
        ("trunc.png", _corrupt_png),
        ("noise.npy", lambda p: p.write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4\n" + b" " * 8)),
        ("short.npy", lambda p: p.write_bytes(b"\x93NUMPY")),
        ("bad.npz", lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 30)),
        ("locked.npz", _npz_member_encrypted),
    ],
)
def test_corrupt_inputs_are_media_errors(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    with pytest.raises(MediaError, match=name.replace(".", r"\.")) as info:
        load_frames(path)
    assert "\n" not in str(info.value), f"expected one line, found {str(info.value)!r}"


def test_bugs_and_memory_errors_are_not_called_unreadable_files(tmp_path, monkeypatch):
    """Only the errors numpy, zipfile, imageio and Pillow raise for a bad file become MediaError: a
    programming error or MemoryError propagates as itself."""
    import imageio.v2 as iio

    from spikedata import camera

    np.save(tmp_path / "a.npy", np.zeros((2, 3, 3), dtype=np.float32))
    iio.imwrite(tmp_path / "a.png", np.zeros((3, 3), dtype=np.uint8))

    def no_memory(*a, **k):
        raise MemoryError

    def bug(*a, **k):
        raise TypeError("a bug")

    monkeypatch.setattr(np, "load", no_memory)
    with pytest.raises(MemoryError):
        load_frames(tmp_path / "a.npy")
    monkeypatch.setattr(iio, "imread", no_memory)
    with pytest.raises(MemoryError):
        load_frames(tmp_path / "a.png")
    with pytest.raises(MemoryError):
        load_frames(tmp_path)  # a folder of images
    monkeypatch.undo()
    monkeypatch.setattr(camera, "to_grayscale", bug)
    with pytest.raises(TypeError, match="a bug"):
        load_frames(tmp_path / "a.png")
    monkeypatch.setattr(np.lib.format, "read_magic", bug)
    with pytest.raises(TypeError, match="a bug"):
        load_frames(tmp_path / "a.npy")
