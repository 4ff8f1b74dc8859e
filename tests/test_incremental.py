"""Incremental builds from appended source files: cleaning models extend by order date, and
whatever arrives, the result equals a full build of the same sources."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from conftest import append_last_day, published_rows, rounded, split_last_day

from warehouse.config import Settings, load_settings
from warehouse.errors import AuditError
from warehouse.project.model import sql_model
from warehouse.runtime.audits import audit_queries, run_audits
from warehouse.runtime.build import BuildResult, build
from warehouse.runtime.catalog import pointer_path
from warehouse.runtime.plan import Action, plan_build

CLEANING = ("checks.orders", "checks.order_items")
INCREMENTAL = (*CLEANING, "features.demand", "features.demand_features")


def actions(result: BuildResult) -> dict[str, Action]:
    return {r.plan.model.name: r.plan.action for r in result.results}


def every_table(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Each published table's rows, sorted, floats rounded (parallel sums add in any order)."""
    return {
        name: sorted(rounded(rows), key=repr) for name, rows in published_rows(settings).items()
    }


def assert_equals_full_build(settings: Settings) -> None:
    fresh = load_settings(settings.project_dir).with_overrides(
        warehouse=settings.warehouse.parent / "fresh"
    )
    shutil.rmtree(fresh.warehouse, ignore_errors=True)  # from nothing, every time
    build(fresh)
    incremental, full = every_table(settings), every_table(fresh)
    assert incremental.keys() == full.keys()
    for name in full:
        assert incremental[name] == full[name], name


def add_part(sources: Path, name: str, frame: pl.DataFrame) -> None:
    folder = sources / name
    frame.write_parquet(folder / f"part-{len(list(folder.glob('*.parquet')))}.parquet")


def test_cleaning_models_extend_by_order_date_and_equal_a_full_build(project: Settings) -> None:
    sources = project.sources
    split_last_day(sources)
    build(project)
    orders = pl.read_parquet(sources / "orders" / "part-0.parquet")
    items = pl.read_parquet(sources / "order_items" / "part-0.parquet")
    new_orders = pl.read_parquet(sources / ".held-orders.parquet")
    new_items = pl.read_parquet(sources / ".held-order_items.parquet")
    append_last_day(sources)
    new_day = new_orders["order_ts"].max()
    old_order = orders.row(0, named=True)
    no_ts, no_order = 10**9 + 1, 10**9 + 2  # ids no generated order has
    tricky_orders = pl.DataFrame(
        [
            # a later copy of an order from the first day: a duplicate, the old copy stays
            {**old_order, "order_ts": new_day},
            # no timestamp: rejected, and checked again in every incremental build
            {**old_order, "order_id": no_ts, "order_ts": None},
        ],
        schema=orders.schema,
    )
    line = new_items.row(0, named=True)
    tricky_items = pl.DataFrame(
        [
            line,  # an exact copy of a new line: duplicate_line
            {**line, "order_id": no_order},  # missing_order, no date
            {**line, "order_id": no_ts},  # its order has no timestamp: order_rejected
        ],
        schema=items.schema,
    )
    add_part(sources, "orders", tricky_orders)
    add_part(sources, "order_items", tricky_items)

    result = build(project)
    done = actions(result)
    assert {name: done[name] for name in INCREMENTAL} == dict.fromkeys(
        INCREMENTAL, Action.INCREMENTAL
    )
    processed = {r.plan.model.name: r.rows_processed for r in result.results}
    assert processed["checks.order_items"] < len(items) / 5
    assert_equals_full_build(project)
    reasons = dict(
        duckdb.connect(str(pointer_path(project, "prod")), read_only=True)
        .execute(
            "SELECT order_id, reject_reason FROM checks.order_items "
            f"WHERE order_id IN ('{no_order}', '{no_ts}')"
        )
        .fetchall()
    )
    assert reasons == {str(no_order): "missing_order", str(no_ts): "order_rejected"}


def reject_reasons(settings: Settings, ids: list[int]) -> dict[str, str | None]:
    listed = ", ".join(f"'{i}'" for i in ids)
    con = duckdb.connect(str(pointer_path(settings, "prod")), read_only=True)
    try:
        found = con.execute(
            f"SELECT order_id, reject_reason FROM checks.order_items WHERE order_id IN ({listed})"
        ).fetchall()
    finally:
        con.close()
    return dict(found)


