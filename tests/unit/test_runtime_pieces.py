"""Plan, catalog, storage, lock and lineage on their own: small projects and hand-made
versions, no full build of the example project."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from warehouse.config import Settings, load_settings
from warehouse.errors import BusyError, ModelError, UsageError
from warehouse.project.loader import load_project
from warehouse.runtime import catalog, storage
from warehouse.runtime.lineage import column_lineage, lineage_schema, table_lineage
from warehouse.runtime.lock import writer_lock
from warehouse.runtime.plan import Action, Change, make_plan
from warehouse.runtime.state import Segment, State, Version, open_state


def small_project(root: Path, models: dict[str, str]) -> Settings:
    """sql/<schema>/<table>.sql files and an empty sources folder: nothing reads a source."""
    (root / "sources").mkdir(parents=True)
    (root / "wh.toml").write_text('[project]\nsources = "sources"\nwarehouse = "wh"\n')
    for name, sql in models.items():
        schema, table = name.split(".")
        path = root / "sql" / schema / f"{table}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return load_settings(root)


def parquet(path: Path, sql: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    duckdb.sql(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    return str(path)


def record(state: State, name: str, fingerprint: str, file: str, rows: int) -> Version:
    version = Version(
        fingerprint=fingerprint,
        model=name,
        kind="full",
        data_hash="d-" + fingerprint,
        logic_fp="l",
        query="select 1",
        segments=(Segment(file, rows),),
        columns=(("x", "INTEGER"),),
        row_count=rows,
        created_at=time.time(),
        build_id="b",
    )
    state.add_version(version)
    return version


MODELS = {
    "staging.numbers": "select 1 as x union all select 2",
    "marts.doubled": "select x * 2 as y, x from staging.numbers",
}


def test_plan_new_then_reuse_then_changed_and_indirect(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    state = open_state(settings)
    try:
        plan = make_plan(load_project(settings), state, "prod")
        assert [(p.model.name, p.change, p.action) for p in plan.models] == [
            ("staging.numbers", Change.NEW, Action.FULL),
            ("marts.doubled", Change.NEW, Action.FULL),
        ]
        assert plan.publishes_something and plan.to_json()["compute"] == [
            "staging.numbers",
            "marts.doubled",
        ]
        for item in plan.models:  # as if built: each version recorded and published
            record(state, item.model.name, item.fingerprint, "f.parquet", 2)
            state.db.execute(
                "UPDATE versions SET data_hash = ? WHERE fingerprint = ?",
                (item.model.data_hash(), item.fingerprint),
            )
        state.publish("prod", plan.mapping, "build", "b", None)
        again = make_plan(load_project(settings), state, "prod")
        assert {p.action for p in again.models} == {Action.KEEP}
        assert not again.publishes_something and again.to_compute == []
        dev = make_plan(load_project(settings), state, "dev")  # same versions: reused
        assert {p.action for p in dev.models} == {Action.REUSE} and dev.to_compute == []
        (tmp_path / "sql/staging/numbers.sql").write_text("select 3 as x")
        edited = make_plan(load_project(settings), state, "prod")
        changes = {p.model.name: (p.change, p.action) for p in edited.models}
        assert changes == {
            "staging.numbers": (Change.CHANGED, Action.FULL),
            "marts.doubled": (Change.INDIRECT, Action.FULL),
        }
        assert "select 3 as x" in edited.models[0].diff
        with pytest.raises(UsageError, match="not selected and env 'qa' has no version"):
            make_plan(load_project(settings), state, "qa", ["marts.doubled"])
    finally:
        state.close()


def test_catalog_publishes_views_swaps_the_pointer_and_repairs(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    state = open_state(settings)
    try:
        one = record(
            state, "staging.numbers", "fp1", parquet(tmp_path / "1.parquet", "select 1 as x"), 1
        )
        two = record(
            state, "staging.numbers", "fp2", parquet(tmp_path / "2.parquet", "select 2 as x"), 1
        )
        first = state.publish("prod", {"staging.numbers": one.fingerprint}, "build", "b", None)
        catalog.publish_catalog(settings, state, first)
        assert catalog.shows_publish(settings, "prod", first.id)
        con = catalog.open_published(settings)
        assert con.execute("select x from staging.numbers").fetchall() == [(1,)]
        second = state.publish("prod", {"staging.numbers": two.fingerprint}, "build", "c", first.id)
        # a crash between the state commit and the catalog swap: readers still see publish 1
        assert not catalog.shows_publish(settings, "prod", second.id)
        assert con.execute("select x from staging.numbers").fetchall() == [(1,)]
        assert catalog.repair(settings, state) == ["prod"]
        assert catalog.shows_publish(settings, "prod", second.id)
        assert con.execute("select x from staging.numbers").fetchall() == [(1,)]  # its snapshot
        con.close()
        fresh = catalog.open_published(settings)
        assert fresh.execute("select x from staging.numbers").fetchall() == [(2,)]
        fresh.close()
        assert catalog.repair(settings, state) == []
    finally:
        state.close()


def _catalog_contents(path: Path) -> tuple[list[tuple[str, str, str]], list[tuple[object, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        views = con.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE NOT internal "
            "UNION ALL SELECT schema_name, '(schema)', '' FROM duckdb_schemas() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY 1, 2"
        ).fetchall()
        meta = con.execute(
            "SELECT model, fingerprint, kind, row_count, env, publish_id FROM wh_meta.models "
            "ORDER BY model"
        ).fetchall()
        return views, meta
    finally:
        con.close()


def test_a_publish_patches_the_shown_catalog_into_what_a_fresh_write_makes(
    tmp_path: Path,
) -> None:
    settings = small_project(tmp_path, MODELS)
    state = open_state(settings)
    try:
        one = record(
            state, "staging.numbers", "fp1", parquet(tmp_path / "1.parquet", "select 1 as x"), 1
        )
        two = record(
            state, "staging.numbers", "fp2", parquet(tmp_path / "2.parquet", "select 2 as x"), 1
        )
        gone = record(
            state, "archive.gone", "fp3", parquet(tmp_path / "3.parquet", "select 3 as x"), 1
        )
        kept = record(
            state, "marts.kept", "fp4", parquet(tmp_path / "4.parquet", "select 4 as x"), 1
        )
        first = state.publish(
            "prod",
            {"staging.numbers": "fp1", "archive.gone": "fp3", "marts.kept": "fp4"},
            "build",
            "b",
            None,
        )
        catalog.publish_catalog(settings, state, first)
        second = state.publish(
            "prod", {"staging.numbers": "fp2", "marts.kept": "fp4"}, "build", "c", first.id
        )
        catalog.publish_catalog(settings, state, second)  # a copy of the first, patched
        patched = _catalog_contents(catalog.catalog_file(settings, second))
        versions = {v.fingerprint: v for v in (one, two, gone, kept)}
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        elsewhere = settings.with_overrides(env="qa")
        written = catalog.write_catalog(elsewhere, second, versions)  # qa shows nothing: fresh
        assert _catalog_contents(written) == patched
        views, meta = patched
        assert [(s, v) for s, v, _ in views] == [  # the schema of the model gone is gone
            ("marts", "(schema)"),
            ("marts", "kept"),
            ("staging", "(schema)"),
            ("staging", "numbers"),
            ("wh_meta", "(schema)"),
        ]
        assert [(m, fp, n) for m, fp, _, n, _, _ in meta] == [
            ("marts.kept", "fp4", 1),
            ("staging.numbers", "fp2", 1),
        ]
        with catalog.open_published(settings) as con:
            assert con.execute("select x from staging.numbers").fetchall() == [(2,)]
        # a shown catalog that cannot be read is not patched: the file is written afresh
        third = state.publish("prod", {"staging.numbers": "fp1"}, "build", "d", second.id)
        catalog.catalog_file(settings, second).write_bytes(b"not a database")
        catalog.publish_catalog(settings, state, third)
        views, meta = _catalog_contents(catalog.catalog_file(settings, third))
        assert [(s, v) for s, v, _ in views] == [
            ("staging", "(schema)"),
            ("staging", "numbers"),
            ("wh_meta", "(schema)"),
        ]
        assert len(meta) == 1
    finally:
        state.close()


def test_orphans_are_swept_after_an_unfinished_write_only(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    model = load_project(settings).models["staging.numbers"]
    state = open_state(settings)
    try:
        first = parquet(storage.new_segment_path(settings, model, "fp1"), "select 1 as x")
        record(state, model.name, "fp1", first, 1)
        stray = storage.new_segment_path(settings, model, "dead")
        parquet(stray, "select 2 as x")
        # a warehouse never swept (made before the marker existed) is swept once
        assert storage.sweep_if_unfinished(settings, state)[0] == 1 and not stray.exists()
        # after writers that finished, nothing is walked: a planted file stays (wh gc finds it)
        storage.writing_versions(settings)
        storage.versions_finished(settings)
        parquet(stray, "select 2 as x")
        assert storage.sweep_if_unfinished(settings, state) == (0, 0) and stray.exists()
        # a writer that did not finish (killed, failed audit) leaves the marker: swept
        storage.writing_versions(settings)
        assert storage.sweep_if_unfinished(settings, state)[0] == 1 and not stray.exists()
        assert storage.sweep_if_unfinished(settings, state) == (0, 0)
        assert Path(first).exists()
    finally:
        state.close()


def test_storage_finds_and_removes_only_unlisted_files(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    project = load_project(settings)
    model = project.models["staging.numbers"]
    kept = storage.new_segment_path(settings, model, "fp1")
    orphan = storage.new_segment_path(settings, model, "fp2")
    assert kept != storage.new_segment_path(settings, model, "fp1")  # never reused
    state = open_state(settings)
    try:
        record(state, model.name, "fp1", parquet(kept, "select 1 as x"), 1)
        parquet(orphan, "select 2 as x")
        assert storage.orphan_files(settings, state) == [orphan]
        files, freed = storage.remove_orphans(settings, state)
        assert (files, freed > 0) == (1, True)
        assert kept.exists() and not orphan.exists() and not orphan.parent.exists()
    finally:
        state.close()


def test_one_writer_at_a_time_and_a_dead_holder_releases(tmp_path: Path) -> None:
    with writer_lock(tmp_path):
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from warehouse.runtime.lock import "
                "writer_lock\ntry:\n  with writer_lock(Path(sys.argv[1])): print('got it')\n"
                "except Exception as e: print(type(e).__name__, e.pid)",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert holder.stdout.split() == ["BusyError", str(os.getpid())], holder.stderr
    killed = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from warehouse.runtime.lock import "
            "writer_lock\nwith writer_lock(Path(sys.argv[1])):\n  print('held', flush=True)\n"
            "  time.sleep(60)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert killed.stdout is not None and killed.stdout.readline().strip() == "held"
    with pytest.raises(BusyError), writer_lock(tmp_path):
        pass
    killed.kill()
    killed.wait()
    killed.stdout.close()
    with writer_lock(tmp_path):  # the kernel released the dead holder's lock
        pass


def test_table_and_column_lineage(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    project = load_project(settings)
    assert table_lineage(project, "marts.doubled") == (["staging.numbers"], [])
    assert table_lineage(project, "staging.numbers") == ([], ["marts.doubled"])
    with pytest.raises(UsageError, match="unknown model"):
        table_lineage(project, "marts.nope")
    state = open_state(settings)
    try:
        schema = lineage_schema(project, state, "prod")
    finally:
        state.close()
    lines = column_lineage(project, "marts.doubled", "y", schema).render()
    assert any("staging.numbers" in line and "x" in line for line in lines), lines


def test_a_python_model_cannot_read_arrived_files_or_this(tmp_path: Path) -> None:
    settings = small_project(tmp_path, MODELS)
    pipeline = tmp_path / "pipeline"
    pipeline.mkdir()
    (pipeline / "late.py").write_text(
        "import polars as pl\n"
        "from warehouse.python_model import model\n"
        "@model('marts.late', inputs=['arrived.orders'])\n"
        "def late(orders: pl.LazyFrame) -> pl.LazyFrame:\n"
        "    return orders\n"
    )
    with pytest.raises(ModelError, match=r"a Python model cannot read 'arrived\.orders'"):
        load_project(settings)
