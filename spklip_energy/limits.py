"""Resource limits: estimate what an operation needs from its sizes before doing it.

A small input (a checkpoint card, a ``.net`` header, a command-line number) must
never make the tool allocate memory it cannot have or run for hours. Every
reader and verb that sizes an allocation from user input calls
:func:`check_memory` (bytes) or :func:`check_count` (a count with a documented
ceiling) *before* allocating, and gets one :class:`~spklip_energy.errors.ResourceError`
sentence naming the value that caused it and how much it would take.

The memory limit is, in this order: ``set_memory_limit`` (the CLI's global
``--max-memory``), the ``SPKLIP_MAX_MEMORY`` environment variable (``64GiB``,
``500MB``, a plain byte count), or half of this machine's physical memory.
"""

from __future__ import annotations

import math
import os
import re

from .errors import ConfigError, ResourceError

ENV_MEMORY = "SPKLIP_MAX_MEMORY"
_FALLBACK_BYTES = 8 * 2**30  # when the physical memory cannot be read
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_override: int | None = None


def parse_size(text: str, name: str = "memory limit") -> int:
    """``'64GiB'``, ``'500 MB'``, ``'1e9'`` -> bytes; a :class:`ConfigError` for anything else."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ConfigError(f"{name} {text!r}: expected a size such as 16GiB, 500MB or a byte count")
    value = float(m.group(1)) * _UNITS[unit]
    if not math.isfinite(value) or value < 1:
        raise ConfigError(f"{name} {text!r}: must be at least one byte")
    return int(value)


def physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit() -> int:
    """The memory one operation may ask for, in bytes (see the module docstring)."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV_MEMORY)
    if env:
        return parse_size(env, ENV_MEMORY)
    phys = physical_memory()
    return phys // 2 if phys else _FALLBACK_BYTES


def set_memory_limit(nbytes: int | None) -> None:
    """Set (or with ``None`` clear) the process-wide limit that overrides the environment."""
    global _override
    _override = None if nbytes is None else int(nbytes)


def fmt_bytes(n: float) -> str:
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(nbytes: float, what: str, cause: str) -> None:
    """Refuse ``what`` when it would need more than :func:`memory_limit` bytes.

    ``cause`` names the value(s) behind the size, e.g. ``"--frames 1000000000000"``.
    """
    limit = memory_limit()
    if not math.isfinite(nbytes) or nbytes > limit:
        raise ResourceError(
            f"{what} would need {fmt_bytes(nbytes) if math.isfinite(nbytes) else 'an unbounded amount'} of memory "
            f"({cause}), over the limit of {fmt_bytes(limit)}; raise it with --max-memory or {ENV_MEMORY} "
            "if this machine has it"
        )


def check_count(value: int, limit: int, what: str, cause: str, hint: str = "") -> None:
    """Refuse a count above a documented ceiling (work that would run for hours, not memory)."""
    if value > limit:
        raise ResourceError(f"{cause}: {what} is limited to {limit:,}{'; ' + hint if hint else ''}")


__all__ = [
    "ENV_MEMORY",
    "check_count",
    "check_memory",
    "fmt_bytes",
    "memory_limit",
    "parse_size",
    "physical_memory",
    "set_memory_limit",
]
