"""The layout docs/architecture.md draws: folders are import packages, and imports point one way."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("spklip_energy", "spikedata", "spklip", "fsve", "convert", "energy", "export", "reports")
PLUMBING = (
    "errors",
    "options",
    "limits",
    "atomic",
    "progress",
    "checkpoint",
    "stats",
    "distributed",
    "precision",
    "recording",
)
# package -> the project packages it may import (anywhere in a module, lazily too)
ALLOWED = {
    "spikedata": {"spklip_energy"},
    "energy": {"spklip_energy"},
    "spklip": {"spklip_energy", "spikedata", "energy", "fsve", "convert", "reports"},
    "fsve": {"spklip_energy", "spklip", "energy"},
    "convert": {"spklip_energy", "spklip", "spikedata", "energy", "reports", "fsve"},
    "export": {"spklip_energy", "fsve", "spklip", "spikedata", "energy"},
    "reports": {"spklip_energy", "spklip", "energy"},
}


def _imports(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports; relative ones stay in the package)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out & set(PACKAGES)


def test_pyproject_lists_every_code_folder_under_its_own_name():
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "package-dir" not in cfg, "a package-dir mapping makes the import tree differ from the folder tree"
    listed = set(cfg["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in PACKAGES
        for p in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert listed == on_disk


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package):
    bad = {
        str(f.relative_to(REPO)): sorted(_imports(f) - ALLOWED[package] - {package})
        for f in (REPO / package).rglob("*.py")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_plumbing_imports_no_domain_package():
    for name in PLUMBING:
        assert _imports(REPO / "spklip_energy" / f"{name}.py") <= {"spklip_energy"}, name


def test_relative_imports_stay_inside_their_package():
    for top in PACKAGES:
        for f in (REPO / top).rglob("*.py"):
            depth = len(f.relative_to(REPO / top).parts) - 1  # folders below the package root
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    assert node.level - 1 <= depth, f"{f.relative_to(REPO)}: {'.' * node.level}{node.module}"
