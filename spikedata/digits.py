"""The built-in spike-video-text dataset: moving handwritten digits seen by a spike camera.

Each clip moves one up-scaled handwritten digit (scikit-learn's bundled copy of
the UCI optical-digits set: 1 797 real 8x8 handwriting samples, nothing is
downloaded) over a static textured background, then runs the spike-camera
simulator (:mod:`spikedata.camera`). The label is the motion class;
the caption is a sentence built from digit, motion, speed and position, so that
instance-level text-to-video retrieval has something to find.

Train, val and test clips use disjoint handwriting samples. Everything is
deterministic for a given seed.

Presets (``data make-digits --preset``; ``--data builtin`` / ``builtin-bench``):

* ``quick`` (the default, ``builtin``) - 8 motion classes, 32 clips per class split
  70/15/15 (40 test clips): small enough for quick runs and tests, too small and too
  easy to tell models apart.
* ``bench`` (``builtin-bench``) - for comparisons: 16 classes, motion x speed (a slow
  and a quick clip of the same motion differ only in how far the digit moves, so the
  class needs the stream's timing), a dimmer and smaller distractor digit drifting in
  a random direction, lower contrast, and 30 / 6 / 50 clips per class for
  train / val / test (800 test clips: a 95 % interval of at most +-3.5 points).
  The design was fixed before any model ran on it (docs/benchmark.md).

Variants:

* ``sim`` - the simulator as SpikeCV runs it (random initial charge, no other noise).
* ``sensor`` - a domain shift towards real sps10 data (paper appendix A.2): lower
  activity (conversion rate 0.35), photon noise, hot pixels and horizontal line
  artefacts, for few-shot sim-to-real experiments.

On disk: ``OUT/<class>/<clip>.dat`` plus ``OUT/manifest.jsonl`` (one record per
clip: path, label, label_index, caption, frames, height, width, split, digit,
...) and ``OUT/dataset.json`` (classes, class prompts, camera settings, seed).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spklip_energy.atomic import atomic_dir, check_output_dir
from spklip_energy.errors import ConfigError, ResourceError, short_repr
from spklip_energy.limits import check_count, check_memory, fmt_bytes
from spklip_energy.options import check_fraction, check_int, check_positive_int, check_seed

from .camera import CameraConfig, simulate_spikes
from .dat import encode_dat

DATASET_NAME = "spike-digits"
FORMAT_VERSION = 1

MOTIONS = ("left", "right", "up", "down", "rotate_cw", "rotate_ccw", "zoom_in", "zoom_out")

#: The text prompt of each motion class, for zero-shot classification by text matching.
CLASS_PROMPTS = {
    "left": "a handwritten digit moving to the left",
    "right": "a handwritten digit moving to the right",
    "up": "a handwritten digit moving up",
    "down": "a handwritten digit moving down",
    "rotate_cw": "a handwritten digit rotating clockwise",
    "rotate_ccw": "a handwritten digit rotating counterclockwise",
    "zoom_in": "a handwritten digit growing larger",
    "zoom_out": "a handwritten digit shrinking",
}

#: How the classes and caption words change when a clip is mirrored (see
#: :mod:`spklip.augment`); written into ``dataset.json``.
SYMMETRIES = {
    "hflip": {
        "classes": {"left": "right", "rotate_cw": "rotate_ccw"},
        "words": {"left": "right", "right": "left", "clockwise": "counterclockwise", "counterclockwise": "clockwise"},
    },
    "vflip": {
        "classes": {"up": "down", "rotate_cw": "rotate_ccw"},
        "words": {
            "up": "down",
            "down": "up",
            "top": "bottom",
            "bottom": "top",
            "rises": "falls",
            "falls": "rises",
            "floats": "sinks",
            "sinks": "floats",
            "upwards": "downwards",
            "clockwise": "counterclockwise",
            "counterclockwise": "clockwise",
        },
    },
}

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

#: Verb phrases per motion; one is picked per clip so captions vary in wording.
_VERBS = {
    "left": ("drifts {s} to the left", "slides {s} to the left", "moves {s} to the left"),
    "right": ("drifts {s} to the right", "slides {s} to the right", "moves {s} to the right"),
    "up": ("rises {s}", "floats {s} upwards", "moves {s} up"),
    "down": ("falls {s}", "sinks {s}", "moves {s} down"),
    "rotate_cw": ("spins {s} clockwise", "turns {s} clockwise", "rotates {s} clockwise"),
    "rotate_ccw": (
        "spins {s} counterclockwise",
        "turns {s} counterclockwise",
        "rotates {s} counterclockwise",
    ),
    "zoom_in": ("grows {s}", "zooms in {s}", "swells {s}"),
    "zoom_out": ("shrinks {s}", "zooms out {s}", "recedes {s}"),
}

#: speed word -> fraction of the full motion range covered over the clip
SPEEDS = {"slowly": 0.5, "quickly": 1.0}

# Positions: name -> (x, y) of the digit centre, in units of half the frame height
# (y grows downwards). Which positions a motion may use keeps the digit in frame.
_ROW_POSITIONS = {"near the top": (0.0, -0.42), "in the middle": (0.0, 0.0), "near the bottom": (0.0, 0.42)}
_COL_POSITIONS = {"on the left": (-0.42, 0.0), "in the centre": (0.0, 0.0), "on the right": (0.42, 0.0)}
_SPOT_POSITIONS = {
    "in the centre": (0.0, 0.0),
    "near the top": (0.0, -0.35),
    "near the bottom": (0.0, 0.35),
    "on the left": (-0.35, 0.0),
    "on the right": (0.35, 0.0),
}
_POSITIONS = {
    "left": _ROW_POSITIONS,
    "right": _ROW_POSITIONS,
    "up": _COL_POSITIONS,
    "down": _COL_POSITIONS,
    "rotate_cw": _SPOT_POSITIONS,
    "rotate_ccw": _SPOT_POSITIONS,
    "zoom_in": _SPOT_POSITIONS,
    "zoom_out": _SPOT_POSITIONS,
}

#: Classes of the ``motion-speed`` task: every motion at every speed, named ``<motion>_<speed>``.
MOTION_SPEED_CLASSES = tuple(f"{m}_{s}" for m in MOTIONS for s in SPEEDS)
TASKS = ("motion", "motion-speed")

_MOTION_PHRASES = {
    "left": "moving {s}to the left",
    "right": "moving {s}to the right",
    "up": "moving {s}up",
    "down": "moving {s}down",
    "rotate_cw": "rotating {s}clockwise",
    "rotate_ccw": "rotating {s}counterclockwise",
    "zoom_in": "growing {s}larger",
    "zoom_out": "shrinking {s}",
}


def task_classes(task: str) -> tuple[str, ...]:
    """The class names of a task."""
    return MOTIONS if task == "motion" else MOTION_SPEED_CLASSES


def class_prompts(task: str) -> dict[str, str]:
    """The text prompt of every class of a task."""
    if task == "motion":
        return dict(CLASS_PROMPTS)
    return {
        f"{m}_{s}": "a handwritten digit " + _MOTION_PHRASES[m].format(s=s + " ").strip()
        for m in MOTIONS
        for s in SPEEDS
    }


def clip_class(task: str, motion: str, speed: str) -> str:
    """The class of a clip with this motion and speed."""
    return motion if task == "motion" else f"{motion}_{speed}"


def task_symmetries(task: str) -> dict:
    """:data:`SYMMETRIES` with the class maps written for the task's classes."""
    if task == "motion":
        return SYMMETRIES
    return {
        name: {
            "classes": {f"{a}_{s}": f"{b}_{s}" for a, b in sym["classes"].items() for s in SPEEDS},
            "words": sym["words"],
        }
        for name, sym in SYMMETRIES.items()
    }


