"""Postgres-to-DuckDB translation of what clients send, checked by running it on DuckDB
with the session's catalog (no server)."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.interfaces.serve.pg_catalog import session_setup_sql
from warehouse.interfaces.serve.translate import SessionFacts, to_duckdb

FACTS = SessionFacts("prod", "ana", 4242, {"timezone": "UTC", "application_name": "psql"})


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("create schema forecast")
    con.execute(
        "create view forecast.demand_forecast as select 'p1' as product_id, "
        "date '2024-01-01' as forecast_date, 1.5::double as units_p50, "
        "12.25::decimal(10,2) as amount"
    )
    for statement in session_setup_sql("memory", "prod", "ana", dict(FACTS.settings)):
        con.execute(statement)
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
    relation = con.sql(to_duckdb(sql, FACTS))
    return list(relation.columns), relation.fetchall()


def test_columns_are_named_as_postgres_names_them(con: duckdb.DuckDBPyConnection) -> None:
    names, _ = run(
        con,
        "select count(*), sum(units_p50), max(forecast_date), 1, 1::int, now() "
        "from forecast.demand_forecast",
    )
    assert names == ["count", "sum", "max", "?column?", "int4", "now"]
    names, _ = run(
        con,
        "select units_p50::int, upper(product_id), case when true then 1 end from "
        "forecast.demand_forecast",
    )
    assert names == ["units_p50", "upper", "case"]


def test_session_facts_are_the_sessions(con: duckdb.DuckDBPyConnection) -> None:
    names, got = run(
        con,
        "select current_database(), current_user, current_schema(), pg_backend_pid(), "
        "current_setting('application_name'), current_setting('nope')",
    )
    assert got == [("prod", "ana", "public", 4242, "psql", None)]
    assert names[:2] == ["current_database", "current_user"]


def test_catalog_has_postgres_types_and_only_published_schemas(
    con: duckdb.DuckDBPyConnection,
) -> None:
    _, got = run(
        con,
        "select a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
        "a.atttypid::regtype::text from pg_catalog.pg_attribute a "
        "where a.attrelid = 'forecast.demand_forecast'::regclass order by a.attnum",
    )
    assert got == [
        ("product_id", "text", "text"),
        ("forecast_date", "date", "date"),
        ("units_p50", "double precision", "double precision"),
        ("amount", "numeric(10,2)", "numeric"),
    ]
    _, schemas = run(con, "select nspname from pg_namespace order by 1")
    assert [s for (s,) in schemas] == ["forecast", "information_schema", "pg_catalog", "public"]
    _, columns = run(
        con,
        "select data_type from information_schema.columns where table_name = 'demand_forecast' "
        "order by ordinal_position",
    )
    assert [c for (c,) in columns] == ["text", "date", "double precision", "numeric"]


def test_psql_pattern_operators_and_array_literals(con: duckdb.DuckDBPyConnection) -> None:
    _, got = run(
        con,
        "select c.relname from pg_catalog.pg_class c where c.relname OPERATOR(pg_catalog.~) "
        "'^(demand_forecast)$' COLLATE pg_catalog.default and c.relkind = ANY('{r,p}') "
        "and 1 = any('{1,2}')",
    )
    assert got == [("demand_forecast",)]


def test_what_sqlglot_cannot_read_runs_as_sent() -> None:
    assert to_duckdb("summarize forecast.demand_forecast", FACTS) == (
        "summarize forecast.demand_forecast"
    )
    assert "::bigint[]" in to_duckdb(
        "select proargtypes::regtype[] from pg_proc", FACTS
    ).lower() or ("BIGINT[]" in to_duckdb("select proargtypes::regtype[] from pg_proc", FACTS))


def test_a_quoted_user_column_stays_a_column() -> None:
    translated = to_duckdb('select "user", current_user from t', FACTS)
    assert '"user"' in translated and "'ana'" in translated
