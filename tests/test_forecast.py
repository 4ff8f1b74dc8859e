"""wh forecast: tables, quantiles, runs, failure safety, leakage, frequencies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import forecast_project as make_project
from conftest import published, rows

from warehouse.config import Settings
from warehouse.forecasting import models as forecast_models
from warehouse.forecasting.backtest import metrics as backtest_metrics
from warehouse.forecasting.data import load, scoring_rows, training_rows
from warehouse.forecasting.metrics import accuracy
from warehouse.forecasting.run import ForecastError, forecast
from warehouse.forecasting.spec import load_spec
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.runtime.build import build


def test_forecast_publishes_every_table(tmp_path: Path, forecast_sources: Path) -> None:
    settings = make_project(tmp_path, forecast_sources, hierarchy=True)
    build(settings)
    result = forecast(settings, truth=forecast_sources.parent / "truth.parquet")
    assert result.truth_wape is not None and set(result.truth_wape) == set(result.scores)
    assert all(0 < w < 2 for w in result.truth_wape.values()), sorted(
        result.truth_wape.items(), key=lambda kv: -kv[1]
    )[:3]
    cutoff = rows(settings, "SELECT max(period) FROM features.demand")[0][0]
    got = rows(settings, "SELECT * FROM forecast.demand_forecast LIMIT 0")
    assert got == []
    columns = [
        c
        for (c,) in rows(
            settings,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'demand_forecast' ORDER BY ordinal_position",
        )
    ]
    assert columns == [
        "product_id",
        "forecast_date",
        "units_forecast",
        "units_p10",
        "units_p50",
        "units_p90",
        "cutoff_date",
        "model",
        "run_id",
    ]
    # every published table has exactly its contract's columns, in order (the §5 names are
    # written out above once, independently of the contract module)
    from warehouse.forecasting.tables import CONTRACTS, DEMAND_FORECAST, ON_REQUEST

    assert list(DEMAND_FORECAST.columns) == columns
    published = {
        f"{s}.{t}": [
            c
            for (c,) in rows(
                settings,
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                f"'{s}' AND table_name = '{t}' ORDER BY ordinal_position",
            )
        ]
        for s, t in (name.split(".") for name in CONTRACTS if name not in ON_REQUEST)
    }
    assert published == {
        name: list(c.columns) for name, c in CONTRACTS.items() if name not in ON_REQUEST
    }
    # every active product gets every horizon step, after the cutoff, with ordered quantiles
    steps = rows(
        settings,
        "SELECT product_id, count(*), min(forecast_date), max(forecast_date) "
        "FROM forecast.demand_forecast GROUP BY 1",
    )
    active = rows(settings, f"SELECT count(*) FROM features.demand WHERE period = DATE '{cutoff}'")[
        0
    ][0]
    assert len(steps) == active
    for _, n, first, last in steps:
        assert (n, first, last) == (7, cutoff + timedelta(days=1), cutoff + timedelta(days=7))
    assert rows(
        settings,
        "SELECT count(*) FROM forecast.demand_forecast WHERE NOT (0 <= "
        "units_p10 AND units_p10 <= units_p50 AND units_p50 <= units_p90)",
    ) == [(0,)]
    # each product's rows name the model selected for it (forecast.model_selection)
    published = dict(
        rows(settings, "SELECT DISTINCT product_id, model FROM forecast.demand_forecast")
    )
    chosen = dict(rows(settings, "SELECT product_id, model FROM forecast.model_selection"))
    assert published and all(chosen[p] == m for p, m in published.items())
    assert rows(settings, "SELECT DISTINCT run_id FROM forecast.demand_forecast") == [
        (result.run_id,)
    ]
    # backtests and metrics for every candidate and fold, and for the per-product selection
    models = len(result.spec.models) + 1
    assert rows(
        settings, "SELECT count(DISTINCT model), count(DISTINCT fold) FROM forecast.demand_backtest"
    ) == [(models, 2)]
    assert rows(
        settings, "SELECT count(*) FROM forecast.forecast_metrics WHERE scope = 'overall'"
    ) == [(2 * models,)]
    coverage = rows(
        settings,
        "SELECT p10_p90_coverage FROM forecast.forecast_metrics WHERE "
        "scope = 'overall' AND model = 'lightgbm'",
    )
    assert all(0 <= c <= 1 for (c,) in coverage)
    assert rows(settings, "SELECT status, error FROM forecast.model_runs") == [("ok", None)]
    assert rows(settings, "SELECT count(*) > 0 FROM forecast.feature_importance") == [(True,)]
    assert list((settings.warehouse / "runs" / result.run_id).glob("lightgbm-*.txt"))
    # customer propensity for every customer, three models compared on a time split
    assert rows(
        settings,
        "SELECT count(*), min(p_purchase) >= 0, max(p_purchase) <= 1 FROM "
        "forecast.customer_propensity",
    ) == [(rows(settings, "SELECT count(*) FROM staging.customers")[0][0], True, True)]
    assert rows(
        settings,
        "SELECT list(model ORDER BY model), bool_and(auc BETWEEN 0 AND 1) "
        "FROM forecast.propensity_metrics",
    ) == [(["lightgbm", "logistic_regression", "recency_frequency"], True)]
    # replenishment: one row per forecast product, reorder point above median demand
    assert rows(
        settings,
        "SELECT count(*), bool_and(reorder_point >= demand_p50), "
        "bool_and(suggested_order >= 0) FROM marts.replenishment_plan",
    ) == [(len(steps), True, True)]
    # a second run appends history, replaces the current forecast
    forecast(settings)
    assert rows(
        settings, "SELECT count(DISTINCT run_id) FROM forecast.demand_forecast_history"
    ) == [(2,)]
    assert rows(settings, "SELECT count(DISTINCT run_id) FROM forecast.demand_forecast") == [(1,)]
    # builds serve the forecast tables on; the next one scores the new run's forecasts
    rebuilt = build(settings)
    assert {r.version.model for r in rebuilt.results} == {
        "marts.forecast_accuracy",
        "marts.forecast_accuracy_by_horizon",
    }
    assert build(settings).status == "noop"
    assert rows(settings, "SELECT count(*) FROM forecast.model_runs") == [(2,)]


def test_failed_run_is_recorded_and_changes_no_forecast_table(
    tmp_path: Path, forecast_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    forecast(settings, models=["naive", "lightgbm"])
    before = {k: v for k, v in published(settings).items() if k != "forecast.model_runs"}

    def broken(*args: object) -> object:
        raise RuntimeError("injected failure")

    monkeypatch.setitem(forecast_models.FORECASTERS, "lightgbm", broken)
    with pytest.raises(ForecastError, match="injected failure"):
        forecast(settings, models=["naive", "lightgbm"])
    after = {k: v for k, v in published(settings).items() if k != "forecast.model_runs"}
    assert after == before
    assert rows(settings, "SELECT status, error FROM forecast.model_runs ORDER BY started_at") == [
        ("ok", None),
        ("failed", "RuntimeError: injected failure"),
    ]


def _wh(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_run_worse_than_the_published_one_fails_its_audit_unless_forced(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    first = forecast(settings, models=["seasonal_naive", "moving_average", "lightgbm"])
    assert {a.name: a.passed for a in first.audits} == {
        "beat_naive": True,
        "max_worse_than_previous": None,  # nothing published before
    }
    before = {k: v for k, v in published(settings).items() if k != "forecast.model_runs"}
    # a weak model on the same data and folds: its backtest is far worse
    refused = _wh(settings, "forecast", "--models", "naive", "--quiet")
    assert refused.returncode == 1, refused.stderr
    assert "audit max_worse_than_previous failed" in refused.stderr
    assert "--force" in refused.stderr
    after = {k: v for k, v in published(settings).items() if k != "forecast.model_runs"}
    assert after == before  # every forecast table as it was
    status, error, params = rows(
        settings,
        "SELECT status, error, params FROM forecast.model_runs ORDER BY started_at DESC LIMIT 1",
    )[0]
    assert status == "failed" and "max_worse_than_previous" in str(error)
    audit = next(a for a in json.loads(str(params))["audits"] if a["name"] != "beat_naive")
    assert audit["passed"] is False and audit["figure"] > 0.10
    # --force publishes it, and says so in the record
    forced = _wh(settings, "forecast", "--models", "naive", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    answer = json.loads(forced.stdout)
    assert answer["forced"] is True
    # the refused run published nothing: the forecast before this one is still the first
    assert answer["published_so_far"]["run_id"] == first.run_id
    assert published(settings)["forecast.demand_forecast"] != before["forecast.demand_forecast"]
    status, params = rows(
        settings,
        "SELECT status, params FROM forecast.model_runs ORDER BY started_at DESC LIMIT 1",
    )[0]
    assert status == "ok" and json.loads(str(params))["forced"] is True


def test_metrics_on_a_hand_checked_fixture() -> None:
    y = np.array([0.0, 2.0, 4.0, 6.0])
    f = np.array([1.0, 2.0, 2.0, 7.0])
    got = accuracy(y, f, low=np.array([0, 1, 3, 7.5]), high=np.array([1, 3, 5, 9]), scale=2.0)
    assert got["mae"] == 1.0  # (1 + 0 + 2 + 1) / 4
    assert got["rmse"] == pytest.approx(np.sqrt(6 / 4))
    assert got["wape"] == pytest.approx(4 / 12)
    assert got["mase"] == 0.5
    assert got["bias"] == pytest.approx(0 / 12)
    assert got["r2"] == pytest.approx(1 - 6 / 20)
    assert got["p10_p90_coverage"] == 0.75  # 6 is below its interval [7.5, 9]
    assert got["n"] == 4
    assert accuracy(np.array([0.0]), np.array([0.0]))["wape"] is None
    # the backtest's table of metrics (computed in Polars) agrees with the reference
    frame = pl.DataFrame(
        {
            "model": "m",
            "fold": 1,
            "product_id": "a",
            "forecast_date": [date(2024, 1, d) for d in range(1, 5)],
            "horizon": pl.Series([1, 2, 3, 4], dtype=pl.Int32),
            "units_actual": y,
            "units_forecast": f,
            "units_p10": [0.0, 1.0, 3.0, 7.5],
            "units_p90": [1.0, 3.0, 5.0, 9.0],
        }
    )
    scales = pl.DataFrame({"fold": [1], "product_id": ["a"], "scale": [2.0]})
    overall = backtest_metrics(frame, scales).filter(pl.col("scope") == "overall")
    for key, value in got.items():
        assert overall[key][0] == pytest.approx(value), key


def noisy_copy(settings: Settings, root: Path, cutoff: date) -> Settings:
    """A built copy of the project whose order lines after `cutoff` are noise."""
    noisy = settings.with_overrides(sources=root / "noisy", warehouse=root / "wh2")
    shutil.copytree(settings.sources, noisy.sources)
    _noise_after(noisy.sources, cutoff)
    build(noisy)
    return noisy


def _noise_after(sources: Path, cutoff: date) -> None:
    """Every order line after the cutoff gets a random quantity; some vanish."""
    orders = pl.read_parquet(sources / "orders.parquet")
    late = orders.filter(pl.col("order_ts").dt.date() > cutoff)["order_id"].implode()
    items = pl.read_parquet(sources / "order_items.parquet")
    rng = np.random.default_rng(0)
    noisy = pl.Series(rng.integers(1, 20, items.height), dtype=pl.Int32)
    items = items.with_columns(
        quantity=pl.when(pl.col("order_id").is_in(late)).then(noisy).otherwise("quantity")
    ).filter(~pl.col("order_id").is_in(late) | pl.Series(rng.random(items.height) > 0.3))
    items.write_parquet(sources / "order_items.parquet")


@pytest.mark.parametrize("max_rows", [0, 700])  # all training rows; a sample of them
def test_fold_forecasts_ignore_everything_after_the_cutoff(
    tmp_path: Path, forecast_sources: Path, max_rows: int
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    data = load(settings)
    spec = load_spec(settings, models=["lag_linear", "lightgbm"])
    cutoff = data.last_period - timedelta(days=20)

    def fold_forecasts(target: Settings) -> dict[str, list[float]]:
        loaded = load(target, spec.history)
        train = training_rows(
            loaded,
            cutoff,
            spec.horizon,
            spec.season,
            spec.train_periods,
            spec.origin_step,
            max_rows,
            spec.seed,
        )
        assert not max_rows or train.height <= max_rows
        test = scoring_rows(loaded, cutoff, spec.horizon, spec.season).sort(
            "product_id", "target_period"
        )
        return {
            name: list(
                np.round(forecast_models.FORECASTERS[name](train, spec).predict(test).point, 9)
            )
            for name in spec.models
        }

    noisy = noisy_copy(settings, tmp_path, cutoff)
    assert (
        load(noisy).demand.filter(pl.col("period") > cutoff)["units"].sum()
        != data.demand.filter(pl.col("period") > cutoff)["units"].sum()
    )
    assert fold_forecasts(noisy) == fold_forecasts(settings)


def test_sampled_training_rows_keep_whole_origins_and_repeat(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    spec = load_spec(settings)
    data = load(settings, spec.history)
    everything = load(settings)
    assert data.demand["period"].min() > everything.demand["period"].min()
    assert data.last_period == everything.last_period
    args = (data, data.last_period, spec.horizon, spec.season, spec.train_periods, spec.origin_step)
    full = training_rows(*args)
    sample = training_rows(*args, full.height // 4, spec.seed)
    assert full.height // 8 < sample.height <= full.height // 4
    assert sample.equals(training_rows(*args, full.height // 4, spec.seed))
    per_origin = sample.group_by("product_id", "origin").len()
    whole = full.group_by("product_id", "origin").len()
    assert (
        per_origin.join(whole, on=["product_id", "origin"])
        .filter(pl.col("len") != pl.col("len_right"))
        .is_empty()
    )  # a sampled origin keeps every horizon it has
    # what a fit reads is the same whether the history before the window was loaded or not
    assert full.sort("product_id", "origin", "horizon").equals(
        training_rows(everything, *args[1:]).sort("product_id", "origin", "horizon")
    )


@pytest.mark.parametrize("freq", ["week", "month"])
def test_weekly_and_monthly_forecast_dates(tmp_path: Path, freq: str) -> None:
    sources = tmp_path / "sources"
    generate(sources, DemoSpec(products=12, customers=40, days=400, seed=9))
    products = pl.read_parquet(sources / "products.parquet")
    start = date(2023, 1, 2)
    products.with_columns(
        # product 1 stops before the end; product 2 launches shortly before it
        discontinued_date=pl.when(pl.col("product_id") == 1)
        .then(start + timedelta(days=200))
        .otherwise(pl.lit(None, dtype=pl.Date)),
        launch_date=pl.when(pl.col("product_id") == 2)
        .then(start + timedelta(days=330))
        .otherwise("launch_date"),
    ).write_parquet(sources / "products.parquet")
    settings = make_project(tmp_path, sources, freq)
    build(settings)
    forecast(settings, models=["seasonal_naive", "lightgbm"])
    cutoff = rows(settings, "SELECT max(period) FROM features.demand")[0][0]
    horizon = load_spec(settings).horizon
    unit = {"week": "week", "month": "month"}[freq]
    expected = {
        str(d)
        for (d,) in rows(
            settings,
            f"SELECT unnest(generate_series(DATE "
            f"'{cutoff}' + INTERVAL 1 {unit}, DATE '{cutoff}' + "
            f"INTERVAL {horizon} {unit}, INTERVAL 1 {unit}))::DATE",
        )
    }
    by_product = rows(
        settings,
        "SELECT product_id, list(forecast_date ORDER BY forecast_date) "
        "FROM forecast.demand_forecast GROUP BY 1",
    )
    dates = {p: {str(d) for d in ds} for p, ds in by_product}
    assert "1" not in dates  # discontinued: no forecast
    assert "2" in dates  # new, short history: the global model forecasts it
    assert all(d == expected for d in dates.values())


def test_classification_metrics_on_a_hand_checked_fixture() -> None:
    from warehouse.customers.propensity import classification_metrics

    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.4, 0.35, 0.1])
    got = classification_metrics(y, p)
    assert got["auc"] == 0.75  # 3 of the 4 positive-negative pairs are ordered right
    assert (got["accuracy"], got["precision"], got["recall"]) == (0.75, 1.0, 0.5)
    assert got["f1"] == pytest.approx(2 / 3)
    assert got["log_loss"] == pytest.approx(-np.mean(np.log([0.9, 0.6, 0.35, 0.9])))
    assert got["base_rate"] == 0.5


def test_replenishment_covers_the_lead_time() -> None:
    from warehouse.customers.replenishment import replenishment_plan

    days = [date(2024, 1, d) for d in range(1, 8)]
    forecast_frame = pl.DataFrame(
        {
            "product_id": ["a"] * 7 + ["b"] * 7,
            "forecast_date": days * 2,
            "units_p50": [1.0] * 14,
            "units_p90": [2.0] * 14,
        }
    )
    inventory = pl.DataFrame({"product_id": ["a"], "on_hand": [1], "lead_time_days": [3]})
    plan = replenishment_plan(forecast_frame, inventory, "day", default_lead_time_days=5)
    assert plan.rows(named=True) == [
        {
            "product_id": "a",
            "lead_time_days": 3,
            "covered_days": 3,
            "demand_p50": 3.0,
            "demand_p90": 6.0,
            "safety_stock": 3.0,
            "reorder_point": 6.0,
            "on_hand": 1,
            "suggested_order": 5.0,
        },
        {
            "product_id": "b",
            "lead_time_days": 5,
            "covered_days": 5,
            "demand_p50": 5.0,
            "demand_p90": 10.0,
            "safety_stock": 5.0,
            "reorder_point": 10.0,
            "on_hand": None,
            "suggested_order": 10.0,
        },
    ]


def test_a_project_without_inventory_plans_with_the_default_lead_time(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    (settings.sql_dir / "staging" / "inventory.sql").unlink()
    build(settings)
    forecast(settings, models=["naive"])
    lead_times = rows(settings, "SELECT DISTINCT lead_time_days FROM marts.replenishment_plan")
    assert lead_times == [(load_spec(settings).default_lead_time_days,)]
