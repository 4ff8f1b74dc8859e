"""Build: plan -> compute new versions (in parallel where the DAG allows) -> audit -> publish.

Write-audit-publish: new versions are written beside the old ones and audited; the
environment's views move to them in one publish only when every model and audit passed.
A failure publishes nothing, so analysts keep querying exactly what they had.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from warehouse import faults
from warehouse.config import Settings
from warehouse.errors import AuditError, BuildError, ModelError, SourceError, StateError, WhError
from warehouse.project.loader import load_project
from warehouse.project.model import TIME_PARAMETERS, ModelKind
from warehouse.runtime import catalog, uptodate
from warehouse.runtime.audits import COMPLETENESS_AUDIT, audit_queries, run_audits
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.lock import writer_lock
from warehouse.runtime.plan import Action, ModelPlan, Plan, make_plan
from warehouse.runtime.publish import publish
from warehouse.runtime.sources import Source
from warehouse.runtime.state import Publish, Segment, State, Version, open_state
from warehouse.runtime.storage import new_segment_path, remove_orphans

# the widest window: wide enough for any data, narrow enough for date arithmetic in models
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9999, 12, 31)
# wraps a time-windowed query so COPY can write one file per month (the column is not stored)
MONTHS_PREFIX = "SELECT *, strftime(CAST({column} AS DATE), '%Y-%m') AS wh_month FROM ("
Reporter = Callable[[str, str, str], None]  # (event, model, detail)


@dataclass
class ModelResult:
    plan: ModelPlan
    version: Version
    rows_processed: int
    seconds: float
    audits: list[tuple[str, int, str]] = field(default_factory=list)  # label, failing, sql

    @property
    def failed_audit(self) -> tuple[str, int, str] | None:
        return next((a for a in self.audits if a[1] > 0), None)


@dataclass
class BuildResult:
    build_id: str
    env: str
    status: str  # ok | noop
    plan: Plan
    results: list[ModelResult]
    published: Publish | None
    seconds: float

    @property
    def reused(self) -> list[str]:
        return [p.model.name for p in self.plan.models if p.action is Action.REUSE]


def _day(value: str) -> date:
    return date.fromisoformat(value[:10])


def _text(value: object) -> str | None:
    """A segment's time bound as stored: text, or None for a segment of rows without a time."""
    return None if value is None else str(value)


def check_sql(items: list[ModelPlan]) -> None:
    """Let DuckDB's parser see every query before anything runs."""
    for item in items:
        if item.model.language != "sql":
            continue
        message = engine.check_syntax(item.model.query)
        if message:
            line, column = engine.error_position(message)
            raise ModelError(
                f"SQL does not parse: {engine.short_message(message)}",
                item.model.path,
                line,
                column,
                hint="fix the SQL at that position",
            )


def _written_by(item: ModelPlan, segments: list[Segment]) -> list[str]:
    """The files of `segments` this run wrote (an incremental run reuses the others)."""
    kept = set(item.previous.files) if item.previous else set()
    return [s.file for s in segments if s.file not in kept]


def _in_full(item: ModelPlan, reason: str) -> ModelPlan:
    return replace(item, action=Action.FULL, previous=None, reason=reason)


