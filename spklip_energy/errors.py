"""The project's error types.

Every error a user can cause (a bad file, a wrong shape, an unknown preset) is
raised as a :class:`SpklipError` subclass carrying one sentence that names the
thing and the problem. Only the CLI turns it into a line on stderr and exit 2.
"""

from __future__ import annotations


class SpklipError(Exception):
    """Base class of every user-facing error of spklip-energy."""


class DatError(SpklipError):
    """A spike-stream ``.dat`` file is missing, unreadable or malformed."""


class ManifestError(SpklipError):
    """A dataset folder or manifest is missing, empty or inconsistent."""


class MediaError(SpklipError):
    """An input image, image folder, array or video cannot be read."""


class ConfigError(SpklipError):
    """A configuration value, preset name or option is invalid."""


class CheckpointError(SpklipError):
    """A checkpoint file is missing, unsafe, foreign or malformed, or cannot be written."""


class ResourceError(SpklipError):
    """An operation would need more memory or work than the configured limits allow (see ``limits``)."""


class LostRankError(SpklipError):
    """Another process of a distributed run died, was killed or stopped answering (not the user's input:
    the CLI exits with status 1)."""


class SpklipWarning(UserWarning):
    """Something suspicious in a user's input that does not stop the work (a duplicate manifest record,
    a duplicate YAML key, a checkpoint whose weights hold NaN). The CLI prints each as one
    ``spklip-energy: warning: ...`` line on stderr."""


# --------------------------------------------------------------------------- message helpers


def short_repr(value, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_JSON_TYPES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def json_type(value) -> str:
    """A JSON value's type in words: ``an object``, ``a list``, ``a string``, ``null``, ..."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def found(value) -> str:
    """What a field holds, for a message: its JSON type and, for a scalar, its value."""
    if value is None:
        return "null"
    if isinstance(value, str | int | float):  # bool is an int: "a boolean True"
        return f"{json_type(value)} {short_repr(value)}"
    return json_type(value)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters: one line whatever a library says."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first if len(first) <= limit else first[: limit - 3] + '...'}"
