"""Spike data: the ``.dat`` codec, the camera simulator, reconstructions, datasets.

Public entry points:

* :func:`read_dat`, :func:`write_dat` - SpikeCV-compatible spike streams.
* :func:`simulate_spikes`, :class:`CameraConfig`, :func:`load_frames`,
  :func:`upsample_linear` - the spike-camera simulator and its inputs.
* :func:`tfp`, :func:`tfi` - reconstructions.
* :func:`generate_digits`, :class:`DigitsConfig` - the built-in dataset.
* :func:`load_manifest`, :class:`SpikeClips` - loading any manifest-described set.

The names are imported on first use, so that importing one light submodule
(``spikedata.preview`` for its ``MAX_COLUMNS``, ``spikedata.dat``)
does not import torch through :mod:`~spikedata.clips`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: public name -> the submodule that defines it
_EXPORTS = {
    "CameraConfig": "camera",
    "load_frames": "camera",
    "simulate_spikes": "camera",
    "upsample_linear": "camera",
    "ClipSelection": "clips",
    "SpikeClips": "clips",
    "builtin_dataset": "clips",
    "builtin_root": "clips",
    "dat_info": "dat",
    "read_dat": "dat",
    "read_dat_folder": "dat",
    "write_dat": "dat",
    "CLASS_PROMPTS": "digits",
    "MOTIONS": "digits",
    "DigitsConfig": "digits",
    "generate_digits": "digits",
    "Manifest": "manifest",
    "index_folder": "manifest",
    "load_manifest": "manifest",
    "tfi": "reconstruct",
    "tfp": "reconstruct",
}

__all__ = [  # the keys of _EXPORTS
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


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:  # an AttributeError lets ``from spikedata import clips`` import the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from .camera import CameraConfig, load_frames, simulate_spikes, upsample_linear
    from .clips import ClipSelection, SpikeClips, builtin_dataset, builtin_root
    from .dat import dat_info, read_dat, read_dat_folder, write_dat
    from .digits import CLASS_PROMPTS, MOTIONS, DigitsConfig, generate_digits
    from .manifest import Manifest, index_folder, load_manifest
    from .reconstruct import tfi, tfp
