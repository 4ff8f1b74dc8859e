"""Builds on real DuckDB files and Parquet: versioning, write-audit-publish, environments."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest
from conftest import (
    append_last_day,
    copy_project,
    edit,
    fail_orders_audit,
    published,
    rounded,
    rows,
    served_version,
    split_last_day,
)

from warehouse.config import Settings, load_settings
from warehouse.errors import AuditError, ModelError
from warehouse.runtime.build import build
from warehouse.runtime.catalog import pointer_path
from warehouse.runtime.plan import Action
from warehouse.runtime.state import Version, open_state


def computed(result: object) -> set[str]:
    return {r.plan.model.name for r in result.results}  # type: ignore[attr-defined]


ALL_MODELS = {
    *(f"checks.{t}" for t in ("customers", "products", "orders", "order_items", "promotions")),
    *(
        f"staging.{t}"
        for t in (
            "customers",
            "products",
            "orders",
            "order_items",
            "promotions",
            "inventory",
            "rejects",
        )
    ),
    "features.demand",
    "features.demand_features",
    "features.customer_profile",
    "features.product_demand_stats",
    "marts.product_recommendations",
    "marts.forecast_accuracy",
    "marts.forecast_accuracy_by_horizon",
}


def test_full_build_publishes_every_model(project: Settings) -> None:
    result = build(project)
    assert result.status == "ok"
    assert computed(result) == ALL_MODELS
    views = published(project)
    assert set(views) == ALL_MODELS | {"wh_meta.models"} - {"wh_meta.models"}
    # demand is zero-filled: one row per product and day between launch and the last day
    gaps = rows(project, "SELECT count(*) FROM features.demand WHERE units IS NULL")
    assert gaps == [(0,)]
    total = rows(project, "SELECT sum(units) FROM features.demand")[0][0]
    expected = rows(
        project,
        "SELECT sum(i.quantity) FROM staging.order_items i JOIN "
        "staging.orders o USING (order_id) WHERE o.status <> 'cancelled'",
    )[0][0]
    assert total == expected


def test_second_build_computes_nothing(project: Settings) -> None:
    build(project)
    again = build(project)
    assert again.status == "noop"
    assert again.results == []


def _reformat(sql: str) -> str:
    """Same query, different text: comments, blank lines, keyword case, indentation."""
    header, _, body = sql.partition("\nselect")
    body = "SELECT" + body if _ else sql
    body = re.sub(r"\bfrom\b", "FROM", body)
    body = re.sub(r"\bjoin\b", "JOIN", body)
    body = re.sub(r"\n\s+", "\n        ", body)
    return (header + "\n-- reformatted by a test\n\n" if _ else "") + body + "\n\n-- the end\n"


def test_reformatting_every_model_rebuilds_nothing(project: Settings) -> None:
    build(project)
    before = published(project)
    for path in project.sql_dir.rglob("*.sql"):
        edit(project, str(path.relative_to(project.project_dir)), _reformat)
    assert "-- reformatted" in (project.sql_dir / "staging" / "orders.sql").read_text()
    result = build(project)
    assert result.status == "noop"
    assert published(project) == before


def test_editing_one_model_rebuilds_it_and_its_descendants_only(project: Settings) -> None:
    build(project)
    edit(
        project,
        "sql/staging/promotions.sql",
        lambda s: s + "  and discount_pct between 0 and 100\n",
    )
    result = build(project)
    assert computed(result) == {
        "staging.promotions",
        "features.demand",
        "features.demand_features",
        "features.product_demand_stats",
        "marts.forecast_accuracy",  # its actuals, features.demand, changed
        "marts.forecast_accuracy_by_horizon",
    }


def test_failing_audit_leaves_published_views_unchanged(project: Settings) -> None:
    build(project)
    before = published(project)
    fail_orders_audit(project)
    with pytest.raises(AuditError) as failure:
        build(project)
    assert failure.value.model == "staging.orders"
    assert failure.value.count > 0
    assert published(project) == before


def test_sql_error_mid_build_leaves_published_views_unchanged(project: Settings) -> None:
    build(project)
    before = published(project)
    # staging.orders changes fine; features.demand then fails at run time
    edit(
        project,
        "sql/staging/orders.sql",
        lambda s: s.replace("    o.status,\n", "    o.status,\n    1 as changed,\n"),
    )
    edit(
        project,
        "sql/features/demand.sql",
        lambda s: s.replace("sum(quantity) as units", "sum(no_such_column) as units"),
    )
    with pytest.raises(ModelError) as failure:
        build(project)
    message = str(failure.value)
    assert "demand.sql:" in message and "no_such_column" in message
    line = next(
        i
        for i, text in enumerate(
            (project.sql_dir / "features" / "demand.sql").read_text().splitlines(), start=1
        )
        if "no_such_column" in text
    )
    assert failure.value.line == line
    assert published(project) == before
    assert rows(
        project,
        "SELECT count(*) FROM information_schema.columns WHERE "
        "table_name = 'orders' AND column_name = 'changed'",
    ) == [(0,)]


def test_rollback_restores_previous_rows(project: Settings) -> None:
    from warehouse.runtime.environments import rollback

    build(project)
    before = published(project)
    edit(project, "sql/staging/products.sql", lambda s: s + "  and product_id <> '1'\n")
    build(project)
    assert published(project) != before
    rollback(project)
    assert published(project) == before


def test_dev_and_prod_are_isolated_and_promotion_is_virtual(project: Settings) -> None:
    build(project)
    prod_before = published(project)
    dev = project.with_overrides(env="dev")
    edit(project, "sql/staging/products.sql", lambda s: s + "  and product_id <> '1'\n")
    dev_result = build(dev)
    assert "staging.products" in computed(dev_result)
    assert published(project) == prod_before
    assert published(dev) != prod_before
    promoted = build(project)
    assert promoted.results == []  # every version exists: prod only moves its views
    assert set(promoted.reused) >= {"staging.products", "features.demand"}
    assert published(project) == published(dev)


def test_incremental_model_processes_only_new_periods(project: Settings, tmp_path: object) -> None:
    split_last_day(project.sources)
    first = build(project)
    demand_first = next(r for r in first.results if r.plan.model.name == "features.demand")
    assert demand_first.plan.action is Action.FULL

    append_last_day(project.sources)
    second = build(project)
    demand = next(r for r in second.results if r.plan.model.name == "features.demand")
    assert demand.plan.action is Action.INCREMENTAL
    last_day = rows(project, "SELECT max(period) FROM features.demand")[0][0]
    lookback = 3  # the new day plus the 3 already-built days before it are recomputed
    window = rows(
        project,
        "SELECT count(*) FROM features.demand WHERE period >= "
        f"DATE '{last_day}' - INTERVAL {lookback} DAY",
    )[0][0]
    total = rows(project, "SELECT count(*) FROM features.demand")[0][0]
    assert demand.rows_processed == window
    assert demand.rows_processed < total / 5

    # the incremental result equals a full build of the same sources
    fresh = load_settings(project.project_dir).with_overrides(
        warehouse=project.warehouse.parent / "fresh"
    )
    build(fresh)
    # doubles rounded: parallel sums may add in another order
    query = (
        "SELECT product_id, period, units, orders, on_promo, promo_discount_pct, "
        "round(revenue, 6), round(avg_price, 6), round(avg_discount, 6) "
        "FROM features.demand ORDER BY product_id, period"
    )
    assert rows(project, query) == rows(fresh, query)
    features = next(r for r in second.results if r.plan.model.name == "features.demand_features")
    assert features.plan.action is Action.INCREMENTAL
    assert features.rows_processed == window
    everything = "SELECT * FROM features.demand_features ORDER BY product_id, period"
    assert rounded(rows(project, everything)) == rounded(rows(fresh, everything))


def test_changed_query_forces_full_rebuild_of_incremental_model(project: Settings) -> None:
    split_last_day(project.sources)
    build(project)
    append_last_day(project.sources)
    edit(
        project,
        "sql/features/demand.sql",
        lambda s: s.replace("sum(paid) as revenue", "sum(paid) * 1.0 as revenue"),
    )
    result = build(project)
    demand = next(r for r in result.results if r.plan.model.name == "features.demand")
    assert demand.plan.action is Action.FULL


def test_plan_matches_what_build_does(project: Settings) -> None:
    from warehouse.project.loader import load_project
    from warehouse.runtime.plan import make_plan

    build(project)
    edit(
        project,
        "sql/staging/customers.sql",
        lambda s: s.replace("channel, segment", "channel, upper(segment) as segment"),
    )
    state = open_state(project)
    try:
        plan = make_plan(load_project(project), state, "prod")
    finally:
        state.close()
    changes = {p.model.name: p.change.value for p in plan.models}
    assert changes.pop("staging.customers") == "changed"
    assert changes.pop("features.customer_profile") == "indirect"  # its input changed
    assert set(changes.values()) == {"unchanged"}
    customers = next(p for p in plan.models if p.model.name == "staging.customers")
    assert "-select customer_id, signup_date, country, channel, segment\n" in customers.diff
    assert "+select customer_id, signup_date, country, channel, upper(segment) as segment" in (
        customers.diff
    )
    result = build(project)
    assert computed(result) == {p.model.name for p in plan.to_compute}


def test_selection_builds_only_the_selected_models(project: Settings) -> None:
    build(project)
    edit(
        project,
        "sql/staging/customers.sql",
        lambda s: s.replace("channel, segment", "channel, upper(segment) as segment"),
    )
    edit(project, "sql/staging/products.sql", lambda s: s + "  and base_price >= 0\n")
    result = build(project, ["staging.customers"])
    assert computed(result) == {"staging.customers"}
    result = build(project, ["staging.products+"])
    assert computed(result) == {
        "staging.products",
        "features.demand",
        "features.demand_features",
        "features.customer_profile",
        "features.product_demand_stats",
        "marts.forecast_accuracy",
        "marts.forecast_accuracy_by_horizon",
    }


def test_readers_keep_their_snapshot_and_never_block_a_build(project: Settings) -> None:
    build(project)
    reader = duckdb.connect(str(pointer_path(project, "prod")), read_only=True)
    try:
        before = reader.execute("SELECT count(*) FROM staging.products").fetchone()
        edit(project, "sql/staging/products.sql", lambda s: s + "  and product_id <> '1'\n")
        build(project)  # would fail with a lock error if the build opened the reader's file
        assert reader.execute("SELECT count(*) FROM staging.products").fetchone() == before
    finally:
        reader.close()
    after = rows(project, "SELECT count(*) FROM staging.products")
    assert after != [before]


def test_python_model_that_raises_names_its_file_and_line(project: Settings) -> None:
    build(project)
    before = published(project)
    edit(
        project,
        "pipeline/demand_stats.py",
        lambda s: s.replace(
            '    nonzero = pl.col("units")',
            '    raise RuntimeError("boom")\n    nonzero = pl.col("units")',
        ),
    )
    with pytest.raises(ModelError) as failure:
        build(project)
    assert "demand_stats.py:" in str(failure.value) and "boom" in str(failure.value)
    assert published(project) == before


def test_selection_through_a_view_that_is_kept(project: Settings) -> None:
    # staging.products is a view over checks.products; it is not selected, so the build keeps
    # it, yet it must bind to the recomputed checks.products, and features.demand must wait
    build(project)
    edit(
        project,
        "sql/checks/products.sql",
        lambda s: s + "\nwhere base_price is null or base_price >= 0\n",
    )
    edit(
        project,
        "sql/features/demand.sql",
        lambda s: s.replace("sum(paid) as revenue", "sum(paid) * 1.0 as revenue"),
    )
    result = build(project, ["checks.products", "features.demand"])
    assert computed(result) == {"checks.products", "features.demand"}
    assert rows(project, "SELECT count(*) > 0 FROM features.demand") == [(True,)]


def test_incremental_history_is_stored_by_month_and_old_months_are_reused(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = copy_project(tmp_path / "project", forecast_sources)
    split_last_day(settings.sources)

    def demand_version() -> Version:
        build(settings)
        return served_version(settings, "features.demand")

    first = demand_version()
    months = rows(
        settings, "SELECT count(DISTINCT date_trunc('month', period)) FROM features.demand"
    )
    assert len(first.segments) == months[0][0] > 3
    assert all(s.tmin and s.tmax and s.tmin[:7] == s.tmax[:7] for s in first.segments)
    append_last_day(settings.sources)
    second = demand_version()
    reused = {s.file for s in first.segments} & {s.file for s in second.segments}
    assert len(reused) == len(first.segments) - 1  # only the last month was rewritten
    assert rows(settings, "SELECT count(*) FROM features.demand")[0][0] == sum(
        s.rows for s in second.segments
    )
