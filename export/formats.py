"""The export formats: one registration each, in :data:`FORMATS` (name -> writer, verifier, files).

Light on purpose: each entry imports its format's module only when called, so the CLI builds
``--format``'s choices from this table without loading torch (``import export.formats`` runs none of the
exporters). A new format is its module plus one entry here (CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Format:
    """``write(loaded, folder, opts) -> dict`` (the files' description for ``export.json``), an optional
    ``verify(loaded, folder, data, samples, progress) -> dict`` and ``files() -> names it writes``."""

    write: Callable
    verify: Callable | None
    files: Callable[[], tuple[str, ...]]


def _onnx(loaded, folder: Path, opts: dict) -> dict:
    from .onnx_export import DEFAULT_OPSET, write_onnx

    return write_onnx(loaded, folder, opts.get("opset", DEFAULT_OPSET))


def _verify_onnx(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    from .verify import verify_onnx

    return verify_onnx(loaded, folder, data, samples, progress)


def _onnx_files() -> tuple[str, ...]:
    from .onnx_export import TEXT_FILE, VISUAL_FILE

    return (VISUAL_FILE, TEXT_FILE)


def _nir(loaded, folder: Path, opts: dict) -> dict:
    from .nir_export import write_nir

    return write_nir(loaded, folder, opts)


def _verify_nir(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    from .nir_verify import verify_nir

    return verify_nir(loaded, folder, data, samples, progress)


def _nir_files() -> tuple[str, ...]:
    from .nir_export import NIR_FILE
    from .nir_front_end import PART_FILES

    return (NIR_FILE, *PART_FILES)


def _lava(loaded, folder: Path, opts: dict) -> dict:
    from .lava_export import write_lava

    return write_lava(loaded, folder, opts)


def _verify_lava(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    from .lava_verify import verify_lava

    return verify_lava(loaded, folder, data, samples, progress)


def _lava_files() -> tuple[str, ...]:
    from .lava_export import HOST_FILE, NET_FILE

    return (NET_FILE, HOST_FILE)


FORMATS: dict[str, Format] = {
    "onnx": Format(_onnx, _verify_onnx, _onnx_files),
    "nir": Format(_nir, _verify_nir, _nir_files),
    "lava": Format(_lava, _verify_lava, _lava_files),
}

__all__ = ["FORMATS", "Format"]
