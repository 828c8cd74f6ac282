"""Build and write the ONNX graphs of a SPKLIP checkpoint: ``visual.onnx`` and ``text.onnx``.

* ``visual.onnx``: input ``spikes`` float32 ``[batch, frames, height, width]``
  (0/1 values; a caller holding uint8 or bool spikes casts them to float32),
  output ``embedding`` float32 ``[batch, embed_dim]`` (not normalised).
* ``text.onnx``: input ``tokens`` int64 ``[batch, context_length]`` (the
  tokenizer's ids, padded to the context length), output ``embedding`` float32
  ``[batch, embed_dim]`` (not normalised).

Both have a dynamic ``batch`` axis and are written with the TorchScript exporter
(``torch.onnx.export(..., dynamo=False)``) and checked with
``onnx.checker.check_model``. Spiking encoders are unrolled over their time steps
(:mod:`.spiking`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from spklip.io import CONVERTED_KIND, LoadedSPKLIP
from spklip_energy.errors import CheckpointError, ConfigError, first_line
from spklip_energy.options import check_int

from .spiking import onnx_friendly

DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 14, 20  # scaled_dot_product / LayerNorm need >= 14; 20 is what torch 2.13 writes reliably
VISUAL_FILE, TEXT_FILE = "visual.onnx", "text.onnx"


def check_opset(opset: int) -> int:
    opset = check_int(opset, "--opset")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"--opset {opset} is not supported (choose {MIN_OPSET}..{MAX_OPSET}, default {DEFAULT_OPSET})"
        )
    return opset


def is_spiking(loaded: LoadedSPKLIP) -> bool:
    return loaded.card.get("kind") == CONVERTED_KIND or loaded.model.cfg.model != "spklip"


def example_inputs(loaded: LoadedSPKLIP, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = loaded.model.cfg
    g = torch.Generator().manual_seed(0)
    spikes = (torch.rand(batch, cfg.frames, cfg.height, cfg.width, generator=g) < 0.05).float()
    tokens = loaded.tokenizer.encode(["a spike video"] * batch, cfg.text.context_length).long()
    return spikes, tokens


def export_module(
    module: torch.nn.Module, args: tuple, path: Path, in_name: str, opset: int, out_name: str = "embedding"
) -> None:
    """Trace ``module`` on ``args`` into ``path`` (input ``in_name``, output ``out_name``, dynamic batch)."""
    import onnx

    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused MHA kernel has no ONNX symbolic
    try:
        _trace(module, args, path, in_name, opset, out_name)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def _trace(module: torch.nn.Module, args: tuple, path: Path, in_name: str, opset: int, out_name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on the models' shape checks (constant by design)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=[in_name],
            output_names=[out_name],
            dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            verbose=False,
        )


def write_onnx(loaded: LoadedSPKLIP, folder: Path, opset: int = DEFAULT_OPSET) -> dict:
    """Write ``visual.onnx`` and ``text.onnx`` into ``folder``; return their description."""
    opset = check_opset(opset)
    model = loaded.model.eval()
    cfg = model.cfg
    spikes, tokens = example_inputs(loaded)
    for name, module, x, in_name, file in (
        ("visual", model.visual, spikes, "spikes", VISUAL_FILE),
        ("text", model.text, tokens, "tokens", TEXT_FILE),
    ):
        with torch.no_grad(), onnx_friendly(module, prefix=f"{name}."):
            try:
                export_module(module, (x,), folder / file, in_name, opset)
            except CheckpointError:
                raise
            except Exception as exc:  # the exporter's own errors are long; keep the first line
                raise CheckpointError(
                    f"{loaded.checkpoint.path}: the {name} encoder cannot be exported to ONNX ({first_line(exc)})"
                ) from None
    spiking = is_spiking(loaded)
    return {
        "visual": {
            "file": VISUAL_FILE,
            "inputs": [
                {
                    "name": "spikes",
                    "dtype": "float32",
                    "shape": ["batch", cfg.frames, cfg.height, cfg.width],
                    "note": "binary spikes as 0/1; cast uint8/bool to float32 first",
                }
            ],
            "outputs": [
                {"name": "embedding", "dtype": "float32", "shape": ["batch", cfg.embed_dim], "note": "not normalised"}
            ],
            "spiking": spiking,
            "time_steps": cfg.fsve.time_steps
            if cfg.model != "spklip"
            else (loaded.card.get("conversion") or {}).get("timesteps"),
        },
        "text": {
            "file": TEXT_FILE,
            "inputs": [
                {
                    "name": "tokens",
                    "dtype": "int64",
                    "shape": ["batch", cfg.text.context_length],
                    "note": "tokenizer ids padded to context_length (see tokenizer)",
                }
            ],
            "outputs": [
                {"name": "embedding", "dtype": "float32", "shape": ["batch", cfg.embed_dim], "note": "not normalised"}
            ],
        },
        "exporter": f"torch.onnx.export (TorchScript, dynamo=False), torch {torch.__version__}",
        "opset": opset,
    }


__all__ = [
    "DEFAULT_OPSET",
    "TEXT_FILE",
    "VISUAL_FILE",
    "check_opset",
    "example_inputs",
    "export_module",
    "is_spiking",
    "write_onnx",
]
