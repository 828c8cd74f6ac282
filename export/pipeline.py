"""The ``export`` verb's library side: checkpoint -> output folder, written atomically.

``export_checkpoint`` loads an SPKLIP checkpoint, writes the chosen format's files
into a temporary sibling of ``out``, optionally verifies them, writes
``export.json`` and renames the folder into place. Formats register in
:data:`.formats.FORMATS` (``onnx``, ``nir``, ``lava``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from spklip.io import load_spklip
from spklip_energy.atomic import atomic_dir, check_output_dir
from spklip_energy.checkpoint import load_checkpoint, refuse_nonfinite
from spklip_energy.errors import CheckpointError, ConfigError
from spklip_energy.options import check_positive_int

from .formats import FORMATS
from .onnx_export import DEFAULT_OPSET, check_opset

RECORD_FILE = "export.json"


def export_files() -> frozenset[str]:
    """Every file name an export of any format writes into its folder (the record included)."""
    return frozenset({RECORD_FILE, *(name for f in FORMATS.values() for name in f.files())})


def check_out(out: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse a file, an unwritable place, or an existing non-empty folder: without ``overwrite`` any,
    with it one holding anything an export does not write (:func:`export_files`): a folder this tool did not
    write is never replaced."""
    out = Path(out)
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty (pass --overwrite to replace an earlier export)")
    out = check_output_dir(out, export_files())
    parent = out.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{out}: cannot write here ({probe} is not a writable folder)")
    return out


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fmt: str = "onnx",
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    verify: bool = False,
    data: str | os.PathLike = "builtin",
    samples: int = 4,
    progress=None,
) -> dict:
    """Export ``checkpoint`` to ``out`` (default: ``exports/<name>-<fmt>``); return the export record."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (choose {', '.join(FORMATS)})")
    opset = check_opset(opset)
    samples = check_positive_int(samples, "--samples")
    out = check_out(Path(out) if out is not None else Path("exports") / f"{Path(checkpoint).stem}-{fmt}", overwrite)
    ck = load_checkpoint(checkpoint)
    refuse_nonfinite(ck, "an export of it would compute nothing but NaN")
    loaded = load_spklip(ck)
    writer, verifier = FORMATS[fmt].write, FORMATS[fmt].verify
    torch_threads = torch.get_num_threads()
    try:
        with atomic_dir(out, overwrite=overwrite) as tmp:
            record = {
                "format": fmt,
                "checkpoint": str(Path(checkpoint).resolve()),
                "kind": loaded.card.get("kind"),
                **writer(loaded, tmp, {"opset": opset}),
            }
            if verify:
                record["verify"] = verifier(loaded, tmp, data, samples, progress)
            record.update(
                {
                    "config": loaded.model.cfg.to_dict(),
                    "class_names": loaded.card.get("class_names"),
                    "class_prompts": loaded.card.get("class_prompts"),
                    "tokenizer": loaded.tokenizer.to_json(),
                }
            )
            (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2, default=str) + "\n")
    except PermissionError as exc:
        raise CheckpointError(f"{out}: cannot write the export ({exc.strerror})") from None
    finally:
        torch.set_num_threads(torch_threads)
    record["out"] = str(out)
    record["files"] = sorted(p.name for p in out.iterdir())
    return record


__all__ = ["FORMATS", "RECORD_FILE", "check_out", "export_checkpoint", "export_files"]
