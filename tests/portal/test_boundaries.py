"""The portal depends only inward: no module of it imports a channel adapter or the imaging package."""

from __future__ import annotations

import ast
from pathlib import Path

import portal

FORBIDDEN = {"channels", "imaging"}


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages `path` imports (absolute imports; the portal uses no relative ones to leave it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_portal_imports_no_channels_or_imaging() -> None:
    """Every `portal/*.py` module reaches channels and imaging only through ports wired by `ava_bot`."""
    root = Path(portal.__file__).parent
    modules = sorted(root.glob("*.py"))
    assert len(modules) > 5, "the portal's modules were not found"
    offenders = {m.name: sorted(_imported_packages(m) & FORBIDDEN) for m in modules}
    assert {name: bad for name, bad in offenders.items() if bad} == {}


ADAPTERS = ("channels", "imaging", "billing", "portal")


def _package_imports(package: str) -> set[str]:
    root = Path(__file__).resolve().parents[2] / package
    modules = sorted(root.rglob("*.py"))
    assert modules, f"no modules found for {package}"
    return set().union(*(_imported_packages(m) for m in modules))


def test_dependencies_point_inward() -> None:
    """core imports no adapter, and no adapter imports another (they meet only in `ava_bot`, through ports)."""
    inner = {"core", *ADAPTERS, "ava_bot"}
    found = {package: sorted(_package_imports(package) & inner - {package, "core"}) for package in ADAPTERS}
    found["core"] = sorted(_package_imports("core") & inner - {"core"})
    assert {name: bad for name, bad in found.items() if bad} == {}
