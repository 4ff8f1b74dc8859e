"""Library candidates, ensembles, per-product selection, short histories."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import forecast_project as make_project
from conftest import rows
from test_forecast import noisy_copy

from warehouse.forecasting import selection
from warehouse.forecasting.backtest import fold_cutoffs, run_backtest
from warehouse.forecasting.data import ForecastData, load
from warehouse.forecasting.run import forecast
from warehouse.forecasting.spec import ENSEMBLES, LIBRARY_MODELS, STATISTICAL_ENSEMBLE, load_spec
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.runtime.build import build


def _families(models: list[str]) -> set[str]:
    return {
        "library" if m in LIBRARY_MODELS else "window" if m.startswith(("mean_", "median_")) else m
        for m in models
    }


@pytest.mark.parametrize("freq", ["week", "month"])
def test_every_candidate_family_runs_on_weekly_and_monthly_data(tmp_path: Path, freq: str) -> None:
    sources = tmp_path / "sources"
    generate(sources, DemoSpec(products=8, customers=30, days=3 * 365, seed=5))
    settings = make_project(tmp_path, sources, freq)
    build(settings)
    spec = load_spec(settings)
    result = forecast(settings)
    backtested = {
        m for (m,) in rows(settings, "SELECT DISTINCT model FROM forecast.demand_backtest")
    }
    assert set(spec.models) | {selection.SELECTED} == backtested
    assert {"library", "window", "seasonal_window_average", "lightgbm", *ENSEMBLES} <= _families(
        sorted(backtested)
    )
    metrics = rows(
        settings,
        "SELECT model, count(*) FROM forecast.forecast_metrics WHERE scope = 'overall' "
        "GROUP BY model",
    )
    assert {m: n for m, n in metrics} == {m: spec.folds for m in backtested}
    # p10 <= p50 <= p90 everywhere, and every product's rows say which model produced them
    bad = rows(
        settings,
        "SELECT count(*) FROM forecast.demand_forecast WHERE NOT (units_p10 <= units_p50 "
        "AND units_p50 <= units_p90 AND units_p10 >= 0) OR model IS NULL",
    )
    assert bad == [(0,)]
    chosen = dict(rows(settings, "SELECT product_id, model FROM forecast.model_selection"))
    published = dict(
        rows(settings, "SELECT DISTINCT product_id, model FROM forecast.demand_forecast")
    )
    assert all(chosen[p] == m for p, m in published.items())
    assert result.stage_seconds and "statistical (statsforecast, windows)" in result.stage_seconds


def _two_series(days: int = 140) -> ForecastData:
    """Product s: a strong weekly pattern; product i: intermittent (a sale every ~9 days)."""
    start = date(2024, 1, 1)
    periods = [start + timedelta(days=d) for d in range(days)]
    rng = np.random.default_rng(1)
    pattern = np.array([0, 0, 10, 20, 30, 20, 10])
    seasonal = pattern[np.arange(days) % 7] + rng.integers(0, 2, days)
    intermittent = np.where(rng.random(days) < 0.11, rng.integers(2, 6, days), 0)
    demand = pl.DataFrame(
        {
            "product_id": ["s"] * days + ["i"] * days,
            "period": periods * 2,
            "units": np.concatenate([seasonal, intermittent]).astype(np.int64),
        }
    )
    return ForecastData(
        "day",
        demand,
        demand,
        pl.DataFrame({"product_id": ["s", "i"], "discontinued_date": [None, None]}).cast(
            {"discontinued_date": pl.Date}
        ),
        pl.DataFrame(schema={"product_id": pl.String, "period": pl.Date, "promo_pct": pl.Float64}),
    )


def _spec(tmp_path: Path, tiny_sources: Path, models: list[str]) -> object:
    from conftest import copy_project

    settings = copy_project(tmp_path / "p", tiny_sources)
    return load_spec(settings, horizon=7, models=models)


def test_per_product_selection_picks_each_series_its_model(
    tmp_path: Path, tiny_sources: Path
) -> None:
    from dataclasses import replace

    spec = replace(
        _spec(tmp_path, tiny_sources, ["seasonal_naive", "croston", "median_7", "mean_28"]),
        folds=4,
    )
    data = _two_series()
    backtest = run_backtest(data, spec, data.last_period)  # type: ignore[arg-type]
    candidates = backtest.predictions.filter(pl.col("model") != selection.SELECTED)
    own = selection.select(candidates, "wape", shrinkage=0.0).table
    chosen = dict(own.select("product_id", "model").iter_rows())
    assert chosen["s"] == "seasonal_naive"
    losses = (
        candidates.filter(pl.col("product_id") == "i")
        .group_by("model")
        .agg((pl.col("units_forecast") - pl.col("units_actual")).abs().mean())
        .sort("units_forecast", "model")
    )
    assert chosen["i"] == losses["model"][0] != "seasonal_naive"
    # with overwhelming shrinkage every product follows the overall ranking
    pooled = selection.select(candidates, "wape", shrinkage=1e9).table
    best = selection.ranking(candidates, "wape")["model"][0]
    assert set(pooled["model"]) == {best}
    # the caller's overall best (the run's winner) is the prior and the global model the
    # table reports, whatever the pooled ranking says
    forced = selection.select(candidates, "wape", 8.0, "croston").table
    assert set(forced["global_model"]) == {"croston"}
    for model, score, global_score in forced.select("model", "score", "global_score").iter_rows():
        assert global_score >= score
        if model == "croston":
            assert global_score == score
    # the backtest of `selected` for a fold uses the choice made on the other folds
    sel = backtest.predictions.filter(pl.col("model") == selection.SELECTED)
    assert sel.height == candidates.filter(pl.col("model") == best).height


def test_ensembles_are_the_mean_and_median_of_their_members(
    tmp_path: Path, tiny_sources: Path
) -> None:
    from dataclasses import replace

    models = ["naive", "seasonal_naive", "median_7", "mean_28", "croston", *ENSEMBLES]
    spec = replace(_spec(tmp_path, tiny_sources, models), folds=3)
    data = _two_series()
    backtest = run_backtest(data, spec, data.last_period)  # type: ignore[arg-type]
    p = backtest.predictions
    base = p.filter(~pl.col("model").is_in([*ENSEMBLES, selection.SELECTED]))
    keys = ["fold", "product_id", "forecast_date"]
    for fold in (1, 2, 3):
        members = (
            selection.ranking(base.filter(pl.col("fold") != fold), "wape")["model"]
            .head(selection.ENSEMBLE_SIZE)
            .to_list()
        )
        expected = (
            base.filter((pl.col("fold") == fold) & pl.col("model").is_in(members))
            .group_by(keys)
            .agg(mean=pl.col("units_forecast").mean(), median=pl.col("units_forecast").median())
        )
        for name, column in (("ensemble_mean", "mean"), ("ensemble_median", "median")):
            got = p.filter((pl.col("model") == name) & (pl.col("fold") == fold)).join(
                expected, on=keys
            )
            assert got.height == expected.height > 0
            assert np.allclose(got["units_forecast"], got[column])
    assert len(backtest.members["ensemble_mean"]) == selection.ENSEMBLE_SIZE


def test_the_statistical_ensemble_is_the_mean_and_median_of_its_fixed_members(
    tmp_path: Path, tiny_sources: Path
) -> None:
    """stat_mean / stat_median: AutoETS, Theta, AutoARIMA and AutoCES combined on every
    fold and in the refit, whatever the backtest ranks; without its members, no candidate."""
    from dataclasses import replace

    members = list(STATISTICAL_ENSEMBLE)
    spec = replace(
        _spec(tmp_path, tiny_sources, ["naive", *members, "stat_mean", "stat_median"]), folds=2
    )
    data = _two_series()
    backtest = run_backtest(data, spec, data.last_period)  # type: ignore[arg-type]
    p = backtest.predictions
    keys = ["fold", "product_id", "forecast_date"]
    expected = (
        p.filter(pl.col("model").is_in(members))
        .group_by(keys)
        .agg(
            mean=pl.col("units_forecast").mean(),
            median=pl.col("units_forecast").median(),
            n=pl.len(),
        )
    )
    assert set(expected["n"]) == {len(members)}
    for name, column in (("stat_mean", "mean"), ("stat_median", "median")):
        got = p.filter(pl.col("model") == name).join(expected, on=keys)
        assert got.height == expected.height > 0
        assert np.allclose(got["units_forecast"], got[column])
        assert backtest.members[name] == members
    alone = replace(spec, models=("naive", "ets", "stat_mean"))
    without = run_backtest(data, alone, data.last_period)  # type: ignore[arg-type]
    assert "stat_mean" not in set(without.predictions["model"])


def test_every_candidate_and_the_selection_ignore_everything_after_the_cutoff(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    data = load(settings)
    spec = load_spec(settings)
    cutoff = data.last_period - timedelta(days=20)
    noisy = noisy_copy(settings, tmp_path, cutoff)

    def backtest(target: object) -> pl.DataFrame:
        loaded = load(target).until(cutoff)  # type: ignore[arg-type]
        result = run_backtest(loaded, spec, cutoff)
        return result.predictions.with_columns(pl.col(pl.Float64).round(9)).sort(
            "model", "fold", "product_id", "forecast_date"
        )

    original = backtest(settings)
    assert set(original["model"]) == {*spec.models, selection.SELECTED}
    assert original.equals(backtest(noisy))


def test_each_fold_of_every_candidate_ignores_what_came_after_its_cutoff(
    tmp_path: Path, forecast_sources: Path
) -> None:
    """The whole history is loaded, noise comes after the first fold's cutoff: that fold's
    forecasts of every single candidate (the per-series fits carried forward through later
    folds included) must not change. (Ensembles and `selected` are chosen for a fold on the
    other folds, leave-one-fold-out: out of sample for the fold's errors, not time-ordered;
    the published forecast uses only history before the last period.)"""
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    spec = load_spec(settings)
    data = load(settings)
    last = data.last_period
    first_cutoff = fold_cutoffs(data, spec, last)[0]
    noisy = noisy_copy(settings, tmp_path, first_cutoff)
    noisy_data = load(noisy)
    assert noisy_data.last_period == last
    singles = [m for m in spec.models if m not in ENSEMBLES]

    def first_fold(loaded: ForecastData) -> pl.DataFrame:
        result = run_backtest(loaded, spec, last)
        return (
            result.predictions.filter((pl.col("fold") == 1) & pl.col("model").is_in(singles))
            .select("model", "product_id", "forecast_date", "units_forecast")
            .with_columns(pl.col("units_forecast").round(9))
            .sort("model", "product_id", "forecast_date")
        )

    original = first_fold(data)
    assert set(original["model"]) == set(singles)
    assert original.equals(first_fold(noisy_data))


def test_a_short_history_degrades_instead_of_failing(tmp_path: Path) -> None:
    sources = tmp_path / "sources"
    generate(sources, DemoSpec(products=6, customers=40, days=270, seed=2))
    settings = make_project(tmp_path, sources, "month")
    build(settings)
    result = forecast(settings, horizon=9)  # 9-10 months of history: no fold fits
    assert result.notes and "too short for a backtest" in result.notes[0]
    assert rows(settings, "SELECT count(*) > 0 FROM forecast.demand_forecast") == [(True,)]
    # the customer models ran although the demand forecast had no backtest
    assert rows(settings, "SELECT count(*) > 0 FROM forecast.customer_propensity") == [(True,)]
    params = rows(settings, "SELECT params FROM forecast.model_runs WHERE status = 'ok'")
    assert "too short for a backtest" in str(params[-1][0])
    fewer = forecast(settings, horizon=3)
    assert fewer.notes and "folds" in fewer.notes[0] and fewer.spec.folds >= 1


def test_holidays_of_the_configured_country_are_a_feature(
    tmp_path: Path, forecast_sources: Path
) -> None:
    from warehouse.errors import UsageError
    from warehouse.forecasting.data import holiday_counts, scoring_rows

    demand = pl.DataFrame({"period": [date(2024, 12, 2), date(2024, 12, 30)]})
    weeks = dict(holiday_counts("US", demand, "week").iter_rows())
    assert weeks[date(2024, 12, 23)] == 1  # Christmas
    assert weeks[date(2024, 12, 30)] == 1  # New Year's Day 2025
    assert date(2024, 12, 9) not in weeks
    with pytest.raises(UsageError, match="country = 'XX'"):
        holiday_counts("XX", demand, "week")
    settings = make_project(tmp_path, forecast_sources)
    build(settings)
    data = load(settings, None, "US")
    future = scoring_rows(data, data.last_period, 7, 7)
    assert "t_holidays" in future.columns and future["t_holidays"].null_count() == 0
    assert "t_holidays" not in scoring_rows(load(settings), data.last_period, 7, 7).columns


def test_per_product_selection_needs_evidence_not_a_tie() -> None:
    rng = np.random.default_rng(3)
    frames = []
    for fold in (1, 2, 3):
        for product in range(20):
            actual = 10.0
            frames.append(("winner", fold, str(product), actual, actual + rng.normal(0, 2)))
            frames.append(("better", fold, str(product), actual, actual + rng.normal(0, 0.5)))
    rows_ = pl.DataFrame(
        frames,
        schema=["model", "fold", "product_id", "units_actual", "units_forecast"],
        orient="row",
    )
    clear = pl.concat(
        [
            rows_.filter(pl.col("model") == "winner"),
            rows_.filter(pl.col("model") == "better").with_columns(
                model=pl.lit(selection.SELECTED)
            ),
        ]
    )
    assert selection.selection_evidence(clear, "winner", "wape") > 3
    tie = pl.concat(
        [
            rows_.filter(pl.col("model") == "winner"),
            rows_.filter(pl.col("model") == "winner").with_columns(
                model=pl.lit(selection.SELECTED), units_forecast=pl.col("units_forecast") + 1e-9
            ),
        ]
    )
    assert selection.selection_evidence(tie, "winner", "wape") < 1
