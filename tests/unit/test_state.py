"""runtime/state.py on its own: the one door to state.db."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from warehouse.config import Settings, load_settings
from warehouse.errors import StateError
from warehouse.runtime.state import (
    Segment,
    Version,
    open_read_only,
    open_state,
    state_path,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "wh.toml").write_text('[project]\nwarehouse = "wh"\n')
    return load_settings(tmp_path)


def version(
    fingerprint: str, model: str = "a.b", files: tuple[str, ...] = ("x.parquet",)
) -> Version:
    return Version(
        fingerprint=fingerprint,
        model=model,
        kind="full",
        data_hash="d",
        logic_fp="l",
        query="select 1",
        segments=tuple(Segment(f, 1, "2024-01-01", "2024-01-31") for f in files),
        columns=(("x", "INTEGER"),),
        row_count=len(files),
        created_at=time.time(),
        build_id="b1",
    )


def test_versions_and_publishes_round_trip(settings: Settings) -> None:
    state = open_state(settings)
    try:
        state.add_version(version("f1"))
        stored = state.get_version("f1")
        assert stored is not None and stored.segments == version("f1").segments
        assert (stored.columns, stored.row_count) == ((("x", "INTEGER"),), 1)
        first = state.publish("prod", {"a.b": "f1"}, "build", "b1", None)
        second = state.publish("prod", {"a.b": "f1"}, "rollback", None, first.id)
        assert state.head("prod") == second and state.heads() == {"prod": second}
        assert [p["id"] for p in state.recent_publishes(5)] == [second.id, first.id]
        assert state.recent_publishes(5)[0]["models"] == 1
        assert state.head("dev") is None
    finally:
        state.close()


def test_runs_and_audits_answer_named_questions(settings: Settings) -> None:
    state = open_state(settings)
    try:
        state.start_build("b1", "build", "prod", None, 4242)
        assert state.running_builds() == [("b1", 4242)]
        state.record_audit("b1", "a.b", "f1", "not_null(x)", 0, "select 0")
        state.record_audit("b1", "a.b", "f1", "unique(x)", 3, "select 3")
        state.finish_build("b1", "ok", 1, 2, 10)
        assert state.running_builds() == [] and state.build_status("b1") == "ok"
        assert state.audit_results("f1") == [("not_null(x)", True, 0), ("unique(x)", False, 3)]
        (run,) = state.recent_builds(5)
        assert (run["build_id"], run["built"], run["reused"], run["rows"]) == ("b1", 1, 2, 10)
        state.start_build("b2", "build", "prod", None, 1)
        assert state.abandon_running_builds() == 1 and state.build_status("b2") == "abandoned"
    finally:
        state.close()


def test_the_uptodate_record_holds_only_while_the_head_is_the_same(settings: Settings) -> None:
    state = open_state(settings)
    try:
        state.publish("prod", {}, "build", "b1", None)
        state.remember_uptodate("prod", "digest", 3)
        assert state.uptodate("prod") == ("digest", 1, 3)
        state.publish("prod", {}, "rollback", None, 1)  # the head moved on
        assert state.uptodate("prod") is None
        state.remember_uptodate("prod", "digest2", 3)
        state.start_build("b3", "build", "prod", None, 1)  # a build is running
        assert state.uptodate("prod") is None
        state.finish_build("b3", "ok")
        state.remember_uptodate("prod", None, 3)  # forgotten
        assert state.uptodate("prod") is None
    finally:
        state.close()


def test_read_only_opening_creates_and_migrates_nothing(settings: Settings) -> None:
    assert open_read_only(settings) is None  # nothing built: no file made either
    assert not state_path(settings.warehouse).exists()
    path = state_path(settings.warehouse)
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)  # a warehouse from before `source_files` and `uptodate`
    old.execute("CREATE TABLE builds (build_id TEXT, status TEXT, pid INTEGER)")
    old.commit()
    old.close()
    before = path.read_bytes()
    state = open_read_only(settings)
    assert state is not None
    try:
        assert state.running_builds() == []
        with pytest.raises(sqlite3.Error):  # asks, never creates the missing table
            state.uptodate("prod")
    finally:
        state.close()
    assert path.read_bytes() == before


def test_an_unwritable_state_is_a_state_error(settings: Settings) -> None:
    path = state_path(settings.warehouse)
    path.mkdir(parents=True)  # a folder where the database file should be
    with pytest.raises(StateError, match="cannot open"):
        open_state(settings)


def test_only_state_py_speaks_sql_to_state_db() -> None:
    """The door is the only door: no other module names the file or its tables in SQL."""
    package = Path(__file__).resolve().parents[2] / "warehouse"
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "state.py":
            continue
        text = path.read_text()
        for table in ("FROM builds", "FROM publishes", "FROM audit_results", "FROM versions"):
            if table in text:
                offenders.append(f"{path.relative_to(package)}: {table}")
        # the audit log is a SQLite file of its own (audit/audit.db), opened by its module
        if '"state.db"' in text or ("sqlite3.connect" in text and path.name != "audit_log.py"):
            offenders.append(f"{path.relative_to(package)}: opens state.db")
    assert offenders == []
