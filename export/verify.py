"""Check exported graphs against the torch model with onnxruntime (CPUExecutionProvider).

Relative error of an embedding row is ``|onnx - torch| / max|torch|`` (the row's
largest magnitude), so near-zero components do not blow it up. For the ANN the
maximum over rows and components must stay within :data:`ANN_TOLERANCE`.

Spiking encoders threshold membrane potentials; a potential within float
rounding of a threshold can fire in one runtime and not the other, and that
spike difference propagates. Per-layer spike differences are not visible in the
exported graph, so for spiking models the report gives the embedding error and
the fraction of embedding elements whose relative error exceeds the tolerance;
they are reported, not failed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from spklip.data import clips_for, resolve_data
from spklip.io import LoadedSPKLIP
from spklip_energy.limits import check_memory
from spklip_energy.options import check_positive_int

from .onnx_export import TEXT_FILE, VISUAL_FILE, is_spiking

ANN_TOLERANCE = 1e-4


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare(onnx_out: np.ndarray, torch_out: torch.Tensor, tol: float = ANN_TOLERANCE) -> dict:
    ref = torch_out.detach().cpu().double().numpy()
    got = onnx_out.astype(np.float64)
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-12)
    rel = np.abs(got - ref) / scale
    return {
        "max_rel_error": float(rel.max()),
        "mean_rel_error": float(rel.mean()),
        "frac_elements_over_tol": float((rel > tol).mean()),
        "rows": int(ref.shape[0]),
    }


def verify_inputs(
    loaded: LoadedSPKLIP, data: str | os.PathLike = "builtin", samples: int = 4, progress=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``samples`` test-split clips (float32) and the class-prompt tokens."""
    from spikedata.manifest import load_manifest

    samples = check_positive_int(samples, "--samples")
    cfg = loaded.model.cfg
    manifest = load_manifest(resolve_data(data, progress=progress))
    split = "test" if manifest.split("test") else None
    ds = clips_for(cfg, manifest, split)
    n = min(samples, len(ds))
    check_memory(
        loaded.forward_bytes(n),
        f"verifying with {n} clips in one forward pass",
        f"--samples {samples}, {cfg.frames} frames of {cfg.height}x{cfg.width}",
    )
    spikes = torch.stack([ds[i]["spikes"] for i in range(n)]).float()
    prompts = ds.class_prompts or [loaded.card.get("class_prompts", ["a spike video"])[0]]
    tokens = loaded.tokenizer.encode(list(prompts), cfg.text.context_length).long()
    return spikes, tokens


def verify_onnx(
    loaded: LoadedSPKLIP, folder: Path, data: str | os.PathLike = "builtin", samples: int = 4, progress=None
) -> dict:
    """Run both graphs and the torch model on the same inputs; return the figures."""
    spikes, tokens = verify_inputs(loaded, data, samples, progress)
    model = loaded.model.eval()
    with torch.no_grad():
        ref_v = model.visual(spikes)
        ref_t = model.text(tokens)
    got_v = _session(folder / VISUAL_FILE).run(None, {"spikes": spikes.numpy()})[0]
    got_t = _session(folder / TEXT_FILE).run(None, {"tokens": tokens.numpy()})[0]
    visual, text = compare(got_v, ref_v), compare(got_t, ref_t)
    spiking = is_spiking(loaded)
    ok = text["max_rel_error"] <= ANN_TOLERANCE and (spiking or visual["max_rel_error"] <= ANN_TOLERANCE)
    res = {
        "provider": "CPUExecutionProvider",
        "tolerance": ANN_TOLERANCE,
        "clips": int(spikes.shape[0]),
        "prompts": int(tokens.shape[0]),
        "visual": visual,
        "text": text,
        "spiking": spiking,
        "ok": bool(ok),
    }
    if spiking:
        res["note"] = (
            "spiking visual encoder: differences come from membrane potentials within float rounding "
            "of a threshold; reported (frac_elements_over_tol), not failed"
        )
    return res


__all__ = ["ANN_TOLERANCE", "compare", "verify_inputs", "verify_onnx"]
