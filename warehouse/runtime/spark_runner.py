"""Computing model versions on Spark: the same plan, versions, audits and publish as a DuckDB
build; only the engine that reads and writes the Parquet files differs.

Each SQL model's DuckDB query is translated (engine/spark_sql.py) with its parameters bound
as literals and its tables replaced by temporary views. Its output is cast, column by column
and by position, to the types DuckDB gives the same query (DuckDB binds it over empty tables
of the inputs' recorded types: no data is read), so readers see one type per column
whichever engine built the version. Versions are written in wh's layout, one folder per
month for incremental models, and audited on Spark before anything is published.

A Python model with `partition_by` runs its Polars function once per group on the
workers; one without runs on the driver, reading its inputs' files with Polars as in a
DuckDB build, up to `[engine] driver_max_rows` input rows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from warehouse.config import Settings
from warehouse.errors import ModelError
from warehouse.project.model import ModelKind
from warehouse.runtime import produced
from warehouse.runtime.audits import audit_queries, run_audits
from warehouse.runtime.engine import duckdb as duck
from warehouse.runtime.engine import spark_sql
from warehouse.runtime.engine.spark import Spark, short_message, view_name
from warehouse.runtime.plan import Action, ModelPlan, Plan, arrived_files
from warehouse.runtime.runner import SIGNED, Computed, ModelRunner, frame_from_arrow, signed
from warehouse.runtime.segments import (
    SegmentWriter,
    joined,
    reused_segments,
    window_start,
    written_by,
)
from warehouse.runtime.sources import Source, erased_ids
from warehouse.runtime.state import Segment, Version
from warehouse.runtime.storage import new_segment_path

MONTH = "wh_month"
AUDITED, COMPUTED = "wh__audited", "wh__computed"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


class SparkModelRunner(ModelRunner):
    """Computes one model version on Spark; pure with respect to state."""

    def __init__(
        self,
        settings: Settings,
        spark: Spark,
        sources: dict[str, Source],
        versions: dict[str, Version],
        build_id: str,
    ) -> None:
        binder = duck.connect_plain()  # types only: DuckDB binds queries over empty tables
        super().__init__(settings, binder, sources, versions, build_id)
        self.spark = spark
        self.writer = SegmentWriter(settings)  # time windows and parameters, in DuckDB's SQL
        self.source_columns: dict[str, list[tuple[str, str]]] = {}
        # `this` of the model running: its columns and types (None: typed NULL, a full build)
        self._this_columns: list[tuple[str, str | None]] = []
        self._written_types: list[tuple[str, str]] = []  # what the model's query returns

    # -- names ---------------------------------------------------------------------------

    def _columns(self, schema: str, table: str) -> list[tuple[str, str | None]]:
        if not schema:  # `this`
            return list(self._this_columns)
        if schema in ("source", "arrived"):
            return list(self._source_columns(table))
        name = f"{schema}.{table}"
        if name not in self.versions and name in produced.READABLE_BEFORE_PUBLISH:
            return list(produced.READABLE_BEFORE_PUBLISH[name].items())
        return list(self.versions[name].columns)

    def translate(self, sql: str, item: ModelPlan | None, params: dict[str, Any]) -> str:
        try:
            return spark_sql.translate(sql, params, view_name, self._columns)
        except spark_sql.Untranslatable as exc:
            problem = exc.problems[0]
            path = item.model.path if item else None
            raise ModelError(
                f"cannot run on Spark: {problem.construct}: {problem.reason}",
                path,
                problem.line,
                problem.column,
                hint="`wh plan --engine spark` lists every such construct; rewrite it, or "
                "build with [engine] name = 'duckdb'",
            ) from None

    def first_row(self, sql: str) -> tuple[Any, ...] | None:
        return self.spark.first_row(self.translate(sql, None, {}))

    # -- registering inputs ----------------------------------------------------------------

    def _source_columns(self, name: str) -> list[tuple[str, str]]:
        if name not in self.source_columns:
            source = self.sources[name]
            relation = (
                f"({source.empty_select()})" if source.absent else duck.parquet_scan(source.files)
            )
            self.source_columns[name] = duck.describe(self.con, relation)
        return self.source_columns[name]

    def register_source(self, name: str) -> None:
        source = self.sources[name]
        if source.absent:
            frame = self.spark.sql(self.translate(source.empty_select(), None, {}))
        else:
            frame = _erased(source, self.spark.read(source.files, merge_schema=True))
        self.spark.view(view_name("source", name), frame)

    def _view_over_version(self, name: str, version: Version) -> None:
        self.spark.view_over_files(view_name(*name.split(".", 1)), version.files)

    def _view_of_query(self, name: str, query: str) -> None:
        self._create_view(name, query)

    def _create_view(self, name: str, query: str, item: ModelPlan | None = None) -> None:
        params = self.writer.params(item) if item else dict(self.settings.variables)
        sql = self.translate(query, item, params)
        self.spark.view(view_name(*name.split(".", 1)), self.spark.sql(sql))
        self.registered.add(name)

    # -- one model -------------------------------------------------------------------------

    def _open(self) -> Any:
        return None  # temporary views are the session's; models run one at a time

    def _error(self, item: ModelPlan, exc: Exception) -> Exception | None:
        if isinstance(exc, self.spark.errors):
            hint = (
                "the function ran per partition_by group on the Spark workers, which need "
                "Polars and PyArrow; nothing was published"
                if item.model.language == "python"
                else "the model's SQL as Spark ran it: `wh plan --engine spark --sql "
                f"{item.model.name}`; nothing was published"
            )
            return ModelError(f"Spark failed: {short_message(exc)}", item.model.path, hint=hint)
        return super()._error(item, exc)

    def _point_incremental_inputs(self, cursor: Any, item: ModelPlan) -> None:
        for name, files in arrived_files(item, self.sources).items():
            source = self.sources[name]
            target = view_name("arrived", name)
            if source.absent:
                self.spark.view(
                    target, self.spark.sql(self.translate(source.empty_select(), item, {}))
                )
            elif files:
                self.spark.view(target, _erased(source, self.spark.read(files, merge_schema=True)))
            else:
                self.spark.view(target, self.spark.read(source.files, merge_schema=True).limit(0))
        self._this_columns = []
        if item.model.reads_this:
            previous = item.previous if item.action is Action.INCREMENTAL else None
            if previous is not None and previous.files:
                self._this_columns = list(previous.columns)
                self.spark.view_over_files(view_name("", "this"), previous.files)
            else:
                self._this_columns = [(c, None) for c in item.model.output_names]
                empty = duck.empty_with_columns(item.model.output_names)
                self.spark.view(
                    view_name("", "this"), self.spark.sql(self.translate(empty, item, {}))
                )

    def _compute(self, cursor: Any, item: ModelPlan) -> Computed:
        model = item.model
        self._point_incremental_inputs(cursor, item)
        if item.action is Action.VIEW:
            with self.catalog_lock:
                self._create_view(model.name, model.query, item)
            segments: list[Segment] = []
            processed = 0
            audited = view_name(*model.name.split(".", 1))
            columns = self._canonical(item, model.query + "\n", self.writer.params(item))
        else:
            if model.language == "python" and model.partition_by:
                segments = self._python_per_group(item)
                processed = sum(s.rows for s in segments)
            elif model.language == "python":
                self._check_driver_size(item)
                segments = [self._python(cursor, item)]
                processed = segments[0].rows
            elif item.action is Action.INCREMENTAL:
                segments, processed = self._incremental(item)
            else:
                segments, processed = self._full(item)
            self.spark.view_over_files(AUDITED, [s.file for s in segments])
            audited = AUDITED
            if model.language == "python":  # types as the files hold them (Polars' own)
                columns = duck.describe(self.con, duck.parquet_scan([s.file for s in segments]))
            else:
                columns = self._written_types
        computed = None
        written = written_by(item, segments)
        if item.previous is not None and written:
            self.spark.view_over_files(COMPUTED, written)
            computed = COMPUTED
        audits = run_audits(None, audit_queries(model, audited, computed), fetch=self.first_row)
        return Computed(segments, processed, columns, audits)

    def _python_per_group(self, item: ModelPlan) -> list[Segment]:
        """The model's function once per value of its partition_by column, on the workers
        (Spark's applyInArrow): the output schema is what the function returns for no rows."""
        import polars as pl

        model = item.model
        assert model.func is not None and model.partition_by is not None
        (name,) = model.inputs
        schema, _, table = name.partition(".")
        frame = self.spark.spark.table(view_name(schema, table))
        if model.partition_by not in frame.columns:
            raise ModelError(
                f"partition_by column '{model.partition_by}' is not a column of {name}",
                model.path,
                model.func.__code__.co_firstlineno,
                hint=f"{name} has: {', '.join(frame.columns)}",
            )
        empty = pl.from_arrow(frame.limit(0).toArrow())
        assert isinstance(empty, pl.DataFrame)
        try:
            shape = model.func(empty.lazy())
            shape = shape.collect() if isinstance(shape, pl.LazyFrame) else shape
        except Exception as exc:
            raise ModelError(
                f"partition_by: the function must accept no rows (wh learns its output "
                f"columns from it): {type(exc).__name__}: {exc}",
                model.path,
                model.func.__code__.co_firstlineno,
                hint="make it work on an empty frame, or drop partition_by",
            ) from exc
        target = _spark_arrow_schema(
            signed(shape).to_arrow(compat_level=pl.CompatLevel.oldest()).schema
        )
        from pyspark.sql.pandas.types import from_arrow_schema

        per_group = frame.groupBy(model.partition_by).applyInArrow(
            _per_group(model.func, target), from_arrow_schema(target)
        )
        return self._write(item, per_group, by_month=False)

    def _computed_frame(self, cursor: Any, name: str) -> Any:
        """A view, or an absent optional source: computed by Spark, handed over as Arrow."""
        return frame_from_arrow(
            self.spark.sql(f"SELECT * FROM {view_name(*name.split('.', 1))}").toArrow()
        )

    def _check_driver_size(self, item: ModelPlan) -> None:
        rows = 0
        for name in item.model.inputs:
            schema, _, table = name.partition(".")
            if schema == "source":
                rows += duck.parquet_rows(self.con, self.sources[table].files)
            else:
                rows += max(self.versions[name].row_count, 0)
        limit = self.settings.engine.driver_max_rows
        if rows > limit:
            raise ModelError(
                f"Python model reads {rows:,} input rows; on Spark a Python model runs on the "
                f"driver, which takes at most {limit:,} ([engine] driver_max_rows)",
                item.model.path,
                item.model.func.__code__.co_firstlineno if item.model.func else None,
                hint="give @model a partition_by column to run it per group on the workers, "
                "raise [engine] driver_max_rows if the driver has the memory, or write it in SQL",
            )

    # -- types -----------------------------------------------------------------------------

    def _canonical(
        self, item: ModelPlan, sql: str, params: dict[str, Any]
    ) -> list[tuple[str, str]]:
        """The columns DuckDB gives the query and reads back from Parquet, bound over empty
        tables with the inputs' types (a version's recorded columns; a source's footers)."""
        con = self.con  # the binder: each model replaces the empty views of its inputs
        tables: dict[str, list[tuple[str, str]]] = {}
        for name in item.model.depends_on:
            tables[name] = list(self.versions[name].columns)
        for name in item.model.sources:
            tables[f"source.{name}"] = self._source_columns(name)
        for name in item.model.arrived:
            tables[f"arrived.{name}"] = self._source_columns(name)
        for name in item.model.produced:  # a forecast table: served, or not published yet
            if name in self.versions:
                tables[name] = list(self.versions[name].columns)
            else:
                empty = produced.empty_select(name)
                assert empty is not None, f"{name}: the plan admits only known tables"
                duck.create_view(con, name, empty)
        for name, columns in tables.items():
            duck.create_view(con, name, duck.empty_typed(columns))
        if item.model.reads_this:
            duck.point_this(con, duck.empty_typed(self._this_columns))
        scratch = self.settings.warehouse / "tmp"
        scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as folder:
            path = Path(folder) / "types.parquet"
            duck.copy_to_parquet(con, sql, path, params)
            return duck.describe(con, duck.parquet_scan([path]))

    def _frame(self, item: ModelPlan, sql: str, params: dict[str, Any]) -> Any:
        """The query on Spark, its columns cast to DuckDB's types and names by position."""
        from pyspark.sql import functions as F

        canonical = self._canonical(item, sql, params)
        self._written_types = canonical  # recorded as the version's columns
        frame = self.spark.sql(self.translate(sql, item, params))
        if len(frame.columns) != len(canonical):
            raise ModelError(
                f"Spark's translation returns {len(frame.columns)} columns, DuckDB's query "
                f"{len(canonical)}",
                item.model.path,
                hint="report this: the Spark dialect changed the query's shape",
            )
        return frame.select(
            *[
                F.col(f"`{name}`").cast(spark_sql.spark_type(kind)).alias(target)
                for name, (target, kind) in zip(frame.columns, canonical, strict=True)
            ]
        )

    # -- writing ---------------------------------------------------------------------------

    def _write(self, item: ModelPlan, frame: Any, by_month: bool) -> list[Segment]:
        from pyspark.sql import functions as F

        folder = new_segment_path(self.settings, item.model, item.fingerprint).with_suffix("")
        column = item.model.time_column
        if by_month and column:
            frame = frame.withColumn(
                MONTH, F.date_format(F.col(f"`{column}`").cast("date"), "yyyy-MM")
            )
            files = self.spark.write(frame, folder, MONTH)
            if not files:  # nothing in the window: one empty file keeps the columns
                return self._write(item, frame.drop(MONTH), by_month=False)
        else:
            files = self.spark.write(frame, folder)
        stats = self.spark.file_stats(files, column)
        segments = [Segment(f, rows, _text(lo), _text(hi)) for f, (rows, lo, hi) in stats.items()]
        return sorted(segments, key=lambda s: (s.tmin is None, s.tmin or "", s.file))

    def _full(self, item: ModelPlan) -> tuple[list[Segment], int]:
        params = self.writer.params(item)
        if item.model.kind is ModelKind.INCREMENTAL_BY_TIME:
            sql = self.writer.time_window(item)
            segments = self._write(item, self._frame(item, sql, params), by_month=True)
        else:
            segments = self._write(item, self._frame(item, item.model.query, params), False)
        return segments, sum(s.rows for s in segments)

    def _incremental(self, item: ModelPlan) -> tuple[list[Segment], int]:
        from pyspark.sql import functions as F

        start = window_start(item)
        column = item.model.time_column or ""
        kept: list[Segment] = []
        for segment, whole in reused_segments(item, start):
            if whole:
                kept.append(segment)
                continue
            before = self.spark.read([segment.file]).where(
                F.col(f"`{column}`").cast("date") < F.lit(start)
            )
            kept.extend(self._write(item, before, by_month=False))
        frame = self._frame(item, self.writer.time_window(item), self.writer.params(item, start))
        return joined(kept, self._write(item, frame, by_month=True))


def _spark_arrow_schema(schema: Any) -> Any:
    """Arrow types Spark accepts from a UDF: plain strings and lists, not large ones."""
    import pyarrow as pa

    def plain(kind: Any) -> Any:
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_large_binary(kind):
            return pa.binary()
        if pa.types.is_large_list(kind) or pa.types.is_list(kind):
            return pa.list_(plain(kind.value_type))
        return kind

    return pa.schema([pa.field(f.name, plain(f.type)) for f in schema])


def _per_group(func: Any, target: Any) -> Any:
    """What each Spark worker runs per group: Arrow in, the model's Polars function, Arrow
    out in the declared schema. Self-contained (no wh import), so the workers need Polars
    and PyArrow but not wh; the user's function is shipped by value (cloudpickle: the
    pipeline module is not importable under its loader name)."""
    widen = dict(SIGNED)  # a copy travels with the closure; the module does not

    def run(table: Any) -> Any:
        import polars as pl

        result = func(pl.DataFrame(table).lazy())
        if isinstance(result, pl.LazyFrame):
            result = result.collect()
        result = result.with_columns(
            pl.col(n).cast(getattr(pl, widen[str(k)]))
            for n, k in result.schema.items()
            if str(k) in widen
        )
        return result.to_arrow(compat_level=pl.CompatLevel.oldest()).cast(target)

    return run


def spark_sql_of(
    settings: Settings,
    item: ModelPlan,
    sources: dict[str, Source],
    versions: dict[str, Sequence[tuple[str, str]]],
) -> tuple[str | None, list[spark_sql.Problem]]:
    """A model's query as a Spark build would run it in full, or the constructs that stop
    it (`wh plan --engine spark`); runs nothing. `versions`: known columns per model."""
    model = item.model
    if model.language != "sql":
        return None, []
    writer = SegmentWriter(settings)
    sql = model.query
    params = writer.params(item)
    if model.kind is ModelKind.INCREMENTAL_BY_TIME:
        sql = writer.time_window(item)

    def columns(schema: str, table: str) -> list[tuple[str, str | None]]:
        if not schema:
            return [(name, None) for name in model.output_names]
        if schema in ("source", "arrived"):
            source = sources.get(table)
            if source is None or source.contract is None:
                return []
            return [(c.name, None) for c in source.contract.columns]
        return list(versions.get(f"{schema}.{table}", ()))

    tree, problems = spark_sql.rewrite(spark_sql.parse(sql), params, view_name, columns, sql)
    if problems:
        return None, problems
    return tree.sql(dialect=spark_sql.WRITE, pretty=True, comments=False), problems


def translation_report(
    settings: Settings, plan: Plan, only: Iterable[ModelPlan] | None = None
) -> list[tuple[ModelPlan, str | None, list[spark_sql.Problem]]]:
    """Each SQL model's Spark SQL, or what stops it; runs nothing. Columns of a model come
    from its version (the current one, else the one an incremental run extends); a model
    never built yet has none, so a `* exclude` over it is shown unexpanded until then."""
    known: dict[str, Sequence[tuple[str, str]]] = {}
    for item in plan.models:
        version = item.current or item.previous
        if version is not None:
            known[item.model.name] = version.columns
    items = list(only) if only is not None else [p for p in plan.models if p.computes]
    report = []
    for item in items:
        if item.model.language == "sql":
            sql, problems = spark_sql_of(settings, item, plan.sources, known)
            report.append((item, sql, problems))
    return report


def check_translatable(settings: Settings, plan: Plan, todo: dict[str, ModelPlan]) -> None:
    """Refuse a Spark build before anything runs when a model cannot be translated."""
    found = [
        (item, problem)
        for item, _, problems in translation_report(settings, plan, todo.values())
        for problem in problems
    ]
    if found:
        item, problem = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ModelError(
            f"cannot run on Spark: {problem.construct}: {problem.reason}{more}",
            item.model.path,
            problem.line,
            problem.column,
            hint="`wh plan --engine spark` lists every such construct; nothing was built",
        )


def _erased(source: Source, frame: Any) -> Any:
    """`Source.select_sql` on Spark: erased customers' rows removed or their ids emptied."""
    if not source.erasures or source.contract is None or not source.contract.direct:
        return frame
    from pyspark.sql import functions as F

    ids = erased_ids(source.erasures)
    hits = [
        F.coalesce(F.col(c).cast("string").isin(ids), F.lit(False)) for c in source.contract.direct
    ]
    if source.contract.erase_rows:
        any_hit = hits[0]
        for hit in hits[1:]:
            any_hit = any_hit | hit
        return frame.filter(~any_hit)
    for column, hit in zip(source.contract.direct, hits, strict=True):
        frame = frame.withColumn(column, F.when(hit, F.lit(None)).otherwise(F.col(column)))
    return frame
