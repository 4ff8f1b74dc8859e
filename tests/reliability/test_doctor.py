"""`wh doctor` finds what is wrong and says how to fix it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import served_version

from warehouse.config import Settings
from warehouse.interfaces.doctor import diagnose
from warehouse.runtime.build import build
from warehouse.runtime.storage import versions_root


def _levels(settings: Settings) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {"ok": [], "warning": [], "error": []}
    for f in diagnose(settings):
        found[f.level].append(f"{f.area}: {f.message} | {f.fix}")
    return found


def test_healthy_warehouse(project: Settings) -> None:
    build(project)
    found = _levels(project)
    assert not found["error"] and not found["warning"], found
    done = subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(project.project_dir), "doctor"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "0 error(s), 0 warning(s)" in done.stdout, done.stdout


def test_missing_data_orphans_and_broken_sources_are_reported(project: Settings) -> None:
    build(project)
    Path(served_version(project, "features.demand").files[0]).unlink()
    orphan = versions_root(project) / "marts" / "stray" / "x.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"PAR1")
    (project.sources / "products.parquet").write_bytes(b"not parquet")
    found = _levels(project)
    assert any("features.demand" in e and "--full-refresh" in e for e in found["error"]), found
    assert any("does not resolve" in e for e in found["error"]), found
    assert any("products.parquet" in e for e in found["error"]), found
    assert any("1 Parquet file(s)" in w and "wh gc" in w for w in found["warning"]), found
    done = subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(project.project_dir), "doctor"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
