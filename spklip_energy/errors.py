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


class SpklipWarning(UserWarning):
    """Something suspicious in a user's input that does not stop the work (a duplicate manifest record,
    a duplicate YAML key, a checkpoint whose weights hold NaN). The CLI prints each as one
    ``spklip-energy: warning: ...`` line on stderr."""
