"""Write files and folders so that nothing is ever left half-written.

Outputs are written to a temporary sibling (same directory, so the final
``os.replace`` is an atomic rename on one file system) and moved into place only
when writing finished without an exception.

Temporary siblings are named ``.<name>.<pid>.<random>.tmp``. A run that was
killed (SIGKILL, power loss) cannot clean up after itself, so the next write of
the same target removes the siblings whose process no longer exists
(:func:`remove_stale`).

Output *folders* of the report-like verbs (``report``, ``compare``, ``adapt``)
are written whole with :func:`replace_output_dir`: built in a temporary sibling,
then swapped into place, so a failing run leaves the previous folder as it was
and two runs never mix their files. A folder holding anything the verb does not
write itself is never replaced, so a mistyped ``--out`` cannot delete a user's
files (nor the checkpoint being reported, when it lies in ``--out``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import ConfigError, SpklipError

#: what a file of each kind this tool writes starts with: an existing file is replaced only by one of its kind
FILE_KINDS = {".png": b"\x89PNG\r\n\x1a\n"}
#: the marker file of an output folder written by :func:`replace_output_dir`
OUTPUT_MARKER = ".spklip-energy-output.json"
_LEGACY_STALE_S = 24 * 3600  # temporaries without a pid in their name: removed when older than a day


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def remove_stale_siblings(folder: str | os.PathLike, name_pattern: str) -> list[Path]:
    """Remove the temporaries in ``folder`` of targets whose name matches the regular expression
    ``name_pattern`` and whose writing process no longer runs (named without a process id:
    older than a day). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"\.(?:{name_pattern})\.(?:(\d+)\.)?[A-Za-z0-9_]+\.(?:tmp|old)")
    removed = []
    for sib in folder.iterdir():
        m = pattern.fullmatch(sib.name)
        if not m:
            continue
        if m.group(1) is not None:
            stale = not _pid_alive(int(m.group(1)))
        else:
            try:
                stale = time.time() - sib.lstat().st_mtime > _LEGACY_STALE_S
            except FileNotFoundError:
                continue
        if stale:
            if sib.is_dir() and not sib.is_symlink():
                shutil.rmtree(sib, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    sib.unlink()
            removed.append(sib)
    return removed


def remove_stale(target: str | os.PathLike) -> list[Path]:
    """Remove temporary siblings of ``target`` left by runs that were killed; return what was removed."""
    target = Path(target)
    return remove_stale_siblings(target.parent, re.escape(target.name))


def _name_the_target(exc: BaseException, tmp: Path, target: Path) -> None:
    """Messages name the user's path, never the temporary one it was being written through."""
    old, new = str(tmp), str(target)
    if isinstance(exc, OSError):
        for attr in ("filename", "filename2"):
            value = getattr(exc, attr, None)
            if isinstance(value, str | os.PathLike) and str(value).startswith(old):
                setattr(exc, attr, new + str(value)[len(old) :])
    if isinstance(exc, SpklipError) and any(old in str(a) for a in exc.args):
        exc.args = tuple(str(a).replace(old, new) if isinstance(a, str) else a for a in exc.args)


def _prefix(target: Path) -> str:
    return f".{target.name}.{os.getpid()}."


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; rename it onto ``path`` on success.

    The caller writes the whole file to the yielded path. On any exception the
    temporary file is removed and ``path`` is left exactly as it was.
    """
    target = check_file_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    fd, tmp = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual mode
        os.replace(tmp_path, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _name_the_target(exc, tmp_path, target)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; move it onto ``path`` on success.

    With ``overwrite`` an existing ``path`` is replaced only after the new
    content is complete; without it the caller must have checked that ``path``
    does not exist (see :func:`check_new_dir`).
    """
    target = check_output_place(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual mode
        if target.exists() and overwrite:
            old = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".old", dir=target.parent))
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            if target.exists():
                target.rmdir()  # only an empty directory may be replaced silently
            os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_the_target(exc, tmp, target)
        raise


@functools.cache
def source_package_dirs() -> tuple[Path, ...]:
    """The folders of this project's own Python packages (outputs must never land in them); found
    without importing them (importing would load torch and friends for every write)."""
    import importlib.util

    dirs = []
    for name in (
        "spklip_energy",
        "fsve",
        "convert",
        "energy",
        "export",
        "reports",
    ):
        with contextlib.suppress(ImportError, ValueError):
            spec = importlib.util.find_spec(name)
            for loc in (spec.submodule_search_locations or []) if spec else []:
                dirs.append(Path(loc).resolve())
    return tuple(dirs)


def check_output_place(path: str | os.PathLike) -> Path:
    """Refuse an output path inside one of the project's source packages."""
    target = Path(path)
    resolved = target.resolve()
    for pkg in source_package_dirs():
        if resolved == pkg or pkg in resolved.parents:
            raise ConfigError(f"{target}: is inside the source package {pkg}; choose an output folder outside it")
    return target


def check_file_target(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """Refuse a file output that would replace something else: a folder, a file of another kind than
    its suffix says (a PNG written over ``manifest.jsonl``), or, with ``suffix``, a name without it."""
    target = check_output_place(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise ConfigError(f"{target}: this output is a {suffix} file; give it a name ending in {suffix}")
    if target.is_dir():
        raise ConfigError(f"{target}: is a folder, expected a file name")
    magic = FILE_KINDS.get(target.suffix.lower())
    if magic and target.is_file():
        with open(target, "rb") as fh:
            if fh.read(len(magic)) != magic:
                raise ConfigError(
                    f"{target}: exists and is not a {target.suffix.lower()} file this tool wrote; "
                    "refusing to replace it"
                )
    return target


def check_output_dir(path: str | os.PathLike, known: frozenset[str]) -> Path:
    """An output folder may be absent, empty, or hold only what this verb writes (``known`` and the
    marker file): then it is replaced whole. Anything else in it (a user's notes, the input checkpoint)
    is never deleted: the folder is refused, naming the first such entry."""
    target = check_output_place(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target}: exists and is not a folder")
    if target.is_dir():
        foreign = sorted(p.name for p in target.iterdir() if p.name not in known | {OUTPUT_MARKER})
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise ConfigError(
                f"{target}: folder holds {foreign[0]!r}{more}, which this command did not write and "
                "would replace; move it or choose another output folder"
            )
    return target


@contextlib.contextmanager
def replace_output_dir(path: str | os.PathLike, verb: str, known: frozenset[str]) -> Iterator[Path]:
    """Build an output folder in a temporary sibling and swap it whole onto ``path`` on success.

    ``path`` must pass :func:`check_output_dir`; on success it holds exactly what
    the caller wrote plus the marker file; on failure it is left as it was.
    """
    target = check_output_dir(path, known)
    with atomic_dir(target, overwrite=True) as tmp:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text(json.dumps({"written_by": "spklip-energy", "verb": verb}) + "\n")
