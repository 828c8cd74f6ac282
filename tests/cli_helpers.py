"""Helpers of the command-line tests: run the CLI, and check the bad-input promise.

The promise (README, "What is guaranteed"): a bad input gives exit status 2, one line on
stderr that starts with ``spklip-energy: error:`` and names the value or file, no
traceback, and nothing half-written.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from spklip_energy.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """Run the CLI in-process; return (status, stdout, stderr)."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors and --help
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def run_sub(*argv, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m spklip_energy.cli`` in a fresh interpreter (``timeout``: a guard against hangs, not a
    speed target)."""
    return subprocess.run(
        [sys.executable, "-m", "spklip_energy.cli", *[str(a) for a in argv]],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=timeout,
    )


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (relative path -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def check_user_error(rc: int, err: str, *needles: str) -> str:
    """Exit status 2 and one stderr line, prefixed, holding every needle (numbers may carry thousands
    separators), without a traceback; return the line."""
    assert rc == 2, f"expected exit status 2, found {rc} (stderr: {err!r})"
    assert "Traceback" not in err, f"expected no traceback, found:\n{err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one non-empty stderr line, found {lines!r}"
    assert lines[0].startswith("spklip-energy: error:"), f"expected the error prefix, found {lines[0]!r}"
    for needle in needles:
        assert needle in lines[0] or needle in lines[0].replace(",", ""), (
            f"expected {needle!r} in the error line, found {lines[0]!r}"
        )
    return lines[0]


def check_no_leftovers(folder: Path, *absent: Path) -> None:
    """None of ``absent`` exists and no temporary file or folder is left in ``folder``."""
    for p in absent:
        assert not p.exists(), f"expected no {p.name} after a failed command, found one"
    tmp = [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".old"))]
    assert not tmp, f"expected no temporary files, found {tmp}"
