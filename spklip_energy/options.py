"""Validated option values, one home for the CLI and the library.

Each ``check_*`` function takes a value and the name a user knows it by
(``"--epochs"`` on the command line, a parameter name in the API) and returns the
value converted, or raises :class:`~spklip_energy.errors.ConfigError` with one
sentence. The argparse types at the bottom wrap the same checks, so that every
verb refuses a bad number while parsing, before any work starts, and a library
caller gets the same answer from the same function.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable

from .errors import ConfigError

SEED_MAX = 2**32 - 1  # numpy's RandomState/SeedSequence legacy bound; torch accepts more
#: no size or count (a config field, a card's value) is usable beyond this: it keeps Python ints that torch,
#: numpy or itertools cannot take (``batch_size=10**20``, a width of 2**63) from reaching them
MAX_INT = 2**32 - 1
DEVICE_RE = re.compile(r"(cpu|auto|cuda(:[0-9]+)?)")


def _as_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} expects an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise ConfigError(f"{name} expects an integer, got {value!r}")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name} expects an integer, got {value!r}") from None


def _as_float(value, name: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{name} expects a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} expects a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    return out


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    out = _as_int(value, name)
    if minimum is not None and out < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise ConfigError(f"{name} must be at most {maximum:,}, got {out:,}")
    return out


def check_positive_int(value, name: str, maximum: int | None = None) -> int:
    return check_int(value, name, 1, maximum)


def check_nonneg_int(value, name: str, maximum: int | None = None) -> int:
    return check_int(value, name, 0, maximum)


def check_seed(value, name: str = "seed") -> int:
    return check_int(value, name, 0, SEED_MAX)


def check_float(
    value, name: str, minimum: float | None = None, maximum: float | None = None, strict_min: bool = False
) -> float:
    out = _as_float(value, name)
    if minimum is not None and (out <= minimum if strict_min else out < minimum):
        raise ConfigError(f"{name} must be {'above' if strict_min else 'at least'} {minimum:g}, got {out:g}")
    if maximum is not None and out > maximum:
        raise ConfigError(f"{name} must be at most {maximum:g}, got {out:g}")
    return out


def check_positive_float(value, name: str) -> float:
    return check_float(value, name, 0.0, strict_min=True)


def check_nonneg_float(value, name: str) -> float:
    return check_float(value, name, 0.0)


def check_fraction(value, name: str) -> float:
    return check_float(value, name, 0.0, 1.0)


def check_percentile(value, name: str) -> float:
    return check_float(value, name, 0.0, 100.0, strict_min=True)


def check_bool(value, name: str) -> bool:
    """A real boolean: ``True`` or ``False`` (numpy's boolean scalars too); not ``1``, ``"yes"`` or ``None``."""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):
        return bool(value)
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def check_device(value, name: str = "--device") -> str:
    """``cpu``, ``auto``, ``cuda`` or ``cuda:N``; CUDA only where a device exists."""
    text = str(value).strip()
    if not DEVICE_RE.fullmatch(text):
        raise ConfigError(f"{name} {value!r}: unknown device (choose cpu, cuda, cuda:N or auto)")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{name} {text}: no CUDA device is available here")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{name} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return text


#: Numeric precisions of training and evaluation (:mod:`spklip_energy.precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(value, name: str = "--device"):
    """The ``torch.device`` for a checked device name (``auto``: CUDA when present, else CPU)."""
    import torch

    text = check_device(value, name)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(text)


def check_int_list(value, name: str, minimum: int = 1, maximum: int | None = None) -> list[int]:
    """A non-empty list of integers (``"8,16,32"`` or an iterable), each checked, in the given order."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        if not value.strip() or any(not p for p in parts):
            raise ConfigError(f"{name} expects comma-separated integers, got {value!r}")
    elif isinstance(value, Iterable):
        parts = list(value)
    else:
        parts = [value]
    if not parts:
        raise ConfigError(f"{name} expects at least one integer")
    return [check_int(p, name, minimum, maximum) for p in parts]


def check_path(value, name: str):
    """A non-empty path (an empty string would silently mean the current folder)."""
    from pathlib import Path

    text = str(value)
    if not text.strip():
        raise ConfigError(f"{name} expects a path, got an empty string")
    if "\0" in text:
        raise ConfigError(f"{name} {text!r}: a path cannot hold a NUL character")
    return Path(text)


# --------------------------------------------------------------------------- argparse types


def arg(check: Callable, **kw) -> Callable[[str], object]:
    """An argparse ``type=`` from a ``check_*`` function (the option's name comes from argparse)."""

    def convert(text: str):
        try:
            return check(text, "value", **kw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix("value ")) from None

    convert.__name__ = check.__name__.removeprefix("check_")
    return convert


positive_int = arg(check_positive_int)
nonneg_int = arg(check_nonneg_int)
seed = arg(check_seed)
finite_float = arg(check_float)
positive_float = arg(check_positive_float)
nonneg_float = arg(check_nonneg_float)
fraction = arg(check_fraction)
percentile = arg(check_percentile)
device = arg(check_device)
int_list = arg(check_int_list)
path = arg(check_path)

__all__ = [
    "MAX_INT",
    "SEED_MAX",
    "arg",
    "check_bool",
    "check_device",
    "check_float",
    "check_fraction",
    "check_int",
    "check_int_list",
    "check_nonneg_float",
    "check_nonneg_int",
    "check_path",
    "check_percentile",
    "check_positive_float",
    "check_positive_int",
    "check_seed",
    "device",
    "finite_float",
    "fraction",
    "int_list",
    "nonneg_float",
    "nonneg_int",
    "path",
    "percentile",
    "pick_device",
    "positive_float",
    "positive_int",
    "seed",
]
