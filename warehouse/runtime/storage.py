"""Where version data lives on disk, and clearing what no version lists."""

from __future__ import annotations

import uuid
from pathlib import Path

from warehouse import faults
from warehouse.config import Settings
from warehouse.project.model import Model
from warehouse.runtime.state import State


def versions_root(settings: Settings) -> Path:
    return settings.warehouse / "versions"


def version_dir(settings: Settings, model: Model, fingerprint: str) -> Path:
    return versions_root(settings) / model.schema / model.table / fingerprint


def new_segment_path(settings: Settings, model: Model, fingerprint: str) -> Path:
    """A fresh file name: segments are immutable, so a rebuild never overwrites one."""
    return version_dir(settings, model, fingerprint) / f"{uuid.uuid4().hex[:12]}.parquet"


def _unfinished_marker(settings: Settings) -> Path:
    return settings.warehouse / "versions" / ".unfinished"


def writing_versions(settings: Settings) -> None:
    """Say that version files are about to be written: until `versions_finished`, a killed or
    failed writer may leave files that no version lists. Call under the writer lock."""
    marker = _unfinished_marker(settings)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()


def versions_finished(settings: Settings) -> None:
    """Every file the writer wrote is listed by a recorded version (it finished cleanly)."""
    _unfinished_marker(settings).unlink(missing_ok=True)


def sweep_if_unfinished(settings: Settings, state: State) -> tuple[int, int]:
    """Remove orphan files when the last writer did not finish cleanly. A sweep walks every
    version file, which grows with the warehouse's history: builds that follow clean ones
    skip it (a warehouse from before the marker existed is swept once)."""
    root = versions_root(settings)
    if root.exists() and (_unfinished_marker(settings).exists() or not (root / ".swept").exists()):
        found = remove_orphans(settings, state)
        (root / ".swept").touch()
        versions_finished(settings)
        return found
    return 0, 0


def orphan_files(settings: Settings, state: State) -> list[Path]:
    """Parquet files under versions/ that no recorded version lists: partial writes of killed
    builds and versions that failed their audits."""
    root = versions_root(settings)
    if not root.exists():
        return []
    referenced = {Path(f).resolve() for v in state.versions() for f in v.files}
    return [p for p in root.rglob("*.parquet") if p.resolve() not in referenced]


def remove_orphans(settings: Settings, state: State) -> tuple[int, int]:
    """Delete the orphan files. Call only while holding the writer lock, when no build is
    writing. Returns (files, bytes) removed."""
    root = versions_root(settings)
    if not root.exists():
        return 0, 0
    files = freed = 0
    for path in orphan_files(settings, state):
        freed += path.stat().st_size
        path.unlink()
        files += 1
        faults.point("gc_delete")
    for folder in sorted(root.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return files, freed