def test_lines_without_an_order_come_from_the_extended_version_and_the_new_files(
    project: Settings,
) -> None:
    """checks.order_items finds lines without a dated order without comparing every line with
    every order: those its last version had (`this`) and those in new files (`arrived`)."""
    sources = project.sources
    split_last_day(sources)
    held_orders = pl.read_parquet(sources / ".held-orders.parquet")
    held_items = pl.read_parquet(sources / ".held-order_items.parquet")
    early_path = sources / "order_items" / "part-0.parquet"
    early = pl.read_parquet(early_path)
    ahead = int(held_orders["order_id"][0])  # its lines arrive a day before the order
    never = 10**9 + 5  # no order ever comes
    stray = early.head(1).with_columns(order_id=pl.lit(never, dtype=early.schema["order_id"]))
    pl.concat([early, held_items.filter(pl.col("order_id") == ahead), stray]).write_parquet(
        early_path
    )
    held_items.filter(pl.col("order_id") != ahead).write_parquet(
        sources / ".held-order_items.parquet"
    )
    build(project)
    assert set(reject_reasons(project, [ahead, never]).values()) == {"missing_order"}

    append_last_day(sources)  # the order arrives, dated in the window
    result = build(project)
    assert actions(result)["checks.order_items"] is Action.INCREMENTAL
    reasons = reject_reasons(project, [ahead, never])
    assert reasons == {str(ahead): None, str(never): "missing_order"}
    assert_equals_full_build(project)

    # the next day: a line without an order, in a new file; no new orders
    newer = 10**9 + 6
    add_part(sources, "order_items", stray.with_columns(order_id=pl.lit(newer, pl.Int64)))
    planned = next(
        p
        for p in plan_build(project, None, False).to_json()["models"]  # type: ignore[union-attr]
        if p["model"] == "checks.order_items"
    )
    assert planned["action"] == "incremental"
    assert planned["arrived"] == {"order_items": [str(sources / "order_items" / "part-2.parquet")]}
    result = build(project)
    assert actions(result)["checks.order_items"] is Action.INCREMENTAL
    assert reject_reasons(project, [newer, never]) == {
        str(newer): "missing_order",
        str(never): "missing_order",
    }
    assert_equals_full_build(project)

    # an order for the old stray line, dated before the window: rebuilt in full, not hidden
    orders = pl.read_parquet(sources / "orders" / "part-0.parquet")
    old_day = orders["order_ts"].max() - timedelta(days=10)
    add_part(
        sources,
        "orders",
        pl.DataFrame(
            [{**orders.row(0, named=True), "order_id": never, "order_ts": old_day}],
            orders.schema,
        ),
    )
    result = build(project)
    assert actions(result)["checks.order_items"] is Action.FULL
    assert reject_reasons(project, [never]) == {str(never): None}
    assert_equals_full_build(project)


def _events(folder: Path, part: int, rows: list[tuple[int, date | None]]) -> Path:
    path = folder / f"part-{part}.parquet"
    pl.DataFrame(rows, schema={"id": pl.Int64, "day": pl.Date}, orient="row").write_parquet(path)
    return path


def test_arrived_reads_the_new_files_and_this_the_version_extended(tmp_path: Path) -> None:
    folder = tmp_path / "sources" / "events"
    folder.mkdir(parents=True)
    _events(folder, 0, [(1, date(2024, 1, 1)), (2, None), (3, date(2024, 1, 2))])
    (tmp_path / "wh.toml").write_text('[project]\nsources = "sources"\nwarehouse = "wh"\n')
    model = tmp_path / "sql" / "staging" / "events.sql"
    model.parent.mkdir(parents=True)
    model.write_text(
        "-- kind: incremental_by_time\n-- time_column: day\n"
        "-- audits: same_row_count(source.events)\n"
        "select id, day from arrived.events\n"
        "union all\n"
        "-- rows without a day are in every window: carried over from the version extended\n"
        "select id, day from this where day is null\n"
    )
    settings = load_settings(tmp_path)

    def served() -> list[tuple[object, ...]]:
        return sorted(published_rows(settings)["staging.events"], key=repr)

    first = build(settings)
    assert actions(first) == {"staging.events": Action.FULL} and len(served()) == 3
    # each mistake fails the equality below: reading every file twice counts row 2 twice,
    # an empty `this` loses it; the completeness audit would then rebuild in full
    new = _events(folder, 1, [(4, date(2024, 1, 3)), (5, None)])
    planned = plan_build(settings, None, False).to_json()["models"][0]  # type: ignore[index]
    assert planned["arrived"] == {"events": [str(new)]}
    second = build(settings)
    assert actions(second) == {"staging.events": Action.INCREMENTAL}
    assert second.results[0].rows_processed == 3  # rows 4, 5 and 2 (no day: every window)
    assert [row[0] for row in served()] == [1, 2, 3, 4, 5]
    _events(folder, 2, [(6, None)])
    assert actions(build(settings)) == {"staging.events": Action.INCREMENTAL}
    assert [row[0] for row in served()] == [1, 2, 3, 4, 5, 6]
    # a row for a day before the window: the run starts over in full, where `this` is empty
    # and every file has arrived
    _events(folder, 3, [(7, date(2024, 1, 1))])
    last = build(settings)
    assert actions(last) == {"staging.events": Action.FULL}
    assert "before the lookback window" in last.results[0].plan.reason
    assert [row[0] for row in served()] == [1, 2, 3, 4, 5, 6, 7]


