"""Read-only queries against a published environment, as analysts run them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_query(settings: Settings, sql: str, limit: int | None = None) -> QueryResult:
    """Run `sql` on the environment's published catalog, opened read-only."""
    con = catalog.open_published(settings)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return QueryResult([], [])
        columns = [d[0] for d in cursor.description]
        rows = cursor.fetchmany(limit) if limit else cursor.fetchall()
        return QueryResult(columns, rows)
    except engine.Error as exc:
        raise _failed(exc) from None
    finally:
        con.close()


def _failed(exc: Exception) -> UsageError:
    return UsageError(
        f"query failed: {engine.short_message(str(exc))}",
        hint='the warehouse is read-only here; list tables with wh sql "show all tables"',
    )


@dataclass
class RowStream:
    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]  # rows a batch at a time, never all at once


@contextmanager
def stream_query(
    settings: Settings, sql: str, limit: int | None = None, batch_rows: int = 10_000
) -> Iterator[RowStream]:
    """Run `sql` and hand its rows over in batches, for output that need not hold a big
    result in memory (`wh sql` piped to a file)."""
    con = catalog.open_published(settings)
    try:
        try:
            cursor = con.execute(sql)
        except engine.Error as exc:
            raise _failed(exc) from None
        columns = [d[0] for d in cursor.description or []]

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            left = limit or None  # --limit 0 means no limit, as run_query reads it
            while left is None or left > 0:
                size = batch_rows if left is None else min(batch_rows, left)
                try:
                    rows = cursor.fetchmany(size) if columns else []
                except engine.Error as exc:  # mid-result: what was printed is incomplete
                    raise UsageError(
                        f"query failed after some rows were written: "
                        f"{engine.short_message(str(exc))}",
                        hint="the output above is incomplete; fix the query and run it again",
                    ) from None
                if not rows:
                    return
                if left is not None:
                    left -= len(rows)
                yield rows

        yield RowStream(columns, batches())
    finally:
        con.close()
