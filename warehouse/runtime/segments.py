"""Writing a version's data as Parquet segments: in full, or for an incremental model one
segment per calendar month with a run reusing the months before its window.

This module also owns every text wrapped around a model's query when it runs (the COPY, the
month column, the time window): `query_prefix` is what error translation subtracts to point
a DuckDB error back at the model file's own line and column.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from warehouse.config import TIME_PARAMETERS, Settings
from warehouse.project.model import Model, ModelKind
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.plan import ModelPlan
from warehouse.runtime.state import Segment
from warehouse.runtime.storage import new_segment_path

# the widest window: wide enough for any data, narrow enough for date arithmetic in models
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9999, 12, 31)
# wraps a time-windowed query so COPY can write one file per month (the column is not stored)
MONTHS_PREFIX = "SELECT *, strftime(CAST({column} AS DATE), '%Y-%m') AS wh_month FROM ("
WINDOW_PREFIX = "SELECT * FROM ("  # the time window's subquery around the model's query


def query_prefix(model: Model) -> str:
    """The text before the model's query in the statement that computes it in full."""
    if model.kind is ModelKind.INCREMENTAL_BY_TIME:
        column = engine.quote_ident(model.time_column or "")
        return engine.COPY_PREFIX + MONTHS_PREFIX.format(column=column) + WINDOW_PREFIX
    return engine.COPY_PREFIX


def day_of(value: str) -> date:
    return date.fromisoformat(value[:10])


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def written_by(item: ModelPlan, segments: list[Segment]) -> list[str]:
    """The files of `segments` this run wrote (an incremental run reuses the others)."""
    kept = set(item.previous.files) if item.previous else set()
    return [s.file for s in segments if s.file not in kept]


class SegmentWriter:
    """Runs a model's query into Parquet files under the version's folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def write(
        self,
        cursor: engine.Connection,
        item: ModelPlan,
        sql: str,
        params: dict[str, Any] | None = None,
    ) -> Segment:
        path = new_segment_path(self.settings, item.model, item.fingerprint)
        rows = engine.copy_to_parquet(cursor, sql, path, params)
        tmin = tmax = None
        column = item.model.time_column
        if column and rows:
            ident = engine.quote_ident(column)
            lo, hi = engine.first_row(
                cursor, f"SELECT min({ident}), max({ident}) FROM {engine.parquet_scan([path])}"
            ) or (None, None)
            tmin, tmax = _text(lo), _text(hi)
        return Segment(str(path), rows, tmin, tmax)

    def time_window(self, item: ModelPlan) -> str:
        """The query's rows in the window; rows without a time are recomputed every run."""
        column = engine.quote_ident(item.model.time_column or "")
        return (
            f"{WINDOW_PREFIX}{item.model.query}\n) AS wh_query "
            f"WHERE CAST({column} AS DATE) BETWEEN $start_date AND $end_date OR {column} IS NULL"
        )

    def params(self, item: ModelPlan, start: date | None = None) -> dict[str, Any]:
        """Values of the project variables the query uses (and the time window's bounds)."""
        values = self.settings.variables
        params = {name: values[name] for name in item.model.parameters - TIME_PARAMETERS}
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            params.update(start_date=start or FIRST_DAY, end_date=LAST_DAY)
            if "incremental" in item.model.parameters:
                params["incremental"] = start is not None
        return params

    def write_months(
        self, cursor: engine.Connection, item: ModelPlan, sql: str, params: dict[str, Any]
    ) -> list[Segment]:
        """One segment per calendar month of the time column. A later incremental run then
        rewrites only the month its window starts in, never the whole history."""
        column = engine.quote_ident(item.model.time_column or "")
        folder = new_segment_path(self.settings, item.model, item.fingerprint).with_suffix("")
        partitioned = MONTHS_PREFIX.format(column=column) + sql + "\n) AS wh_rows"
        rows = engine.copy_partitioned(cursor, partitioned, folder, "wh_month", params)
        files = sorted(folder.rglob("*.parquet")) if folder.exists() else []
        if not rows or not files:
            # nothing in the window: one empty file keeps the version's columns
            return [self.write(cursor, item, sql, params)]
        stats = cursor.execute(
            f"SELECT filename, count(*), min({column}), max({column}) FROM "
            f"read_parquet({[str(f) for f in files]}, filename = true, "
            "hive_partitioning = false) GROUP BY filename ORDER BY 3"
        ).fetchall()
        return [Segment(str(f), int(n), _text(lo), _text(hi)) for f, n, lo, hi in stats]

    def full(self, cursor: engine.Connection, item: ModelPlan) -> tuple[list[Segment], int]:
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            segments = self.write_months(cursor, item, self.time_window(item), self.params(item))
            return segments, sum(s.rows for s in segments)
        segment = self.write(cursor, item, item.model.query, self.params(item))
        return [segment], segment.rows

    def incremental(self, cursor: engine.Connection, item: ModelPlan) -> tuple[list[Segment], int]:
        """Reuse the previous version's segments before the window; compute the window."""
        start = window_start(item)
        column = engine.quote_ident(item.model.time_column or "")
        kept: list[Segment] = []
        for segment, whole in reused_segments(item, start):
            kept.append(
                segment
                if whole
                else self.write(
                    cursor,
                    item,
                    f"SELECT * FROM {engine.parquet_scan([segment.file])} "
                    f"WHERE CAST({column} AS DATE) < $start_date",
                    {"start_date": start},
                )
            )
        new = self.write_months(cursor, item, self.time_window(item), self.params(item, start))
        return joined(kept, new)


def window_start(item: ModelPlan) -> date:
    """The first day an incremental run computes: the lookback before the version's last."""
    previous = item.previous
    assert previous is not None and previous.time_max is not None
    start = day_of(previous.time_max) + timedelta(days=1 - item.model.lookback)
    return min(start, item.window_from) if item.window_from else start


def reused_segments(item: ModelPlan, start: date) -> list[tuple[Segment, bool]]:
    """The previous version's segments a run from `start` keeps: whole (True), or only their
    rows before `start` (False: the segment straddles the window's first day)."""
    assert item.previous is not None
    kept: list[tuple[Segment, bool]] = []
    for segment in item.previous.segments:
        if segment.tmax is None and segment.rows:
            continue  # rows without a time: in the window again
        if segment.tmax is None or day_of(segment.tmax) < start:
            kept.append((segment, True))
        elif segment.tmin is not None and day_of(segment.tmin) < start:
            kept.append((segment, False))
    return kept


def joined(kept: list[Segment], new: list[Segment]) -> tuple[list[Segment], int]:
    """The version's segments and the rows the run added; an empty window's placeholder file
    is dropped when older segments carry the columns."""
    added = sum(s.rows for s in new)
    if added or not kept:
        return [*kept, *new], added
    for segment in new:
        Path(segment.file).unlink(missing_ok=True)
    return kept, added
