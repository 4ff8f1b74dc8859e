"""Read-only queries against a published environment, as analysts run them."""

from __future__ import annotations

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
        raise UsageError(
            f"query failed: {engine.short_message(str(exc))}",
            hint='the warehouse is read-only here; list tables with wh sql "show all tables"',
        ) from None
    finally:
        con.close()
