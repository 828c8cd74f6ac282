"""The export formats: one registration each, in :data:`FORMATS` (name -> writer, verifier, files, and how its
record reads: the lines the CLI prints and, when its check failed, why).

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
    lines: Callable[[dict], list[str]]  # what the record's format-specific part says, for the terminal
    failure: Callable[[dict], str | None] = lambda rec: None  # why its --verify failed, or None when it passed


def importer_brief(r: dict) -> str:
    """One NIR importer's verdict on one file, in a few words."""
    if "reason" in r:
        return f"FAILED ({r['reason']})"
    agree = "n/a" if r["spike_agreement"] is None else f"{100 * r['spike_agreement']:.3f}%"
    return f"{'ok' if r['ok'] else 'NOT ok'} ({agree} identical spikes)"


def export_lines(rec: dict) -> list[str]:
    """An export record (``export.json``) as the lines ``spklip-energy export`` prints."""
    head = f"{rec['checkpoint']} ({rec['kind']}): wrote {', '.join(rec['files'])} to {rec['out']} ({rec['format']}"
    head += f", opset {rec['opset']}, dynamic batch)" if rec["format"] == "onnx" else ")"
    return [head, *FORMATS[rec["format"]].lines(rec)]


def verification_failure(rec: dict) -> str | None:
    """Why the record's ``--verify`` failed (one sentence), or None when it passed or did not run."""
    return FORMATS[rec["format"]].failure(rec) if rec.get("verify") else None


def _onnx(loaded, folder: Path, opts: dict) -> dict:
    from .onnx_export import DEFAULT_OPSET, write_onnx

    return write_onnx(loaded, folder, opts.get("opset", DEFAULT_OPSET))


def _verify_onnx(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    from .verify import verify_onnx

    return verify_onnx(loaded, folder, data, samples, progress)


def _onnx_files() -> tuple[str, ...]:
    from .onnx_export import TEXT_FILE, VISUAL_FILE

    return (VISUAL_FILE, TEXT_FILE)


def _onnx_lines(rec: dict) -> list[str]:
    ver = rec.get("verify")
    if not ver:
        return []
    v, t = ver["visual"], ver["text"]
    lines = [
        f"verify (onnxruntime CPU, {ver['clips']} clips, {ver['prompts']} prompts): visual max rel error "
        f"{v['max_rel_error']:.2e} ({100 * v['frac_elements_over_tol']:.2f}% of elements > "
        f"{ver['tolerance']:g}), text max rel error {t['max_rel_error']:.2e}"
    ]
    if ver["spiking"]:
        lines.append(
            "spiking encoder: differences come from membrane potentials within float rounding of a "
            "threshold (reported, not failed)"
        )
    return lines


def _onnx_failure(rec: dict) -> str | None:
    ver = rec["verify"]
    if ver["ok"]:
        return None
    return (
        f"ONNX embeddings differ from torch by more than {ver['tolerance']:g} relative (visual "
        f"{ver['visual']['max_rel_error']:.2e}, text {ver['text']['max_rel_error']:.2e})"
    )


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


def _nir_lines(rec: dict) -> list[str]:
    ver, lines = rec.get("verify"), []
    if ver:
        lines.append(f"verify ({ver['inputs']} block inputs x {ver['time_steps']} steps), read back with:")
        for name in ("snntorch", "spikingjelly"):
            r = ver[name]
            if "reason" in r:
                lines.append(f"  {name}: FAILED ({r['reason']})")
            else:
                agree = "n/a" if r["spike_agreement"] is None else f"{100 * r['spike_agreement']:.3f}%"
                lines.append(
                    f"  {name}: {'ok' if r['ok'] else 'NOT ok'}, identical spikes {agree} of "
                    f"{r['spikes_compared']}, output max rel error {r['max_rel_error']:.1e}"
                )
        for part, r in ver.get("front_end", {}).items():
            if part != "ok":
                lines.append(
                    f"  front end {r['file']}: "
                    + ", ".join(f"{name} {importer_brief(r[name])}" for name in ("snntorch", "spikingjelly"))
                )
    if "front_end" in rec["nir"]:
        fe = rec["nir"]["front_end"]
        lines.append(
            f"spiking front end: {' -> '.join(p['file'] for p in fe['parts'])} -> {rec['nir']['file']}, "
            "with host-side steps around them (export.json: nir.front_end.host_steps)"
        )
    return lines


def _nir_failure(rec: dict) -> str | None:
    ver = rec["verify"]
    if ver["ok"]:
        return None
    bad = [n for n in ("snntorch", "spikingjelly") if not ver[n]["ok"] or not ver.get("front_end", {}).get("ok", True)]
    return (
        f"the NIR graph read back by {' and '.join(bad)} does not reproduce the project's spikes and outputs "
        "(see export.json)"
    )


def _lava(loaded, folder: Path, opts: dict) -> dict:
    from .lava_export import write_lava

    return write_lava(loaded, folder, opts)


def _verify_lava(loaded, folder: Path, data, samples: int, progress=None) -> dict:
    from .lava_verify import verify_lava

    return verify_lava(loaded, folder, data, samples, progress)


def _lava_files() -> tuple[str, ...]:
    from .lava_export import HOST_FILE, NET_FILE

    return (NET_FILE, HOST_FILE)


def _lava_lines(rec: dict) -> list[str]:
    lav, ver = rec["lava"], rec.get("verify")
    lines = [
        f"netx chain: {len(lav['layers'])} layers ({lav['latency_steps']} synaptic), "
        f"{lav['time_steps']} steps per block; host front end: {rec['host']['file']}"
    ]
    if ver:
        lines.append(
            f"verify ({ver['clips']} clips): spike agreement float torch vs fixed point, per layer: "
            + ", ".join(f"{100 * p['spike_agreement']:.1f}%" for p in ver["per_layer"])
        )
    return lines


FORMATS: dict[str, Format] = {
    "onnx": Format(_onnx, _verify_onnx, _onnx_files, _onnx_lines, _onnx_failure),
    "nir": Format(_nir, _verify_nir, _nir_files, _nir_lines, _nir_failure),
    "lava": Format(_lava, _verify_lava, _lava_files, _lava_lines),
}

__all__ = ["FORMATS", "Format", "export_lines", "importer_brief", "verification_failure"]
