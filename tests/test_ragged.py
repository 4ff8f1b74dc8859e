"""Ragged panels through the default `wh forecast`, and every optional step failing on
purpose while the forecast is still published.

Real panels start and stop at different dates and have short series; a product can be
missing from one fold's history. The default configuration (hierarchy on, every candidate)
must publish a forecast on them, and a step after the forecast (hierarchy, scenarios,
customers, importance, accuracy) that fails is reported, never fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import copy_project, rows
from ragged import RaggedSpec, shapes, write_ragged_sources

from warehouse import faults, forecast
from warehouse.config import Settings
from warehouse.runtime.build import build

PERIODS = {"month": 40, "week": 70, "day": 120}


def _project(tmp_path: Path, freq: str, toml: str = "") -> tuple[Settings, RaggedSpec]:
    spec = RaggedSpec(freq=freq, periods=PERIODS[freq])
    write_ragged_sources(tmp_path / "sources", spec)
    settings = copy_project(
        tmp_path / "project",
        tmp_path / "sources",
        f'freq = "{freq}"\n',
        "[forecast]\ncustomers = false\n" + toml,
    )
    build(settings)
    return settings, spec


def _alive(spec: RaggedSpec) -> int:
    """Products still on sale in the panel's last period: each must get a forecast."""
    return sum(1 for _, last, _ in shapes(spec) if last == spec.periods - 1)


def _params(settings: Settings, run_id: str) -> dict[str, object]:
    [(status, params)] = rows(
        settings, f"SELECT status, params FROM forecast.model_runs WHERE run_id = '{run_id}'"
    )
    assert status == "ok"
    found = json.loads(str(params))
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("freq", ["month", "week", "day"])
def test_default_forecast_publishes_on_a_ragged_panel(tmp_path: Path, freq: str) -> None:
    """Late starts, early stops, a product launched in the last period, one shorter than a
    season, a gap: the default run (hierarchy included) publishes every live product, and
    the hierarchy adds up where products are missing from a fold's history."""
    settings, spec = _project(tmp_path, freq)
    result = forecast(settings)
    published = rows(
        settings,
        "SELECT count(DISTINCT product_id), count(*), min(units_forecast), "
        "count(*) FILTER (WHERE NOT isfinite(units_forecast)) FROM forecast.demand_forecast "
        f"WHERE run_id = '{result.run_id}'",
    )[0]
    assert published[0] == _alive(spec), published
    assert published[1] == _alive(spec) * result.spec.horizon
    assert float(published[2]) >= 0 and published[3] == 0  # type: ignore[arg-type]
    steps = _params(settings, result.run_id)["optional_steps"]
    assert steps == dict.fromkeys(("accuracy", "importance", "hierarchy", "customers"), "ok")
    # products missing from a fold's history get zero in-sample rows: MinT runs on every fold
    assert not any("MinT failed" in n for n in result.notes), result.notes
    # the reconciled product level sums to the total, date by date
    [(worst, dates)] = rows(
        settings,
        """
        SELECT max(abs(p.units - t.units_p50)), count(*) FROM (
            SELECT forecast_date, sum(units_p50) AS units
            FROM forecast.demand_forecast_hierarchy WHERE level = 'product' GROUP BY 1
        ) AS p JOIN forecast.demand_forecast_hierarchy AS t
          ON t.level = 'total' AND t.forecast_date = p.forecast_date
        """,
    )
    assert dates == result.spec.horizon and float(worst) < 1e-6  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def monthly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ragged monthly sources with a scenarios source (shared, read-only)."""
    out = tmp_path_factory.mktemp("ragged") / "sources"
    write_ragged_sources(out, RaggedSpec(freq="month", periods=PERIODS["month"]))
    (out / "scenarios.csv").write_text(
        "scenario,category,start_date,end_date,price_change,promo_depth\n"
        "cut10,cat_0,2024-05-01,2024-06-30,-0.1,\n"
    )
    return out


MODELS = ["seasonal_naive", "mean_3", "ets", "lightgbm"]
FAST = "[forecast.lightgbm]\nnum_boost_round = 40\n"


def test_every_optional_step_runs(tmp_path: Path, monthly: Path) -> None:
    """On these sources each step runs and succeeds: so a test below that makes one fail
    shows a step that would otherwise have run."""
    settings = copy_project(tmp_path / "project", monthly, 'freq = "month"\n', FAST)
    build(settings)
    result = forecast(settings, models=MODELS)
    result = forecast(settings, models=MODELS)  # the second has a published forecast to score
    steps = _params(settings, result.run_id)["optional_steps"]
    assert steps == dict.fromkeys(faults.STEPS, "ok"), steps


@pytest.mark.parametrize("step", faults.STEPS)
def test_each_optional_step_failing_still_publishes(
    tmp_path: Path, monthly: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """A step failing on purpose: the forecast publishes every live product, the failure is
    recorded and noted, and every other step runs."""
    settings = copy_project(tmp_path / "project", monthly, 'freq = "month"\n', FAST)
    build(settings)
    monkeypatch.setenv("WH_FAIL_STEP", step)
    result = forecast(settings, models=MODELS)
    steps = _params(settings, result.run_id)["optional_steps"]
    assert isinstance(steps, dict)
    assert str(steps[step]).startswith("failed: InjectedFailure"), steps
    assert all(v == "ok" for k, v in steps.items() if k != step), steps
    assert any(f"the {step} step failed" in n for n in result.notes), result.notes
    [(products,)] = rows(
        settings,
        "SELECT count(DISTINCT product_id) FROM forecast.demand_forecast "
        f"WHERE run_id = '{result.run_id}'",
    )
    assert products == _alive(RaggedSpec(freq="month", periods=PERIODS["month"]))
