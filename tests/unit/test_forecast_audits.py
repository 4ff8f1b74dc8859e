"""Forecast audits on hand-made backtests: each passes, fails or is skipped as it should,
with the figures a person can check."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from warehouse.errors import ConfigError
from warehouse.forecasting.audits import (
    AuditSettings,
    load_audit_settings,
    published_so_far,
    run_audits,
    wape,
)

WHERE = Path("wh.toml")
DAY = date(2024, 3, 1)


def backtest(
    model: str, forecasts: list[float], cutoff: date = DAY, run: str = "r"
) -> pl.DataFrame:
    """Four rows of one fold: actuals 10, 0, 5, 5 (sum 20)."""
    actual = [10.0, 0.0, 5.0, 5.0]
    return pl.DataFrame(
        {
            "run_id": run,
            "model": model,
            "fold": 1,
            "cutoff_date": cutoff,
            "product_id": ["a", "a", "b", "b"],
            "forecast_date": [cutoff + timedelta(days=d) for d in (1, 2, 1, 2)],
            "horizon": [1, 2, 1, 2],
            "units_forecast": forecasts,
            "units_actual": actual,
            "units_p10": [f - 2 for f in forecasts],
            "units_p90": [f + 2 for f in forecasts],
        }
    )


FORECAST = pl.DataFrame({"product_id": ["a", "b"], "units_forecast": [12.0, 40.0]})
HISTORY = pl.DataFrame({"product_id": ["a", "b"], "max_units": [10, 8]})


def by_name(settings: AuditSettings, *frames: pl.DataFrame, previous: pl.DataFrame | None = None):  # type: ignore[no-untyped-def]
    audits = run_audits(settings, pl.concat(frames), "selected", previous, FORECAST, HISTORY)
    return {a.name: a for a in audits}


def test_wape_is_absolute_error_over_actual_demand() -> None:
    assert wape(backtest("m", [10.0, 0.0, 5.0, 5.0])) == 0.0
    assert wape(backtest("m", [8.0, 1.0, 5.0, 7.0])) == pytest.approx((2 + 1 + 0 + 2) / 20)


def test_the_published_model_must_beat_seasonal_naive_on_the_same_rows() -> None:
    good = backtest("selected", [9.0, 0.0, 5.0, 6.0])  # WAPE 2/20
    naive = backtest("seasonal_naive", [5.0, 5.0, 5.0, 5.0])  # WAPE 10/20
    found = by_name(AuditSettings(), good, naive)["beat_naive"]
    assert found.passed is True
    assert (found.figure, found.threshold) == (pytest.approx(0.1), pytest.approx(0.5))
    bad = backtest("selected", [0.0, 10.0, 0.0, 0.0])  # WAPE 30/20
    assert by_name(AuditSettings(), bad, naive)["beat_naive"].passed is False
    same = backtest("selected", [5.0, 5.0, 5.0, 5.0])  # seasonal naive won: a tie passes
    assert by_name(AuditSettings(), same, naive)["beat_naive"].passed is True
    alone = by_name(AuditSettings(), good)["beat_naive"]
    assert alone.passed is None and "not among the [forecast] models" in alone.detail


def test_a_run_may_be_at_most_ten_percent_worse_than_the_published_one() -> None:
    before = backtest("lightgbm", [9.0, 0.0, 5.0, 6.0], run="old")  # WAPE 0.10
    slightly = backtest("selected", [9.0, 0.2, 5.0, 6.0])  # 0.11: +10 %
    worse = backtest("selected", [8.0, 0.0, 5.0, 6.0])  # 0.15: +50 %
    settings = AuditSettings(beat_naive=False)
    assert by_name(settings, slightly, previous=before)["max_worse_than_previous"].passed
    found = by_name(settings, worse, previous=before)["max_worse_than_previous"]
    assert found.passed is False and found.figure == pytest.approx(0.5)
    assert "on the 1 folds both runs backtested" in found.detail
    # new data moved the cutoff: the dates both runs scored are compared
    moved = before.with_columns(cutoff_date=pl.lit(DAY - timedelta(days=1)))
    found = by_name(settings, worse, previous=moved)["max_worse_than_previous"]
    assert found.passed is False and "no fold in common" in found.detail
    first = by_name(settings, worse)["max_worse_than_previous"]
    assert first.passed is None and "no earlier published run" in first.detail


def test_coverage_band_and_forecasts_far_above_history() -> None:
    rows = backtest("selected", [9.0, 0.0, 5.0, 9.0])  # p10-p90 = forecast +- 2: 3 of 4 inside
    settings = AuditSettings(False, None, (0.5, 0.9), 3.0)
    found = by_name(settings, rows)
    assert found["coverage"].passed is True and found["coverage"].figure == 0.75
    assert by_name(AuditSettings(False, None, (0.8, 1.0)), rows)["coverage"].passed is False
    over = found["max_over_history"]  # b: 40 forecast vs 8 at most in history
    assert over.passed is False and over.figure == 5.0 and "b: 40.0 vs 8.0" in over.detail
    assert by_name(AuditSettings(False, None, None, 5.0), rows)["max_over_history"].passed


def test_settings_from_wh_toml() -> None:
    assert load_audit_settings(None, WHERE) == AuditSettings()
    found = load_audit_settings(
        {"beat_naive": False, "max_worse_than_previous": False, "coverage": [0.6, 0.95]}, WHERE
    )
    assert found == AuditSettings(False, None, (0.6, 0.95), None)
    for bad, message in (
        ({"beat_naif": True}, "unknown key 'beat_naif'"),
        ({"beat_naive": "yes"}, "true or false"),
        ({"max_over_history": -1}, "a number of 0 or more"),
        ({"coverage": [0.9, 0.5]}, r"\[low, high\]"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_audit_settings(bad, WHERE)


def test_how_the_published_forecast_did_on_the_periods_seen_since() -> None:
    days = [DAY + timedelta(days=d) for d in (1, 2, 3)]
    previous = pl.DataFrame(
        {
            "product_id": ["a"] * 3,
            "forecast_date": days,
            "units_forecast": [4.0, 6.0, 9.0],
            "units_p10": [3.0, 3.0, 3.0],
            "units_p90": [5.0, 4.0, 9.0],
            "run_id": "old",
            "cutoff_date": DAY,
        }
    )
    demand = pl.DataFrame({"product_id": ["a", "a"], "period": days[:2], "units": [5, 5]})
    found = published_so_far(previous, demand)
    assert found is not None
    assert (found["run_id"], found["periods_observed"], found["periods"]) == ("old", 2, 3)
    assert found["wape"] == pytest.approx(2 / 10) and found["bias"] == pytest.approx(0.0)
    assert found["coverage"] == 0.5  # 5 is inside [3, 5], not inside [3, 4]
    assert published_so_far(None, demand) is None
    nothing = published_so_far(previous, demand.clear())
    assert nothing is not None and nothing["periods_observed"] == 0 and "wape" not in nothing
