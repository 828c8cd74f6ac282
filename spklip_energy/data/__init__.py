"""Spike data: the ``.dat`` codec, the camera simulator, reconstructions, datasets.

Public entry points:

* :func:`read_dat`, :func:`write_dat` - SpikeCV-compatible spike streams.
* :func:`simulate_spikes`, :class:`CameraConfig`, :func:`load_frames`,
  :func:`upsample_linear` - the spike-camera simulator and its inputs.
* :func:`tfp`, :func:`tfi` - reconstructions.
* :func:`generate_digits`, :class:`DigitsConfig` - the built-in dataset.
* :func:`load_manifest`, :class:`SpikeClips` - loading any manifest-described set.
"""

from .camera import CameraConfig, load_frames, simulate_spikes, upsample_linear
from .clips import ClipSelection, SpikeClips, builtin_dataset, builtin_root
from .dat import dat_info, read_dat, read_dat_folder, write_dat
from .digits import CLASS_PROMPTS, MOTIONS, DigitsConfig, generate_digits
from .manifest import Manifest, index_folder, load_manifest
from .reconstruct import tfi, tfp

__all__ = [
    "CLASS_PROMPTS",
    "MOTIONS",
    "CameraConfig",
    "ClipSelection",
    "DigitsConfig",
    "Manifest",
    "SpikeClips",
    "builtin_dataset",
    "builtin_root",
    "dat_info",
    "generate_digits",
    "index_folder",
    "load_frames",
    "load_manifest",
    "read_dat",
    "read_dat_folder",
    "simulate_spikes",
    "tfi",
    "tfp",
    "upsample_linear",
    "write_dat",
]