_DIGIT_HALF_SIZE = 0.42  # digit half-size, in half frame heights
_DISTRACTOR_SCALE = 0.6  # a distractor's size, relative to the labelled digit
_DISTRACTOR_CONTRAST = 0.5  # a distractor's ink contrast over the background, relative to the labelled digit's
_MAX_TRAVEL = 1.0  # full translation range, in half frame heights
_MAX_TURN = 1.5 * math.pi  # full rotation range, radians
_ZOOM_RANGE = (0.55, 1.35)  # full zoom range (scale factors)
SPLITS = ("train", "val", "test")
_SPLIT_FRACTIONS = (0.7, 0.15, 0.15)

#: Ceilings on the work one generation may take (12-13 million pixel-frames a second on one core,
#: measured): clips per class, and clips x frames x height x width over the whole dataset (10^10: about
#: 13 minutes; the default dataset is 2.6e8). Documented in docs/data.md.
MAX_CLIPS_PER_CLASS = 100_000
MAX_DISTRACTORS = 8
MAX_PIXEL_FRAMES = 10**10
#: Memory of rendering one clip, per pixel-frame: the sampling grid (2 float32), grid_sample's output
#: and three float32 images of the compositing; and of a batch, per pixel-frame: the stacked float32
#: frames and the uint8 spikes.
_RENDER_BYTES = 24
_BATCH_BYTES = 5
_DISTRACTOR_BYTES = 12  # a distractor's grid, coverage and the composited frames
_RECORD_BYTES = 2048  # a clip's plan and manifest record, in memory
_MANIFEST_BYTES = 400  # a clip's manifest line on disk


