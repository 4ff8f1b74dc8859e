"""marts.forecast_accuracy: published forecasts scored as actuals arrive, built by `wh build`
from forecast.demand_forecast_history and features.demand, incrementally."""

from __future__ import annotations

import importlib.util
import math
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
from conftest import REPO, append_last_day, split_last_day
from conftest import forecast_project as make_project

from warehouse import forecast
from warehouse.config import Settings
from warehouse.runtime.build import build
from warehouse.runtime.catalog import pointer_path
from warehouse.runtime.plan import Action, plan_build

MODELS = ["seasonal_naive", "moving_average"]  # fast, and different per product
KEY = ["run_id", "product_id", "forecast_date"]


def _frame(settings: Settings, sql: str) -> pl.DataFrame:
    con = duckdb.connect(str(pointer_path(settings, settings.env)), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def _demand_class() -> object:
    spec = importlib.util.spec_from_file_location("stats", REPO / "pipeline" / "demand_stats.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.product_demand_stats  # the decorator registers it and returns it as it is


def by_hand(settings: Settings) -> pl.DataFrame:
    """The accuracy table computed from its definition, run by run, with Polars: horizon by
    date arithmetic, the demand class by the pipeline's own function on demand up to the
    cutoff, seasonal naive as the value 7*ceil(h/7) days before the target."""
    stats = _demand_class()
    demand = _frame(settings, "SELECT product_id, period, units FROM features.demand")
    history = _frame(settings, "SELECT * FROM forecast.demand_forecast_history")
    found = []
    for (run_id, cutoff), forecasts in history.group_by("run_id", "cutoff_date"):
        known = demand.filter(pl.col("period") <= cutoff).sort("product_id", "period")
        classes = stats(known.lazy()).collect().select("product_id", "demand_class")  # type: ignore[operator]
        scale = known.group_by("product_id").agg(
            mase_scale=(pl.col("units") - pl.col("units").shift(1)).abs().mean()
        )
        scored = (
            forecasts.join(
                demand.rename({"period": "forecast_date", "units": "units_actual"}),
                on=["product_id", "forecast_date"],
            )
            .with_columns(horizon=(pl.col("forecast_date") - pl.col("cutoff_date")).dt.total_days())
            .with_columns(
                naive_date=pl.col("forecast_date")
                - pl.duration(days=7 * (pl.col("horizon") / 7).ceil().cast(pl.Int64))
            )
            .join(
                demand.rename({"period": "naive_date", "units": "naive_forecast"}),
                on=["product_id", "naive_date"],
                how="left",
            )
            .join(classes, on="product_id", how="left")
            .join(scale, on="product_id", how="left")
        )
        found.append(scored)
        assert run_id and cutoff
    return (
        pl.concat(found)
        .select(
            *KEY,
            "horizon",
            "demand_class",
            pl.col("units_actual").cast(pl.Float64),
            "units_forecast",
            abs_error=(pl.col("units_forecast") - pl.col("units_actual")).abs(),
            naive_forecast=pl.col("naive_forecast").cast(pl.Float64),
            mase_scale=pl.col("mase_scale").cast(pl.Float64),
            in_interval=pl.col("units_actual").is_between("units_p10", "units_p90"),
        )
        .sort(KEY)
    )


def _planned(settings: Settings) -> Action:
    """What the next build would do with marts.forecast_accuracy."""
    plan = plan_build(settings, None, False)
    return next(p.action for p in plan.models if p.model.name == "marts.forecast_accuracy")


def _same(table: pl.DataFrame, hand: pl.DataFrame) -> None:
    assert table.height == hand.height > 0
    table = table.select(hand.columns).sort(KEY)
    for column in hand.columns:
        left, right = table[column].to_list(), hand[column].to_list()
        if hand[column].dtype == pl.Float64:
            assert all(
                (a is None and b is None) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
                for a, b in zip(left, right, strict=True)
            ), column
        else:
            assert [str(v) for v in left] == [str(v) for v in right], column


def test_accuracy_equals_a_hand_computation_and_extends_as_one_more_day_arrives(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    sources = settings.sources
    split_last_day(sources)
    build(settings)
    empty = _frame(settings, "SELECT count(*) AS n FROM marts.forecast_accuracy")
    assert empty["n"][0] == 0  # built before any forecast: no rows, the contract's columns
    last = _frame(settings, "SELECT max(period) AS d FROM features.demand")["d"][0]
    # a run as of today and one a week back (its first week is observed already)
    today = forecast(settings, models=MODELS)
    back = forecast(settings, models=MODELS, cutoff=last - timedelta(days=7), force=True)
    build(settings)
    _same(_frame(settings, "SELECT * FROM marts.forecast_accuracy"), by_hand(settings))
    before = _frame(settings, "SELECT * FROM marts.forecast_accuracy")
    # only the week-old run has observed dates yet, all seven of them
    assert set(before["run_id"]) == {back.run_id}
    assert set(before["forecast_date"]) == {last - timedelta(days=6 - i) for i in range(7)}

    append_last_day(sources)  # one more day of actuals
    assert _planned(settings) is Action.INCREMENTAL
    build(settings)
    after = _frame(settings, "SELECT * FROM marts.forecast_accuracy")
    _same(after, by_hand(settings))
    new_day = after.filter(pl.col("forecast_date") == last + timedelta(days=1))
    # the new day is today's run's first step; the week-old run's rows were kept
    assert set(new_day["run_id"]) == {today.run_id} and set(new_day["horizon"]) == {1}
    assert new_day.height == today.forecast["product_id"].n_unique()
    assert after.filter(pl.col("run_id") == back.run_id).sort(KEY).equals(before.sort(KEY))
    summary = _frame(
        settings,
        "SELECT * FROM marts.forecast_accuracy_by_horizon WHERE demand_class = 'all' "
        "ORDER BY run_id, horizon",
    )
    day = after.filter(pl.col("horizon") == 1)
    first = summary.filter(pl.col("horizon") == 1)
    for run_id, wape in zip(first["run_id"], first["wape"], strict=True):
        rows = day.filter(pl.col("run_id") == run_id)
        assert math.isclose(wape, rows["abs_error"].sum() / rows["units_actual"].sum())


def test_a_run_backdated_after_the_version_widens_the_incremental_window(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    last = _frame(settings, "SELECT max(period) AS d FROM features.demand")["d"][0]
    forecast(settings, models=MODELS, cutoff=last - timedelta(days=3))
    build(settings)
    # a run two weeks back, after the version holds the last three days: its first days lie
    # before the lookback window, and are scored all the same
    forecast(settings, models=MODELS, cutoff=last - timedelta(days=14), force=True)
    assert _planned(settings) is Action.INCREMENTAL
    build(settings)
    table = _frame(settings, "SELECT * FROM marts.forecast_accuracy")
    _same(table, by_hand(settings))
    assert table["forecast_date"].min() == last - timedelta(days=13)
