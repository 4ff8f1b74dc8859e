"""The pieces of `wh serve` that need no server: statement splitting and sorting, catalog
rewrites, and DataRow framing (vectorised vs the per-value reference)."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from warehouse.interfaces.serve.pg_catalog import session_setup_sql
from warehouse.interfaces.serve.rows import (
    encode_batch,
    encode_rows_slow,
    encode_small_text,
    encode_vectorised,
    text_query,
)
from warehouse.interfaces.serve.statements import (
    StatementError,
    _strip_comments,
    classify,
    split,
)
from warehouse.interfaces.serve.translate import SessionFacts, to_duckdb

cell = st.one_of(st.none(), st.text(max_size=12))


@given(st.lists(st.tuples(cell, cell, cell), max_size=40), st.integers(0, 5))
def test_vectorised_framing_equals_the_reference(
    table: list[tuple[str | None, ...]], cut: int
) -> None:
    columns = [pa.array([row[i] for row in table], pa.string()) for i in range(3)]
    batch = pa.RecordBatch.from_arrays(columns, names=["a", "b", "c"])
    sliced = batch.slice(min(cut, len(table)))  # non-zero Arrow offsets
    expected = [tuple(row) for row in table[min(cut, len(table)) :]]
    assert encode_batch(sliced) == encode_rows_slow(expected)
    # both framings: value by value for small batches, numpy for the rest
    assert encode_vectorised(sliced) == encode_small_text(sliced) == encode_rows_slow(expected)


def test_text_forms_are_postgres_ones() -> None:
    con = duckdb.connect()
    query = (
        "select true as b, false as f, null::boolean as n, 'ab'::blob as x, "
        "1.50::decimal(5,2) as d, date '2024-02-29' as dt, 3::hugeint as h, [1, 2] as l"
    )
    types = [str(t) for t in con.sql(query).types]
    assert con.sql(text_query(query, types)).fetchall()[0] == (
        "t", "f", None, "\\x6162", "1.50", "2024-02-29", "3", "[1, 2]"
    )  # fmt: skip


plain = st.text(alphabet="abc ()=,1'\"$-;/*\n", max_size=30)


@given(st.lists(st.sampled_from([
    "select 1", "select ';' as x", 'select 1 as ";"', "select $$a;b$$", "select $t$;$t$",
    "select 1 -- a;b\n", "select /* ; /* ; */ ; */ 2", "select E'\\';'", "select 'it''s;'",
]), min_size=1, max_size=5))  # fmt: skip
def test_split_keeps_each_statement_whole(statements: list[str]) -> None:
    assert split(";\n".join(statements)) == [s.strip() for s in statements]


def _only_separators(gap: str) -> bool:
    """Whitespace, semicolons and comments only: what may fall between statements."""
    previous = None
    while gap != previous:
        previous, gap = gap, _strip_comments(gap).lstrip(" \t\n;")
    return gap == ""


@example("select 1; select 2")
@example("-- only a comment;\n select 'a;b'")
@given(plain)
def test_split_never_loses_text(sql: str) -> None:
    """The statements appear in the text in order, and what lies between them is separators
    and comments: a split that drops, merges or invents text fails this."""
    position, gaps = 0, []
    for piece in split(sql):
        found = sql.find(piece, position)
        assert found >= 0, (piece, sql)
        gaps.append(sql[position:found])
        position = found + len(piece)
    gaps.append(sql[position:])
    assert all(_only_separators(gap) for gap in gaps), (sql, gaps)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", "query"),
        ("with a as (select 1) select * from a", "query"),
        ("explain select 1", "query"),
        ("BEGIN ISOLATION LEVEL READ COMMITTED", "begin"),
        ("set datestyle to 'ISO'", "set"),
        ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "set"),
        ("discard all", "discard"),
        ("rollback to savepoint s1", "rollback_to"),
        ("  -- comment\n commit", "commit"),
    ],
)
def test_classify(sql: str, kind: str) -> None:
    assert classify(sql, {"transaction_isolation"}).kind == kind


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        ("insert into t values (1)", "INSERT"),
        ("create view v as select 1", "CREATE VIEW"),
        ("copy t to 'x.csv'", "COPY"),
        ("attach 'x.duckdb'", "ATTACH"),
        ("install httpfs", "INSTALL"),
        ("pragma version", "PRAGMA"),
        ("use memory", "USE"),
        ("explain analyze copy (select 1) to '/tmp/x.csv'", "COPY"),
        ("EXPLAIN ANALYZE insert into t values (1)", "INSERT"),
    ],
)
def test_writes_are_refused_with_the_read_only_state(sql: str, verb: str) -> None:
    with pytest.raises(StatementError) as caught:
        classify(sql)
    assert caught.value.code == "25006" and verb in caught.value.message


def test_syntax_errors_are_reported_as_such() -> None:
    with pytest.raises(StatementError) as caught:
        classify("selec 1")
    assert caught.value.code == "42601"


def test_psql_catalog_query_runs_on_duckdb() -> None:
    con = duckdb.connect()
    con.execute("create schema forecast; create view forecast.demand_forecast as select 1 as a")
    for statement in session_setup_sql("memory", "prod", "wh"):
        con.execute(statement)
    psql_dt = r"""
SELECT n.nspname as "Schema", c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','')
  AND n.nspname OPERATOR(pg_catalog.~) '^(forecast)$' COLLATE pg_catalog.default
ORDER BY 1,2;"""
    got = con.sql(to_duckdb(psql_dt, SessionFacts("prod", "wh", 1))).fetchall()
    assert got == [("forecast", "demand_forecast", "table", "wh")]
