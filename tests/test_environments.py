"""Rollback, garbage collection, catalog repair and the writer lock."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import edit, published, rows

from warehouse.config import Settings
from warehouse.errors import BusyError, ModelError, UsageError
from warehouse.runtime.build import build
from warehouse.runtime.catalog import pointer_path
from warehouse.runtime.environments import gc, rollback


def test_rollback_twice_walks_back_through_publishes(project: Settings) -> None:
    build(project)
    first = published(project)
    edit(project, "sql/staging/products.sql", lambda s: s + "  and product_id <> '1'\n")
    build(project)
    second = published(project)
    edit(project, "sql/staging/products.sql", lambda s: s.replace("<> '1'", "<> '2'"))
    build(project)
    rollback(project)
    assert published(project) == second
    rollback(project)
    assert published(project) == first
    with pytest.raises(UsageError, match="no earlier publish"):
        rollback(project)


def test_rollback_of_an_environment_never_built(project: Settings) -> None:
    with pytest.raises(UsageError, match="never been published"):
        rollback(project.with_overrides(env="dev"))


def test_gc_keeps_what_environments_serve_and_removes_orphans(project: Settings) -> None:
    build(project)
    stray = project.warehouse / "versions" / "staging" / "orders" / "dead" / "x.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"partial write of a killed build")
    before = published(project)
    result = gc(project, retention_days=0)
    assert result.files_deleted == 1 and not stray.exists() and not stray.parent.exists()
    assert result.versions_dropped == 0
    assert published(project) == before


def test_crash_between_state_and_pointer_is_repaired(project: Settings) -> None:
    build(project)
    before = published(project)
    pointer = pointer_path(project, "prod")
    pointer.unlink()  # as if the process died before swapping the pointer
    result = build(project)
    assert result.status == "noop"
    assert published(project) == before


def test_view_models_are_views_in_the_catalog(project: Settings) -> None:
    path = project.sql_dir / "marts" / "weekly.sql"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "-- kind: view\n-- audits: row_count(min=1)\n"
        "select product_id, date_trunc('week', period) as week, sum(units) as units\n"
        "from features.demand group by all"
    )
    build(project)
    kinds = rows(
        project,
        "SELECT count(*) FROM duckdb_views() WHERE schema_name = 'marts' AND view_name = 'weekly'",
    )
    assert kinds == [(1,)]
    total = rows(project, "SELECT sum(units) FROM marts.weekly")
    assert total == rows(project, "SELECT sum(units) FROM features.demand")


def test_python_model_with_wrong_return_type(project: Settings) -> None:
    (project.pipeline_dir / "bad.py").write_text(
        "from warehouse.python_model import model\n"
        "@model('marts.bad', inputs=['staging.orders'])\n"
        "def bad(orders):\n    return [1, 2]\n"
    )
    with pytest.raises(ModelError, match="returned list, expected a Polars DataFrame") as failure:
        build(project)
    assert failure.value.line == 2  # the @model line


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("locked", flush=True)
time.sleep(60)
"""


def test_second_writer_gets_busy_error_and_stale_lock_recovers(project: Settings) -> None:
    project.warehouse.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(project.warehouse / ".lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(BusyError) as failure:
            build(project)
        assert failure.value.pid == holder.pid
        assert f"warehouse is busy (pid {holder.pid}" in str(failure.value)
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    time.sleep(0.05)
    assert build(project).status == "ok"  # the kernel released the dead holder's lock


def test_state_marks_builds_of_killed_processes_abandoned(project: Settings) -> None:
    from warehouse.runtime.state import open_state

    state = open_state(project)
    state.start_build("killed-build", "build", "prod", None, 999999)
    state.close()
    build(project)
    state = open_state(project)
    try:
        assert state.build_status("killed-build") == "abandoned"
    finally:
        state.close()


def test_sources_missing_is_a_clear_error(project: Settings, tmp_path: Path) -> None:
    from warehouse.errors import ConfigError

    missing = project.with_overrides(sources=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"sources directory .*nowhere .* does not exist"):
        build(missing)
