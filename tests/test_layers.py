"""The package's folders are its layers, and imports only point down (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "warehouse"

# layer -> the layers it may import (itself included); a module's layer is its first folder
FOUNDATION = {"errors", "config", "resources", "faults"}
ALLOWED: dict[str, set[str]] = {
    "foundation": {"foundation"},
    "project": {"foundation", "project"},
    "runtime": {"foundation", "project", "runtime"},
    "customers": {"foundation", "project", "runtime", "customers"},
    "forecasting": {"foundation", "project", "runtime", "customers", "forecasting"},
    "interfaces": {"foundation", "project", "runtime", "customers", "forecasting", "interfaces"},
}
# the public face (warehouse/__init__, __main__, python_model) sits above every layer
FACADE = {"__init__", "__main__", "python_model"}
# the one name every layer may take from the facade (it has no imports of its own)
VERSION = "warehouse.__version__"
# third-party engines a layer must not reach for: parsing stays free of the database
FORBIDDEN_LIBRARIES = {"project": {"duckdb", "pyarrow", "lightgbm", "statsforecast"}}


def layer_of(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "warehouse", module
    if len(parts) == 1 or parts[1] in FACADE or module == VERSION:
        return "facade"
    return "foundation" if parts[1] in FOUNDATION else parts[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module the file imports, at any depth (function-level imports count too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "warehouse":  # `from warehouse import config`: the names are modules
                found += [(node.lineno, f"warehouse.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def violations(path: Path) -> list[str]:
    own = layer_of(module_name(path))
    if own == "facade":
        return []
    bad = []
    for line, target in imports(path):
        top = target.split(".")[0]
        where = f"{path.relative_to(PACKAGE.parent)}:{line}"
        if target == "warehouse" and own != "interfaces":
            bad.append(f"{where}: {own} imports the public API (only interfaces/ may)")
        elif top == "warehouse" and target != "warehouse":
            other = layer_of(target)
            if other == "facade" and target != VERSION:
                bad.append(f"{where}: {own} imports the public facade {target}")
            elif other != "facade" and other not in ALLOWED[own]:
                bad.append(f"{where}: {own} imports {target} ({other} is above it)")
        if top in FORBIDDEN_LIBRARIES.get(own, set()):
            bad.append(f"{where}: {own} imports {top}")
    return bad


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer() -> None:
    for path in MODULES:
        assert layer_of(module_name(path)) in {*ALLOWED, "facade"}, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    assert violations(path) == []


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The rule can fail: a parsing module that reaches for the engine or the CLI is caught."""
    fake = PACKAGE / "project" / "_layer_probe.py"
    try:
        fake.write_text(
            "import duckdb\n"
            "def f():\n    from warehouse.runtime import build\n"
            "from warehouse import interfaces\n"
            "import warehouse\n"
        )
        found = violations(fake)
    finally:
        fake.unlink()
    assert len(found) == 4, found
    assert "project/_layer_probe.py:1: project imports duckdb" in found[0]


def test_no_subpackage_shadows_the_public_api() -> None:
    """`import warehouse.forecast...` would replace the function `warehouse.forecast` with the
    subpackage the moment anything imports it: the names must differ."""
    import warehouse

    folders = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or p.is_dir()}
    assert not folders & set(warehouse.__all__)