def test_rows_arriving_before_the_window_rebuild_in_full_downstream_too(
    project: Settings,
) -> None:
    sources = project.sources
    split_last_day(sources)
    build(project)
    append_last_day(sources)
    orders = pl.read_parquet(sources / "orders" / "part-0.parquet")
    items = pl.read_parquet(sources / "order_items" / "part-0.parquet")
    # an order (with a line) from ten days before the last built day: outside the lookback
    late = orders.row(0, named=True)
    late_id = 10**9 + 3
    late_day = orders["order_ts"].max() - timedelta(days=10)
    add_part(
        sources,
        "orders",
        pl.DataFrame([{**late, "order_id": late_id, "order_ts": late_day}], orders.schema),
    )
    line = items.row(0, named=True)
    add_part(sources, "order_items", pl.DataFrame([{**line, "order_id": late_id}], items.schema))

    result = build(project)
    by_name = {r.plan.model.name: r.plan for r in result.results}
    assert by_name["checks.orders"].action is Action.FULL
    assert "before the lookback window" in by_name["checks.orders"].reason
    for name in INCREMENTAL[1:]:  # and what reads it: their rows before the window changed
        assert by_name[name].action is Action.FULL
        assert by_name[name].reason.endswith("was rebuilt in full")
    assert_equals_full_build(project)


def test_a_changed_source_file_rebuilds_incremental_models_in_full(project: Settings) -> None:
    sources = project.sources
    split_last_day(sources)
    build(project)
    append_last_day(sources)
    # a correction to history: an old part is rewritten with one quantity changed
    part = sources / "order_items" / "part-0.parquet"
    items = pl.read_parquet(part)
    items.with_columns(
        quantity=pl.when(pl.int_range(pl.len()) == 0)
        .then(pl.col("quantity") + 5)
        .otherwise(pl.col("quantity"))
    ).write_parquet(part)

    result = build(project)
    by_name = {r.plan.model.name: r.plan for r in result.results}
    for name in ("checks.order_items", "features.demand", "features.demand_features"):
        assert by_name[name].action is Action.FULL
        assert f"{part} was changed or removed" in by_name[name].reason
    assert by_name["checks.orders"].action is Action.INCREMENTAL  # its files only grew
    assert_equals_full_build(project)


def test_an_incremental_run_audits_the_rows_it_computed(project: Settings) -> None:
    split_last_day(project.sources)
    first = build(project)
    append_last_day(project.sources)
    second = build(project)
    before = {r.plan.model.name: r for r in first.results}["checks.orders"]
    after = {r.plan.model.name: r for r in second.results}["checks.orders"]
    written = set(after.version.files) - set(before.version.files)
    audits = {a.name: a.sql for a in after.audits}
    # row audits read the new files only; the completeness count reads the whole version
    assert written and all(f in audits["unique"] for f in written)
    assert not any(f in audits["unique"] for f in before.version.files if f not in written)
    assert all(f in audits["same_row_count"] for f in after.version.files)
    assert "reject_reason is null" in audits["unique"]


def test_an_audit_with_where_counts_only_those_rows(project: Settings) -> None:
    model = project.project_dir / "sql" / "checks" / "orders.sql"
    model.write_text(
        '-- audits: not_null(reject_reason, where="order_id is not null")\n' + model.read_text()
    )
    with pytest.raises(AuditError) as failure:  # kept rows have no reason: all of them fail
        build(project)
    assert "not_null(reject_reason, where=order_id is not null)" in str(failure.value)


def test_row_audits_share_one_scan_and_count_like_their_own_queries() -> None:
    model = sql_model(
        "checks.things",
        Path("checks/things.sql"),
        "-- grain: id\n"
        "-- audits: not_null(a, b), accepted_values(s, 'x', 'y', where=\"a > 1\")\n"
        "-- audits: not_null(b, where=\"s = 'x'\"), row_count(min=2)\n"
        "-- assert: a < 4\n"
        "select 1 as id, 1 as a, 2 as b, 'x' as s",
    )
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES (1, 1, NULL, 'x'), (2, 2, 3, 'z'), "
        "(2, 5, NULL, NULL), (3, NULL, 1, 'y'), (4, 3, 4, 'q')) AS v(id, a, b, s)"
    )
    queries = audit_queries(model, "t")
    assert sum(1 for q in queries if q.condition) == 5  # one scan for these
    shared = run_audits(con, queries)
    alone = [(q.label, con.execute(q.sql).fetchall()[0][0], q.sql) for q in queries]
    assert [(r.label, r.failing, r.sql) for r in shared] == alone
    assert [r.failing for r in shared] == [0, 1, 3, 2, 1, 0, 2]