class ModelRunner:
    """Computes one model version on its own cursor; pure with respect to state."""

    def __init__(
        self,
        settings: Settings,
        con: engine.Connection,
        sources: dict[str, Source],
        versions: dict[str, Version],
        build_id: str,
    ) -> None:
        self.settings = settings
        self.con = con
        self.sources = sources
        self.versions = versions  # model name -> version it reads (parents are set first)
        self.build_id = build_id
        # DuckDB catalog changes (CREATE VIEW) from several threads can conflict; serialise them
        self.catalog_lock = threading.Lock()
        # views this build keeps as they are; DuckDB binds a view when it is created, so each
        # is created once all its parents exist in the build's connection
        self.pending_views: dict[str, tuple[frozenset[str], Version]] = {}
        self.registered: set[str] = set()
        # incremental models that had to be computed in full, and everything read from them
        self.rebuilt_in_full: set[str] = set()

    def register(self, name: str, version: Version, parents: frozenset[str] = frozenset()) -> None:
        """Make a model's version readable by the models after it (views: when they can bind)."""
        with self.catalog_lock:
            self.versions[name] = version
            if version.kind == "view":
                if name not in self.registered:  # a computed view exists already
                    self.pending_views[name] = (parents, version)
            else:
                engine.view_over_files(self.con, name, version.files)
                self.registered.add(name)
            self._create_ready_views()

    def _create_ready_views(self) -> None:
        created = True
        while created:
            created = False
            for name, (parents, version) in list(self.pending_views.items()):
                if parents <= self.registered:
                    engine.create_view(self.con, name, version.query + "\n")
                    self.registered.add(name)
                    del self.pending_views[name]
                    created = True

    def run(self, item: ModelPlan) -> ModelResult:
        started = time.perf_counter()
        cursor = self.con.cursor()
        rebuilt = sorted(item.model.depends_on & self.rebuilt_in_full)
        if rebuilt:  # rows before the window changed upstream: extending would miss them
            self.rebuilt_in_full.add(item.model.name)
            if item.action is Action.INCREMENTAL:
                item = _in_full(item, f"{rebuilt[0]} was rebuilt in full")
        try:
            segments, processed, columns, audits = self._compute(cursor, item)
            if item.action is Action.INCREMENTAL and any(
                label.startswith(COMPLETENESS_AUDIT) and failing for label, failing, _ in audits
            ):
                # rows arrived for periods before the window: extending would lose them
                for file in _written_by(item, segments):
                    Path(file).unlink(missing_ok=True)
                item = _in_full(item, "rows arrived for periods before the lookback window")
                self.rebuilt_in_full.add(item.model.name)
                segments, processed, columns, audits = self._compute(cursor, item)
        except engine.Error as exc:
            raise self._sql_error(item, exc) from None
        finally:
            cursor.close()
        model = item.model
        version = Version(
            fingerprint=item.fingerprint,
            model=model.name,
            kind=model.kind.value,
            data_hash=model.data_hash(),
            logic_fp=item.logic_fp,
            query=model.query,
            segments=tuple(segments),
            columns=tuple(columns),
            row_count=sum(s.rows for s in segments) if segments else -1,
            time_column=model.time_column,
            build_id=self.build_id,
            source_files=item.source_files,
        )
        return ModelResult(item, version, processed, time.perf_counter() - started, audits)

    def _compute(
        self, cursor: engine.Connection, item: ModelPlan
    ) -> tuple[list[Segment], int, list[tuple[str, str]], list[tuple[str, int, str]]]:
        """Write the version's data and audit it: (segments, rows processed, columns, audits)."""
        model = item.model
        if item.action is Action.VIEW:
            segments, processed = self._view(cursor, item), 0
            relation = engine.qualified(model.name)
        elif model.language == "python":
            segments = [self._python(cursor, item)]
            processed = segments[0].rows
        elif item.action is Action.INCREMENTAL:
            segments, processed = self._incremental(cursor, item)
        else:
            segments, processed = self._full(cursor, item)
        computed = None
        if segments:
            relation = engine.parquet_scan([s.file for s in segments])
            written = _written_by(item, segments)
            if item.previous is not None and written:  # audit the rows this run wrote
                computed = engine.parquet_scan(written)
        faults.point("compute")
        columns = engine.describe(cursor, relation)
        audits = run_audits(cursor, audit_queries(model, relation, computed))
        faults.point("audit")
        return segments, processed, columns, audits

    def _damaged_source(self, item: ModelPlan, exc: Exception) -> SourceError | None:
        """When reading failed mid-file, the source file to blame (its metadata was fine)."""
        if not item.model.sources or engine.is_sql_mistake(exc):
            return None
        import pyarrow.parquet as pq

        for name in sorted(item.model.sources):
            source = self.sources.get(name)
            for path in source.files if source else ():
                where = "footer"
                try:
                    parquet = pq.ParquetFile(path)
                    for group in range(parquet.num_row_groups):
                        where = f"row group {group}"
                        parquet.read_row_group(group)
                except Exception as damage:  # any failure to decode is the answer
                    return SourceError(
                        f"damaged data in {where}: {type(damage).__name__}: {damage}",
                        path,
                        hint="the file's data pages are corrupt; export the file again",
                    )
        return None

    def _sql_error(self, item: ModelPlan, exc: Exception) -> WhError:
        message = str(exc)
        damaged = self._damaged_source(item, exc)
        if damaged is not None:
            return damaged
        if engine.is_write_failure(exc):
            return BuildError(
                f"could not write its data: {engine.short_message(message)}",
                item.model.name,
                hint=f"is the disk holding {self.settings.warehouse} full? free space and build "
                "again; nothing was published",
            )
        prefix = ""
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            time_column = engine.quote_ident(item.model.time_column or "")
            prefix = MONTHS_PREFIX.format(column=time_column) + "SELECT * FROM ("
        offset = len("COPY (") + len(prefix)
        line, column = engine.error_position(message, offset)
        model = item.model
        if model.path.suffix == ".py":  # SQL generated by an @sql_model function
            where = f" (line {line}, column {column} of the generated SQL)" if line else ""
            return ModelError(
                engine.short_message(message) + where,
                model.path,
                model.func.__code__.co_firstlineno if model.func else None,
                hint=f"fix the function; see the SQL with: wh plan --json -s {model.name}",
            )
        return ModelError(
            engine.short_message(message),
            model.path,
            line,
            column,
            hint="fix the model; nothing was published",
        )

    def _view(self, cursor: engine.Connection, item: ModelPlan) -> list[Segment]:
        with self.catalog_lock:
            engine.create_view(cursor, item.model.name, item.model.query + "\n")
            self.registered.add(item.model.name)
        return []

    def _write(
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

    def _time_window(self, item: ModelPlan) -> str:
        """The query's rows in the window; rows without a time are recomputed every run."""
        column = engine.quote_ident(item.model.time_column or "")
        return (
            f"SELECT * FROM ({item.model.query}\n) AS wh_query "
            f"WHERE CAST({column} AS DATE) BETWEEN $start_date AND $end_date OR {column} IS NULL"
        )

    def _params(self, item: ModelPlan, start: date | None = None) -> dict[str, Any]:
        """Values of the project variables the query uses (and the time window's bounds)."""
        values = self.settings.variables
        params = {name: values[name] for name in item.model.parameters - TIME_PARAMETERS}
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            params.update(start_date=start or FIRST_DAY, end_date=LAST_DAY)
            if "incremental" in item.model.parameters:
                params["incremental"] = start is not None
        return params

    def _write_months(
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
            return [self._write(cursor, item, sql, params)]
        stats = cursor.execute(
            f"SELECT filename, count(*), min({column}), max({column}) FROM "
            f"read_parquet({[str(f) for f in files]}, filename = true, "
            "hive_partitioning = false) GROUP BY filename ORDER BY 3"
        ).fetchall()
        return [Segment(str(f), int(n), _text(lo), _text(hi)) for f, n, lo, hi in stats]

    def _full(self, cursor: engine.Connection, item: ModelPlan) -> tuple[list[Segment], int]:
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            segments = self._write_months(cursor, item, self._time_window(item), self._params(item))
            return segments, sum(s.rows for s in segments)
        segment = self._write(cursor, item, item.model.query, self._params(item))
        return [segment], segment.rows

    def _incremental(self, cursor: engine.Connection, item: ModelPlan) -> tuple[list[Segment], int]:
        """Reuse the previous version's segments before the window; compute the window."""
        previous = item.previous
        assert previous is not None and previous.time_max is not None
        start = _day(previous.time_max) + timedelta(days=1 - item.model.lookback)
        column = engine.quote_ident(item.model.time_column or "")
        kept: list[Segment] = []
        for segment in previous.segments:
            if segment.tmax is None and segment.rows:
                continue  # rows without a time: in the window again
            if segment.tmax is None or _day(segment.tmax) < start:
                kept.append(segment)
            elif segment.tmin is not None and _day(segment.tmin) < start:
                kept.append(
                    self._write(
                        cursor,
                        item,
                        f"SELECT * FROM {engine.parquet_scan([segment.file])} "
                        f"WHERE CAST({column} AS DATE) < $start_date",
                        {"start_date": start},
                    )
                )
        new = self._write_months(cursor, item, self._time_window(item), self._params(item, start))
        added = sum(s.rows for s in new)
        if added or not kept:
            kept.extend(new)
        else:
            for segment in new:
                Path(segment.file).unlink(missing_ok=True)
        return kept, added

    def _input_frame(self, cursor: engine.Connection, name: str) -> Any:
        import polars as pl

        schema, _, table = name.partition(".")
        files: list[str]
        if schema == "source":
            files = [str(f) for f in self.sources[table].files]
        else:
            files = self.versions[name].files
        if files:
            return pl.scan_parquet(files, hive_partitioning=False)
        # a view, or an absent optional source: through DuckDB, handed over as Arrow
        return frame_from_arrow(
            cursor.sql(f"SELECT * FROM {engine.qualified(name)}").to_arrow_table()
        )

    def _python(self, cursor: engine.Connection, item: ModelPlan) -> Segment:
        import polars as pl

        model = item.model
        assert model.func is not None
        frames = [self._input_frame(cursor, name) for name in model.inputs]
        try:
            result = model.func(*frames)
            if isinstance(result, pl.LazyFrame):
                result = result.collect()
        except Exception as exc:
            frames_in_file = [
                f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(model.path)
            ]
            line = frames_in_file[-1].lineno if frames_in_file else None
            raise ModelError(
                f"Python model raised {type(exc).__name__}: {exc}",
                model.path,
                line,
                hint="fix the function; nothing was published",
            ) from exc
        if not isinstance(result, pl.DataFrame):
            raise ModelError(
                f"Python model returned {type(result).__name__}, expected a Polars DataFrame "
                "or LazyFrame",
                model.path,
                model.func.__code__.co_firstlineno,
                hint="return the frame the model computes; nothing was published",
            )
        path = new_segment_path(self.settings, item.model, item.fingerprint)
        path.parent.mkdir(parents=True, exist_ok=True)
        result.write_parquet(path, compression="zstd")
        return Segment(str(path), result.height)


def frame_from_arrow(table: Any) -> Any:
    """A LazyFrame over an Arrow table's own buffers (Polars adopts them without copying)."""
    import polars as pl

    return pl.DataFrame(table).lazy()


def _execute(
    plan: Plan, settings: Settings, state: State, build_id: str, reporter: Reporter
) -> list[ModelResult]:
    con = engine.connect(settings)
    try:
        for name, source in plan.sources.items():
            if source.absent:
                engine.create_view(con, f"source.{name}", source.empty_select())
            else:
                engine.view_over_files(con, f"source.{name}", source.files)
        todo = {p.model.name: p for p in plan.to_compute}
        runner = ModelRunner(settings, con, plan.sources, {}, build_id)
        for item in plan.models:  # DAG order
            if item.model.name not in todo:
                existing = state.get_version(item.fingerprint)
                assert existing is not None
                runner.register(item.model.name, existing, item.model.depends_on)
        return _schedule(todo, runner, settings.threads, state, build_id, reporter)
    finally:
        con.close()


def _blockers(parents: frozenset[str], todo: dict[str, ModelPlan], runner: ModelRunner) -> set[str]:
    """Models still to compute that `parents` need, looking through views kept unbuilt."""
    found: set[str] = set()
    for parent in parents:
        if parent in todo:
            found.add(parent)
        elif parent in runner.pending_views:
            found |= _blockers(runner.pending_views[parent][0], todo, runner)
    return found


def _schedule(
    todo: dict[str, ModelPlan],
    runner: ModelRunner,
    threads: int,
    state: State,
    build_id: str,
    reporter: Reporter,
) -> list[ModelResult]:
    waiting = {name: _blockers(item.model.depends_on, todo, runner) for name, item in todo.items()}
    results: list[ModelResult] = []
    failure: tuple[str, Exception] | None = None
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wh-model") as pool:
        running: dict[Future[ModelResult], str] = {}

        def submit_ready() -> None:
            for name in sorted(n for n, deps in waiting.items() if not deps):
                del waiting[name]
                reporter("start", name, todo[name].action.value)
                running[pool.submit(runner.run, todo[name])] = name

        submit_ready()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                item = todo[name]
                try:
                    result = future.result()
                except Exception as exc:
                    state.record_model(
                        build_id,
                        name,
                        item.fingerprint,
                        item.action.value,
                        "failed",
                        None,
                        0.0,
                        str(exc),
                    )
                    reporter("failed", name, str(exc))
                    failure = failure or (name, exc)
                    continue
                failed_audit = _record(state, build_id, result)
                if failed_audit:
                    reporter("failed", name, f"audit {failed_audit.audit}")
                    failure = failure or (name, failed_audit)
                    continue
                results.append(result)
                reporter("done", name, f"{result.rows_processed} rows")
                runner.register(name, result.version)
                for deps in waiting.values():
                    deps.discard(name)
            if failure is None:
                submit_ready()
    if failure is not None:
        failed_model, error = failure
        if isinstance(error, WhError):
            raise error
        raise BuildError(
            f"{type(error).__name__}: {error}",
            failed_model,
            hint="nothing was published; rerun with --debug for the traceback",
        )
    return results


def _record(state: State, build_id: str, result: ModelResult) -> AuditError | None:
    item, version = result.plan, result.version
    for label, failing, sql in result.audits:
        state.record_audit(build_id, item.model.name, item.fingerprint, label, failing, sql)
    failed = result.failed_audit
    status = "failed" if failed else "ok"
    state.record_model(
        build_id,
        item.model.name,
        item.fingerprint,
        item.action.value,
        status,
        result.rows_processed,
        result.seconds,
        f"audit {failed[0]} failed" if failed else None,
    )
    if failed:
        return AuditError(item.model.name, failed[0], failed[1], failed[2])
    state.add_version(version)
    return None


def _quiet(event: str, model: str, detail: str) -> None:
    return None


def build(
    settings: Settings,
    selection: list[str] | None = None,
    full_refresh: bool = False,
    reporter: Reporter = _quiet,
    command: str = "build",
) -> BuildResult:
    """Bring the environment `settings.env` up to date with the project."""
    started = time.perf_counter()
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        everything = not selection and not full_refresh
        # taken before anything is read: a file changed during the build changes the digest
        digest = uptodate.inputs_digest(settings) if everything else None
        try:
            state.abandon_running_builds()
            catalog.repair(settings, state)
            remove_orphans(settings, state)
            project = load_project(settings)
            plan = make_plan(project, state, settings.env, selection, full_refresh)
            check_sql(plan.to_compute)
            build_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
            state.start_build(
                build_id,
                command,
                settings.env,
                ",".join(selection) if selection else None,
                os.getpid(),
            )
            if not plan.to_compute and not plan.publishes_something:
                state.finish_build(build_id, "noop")
                state.remember_uptodate(settings.env, digest, len(plan.models))
                return BuildResult(
                    build_id, settings.env, "noop", plan, [], None, time.perf_counter() - started
                )
            try:
                results = _execute(plan, settings, state, build_id, reporter)
                head = plan.head
                published = None
                if plan.publishes_something:
                    published = publish(
                        settings,
                        state,
                        settings.env,
                        plan.mapping,
                        "build",
                        build_id,
                        head.id if head else None,
                    )
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    state.finish_build(build_id, "failed", error=str(exc) or type(exc).__name__)
                raise
            rows = sum(r.rows_processed for r in results)
            state.finish_build(build_id, "ok", len(results), len(plan.models) - len(results), rows)
            state.remember_uptodate(settings.env, digest, len(plan.models))
            return BuildResult(
                build_id,
                settings.env,
                "ok",
                plan,
                results,
                published,
                time.perf_counter() - started,
            )
        except sqlite3.Error as exc:
            raise StateError(
                f"could not write the warehouse state ({exc})",
                hint=f"is the disk holding {settings.warehouse} full or read-only? free space "
                "and build again; what readers see was not changed",
            ) from None
        finally:
            state.close()