@dataclass
class DigitsConfig:
    """How the built-in dataset is generated."""

    clips_per_class: int = 32  # clips of each motion class, all splits together
    height: int = 64  # frame rows
    width: int = 64  # frame columns
    frames: int = 250  # spike frames per clip (the paper's 250, so its 5-block layout applies)
    seed: int = 0  # seed of everything random
    variant: str = "sim"  # "sim" or "sensor" (domain-shifted, see module doc)
    task: str = "motion"  # "motion" (8 classes) or "motion-speed" (16: every motion at both speeds)
    distractors: int = 0  # dimmer, smaller digits drifting in random directions over each clip
    ink_min: float = 0.75  # the labelled digit's ink level is drawn from [ink_min, ink_max]
    ink_max: float = 1.0
    #: clips per class in train, val and test; None: clips_per_class split 70 / 15 / 15
    split_clips: tuple[int, int, int] | None = None
    preset: str = "custom"  # the preset this config came from (recorded in dataset.json)

    def __post_init__(self) -> None:
        if self.variant not in ("sim", "sensor"):
            raise ConfigError(f"unknown dataset variant {self.variant!r}; choose 'sim' or 'sensor'")
        if self.task not in TASKS:
            raise ConfigError(f"unknown dataset task {short_repr(self.task)}; choose one of {', '.join(TASKS)}")
        self.distractors = check_int(self.distractors, "distractors", 0)
        if self.distractors > MAX_DISTRACTORS:
            raise ConfigError(f"distractors {self.distractors}: at most {MAX_DISTRACTORS} distractors per clip")
        self.ink_min = check_fraction(self.ink_min, "ink_min")
        self.ink_max = check_fraction(self.ink_max, "ink_max")
        if self.ink_min > self.ink_max:
            raise ConfigError(f"ink_min {self.ink_min} is above ink_max {self.ink_max}")
        if self.split_clips is not None:
            parts = tuple(self.split_clips) if isinstance(self.split_clips, (list, tuple)) else ()
            if len(parts) != 3:
                raise ConfigError(
                    f"split_clips must be three counts (train, val, test), got {short_repr(self.split_clips)}"
                )
            self.split_clips = tuple(check_int(n, f"split_clips[{i}]", 1) for i, n in enumerate(parts))
            self.clips_per_class = sum(self.split_clips)
        self.clips_per_class = check_int(self.clips_per_class, "clips_per_class", 3)  # a clip per split
        check_count(
            self.clips_per_class, MAX_CLIPS_PER_CLASS, "clips per class", f"clips_per_class {self.clips_per_class}"
        )
        self.height, self.width = check_int(self.height, "height", 16), check_int(self.width, "width", 16)
        self.frames = check_int(self.frames, "frames", 2)
        self.seed = check_seed(self.seed, "seed")
        check_count(
            self.pixel_frames,
            MAX_PIXEL_FRAMES,
            "the dataset's size in pixel-frames (clips x frames x height x width)",
            self._sizes(),
            "generate fewer or smaller clips",
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return task_classes(self.task)

    @property
    def clips(self) -> int:
        return len(self.classes) * self.clips_per_class

    def split_counts(self) -> dict[str, int]:
        """Clips per class in each split."""
        if self.split_clips is not None:
            return dict(zip(SPLITS, self.split_clips, strict=True))
        return _split_counts(self.clips_per_class)

    def builtin_name(self) -> str:
        """The folder name of this dataset in the built-in cache."""
        tag = "" if self.preset in ("quick", "custom") else f"{self.preset}-"
        return (
            f"digits-v{FORMAT_VERSION}-{tag}{self.variant}-seed{self.seed}-"
            f"{self.clips_per_class}x{self.frames}x{self.height}x{self.width}"
        )

    @property
    def pixel_frames(self) -> int:
        return self.clips * self.frames * self.height * self.width

    def _sizes(self) -> str:
        return f"clips_per_class {self.clips_per_class}, frames {self.frames}, height {self.height}, width {self.width}"

    def check_resources(self, batch_clips: int = 16) -> None:
        """Refuse a dataset whose generation would need more memory than the limit allows."""
        per_clip = self.frames * self.height * self.width
        batch = min(batch_clips, self.clips)
        render = _RENDER_BYTES + _DISTRACTOR_BYTES * self.distractors
        check_memory(
            per_clip * (render + _BATCH_BYTES * batch) + self.clips * _RECORD_BYTES,
            f"generating spike-digits clips of {self.frames} frames of {self.height}x{self.width}",
            f"{self._sizes()}, {batch} clips per batch",
        )

    def disk_bytes(self) -> int:
        """Bytes the dataset takes on disk (clips, manifest and dataset.json)."""
        return self.clips * ((self.frames * self.height * self.width + 7) // 8 + _MANIFEST_BYTES) + 8192

    def camera(self) -> CameraConfig:
        if self.variant == "sensor":
            return CameraConfig(
                theta=5.0,
                alpha=0.35,
                random_init=True,
                photons_per_step=20.0,
                dark_current=0.004,
                hot_pixel_fraction=0.002,
                hot_pixel_current=1.5,
                row_artifact_fraction=0.03,
                row_artifact_current=0.25,
            )
        return CameraConfig(theta=5.0, random_init=True)


#: Dataset presets: field values over :class:`DigitsConfig`'s defaults. ``bench`` was fixed before
#: any model was trained on it; its measured ANN accuracy is in docs/benchmark.md.
DIGITS_PRESETS: dict[str, dict] = {
    "quick": {},
    "bench": {"task": "motion-speed", "ink_min": 0.6, "ink_max": 1.0, "split_clips": (30, 6, 50)},
}


def digits_preset(name: str, **overrides) -> DigitsConfig:
    """A preset's config, with ``overrides`` (field values; None leaves the preset's value)."""
    if name not in DIGITS_PRESETS:
        raise ConfigError(f"unknown dataset preset {short_repr(name)}; choose one of {', '.join(DIGITS_PRESETS)}")
    fields = DIGITS_PRESETS[name] | {k: v for k, v in overrides.items() if v is not None}
    if "clips_per_class" in overrides and overrides["clips_per_class"] is not None:
        fields.pop("split_clips", None)  # an explicit size replaces the preset's split sizes
    return DigitsConfig(**fields, preset=name)


@dataclass
class Distractor:
    """A dimmer, smaller digit drifting over a clip (clutter that carries no label)."""

    sample_index: int
    x0: float  # start centre, in half frame heights
    y0: float
    dx: float  # displacement over the clip
    dy: float


@dataclass
class ClipSpec:
    """Everything that defines one clip."""

    index: int
    split: str
    motion: str
    digit: int
    sample_index: int  # row of sklearn's digits set (handwriting sample)
    speed: str
    position: str
    verb: str
    seed: int
    label: str = ""  # the class; empty: the motion
    distractors: tuple[Distractor, ...] = ()

    @property
    def caption(self) -> str:
        verb = self.verb.format(s=self.speed)
        return f"a handwritten {DIGIT_WORDS[self.digit]} {verb} {self.position}"


def _load_handwriting() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def split_samples(n_samples: int, seed: int) -> dict[str, np.ndarray]:
    """Disjoint handwriting-sample pools for train/val/test."""
    perm = np.random.default_rng([seed, 1]).permutation(n_samples)
    n_train = int(round(_SPLIT_FRACTIONS[0] * n_samples))
    n_val = int(round(_SPLIT_FRACTIONS[1] * n_samples))
    return {
        "train": np.sort(perm[:n_train]),
        "val": np.sort(perm[n_train : n_train + n_val]),
        "test": np.sort(perm[n_train + n_val :]),
    }


def _split_counts(n: int) -> dict[str, int]:
    n_val = max(1, int(round(_SPLIT_FRACTIONS[1] * n)))
    n_test = max(1, int(round(_SPLIT_FRACTIONS[2] * n)))
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def plan_clips(cfg: DigitsConfig, labels: np.ndarray) -> list[ClipSpec]:
    """Decide every clip's parameters (cheap; no rendering).

    In the ``motion`` task each clip's speed is drawn at random; in ``motion-speed``
    the class fixes it and each class gets its share of clips. Distractors use
    handwriting of the clip's own split, so splits stay disjoint.
    """
    pools = split_samples(len(labels), cfg.seed)
    rng = np.random.default_rng([cfg.seed, 2])
    extra = np.random.default_rng([cfg.seed, 4])  # distractors: their own stream, so the rest does not move
    counts = cfg.split_counts()
    cursor = {s: 0 for s in SPLITS}
    orders = {s: rng.permutation(pools[s]) for s in SPLITS}
    specs: list[ClipSpec] = []
    for split in SPLITS:
        for cls in cfg.classes:
            motion, fixed_speed = cls.rsplit("_", 1) if cfg.task == "motion-speed" else (cls, "")
            positions = list(_POSITIONS[motion])
            for _ in range(counts[split]):
                sample = int(orders[split][cursor[split] % len(orders[split])])
                cursor[split] += 1
                speed = str(rng.choice(list(SPEEDS)))
                specs.append(
                    ClipSpec(
                        index=len(specs),
                        split=split,
                        motion=motion,
                        digit=int(labels[sample]),
                        sample_index=sample,
                        speed=fixed_speed or speed,
                        position=str(rng.choice(positions)),
                        verb=str(rng.choice(_VERBS[motion])),
                        seed=int(rng.integers(0, 2**31 - 1)),
                        label=cls,
                        distractors=tuple(_plan_distractor(extra, pools[split]) for _ in range(cfg.distractors)),
                    )
                )
    return specs


def _plan_distractor(rng: np.random.Generator, pool: np.ndarray) -> Distractor:
    """A distractor: a handwriting sample of the split, starting anywhere in the frame's central
    region and drifting in a random direction by a random fraction of the full travel."""
    direction = rng.uniform(0.0, 2.0 * math.pi)
    travel = _MAX_TRAVEL * rng.uniform(0.25, 1.0)
    return Distractor(
        sample_index=int(rng.choice(pool)),
        x0=float(rng.uniform(-0.6, 0.6)),
        y0=float(rng.uniform(-0.6, 0.6)),
        dx=float(travel * math.cos(direction)),
        dy=float(travel * math.sin(direction)),
    )


def _trajectory(spec: ClipSpec, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, centre y, rotation angle and scale of the digit for every frame."""
    tau = np.linspace(0.0, 1.0, n_frames)
    amount = SPEEDS[spec.speed]
    x0, y0 = _POSITIONS[spec.motion][spec.position]
    cx, cy = np.full(n_frames, x0), np.full(n_frames, y0)
    angle, scale = np.zeros(n_frames), np.ones(n_frames)
    travel = _MAX_TRAVEL * amount * (tau - 0.5)
    m = spec.motion
    if m == "left":
        cx = cx - travel
    elif m == "right":
        cx = cx + travel
    elif m == "up":
        cy = cy - travel
    elif m == "down":
        cy = cy + travel
    elif m in ("rotate_cw", "rotate_ccw"):
        # y points down, so a positive angle turns clockwise on screen
        angle = (1.0 if m == "rotate_cw" else -1.0) * _MAX_TURN * amount * tau
    else:
        lo, hi = _ZOOM_RANGE
        mid = math.sqrt(lo * hi)
        span = (hi / lo) ** (0.5 * amount)
        start, end = mid / math.sqrt(span), mid * math.sqrt(span)
        scale = start * (end / start) ** tau if m == "zoom_in" else end * (start / end) ** tau
    return cx, cy, angle, scale


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A static texture: smooth random blobs plus fine grain, intensities about 0.05-0.4."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.random((1, 1, 6, 6)).astype(np.float32))
    smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0, 0].numpy()
    grain = rng.random((height, width)).astype(np.float32)
    tex = 0.75 * smooth + 0.25 * grain
    tex = (tex - tex.min()) / max(float(tex.max() - tex.min()), 1e-6)
    lo = rng.uniform(0.03, 0.1)
    hi = rng.uniform(0.25, 0.4)
    return (lo + (hi - lo) * tex).astype(np.float32)


def _ink(
    image: np.ndarray, cx: np.ndarray, cy: np.ndarray, angle: np.ndarray, scale: np.ndarray, height: int, width: int
) -> np.ndarray:
    """Coverage ``[T, H, W]`` in [0, 1] of an 8x8 digit image placed, turned and scaled per frame."""
    import torch
    import torch.nn.functional as F

    t_len = len(cx)
    aspect = width / height
    # affine map from output grid coords (x in [-1, 1] over the width, y over the height)
    # to digit coords (the digit's 8x8 image spans [-1, 1]^2)
    cos, sin = np.cos(angle), np.sin(angle)
    k = 1.0 / (_DIGIT_HALF_SIZE * scale)
    theta = np.zeros((t_len, 2, 3), dtype=np.float32)
    # u = R(-angle) (p - c) * k, with p = (aspect * xn, yn)
    theta[:, 0, 0] = k * cos * aspect
    theta[:, 0, 1] = k * sin
    theta[:, 1, 0] = -k * sin * aspect
    theta[:, 1, 1] = k * cos
    theta[:, 0, 2] = -k * (cos * cx + sin * cy)
    theta[:, 1, 2] = -k * (-sin * cx + cos * cy)
    grid = F.affine_grid(torch.from_numpy(theta), [t_len, 1, height, width], align_corners=False)
    src = torch.from_numpy(np.ascontiguousarray(image.reshape(1, 8, 8))).expand(t_len, 1, 8, 8)
    ink = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ink[:, 0].numpy().clip(0.0, 1.0)


def render_clip(
    spec: ClipSpec, digit_image: np.ndarray, cfg: DigitsConfig, distractor_images: list[np.ndarray] | None = None
) -> np.ndarray:
    """Grayscale frames ``[T, H, W]`` in [0, 1] of one clip (before the camera).

    ``distractor_images``: the 8x8 handwriting of each of ``spec.distractors``, drawn under the
    labelled digit with :data:`_DISTRACTOR_CONTRAST` of its contrast and :data:`_DISTRACTOR_SCALE`
    of its size.
    """
    rng = np.random.default_rng(spec.seed)
    h, w, t_len = cfg.height, cfg.width, cfg.frames
    ink = _ink(digit_image, *_trajectory(spec, t_len), h, w)
    background = _background(rng, h, w)
    level = np.float32(rng.uniform(cfg.ink_min, cfg.ink_max))
    frames = np.broadcast_to(background[None], ink.shape)
    if spec.distractors:
        if distractor_images is None or len(distractor_images) != len(spec.distractors):
            raise ConfigError(f"clip {spec.index}: {len(spec.distractors)} distractors need as many images")
        tau = np.linspace(0.0, 1.0, t_len)
        for d, image in zip(spec.distractors, distractor_images, strict=True):
            cx, cy = d.x0 + d.dx * (tau - 0.5), d.y0 + d.dy * (tau - 0.5)
            d_ink = _ink(image, cx, cy, np.zeros(t_len), np.full(t_len, _DISTRACTOR_SCALE), h, w)
            frames = frames + d_ink * (_DISTRACTOR_CONTRAST * (level - frames))
    return frames * (1.0 - ink) + level * ink


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def generate_digits(
    out: str | os.PathLike,
    cfg: DigitsConfig | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    batch_clips: int = 16,
) -> Path:
    """Generate the dataset into the folder ``out`` (atomically) and return its path.

    ``progress(done, total)`` is called after each batch of clips, if given.
    Refuses a non-empty ``out`` unless ``overwrite``; with ``overwrite`` only a
    folder holding nothing but what this function writes (:data:`OUTPUT_NAMES`) is
    replaced, and only once the new dataset is complete: anything else in it (a
    user's file) makes it refuse, naming the first such entry.
    """
    cfg = cfg or DigitsConfig()
    batch_clips = check_positive_int(batch_clips, "batch_clips")
    target = Path(out)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise ConfigError(f"{target}: already exists and is not empty (pass --overwrite to replace it)")
    if overwrite:
        _check_replaceable(target)
    cfg.check_resources(batch_clips)
    _check_disk(target, cfg)
    return _generate(target, cfg, overwrite, progress, batch_clips)


#: What a generated dataset folder holds at its top level (the class folders hold only clips).
OUTPUT_NAMES = frozenset({"dataset.json", "manifest.jsonl", *MOTIONS, *MOTION_SPEED_CLASSES})
_CLIP_NAME = re.compile(r"(?:train|val|test)_[0-9]{5,}\.dat")  # as _generate names clips


def _check_replaceable(target: Path) -> None:
    """Refuse to replace a folder that holds anything :func:`generate_digits` does not write itself."""
    check_output_dir(target, OUTPUT_NAMES)
    if not target.is_dir():
        return
    for motion in sorted(OUTPUT_NAMES - {"dataset.json", "manifest.jsonl"}):
        folder = target / motion
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise ConfigError(
                f"{target}: {motion!r} is not a class folder this command wrote; "
                "move it or choose another output folder"
            )
        if folder.is_dir():
            foreign = sorted(p.name for p in folder.iterdir() if not (_CLIP_NAME.fullmatch(p.name) and p.is_file()))
            if foreign:
                more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
                raise ConfigError(
                    f"{target}: folder {motion}/ holds {foreign[0]!r}{more}, which this command "
                    "did not write and would replace; move it or choose another output folder"
                )


def _check_disk(target: Path, cfg: DigitsConfig) -> None:
    """Refuse a dataset larger than the free space where it is written."""
    place = target.absolute()
    while not place.exists() and place != place.parent:
        place = place.parent
    try:
        free = shutil.disk_usage(place).free
    except OSError:
        return  # the write itself will report the problem
    need = cfg.disk_bytes()
    if need > free:
        raise ResourceError(
            f"{target}: the dataset needs {fmt_bytes(need)} on disk ({cfg._sizes()}), "
            f"only {fmt_bytes(free)} is free there"
        )


def _generate(
    target: Path,
    cfg: DigitsConfig,
    overwrite: bool,
    progress: Callable[[int, int], None] | None,
    batch_clips: int,
) -> Path:
    images, labels = _load_handwriting()
    specs = plan_clips(cfg, labels)
    camera = cfg.camera()
    records = []
    with atomic_dir(target, overwrite=overwrite) as tmp:
        for cls in cfg.classes:
            (tmp / cls).mkdir()
        for b0 in range(0, len(specs), batch_clips):
            batch = specs[b0 : b0 + batch_clips]
            frames = np.stack(
                [
                    render_clip(s, images[s.sample_index], cfg, [images[d.sample_index] for d in s.distractors])
                    for s in batch
                ]
            )
            spikes = simulate_spikes(frames, camera, seed=[cfg.seed, 3, b0])
            for spec, clip in zip(batch, spikes, strict=True):
                label = spec.label or spec.motion
                rel = f"{label}/{spec.split}_{spec.index:05d}.dat"
                (tmp / rel).write_bytes(encode_dat(clip))
                rec = {
                    "path": rel,
                    "label": label,
                    "label_index": cfg.classes.index(label),
                    "caption": spec.caption,
                    "frames": cfg.frames,
                    "height": cfg.height,
                    "width": cfg.width,
                    "split": spec.split,
                    "digit": spec.digit,
                    "speed": spec.speed,
                    "position": spec.position,
                    "sample_index": spec.sample_index,
                    "spikes": int(clip.sum()),
                }
                if spec.distractors:
                    rec["distractors"] = [d.sample_index for d in spec.distractors]
                records.append(rec)
            if progress is not None:
                progress(min(b0 + batch_clips, len(specs)), len(specs))
        with open(tmp / "manifest.jsonl", "w") as fh:
            for rec in records:
                fh.write(json.dumps(rec) + "\n")
        _write_json(
            tmp / "dataset.json",
            {
                "name": DATASET_NAME,
                "format_version": FORMAT_VERSION,
                "classes": list(cfg.classes),
                "class_prompts": class_prompts(cfg.task),
                "symmetries": task_symmetries(cfg.task),
                "config": asdict(cfg),
                "camera": camera.to_dict(),
                "flipud": False,
                "clips": len(records),
                "source": "scikit-learn load_digits (UCI optical recognition of handwritten digits)",
            },
        )
    return target
