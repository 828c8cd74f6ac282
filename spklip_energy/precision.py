"""Numeric precision of training and evaluation: fp32, or mixed precision with bf16 or fp16 autocast.

``auto`` keeps what the project always did: fp16 autocast with loss scaling on CUDA, fp32 elsewhere.
``bf16`` runs on CUDA GPUs that support it and on the CPU (torch's CPU autocast); ``fp16`` needs CUDA
and always comes with a ``GradScaler`` (fp16 gradients underflow without it); bf16 has fp32's exponent
range and needs no scaling. Weights, optimiser state and checkpoints stay fp32 in every mode.
"""

from __future__ import annotations

import contextlib

import torch

from .errors import ConfigError
from .options import PRECISIONS

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(value: str, device: torch.device) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for ``value`` on ``device`` (``auto``: fp16 on CUDA, else fp32)."""
    if value not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {value!r}")
    if value == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if value == "fp16" and device.type != "cuda":
        raise ConfigError(f"--precision fp16 needs a CUDA device (got {device.type}); on the CPU use bf16 or fp32")
    if value == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("--precision bf16: this GPU does not support bfloat16; use fp16 (with loss scaling)")
    return value


def autocast(precision: str, device: torch.device):
    """The autocast context of a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """Loss scaling for fp16 (None otherwise)."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


__all__ = ["PRECISIONS", "autocast", "grad_scaler", "resolve_precision"]
