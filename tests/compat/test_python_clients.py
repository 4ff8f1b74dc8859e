"""The Python stack a BI extract or notebook uses: psycopg 2 and 3, SQLAlchemy reflection,
pandas, and pgcli's completion queries."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg
import psycopg2
import pytest
from conftest import rows
from sqlalchemy import MetaData, Table, create_engine, inspect, select
from sqlalchemy.types import Date, Float, String

from warehouse.config import Settings

DRIVERS = ["psycopg", "psycopg2"]


@pytest.mark.parametrize("driver", DRIVERS)
def test_sqlalchemy_reflects_tables_and_pandas_reads_them(
    wh_server: tuple[Settings, int], driver: str
) -> None:
    settings, port = wh_server
    engine = create_engine(f"postgresql+{driver}://wh@127.0.0.1:{port}/prod")
    try:
        table = Table("demand_forecast", MetaData(), schema="forecast", autoload_with=engine)
        types = {c.name: type(c.type) for c in table.columns}
        assert issubclass(types["units_p50"], Float) and issubclass(types["forecast_date"], Date)
        assert issubclass(types["product_id"], String)
        inspector = inspect(engine)
        assert (
            inspector.get_pk_constraint("demand_forecast", schema="forecast")["constrained_columns"]
            == []
        )
        assert inspector.get_indexes("demand_forecast", schema="forecast") == []
        assert inspector.get_foreign_keys("demand_forecast", schema="forecast") == []
        with engine.connect() as con:
            first = con.execute(select(table).order_by(table.c.product_id).limit(1)).one()
        assert isinstance(first.forecast_date, datetime.date)
        frame = pd.read_sql_table("demand_forecast", engine, schema="forecast")
        expected = rows(settings, "SELECT count(*), sum(units_p50) FROM forecast.demand_forecast")
        assert (len(frame), round(frame["units_p50"].sum(), 6)) == (
            expected[0][0],
            round(expected[0][1], 6),
        )
    finally:
        engine.dispose()


def test_list_parameters_and_named_cursors(wh_server: tuple[Settings, int]) -> None:
    settings, port = wh_server
    products = [
        r[0]
        for r in rows(
            settings, "SELECT DISTINCT product_id FROM forecast.demand_forecast ORDER BY 1 LIMIT 3"
        )
    ]
    dsn = f"host=127.0.0.1 port={port} user=wh dbname=prod"
    with psycopg.connect(dsn) as con:
        got = con.execute(
            "select count(distinct product_id) from forecast.demand_forecast "
            "where product_id = ANY(%s)",
            [products],
        ).fetchone()
        assert got == (3,)
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(
            "select count(*) from forecast.demand_forecast where product_id = ANY(%s)",
            [products],
        )
        assert cur.fetchone()[0] > 0


def test_pgcli_completion_metadata_loads(wh_server: tuple[Settings, int]) -> None:
    """What pgcli's completion refresher asks at connect: schemata, tables, columns,
    functions, types, databases."""
    from pgcli.pgexecute import PGExecute

    _, port = wh_server
    executor = PGExecute("prod", "wh", None, "127.0.0.1", port, None)
    try:
        assert "forecast" in list(executor.schemata())
        tables = list(executor.tables())
        assert ("forecast", "demand_forecast") in tables
        columns = list(executor.table_columns())
        assert any(c[1] == "demand_forecast" and c[2] == "units_p50" for c in columns)
        list(executor.view_columns())
        list(executor.functions())
        list(executor.datatypes())
        assert "prod" in list(executor.databases())
        list(executor.search_path())
    finally:
        executor.conn.close()


def test_named_cursors_page_through_every_row(wh_server: tuple[Settings, int]) -> None:
    """psycopg 2 and 3 named cursors, and SQLAlchemy's stream_results, use DECLARE/FETCH:
    every row arrives, a page at a time."""
    settings, port = wh_server
    total = rows(settings, "SELECT count(*) FROM forecast.demand_forecast_history")[0][0]
    query = "select product_id, forecast_date from forecast.demand_forecast_history"
    dsn = f"host=127.0.0.1 port={port} user=wh dbname=prod"
    with psycopg2.connect(dsn) as con, con.cursor("extract") as cur:
        cur.itersize = 7
        cur.execute(query)
        assert sum(1 for _ in cur) == total
    with psycopg.connect(dsn) as con, con.cursor("extract") as server_cursor:
        server_cursor.itersize = 5
        server_cursor.execute(query)
        assert len(server_cursor.fetchmany(3)) == 3
        assert 3 + sum(1 for _ in server_cursor) == total
    engine = create_engine(f"postgresql+psycopg2://wh@127.0.0.1:{port}/prod")
    try:
        with engine.connect() as con:
            result = con.execution_options(stream_results=True, max_row_buffer=10).exec_driver_sql(
                query
            )
            assert sum(1 for _ in result) == total
    finally:
        engine.dispose()


def test_harlequin_loads_its_catalog_and_completions(wh_server: tuple[Settings, int]) -> None:
    """harlequin (terminal SQL IDE) with its Postgres adapter, as it starts up."""
    from harlequin_postgres.adapter import HarlequinPostgresAdapter

    _, port = wh_server
    adapter = HarlequinPostgresAdapter(
        conn_str=(f"host=127.0.0.1 port={port} user=wh dbname=prod",)
    )
    connection = adapter.connect()
    try:
        catalog = connection.get_catalog()
        (database,) = catalog.items
        assert database.label == "prod"
        schemas = {item.label for item in database.children}
        assert {"forecast", "staging"} <= schemas and "main" not in schemas
        assert len(connection.get_completions()) > 100
        cursor = connection.execute("select count(*) from forecast.demand_forecast")
        assert cursor is not None and cursor.fetchall()[0][0] > 0
    finally:
        connection.close()


SUPERSET_SQL = [
    # what Superset 6.1's Postgres engine spec sends: SQL Lab, time-range filters, catalogs
    "SELECT pg_backend_pid()",
    "SELECT count(*) FROM forecast.demand_forecast WHERE forecast_date >= "
    "TO_DATE('2020-01-01', 'YYYY-MM-DD')",
    "SELECT count(*) FROM forecast.demand_forecast WHERE forecast_date < "
    "TO_TIMESTAMP('2100-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US')",
    "SELECT DATE_TRUNC('week', forecast_date) AS __timestamp, sum(units_p50) AS sum "
    "FROM forecast.demand_forecast GROUP BY DATE_TRUNC('week', forecast_date) LIMIT 10000",
    "SELECT datname FROM pg_database WHERE datistemplate = false",
]


@pytest.mark.parametrize("sql", SUPERSET_SQL)
def test_superset_engine_spec_sql_runs(wh_server: tuple[Settings, int], sql: str) -> None:
    _, port = wh_server
    with psycopg.connect(f"host=127.0.0.1 port={port} user=wh dbname=prod") as con:
        got = con.execute(sql).fetchall()
    assert got
    if "datname" in sql:
        assert got == [("prod",)]  # the environment, not DuckDB's system/temp/prod-3


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (r"\dt forecast.*", "demand_forecast"),
        (r"\d forecast.demand_forecast", "double precision"),
        (r"\df", "Result data type"),
        (r"\l", "prod"),
    ],
)
def test_pgcli_commands(
    wh_server: tuple[Settings, int], tmp_path: Path, command: str, expected: str
) -> None:
    """pgcli run non-interactively, with its own config folder (its log shows any error)."""
    _, port = wh_server
    pgcli = Path(sys.executable).with_name("pgcli")
    done = subprocess.run(
        [str(pgcli), "-h", "127.0.0.1", "-p", str(port), "-U", "wh", "prod", "--less-chatty",
         "-c", command],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout, done.stdout + done.stderr
    log = tmp_path / "pgcli" / "log"
    assert not log.exists() or " ERROR " not in log.read_text(), log.read_text()


def test_psycopg_binary_cursor_reads_the_same_values(wh_server: tuple[Settings, int]) -> None:
    """psycopg 3 asks for binary results (and sends binary parameters) on request."""
    settings, port = wh_server
    query = (
        "select product_id, forecast_date, units_p50, cutoff_date, 7::int2 as small, "
        "7::bigint as big, 1.25::numeric(6,2) as amount, true as flag, "
        "timestamp '2024-02-29 01:02:03.5' as moment from forecast.demand_forecast "
        "where forecast_date >= %s order by product_id, forecast_date"
    )
    with psycopg.connect(f"host=127.0.0.1 port={port} user=wh dbname=prod") as con:
        first = datetime.date(2000, 1, 1)
        text = con.execute(query, [first]).fetchall()
        with con.cursor(binary=True) as cur:
            binary = cur.execute(query, [first], binary=True).fetchall()
    assert (
        binary == text
        and len(text) == rows(settings, "SELECT count(*) FROM forecast.demand_forecast")[0][0]
    )


DBEAVER_SQL = [
    # what DBeaver's Postgres driver asks while it connects and reads the navigator tree
    "SELECT current_schema(), session_user",
    "SELECT db.oid, db.* FROM pg_catalog.pg_database db WHERE datname = 'prod'",
    "SELECT n.oid, n.*, d.description FROM pg_catalog.pg_namespace n LEFT OUTER JOIN "
    "pg_catalog.pg_description d ON d.objoid = n.oid AND d.objsubid = 0 AND "
    "d.classoid = 'pg_namespace'::regclass ORDER BY nspname",
    "SELECT c.oid, c.*, d.description, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS "
    "partition_expr, pg_catalog.pg_get_partkeydef(c.oid) AS partition_key FROM "
    "pg_catalog.pg_class c LEFT OUTER JOIN pg_catalog.pg_description d ON d.objoid = c.oid "
    "AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass "
    "WHERE c.relkind NOT IN ('i', 'I', 'c')",
    "SELECT c.relname, a.*, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid, true) AS def_value, "
    "dsc.description FROM pg_catalog.pg_attribute a INNER JOIN pg_catalog.pg_class c ON "
    "(a.attrelid = c.oid) LEFT OUTER JOIN pg_catalog.pg_attrdef ad ON (a.attrelid = "
    "ad.adrelid AND a.attnum = ad.adnum) LEFT OUTER JOIN pg_catalog.pg_description dsc ON "
    "(c.oid = dsc.objoid AND a.attnum = dsc.objsubid) WHERE NOT a.attisdropped ORDER BY a.attnum",
    "SELECT t.oid, t.*, c.relkind, format_type(nullif(t.typbasetype, 0), t.typtypmod) AS "
    "base_type_name FROM pg_catalog.pg_type t LEFT OUTER JOIN pg_catalog.pg_class c ON "
    "c.oid = t.typrelid WHERE t.typname IS NOT NULL",
    "SELECT a.oid, a.* FROM pg_catalog.pg_roles a",
    "SELECT e.oid, e.* FROM pg_catalog.pg_extension e",
    "SELECT string_agg(word, ',') FROM pg_catalog.pg_get_keywords() "
    "WHERE word <> ALL ('{a,abs,absolute,action}'::text[])",
    "SELECT pid, state, query FROM pg_stat_activity",
]


@pytest.mark.parametrize("sql", DBEAVER_SQL)
def test_dbeaver_catalog_queries_run(wh_server: tuple[Settings, int], sql: str) -> None:
    _, port = wh_server
    with psycopg.connect(f"host=127.0.0.1 port={port} user=wh dbname=prod") as con:
        con.execute(sql).fetchall()


def test_plain_queries_do_not_pay_for_the_catalog(wh_server: tuple[Settings, int]) -> None:
    """The Postgres catalog (~50 ms of temporary views) is installed on a connection the
    first time a statement reads it, not for every session."""
    _, port = wh_server
    # spelled in two parts: the word itself would make the query read the catalog
    temporary = "select count(*) from duckdb_views() where starts_with(view_name, 'wh_' || 'pg_')"
    with psycopg.connect(f"host=127.0.0.1 port={port} user=wh dbname=prod") as con:
        assert con.execute("select count(*) from forecast.demand_forecast").fetchone()
        assert con.execute(temporary).fetchone() == (0,)
        assert con.execute("select format_type(23, -1)").fetchone() == ("integer",)
        installed = con.execute(temporary).fetchone()
        assert installed is not None and installed[0] > 20
