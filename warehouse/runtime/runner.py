"""Computing one model version: dispatch by kind (view, SQL in full or incremental, Python),
the audits of what was written, and making finished versions readable by later models."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from warehouse import faults
from warehouse.config import Settings
from warehouse.errors import ModelError
from warehouse.project.audit_rules import COMPLETENESS_AUDIT
from warehouse.runtime import produced
from warehouse.runtime.audits import AuditResult, audit_queries, run_audits
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.plan import Action, ModelPlan, arrived_files
from warehouse.runtime.segments import SegmentWriter, day_of, window_start, written_by
from warehouse.runtime.sources import Source
from warehouse.runtime.sql_errors import translate
from warehouse.runtime.state import Segment, Version
from warehouse.runtime.storage import new_segment_path


@dataclass
class ModelResult:
    plan: ModelPlan
    version: Version
    rows_processed: int
    seconds: float
    audits: list[AuditResult] = field(default_factory=list)

    @property
    def failed_audit(self) -> AuditResult | None:
        return next((a for a in self.audits if a.failing > 0), None)


class Computed(NamedTuple):
    """What computing a version produced, before it is recorded."""

    segments: list[Segment]
    rows_processed: int
    columns: list[tuple[str, str]]
    audits: list[AuditResult]


def _in_full(item: ModelPlan, reason: str) -> ModelPlan:
    return replace(item, action=Action.FULL, previous=None, reason=reason)


# unsigned integers (Polars' len() and counts are UInt32) as the signed type that holds them:
# Spark and Postgres clients have no unsigned types, so a column has one type on every engine
SIGNED = {"UInt8": "Int16", "UInt16": "Int32", "UInt32": "Int64", "UInt64": "Int64"}


def signed(frame: Any) -> Any:
    """A Python model's result with unsigned integer columns widened to signed ones."""
    import polars as pl

    casts = [
        pl.col(name).cast(getattr(pl, SIGNED[str(kind)]))
        for name, kind in frame.schema.items()
        if str(kind) in SIGNED
    ]
    return frame.with_columns(casts) if casts else frame


