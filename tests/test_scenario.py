"""Price and promotion what-if: `wh forecast --scenario FILE` moves the published forecast into
forecast.scenario_forecast and estimates forecast.price_elasticity, checked against the demo
generator's true elasticities."""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import copy_project, published, rows, wh_command

from warehouse import forecast, scenario
from warehouse.config import Settings, load_settings
from warehouse.forecasting.scenario import ScenarioError, read_scenarios
from warehouse.interfaces.console import scenario_json
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.runtime.build import build

MODELS = ["seasonal_naive", "moving_average"]
TOML = """
[forecast]
horizon = 14
folds = 1
train_periods = 180
origin_step = 3
[forecast.lightgbm]
num_boost_round = 80
[forecast.hierarchy]
enabled = false
"""


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A demo with a year of history (enough promotions and price changes to estimate
    elasticity from), built and forecast once: tests read it, the scenario runs write only
    the scenario tables."""
    root = tmp_path_factory.mktemp("scenario")
    generate(root / "data" / "sources", DemoSpec(products=40, customers=300, days=365, seed=11))
    settings = copy_project(root / "project", root / "data" / "sources", more_toml=TOML)
    build(settings)
    forecast(settings, models=MODELS)
    return settings


def _cutoff(settings: Settings) -> date:
    found = rows(settings, "SELECT max(cutoff_date) FROM forecast.demand_forecast")[0][0]
    assert isinstance(found, date)
    return found


def _price_cut(settings: Settings, path: Path, change: float = -0.1) -> Path:
    categories = [c for (c,) in rows(settings, "SELECT DISTINCT category FROM staging.products")]
    start = _cutoff(settings) + timedelta(days=1)
    pl.DataFrame(
        {
            "scenario": "price_cut",
            "category": categories,
            "start_date": start,
            "end_date": start + timedelta(days=13),
            "price_change": change,
        }
    ).write_parquet(path)
    return path


def test_a_price_cut_raises_demand_and_the_elasticity_is_near_the_truth(
    planned: Settings, tmp_path: Path
) -> None:
    before = published(planned)
    result = scenario(_price_cut(planned, tmp_path / "cut.parquet"), planned)
    after = published(planned)
    # the published forecast and every other forecast table are as they were
    for name in before:
        if name not in ("forecast.model_runs",):
            assert after[name] == before[name], name
    moved = result.scenarios
    per_product = moved.group_by("product_id").agg(pl.col("uplift").sum())
    up = per_product.filter(pl.col("uplift") > 0).height
    assert up >= 0.95 * per_product.height, (up, per_product.height)
    assert (moved["units_p50"] >= moved["baseline_p50"]).all()
    truth = pl.read_parquet(planned.project_dir.parent / "data" / "truth_products.parquet")
    true_median = float(truth["elasticity"].median())  # type: ignore[arg-type]
    overall = result.elasticity.filter(
        (pl.col("category") == "all") & (pl.col("method") == "log_log_regression")
    ).row(0, named=True)
    assert abs(overall["elasticity"] - true_median) <= 0.3 * abs(true_median), (
        overall,
        true_median,
    )
    assert overall["low"] < overall["elasticity"] < overall["high"]
    # the demand a 10 % cut adds, in total, is the elasticity's: 0.9 ** e - 1
    total = moved["units_mean"].sum() / moved["baseline_mean"].sum() - 1
    assert total == pytest.approx(0.9 ** overall["elasticity"] - 1, rel=0.2)
    # published: the tables readers see hold the same rows
    assert rows(planned, "SELECT count(*) FROM forecast.scenario_forecast")[0][0] == moved.height
    runs = rows(planned, "SELECT kind, status FROM forecast.model_runs ORDER BY started_at")
    assert runs[-1] == ("scenario", "ok")


def test_the_response_model_is_monotone_in_price(planned: Settings, tmp_path: Path) -> None:
    """By the LightGBM response model alone: a lower price never lowers expected demand
    (its monotone constraint), and raises it for most products."""
    toml = planned.project_dir / "wh.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[forecast]\n", '[forecast]\nscenario_response = "model"\n'))
    try:
        moved = scenario(
            _price_cut(planned, tmp_path / "cut.parquet", -0.2), load_settings(planned.project_dir)
        ).scenarios
    finally:
        toml.write_text(text)
    assert (moved["units_mean"] >= moved["baseline_mean"] - 1e-9).all()
    per_product = moved.group_by("product_id").agg(pl.col("uplift").sum())
    assert per_product.filter(pl.col("uplift") > 0).height >= 0.8 * per_product.height


@pytest.mark.parametrize(
    ("csv", "message"),
    [
        ("scenario,product_id,start_date,end_date\nx,1,2024-01-01,2024-01-02\n",
         "neither column is there"),
        ("scenario,product_id,start_date,end_date,price_change\nx,1,2024-13-01,2024-01-02,-0.1\n",
         "row 2, column start_date: expected a date"),
        ("scenario,product_id,start_date,end_date,price_change\nx,1,2024-01-05,2024-01-02,-0.1\n",
         "row 2, column end_date: expected on or after start_date"),
        ("scenario,product_id,start_date,end_date,promo_depth\n"
         "x,1,2024-01-01,2024-01-02,20\nx,2,2024-01-01,2024-01-02,120\n",
         "row 3, column promo_depth"),
        ("scenario,start_date,end_date,price_change\nx,2024-01-01,2024-01-02,-0.1\n",
         "missing column product_id or category"),
        ("scenario,product_id,start_date,end_date,price_change,promo_depth\n"
         "x,1,2024-01-01,2024-01-02,ten percent,20\n",
         "row 2, column price_change: expected a number, found 'ten percent'"),
    ],
)  # fmt: skip
def test_a_bad_scenario_file_says_where(tmp_path: Path, csv: str, message: str) -> None:
    path = tmp_path / "s.csv"
    path.write_text(csv)
    with pytest.raises(ScenarioError) as error:
        read_scenarios(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_the_cli_refuses_a_scenario_outside_the_horizon_and_publishes_nothing(
    planned: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "late.csv"
    path.write_text(
        "scenario,category,start_date,end_date,price_change\n"
        "late,kitchen,2099-01-01,2099-01-31,-0.1\n"
    )
    before = published(planned)
    done = subprocess.run(
        wh_command(planned, "forecast", "--scenario", str(path)), capture_output=True, text=True
    )
    assert done.returncode != 0
    assert "no scenario row matches" in done.stderr
    assert published(planned) == before
    # the summary --json prints, from a run in this process (a second process costs seconds)
    answer = json.loads(
        json.dumps(scenario_json(scenario(_price_cut(planned, tmp_path / "c.parquet"), planned)),
                   default=str)
    )  # fmt: skip
    assert answer["scenarios"][0]["scenario"] == "price_cut"
    assert {e["method"] for e in answer["elasticity"]} == {"model_response", "log_log_regression"}


def test_a_scenarios_source_is_scored_with_every_run(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = copy_project(tmp_path / "p", forecast_sources, more_toml=TOML)
    build(settings)
    last = rows(settings, "SELECT max(period) FROM features.demand")[0][0]
    assert isinstance(last, date)
    (settings.sources / "scenarios.csv").write_text(
        "scenario,product_id,start_date,end_date,promo_depth\n"
        f"promo,1,{last + timedelta(days=1)},{last + timedelta(days=7)},30\n"
    )
    result = forecast(settings, models=MODELS)
    moved = rows(
        settings,
        "SELECT count(*), min(promo_depth), max(run_id) FROM forecast.scenario_forecast",
    )[0]
    assert moved == (7, 30.0, result.run_id)
    # the file is read like --scenario's, and a bad one is reported with where it is wrong;
    # the forecast is published all the same (scenarios are an optional step)
    (settings.sources / "scenarios.csv").write_text("scenario\nx\n")
    again = forecast(settings, models=MODELS)
    [note] = [n for n in again.notes if "scenarios step failed" in n]
    assert "scenarios.csv" in note, note
    assert rows(settings, "SELECT max(run_id) FROM forecast.demand_forecast")[0][0] == again.run_id
