"""`wh serve` as a real server on a loopback port, driven by real clients: psql, psycopg,
SQLAlchemy, and a raw socket that never reads."""

from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from conftest import accepting, copy_project, free_port, rows, running, tree_digest
from sqlalchemy import create_engine, inspect

from warehouse.config import Settings, load_settings
from warehouse.runtime.build import build

PSQL = shutil.which("psql")


def _dsn(port: int, password: str | None = None) -> str:
    auth = f" password={password}" if password else ""
    return f"host=127.0.0.1 port={port} user=wh dbname=prod connect_timeout=5{auth}"


@pytest.fixture
def served(wh_server: tuple[Settings, int]) -> tuple[Settings, int]:
    """The worker's shared read-only `wh serve` (conftest.wh_server)."""
    return wh_server


def test_psql_lists_describes_and_selects(served: tuple[Settings, int]) -> None:
    settings, port = served
    if PSQL is None:
        if os.environ.get("CI"):
            pytest.fail("psql is missing in CI: .ci/run installs postgresql-client")
        pytest.skip("psql is not installed (Debian package 'postgresql-client')")
    result = subprocess.run(
        [PSQL, "-X", "-h", "127.0.0.1", "-p", str(port), "-U", "wh", "-d", "prod",
         "-v", "ON_ERROR_STOP=1",
         "-c", r"\dt forecast.*",
         "-c", r"\d forecast.demand_forecast",
         "-c", "select count(*) as n from forecast.demand_forecast"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for table in ("demand_forecast", "forecast_metrics", "model_runs", "demand_backtest"):
        assert f"forecast | {table}" in out.replace("  ", " ").replace("  ", " ")
    assert 'Table "forecast.demand_forecast"' in out
    assert "forecast_date" in out and "double precision" in out
    count = rows(settings, "SELECT count(*) FROM forecast.demand_forecast")[0][0]
    assert f"\n {count}\n" in out


def test_psycopg_values_match_duckdb(served: tuple[Settings, int]) -> None:
    settings, port = served
    with psycopg.connect(_dsn(port), autocommit=True) as conn:
        literal = conn.execute(
            "select %s::varchar as s, %s::date as d, %s::decimal(10,2) as n, null::int as z, "
            "%s as i, %s as f, 'it''s ü ✓' as q, true as b, timestamp '2024-03-01 12:30:00' as t",
            ['a\'b "ü" ✓', datetime.date(2024, 1, 2), Decimal("1.25"), 5, 1.5],
        ).fetchone()
        assert literal == (
            'a\'b "ü" ✓',
            datetime.date(2024, 1, 2),
            Decimal("1.25"),
            None,
            5,
            1.5,
            "it's ü ✓",
            True,
            datetime.datetime(2024, 3, 1, 12, 30),
        )
        sql = "select * from forecast.demand_forecast order by product_id, forecast_date"
        assert conn.execute(sql).fetchall() == rows(settings, sql)
        product = rows(settings, "select min(product_id) from forecast.demand_forecast")[0][0]
        # repeated statements make psycopg prepare them server-side: Parse/Describe once
        for _ in range(7):
            got = conn.execute(
                "select count(*) from forecast.demand_forecast where product_id = %s", [product]
            ).fetchone()
        expected = rows(
            settings,
            f"select count(*) from forecast.demand_forecast where product_id = '{product}'",
        )[0]
        assert got == expected


def test_sqlalchemy_inspects_schemas_tables_and_columns(served: tuple[Settings, int]) -> None:
    settings, port = served
    engine = create_engine(f"postgresql+psycopg://wh@127.0.0.1:{port}/prod")
    try:
        inspector = inspect(engine)
        assert {"forecast", "features", "staging"} <= set(inspector.get_schema_names())
        tables = set(inspector.get_table_names(schema="forecast"))
        assert {"demand_forecast", "forecast_metrics", "model_runs"} <= tables
        columns = inspector.get_columns("demand_forecast", schema="forecast")
        described = rows(settings, "DESCRIBE forecast.demand_forecast")
        assert [c["name"] for c in columns] == [d[0] for d in described]
        types = {c["name"]: str(c["type"]) for c in columns}
        assert types["forecast_date"] == "DATE" and types["units_p50"] == "DOUBLE PRECISION"
        assert types["product_id"] == "TEXT"
    finally:
        engine.dispose()


REFUSED = [
    "insert into forecast.model_runs select * from forecast.model_runs",
    "update forecast.model_runs set status = 'ok'",
    "delete from forecast.demand_forecast",
    "create table main.x as select 1",
    "create temp table x as select 1",
    "drop view forecast.demand_forecast",
    "alter view forecast.demand_forecast rename to y",
    "copy forecast.demand_forecast to '/tmp/wh_serve_copy.csv'",
    "copy forecast.demand_forecast from '/etc/hostname'",
    "attach '/tmp/wh_serve_attach.duckdb' as other",
    'detach "prod"',
    "install httpfs",
    "load httpfs",
    "pragma enable_profiling",
    "call pragma_version()",
    "checkpoint",
    "export database '/tmp/wh_serve_export'",
    "use memory",
    "prepare p as select 1",
    "vacuum",
    "select * from read_csv('/etc/passwd')",
    "select * from read_text('/etc/hostname')",
    "select * from glob('/*')",
    "select * from read_parquet('{sources}/orders.parquet')",
    "select count(*) from '{sources}/orders.parquet'",
]


def test_writes_ddl_and_file_access_are_refused(served: tuple[Settings, int]) -> None:
    settings, port = served
    before = tree_digest(settings.warehouse)
    with psycopg.connect(_dsn(port), autocommit=True) as conn:
        for statement in REFUSED:
            sql = statement.format(sources=settings.sources)
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(sql).fetchall()
            assert caught.value.sqlstate in ("25006", "42501"), (sql, caught.value)
        # SET never reaches the engine: turning file access back on does nothing
        conn.execute("set enable_external_access = true")
        conn.execute("set variable secret = 1")
        assert conn.execute("select getvariable('secret')").fetchone() == (None,)
        with pytest.raises(psycopg.Error, match="disabled by configuration"):
            conn.execute("select * from read_csv('/etc/passwd')")
        # several statements in one simple-protocol message: the write is still refused
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            psycopg.ClientCursor(conn).execute(
                "select 1; drop view forecast.demand_forecast; select 2"
            )
        with pytest.raises(psycopg.errors.SyntaxError, match="multiple commands"):
            conn.execute("select %s; delete from forecast.model_runs", [1])
        assert conn.execute("select count(*) from forecast.model_runs").fetchone() is not None
    assert tree_digest(settings.warehouse) == before
    assert not Path("/tmp/wh_serve_copy.csv").exists()


def test_transaction_blocks_and_errors(served: tuple[Settings, int]) -> None:
    _, port = served
    with psycopg.connect(_dsn(port)) as conn:  # psycopg opens a transaction block
        assert conn.execute("select 1").fetchone() == (1,)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from forecast.no_such_table")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.execute("show transaction isolation level").fetchone() == ("repeatable read",)
        assert conn.info.parameter_status("server_version") == "15.0"
        assert "PostgreSQL 15.0" in conn.execute("select version()").fetchone()[0]


def test_a_client_that_stops_reading_does_not_stall_others(served: tuple[Settings, int]) -> None:
    _, port = served
    stalled = socket.create_connection(("127.0.0.1", port))
    try:
        params = b"user\0wh\0database\0prod\0\0"
        stalled.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        query = b"select repeat('x', 200) from range(3000000)\0"
        stalled.sendall(b"Q" + struct.pack("!i", len(query) + 4) + query)
        time.sleep(1.0)  # the server has filled the socket buffers by now
        started = time.monotonic()
        with psycopg.connect(_dsn(port), autocommit=True) as conn:
            for _ in range(20):
                assert conn.execute("select count(*) from forecast.model_runs").fetchone()
        assert time.monotonic() - started < 20
    finally:
        stalled.close()


def test_password_auth_and_remote_hosts(
    tmp_path: Path, tiny_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = copy_project(tmp_path / "project", tiny_sources)
    build(settings)
    refused = subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir),
         "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode != 0 and "without a password" in refused.stderr
    monkeypatch.setenv("WH_SERVE_PASSWORD", "s3cret")
    port = free_port()
    with running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(_dsn(port, "wrong"))
        with psycopg.connect(_dsn(port, "s3cret")) as conn:
            assert conn.execute("select count(*) from staging.products").fetchone() == (12,)


PROBE_A = "-- kind: full\nselect product_id, {generation} as generation from staging.products\n"
PROBE_B = "-- kind: full\nselect {generation} as generation, count(*) as n from staging.orders\n"
CHECK = (
    "select (select min(generation) from marts.probe_a), (select max(generation) from "
    "marts.probe_a), (select max(generation) from marts.probe_b), "
    "(select count(*) from marts.probe_a)"
)


def _probe_generation(settings: Settings, generation: int) -> None:
    """Both probe models say `generation`: a build publishes them together."""
    for name, text in (("probe_a", PROBE_A), ("probe_b", PROBE_B)):
        (settings.sql_dir / "marts" / f"{name}.sql").write_text(text.format(generation=generation))


@contextlib.contextmanager
def _clients(
    port: int, count: int, answer: Callable[[int, tuple[object, ...]], None]
) -> Iterator[list[BaseException]]:
    """`count` psycopg clients running CHECK in a loop until the block ends; their errors."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def client(index: int) -> None:
        try:
            with psycopg.connect(_dsn(port), autocommit=True) as conn:
                while not stop.is_set():
                    got = conn.execute(CHECK).fetchone()
                    assert got is not None
                    answer(index, got)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def test_clients_see_old_or_new_publish_during_a_rebuild(
    tmp_path: Path, tiny_sources: Path
) -> None:
    settings = copy_project(tmp_path / "project", tiny_sources)
    _probe_generation(settings, 1)
    build(settings)
    port = free_port()
    seen: list[set[tuple[object, ...]]] = [set() for _ in range(16)]
    with (
        running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)),
        _clients(port, 16, lambda i, got: seen[i].add(got)) as errors,
    ):
        time.sleep(1.0)
        _probe_generation(settings, 2)
        build(settings)  # publishes while 16 clients query
        with psycopg.connect(_dsn(port), autocommit=True) as conn:
            after = conn.execute(CHECK).fetchone()
        time.sleep(1.0)
    assert not errors, errors[:3]
    assert after == (2, 2, 2, 12)
    results = set().union(*seen)
    assert results <= {(1, 1, 1, 12), (2, 2, 2, 12)}, results
    assert (1, 1, 1, 12) in results
    assert all(s for s in seen)


@pytest.mark.faults
def test_sixteen_clients_for_two_minutes_of_rebuilds(tmp_path: Path, tiny_sources: Path) -> None:
    """`just faults`: 16 clients query for ~2 minutes while the table they read is rebuilt
    over and over; every answer is one whole publish, and none fails."""
    settings = copy_project(tmp_path / "project", tiny_sources)
    _probe_generation(settings, 1)
    build(settings)
    port = free_port()
    answers = [0] * 16
    mixed: list[tuple[object, ...]] = []

    def answer(index: int, got: tuple[object, ...]) -> None:
        if not got[0] == got[1] == got[2]:
            mixed.append(got)
        answers[index] += 1

    with (
        running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)),
        _clients(port, 16, answer) as errors,
    ):
        started = time.monotonic()
        generation = 1
        while time.monotonic() - started < 120:
            generation += 1
            _probe_generation(settings, generation)
            build(settings)
    assert not errors, errors[:3]
    assert not mixed, mixed[:3]
    assert generation > 3 and all(n > 0 for n in answers)
    print(
        f"16 clients, {time.monotonic() - started:.0f} s, {generation - 1} rebuilds, "
        f"{sum(answers)} answers, 0 mixed, 0 errors"
    )


def test_cancel_request_stops_a_running_query(served: tuple[Settings, int]) -> None:
    _, port = served
    with psycopg.connect(_dsn(port), autocommit=True) as conn:
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        started = time.monotonic()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.execute("select count(*) from range(100000000000) a(x) where x % 7 = 3")
        assert time.monotonic() - started < 30
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on


def test_a_statement_run_again_after_a_publish_has_the_new_types(tmp_path: Path) -> None:
    """A session remembers the result types of the statements it ran (the second bind of a
    query is skipped): per publish, so a model whose column changed type is read as such."""
    (tmp_path / "sources").mkdir()
    (tmp_path / "wh.toml").write_text('[project]\nsources = "sources"\nwarehouse = "wh"\n')
    model = tmp_path / "sql" / "marts" / "t.sql"
    model.parent.mkdir(parents=True)
    model.write_text("select 7 as x, date '2024-01-02' as d")
    settings = load_settings(tmp_path)
    build(settings)
    port = free_port()
    query = "select x, d from marts.t where x is not null or %s"
    with (
        running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)),
        psycopg.connect(_dsn(port), autocommit=True) as conn,
    ):
        for _ in range(6):  # psycopg prepares it server-side after five runs
            assert conn.execute(query, [True]).fetchall() == [(7, datetime.date(2024, 1, 2))]
        model.write_text("select 'seven' as x, 2.5 as d")
        build(settings)
        for _ in range(2):
            assert conn.execute(query, [True]).fetchall() == [("seven", Decimal("2.5"))]