def frame_from_arrow(table: Any) -> Any:
    """A LazyFrame over an Arrow table's own buffers (Polars adopts them without copying)."""
    import polars as pl

    return pl.DataFrame(table).lazy()


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
        self.segments = SegmentWriter(settings)
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
                self._view_over_version(name, version)
                self.registered.add(name)
            self._create_ready_views()

    def register_produced(self, name: str, version: Version | None) -> None:
        """A table `wh forecast` publishes, as models read it: the served version, or no rows
        with its contract's columns before a run has published it."""
        if version is not None:
            self.register(name, version)
            return
        empty = produced.empty_select(name)
        assert empty is not None, f"{name}: the plan admits only known tables"
        with self.catalog_lock:
            self._view_of_query(name, empty)
            self.registered.add(name)

    def _view_over_version(self, name: str, version: Version) -> None:
        engine.create_view(self.con, name, engine.version_select(version.files, version.columns))

    def _view_of_query(self, name: str, query: str) -> None:
        engine.create_view(self.con, name, query + "\n")

    def _create_ready_views(self) -> None:
        created = True
        while created:
            created = False
            for name, (parents, version) in list(self.pending_views.items()):
                if parents <= self.registered:
                    self._view_of_query(name, version.query)
                    self.registered.add(name)
                    del self.pending_views[name]
                    created = True

    def _open(self) -> Any:
        """What one model run computes on (a DuckDB cursor: its own variables and temp views)."""
        return self.con.cursor()

    def _error(self, item: ModelPlan, exc: Exception) -> Exception | None:
        """The WhError for what the engine raised, or None if it is not the engine's."""
        if isinstance(exc, engine.Error):
            return translate(item, exc, self.settings.warehouse, self.sources)
        return None

    def run(self, item: ModelPlan) -> ModelResult:
        started = time.perf_counter()
        cursor = self._open()
        rebuilt = sorted(item.model.depends_on & self.rebuilt_in_full)
        if rebuilt:  # rows before the window changed upstream: extending would miss them
            self.rebuilt_in_full.add(item.model.name)
            if item.action is Action.INCREMENTAL:
                item = _in_full(item, f"{rebuilt[0]} was rebuilt in full")
        if item.action is Action.INCREMENTAL and item.model.produced:
            item = self._window_for_produced(item)
        try:
            computed = self._compute(cursor, item)
            if item.action is Action.INCREMENTAL and any(
                a.name == COMPLETENESS_AUDIT and a.failing for a in computed.audits
            ):
                # rows arrived for periods before the window: extending would lose them
                for file in written_by(item, computed.segments):
                    Path(file).unlink(missing_ok=True)
                item = _in_full(item, "rows arrived for periods before the lookback window")
                self.rebuilt_in_full.add(item.model.name)
                computed = self._compute(cursor, item)
        except Exception as exc:
            error = self._error(item, exc)
            if error is None:
                raise
            raise error from None
        finally:
            if cursor is not None:
                cursor.close()
        model = item.model
        version = Version(
            fingerprint=item.fingerprint,
            model=model.name,
            kind=model.kind.value,
            data_hash=model.data_hash(),
            logic_fp=item.logic_fp,
            query=model.query,
            segments=tuple(computed.segments),
            columns=tuple(computed.columns),
            row_count=sum(s.rows for s in computed.segments) if computed.segments else -1,
            time_column=model.time_column,
            build_id=self.build_id,
            source_files=item.source_files,
        )
        return ModelResult(
            item, version, computed.rows_processed, time.perf_counter() - started, computed.audits
        )

    def _window_for_produced(self, item: ModelPlan) -> ModelPlan:
        """Widen an incremental run's window back to the earliest time in the rows a forecast
        table gained since the version it extends (a run with an earlier --cutoff forecasts
        dates already built); a table without the model's time column makes it a full run."""
        assert item.previous is not None
        seen = set(item.previous.source_files or ())
        column = item.model.time_column or ""
        earliest = None
        for name in sorted(item.model.produced):
            version = self.versions.get(name)
            if version is None:
                continue  # not published: no rows
            added = [s.file for s in version.segments if produced.file_record(name, s) not in seen]
            if not added:
                continue
            if column not in {c for c, _ in version.columns}:
                self.rebuilt_in_full.add(item.model.name)
                return _in_full(item, f"{name} gained rows and has no column {column}")
            cursor = self.con.cursor()  # footers and one column of the new files
            try:
                row = engine.first_row(
                    cursor,
                    f"SELECT CAST(min({engine.quote_ident(column)}) AS DATE) "
                    f"FROM {engine.parquet_scan(added)}",
                )
            finally:
                cursor.close()
            if row and row[0] is not None:
                day = day_of(str(row[0]))
                earliest = day if earliest is None else min(earliest, day)
        if earliest is None or earliest >= window_start(item):
            return item
        # rows before the usual window change: models reading this one cannot extend theirs
        self.rebuilt_in_full.add(item.model.name)
        return replace(item, window_from=earliest)

    def _compute(self, cursor: Any, item: ModelPlan) -> Computed:
        """Write the version's data and audit it."""
        model = item.model
        self._point_incremental_inputs(cursor, item)
        if item.action is Action.VIEW:
            segments, processed = self._view(cursor, item), 0
            relation = engine.qualified(model.name)
        elif model.language == "python":
            segments = [self._python(cursor, item)]
            processed = segments[0].rows
        elif item.action is Action.INCREMENTAL:
            segments, processed = self.segments.incremental(cursor, item)
        else:
            segments, processed = self.segments.full(cursor, item)
        computed = None
        if segments:
            relation = engine.parquet_scan([s.file for s in segments])
            written = written_by(item, segments)
            if item.previous is not None and written:  # audit the rows this run wrote
                computed = engine.parquet_scan(written)
        faults.point("compute")
        columns = engine.describe(cursor, relation)
        audits = run_audits(cursor, audit_queries(model, relation, computed))
        faults.point("audit")
        return Computed(segments, processed, columns, audits)

    def _point_incremental_inputs(self, cursor: engine.Connection, item: ModelPlan) -> None:
        """Set `arrived.<source>` and `this` for this run of the model, on its own cursor:
        the files added since the version it extends and that version's rows, or every file
        and no rows when it computes in full."""
        for name, files in arrived_files(item, self.sources).items():
            source = self.sources[name]
            if not source.absent:
                engine.point_arrived(cursor, name, files, source.files)
        if item.model.reads_this:
            previous = item.previous if item.action is Action.INCREMENTAL else None
            engine.point_this(
                cursor,
                engine.version_select(previous.files, previous.columns)
                if previous is not None and previous.files
                else engine.empty_with_columns(item.model.output_names),
            )

    def _view(self, cursor: engine.Connection, item: ModelPlan) -> list[Segment]:
        with self.catalog_lock:
            engine.create_view(cursor, item.model.name, item.model.query + "\n")
            self.registered.add(item.model.name)
        return []

    def _input_frame(self, cursor: Any, name: str) -> Any:
        import polars as pl

        schema, _, table = name.partition(".")
        files: list[str]
        if schema == "source":
            files = [str(f) for f in self.sources[table].files]
        else:
            files = self.versions[name].files
        if files and schema == "source":
            return self.sources[table].erased_frame(pl.scan_parquet(files, hive_partitioning=False))
        if files:
            return pl.scan_parquet(files, hive_partitioning=False)
        return self._computed_frame(cursor, name)

    def _computed_frame(self, cursor: Any, name: str) -> Any:
        """A view, or an absent optional source: through DuckDB, handed over as Arrow."""
        return frame_from_arrow(
            cursor.sql(f"SELECT * FROM {engine.qualified(name)}").to_arrow_table()
        )

    def _python(self, cursor: Any, item: ModelPlan) -> Segment:
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
        result = signed(result)
        result.write_parquet(path, compression="zstd")
        return Segment(str(path), result.height)
