"""The steps of `wh forecast` after the forecast itself: feature importance, how the last
published forecast did, the hierarchy, the project's scenarios, replenishment and customer
propensity. Each is optional: `Steps.run` reports its failure (in the run's notes and in
forecast.model_runs.params) and returns no tables, so the forecast is published without it
and that step's tables keep the rows of the run that last wrote them.

`WH_FAIL_STEP=<step>[,<step>]` makes a step fail on purpose (warehouse/faults.py), to show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse import faults
from warehouse.config import Settings
from warehouse.customers.outputs import CustomerOptions, customer_outputs
from warehouse.errors import UsageError
from warehouse.forecasting import hierarchy, scenario
from warehouse.forecasting import tables as contract
from warehouse.forecasting.backtest import Backtest
from warehouse.forecasting.data import ForecastData
from warehouse.forecasting.spec import ForecastSpec
from warehouse.runtime.publish import TableWrite
from warehouse.runtime.state import State

Progress = Callable[[str], None]
Tables = dict[str, TableWrite]


@dataclass
class Steps:
    """The optional steps of one run: what each cost, and which failed and why."""

    notes: list[str]
    seconds: dict[str, float]
    status: dict[str, str] = field(default_factory=dict)  # step -> ok | failed: <error>

    def run(self, name: str, call: Callable[[], Tables]) -> Tables:
        found = self.value(name, call)
        return found if found is not None else {}

    def value(self, name: str, call: Callable[[], Any]) -> Any:
        """`call()`, or None when it fails: the failure is noted, never raised (but an
        interrupt, which is the user's)."""
        started = time.perf_counter()
        try:
            faults.step(name)
            found = call()
        except Exception as exc:
            # one line: a WhError's hint (what to do) follows its message
            error = f"{type(exc).__name__}: {exc}".replace("\n  hint: ", "; hint: ")
            self.status[name] = f"failed: {error}"
            self.notes.append(
                f"the {name} step failed and was skipped; the forecast is published without "
                f"it ({error})"
            )
            return None
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
        self.status[name] = "ok"
        return found


def hierarchy_tables(
    settings: Settings,
    spec: ForecastSpec,
    data: ForecastData,
    backtest: Backtest,
    selected: pl.DataFrame,
    predicted: pl.DataFrame,
    last: date,
    run_id: str,
    notes: list[str],
) -> Tables:
    """forecast.demand_forecast_hierarchy and forecast.hierarchy_metrics: product forecasts
    reconciled with every level above (forecasting/hierarchy.py), on the folds each
    product's base forecast being the model it published; and the run's note of the method
    chosen (and of MinT's failures, where it fell back to bottom-up)."""
    chosen = selected.select(pl.col("product_id").cast(pl.String), "model")
    folds = backtest.predictions.with_columns(pl.col("product_id").cast(pl.String)).join(
        chosen, on=["product_id", "model"]
    )
    members = hierarchy.product_levels(settings, spec.hierarchy.levels)
    reconciled = hierarchy.reconcile_run(
        data.demand,
        members,
        spec.hierarchy,
        spec.freq,
        spec.season,
        spec.horizon,
        folds.select("cutoff_date", "product_id", "forecast_date", "units_forecast"),
        predicted.select("product_id", "forecast_date", "units_forecast"),
        last,
    )
    notes.append(_hierarchy_note(reconciled))
    return _hierarchy_tables(reconciled, last, run_id)


def _hierarchy_tables(
    reconciled: hierarchy.HierarchyResult, last: date, run_id: str
) -> dict[str, TableWrite]:
    run = pl.lit(run_id).alias("run_id")
    return {
        contract.DEMAND_FORECAST_HIERARCHY.name: contract.DEMAND_FORECAST_HIERARCHY.write(
            reconciled.forecast.with_columns(run, cutoff_date=pl.lit(last))
        ),
        contract.HIERARCHY_METRICS.name: contract.HIERARCHY_METRICS.write(
            reconciled.metrics.with_columns(run)
        ),
    }


def _hierarchy_note(reconciled: hierarchy.HierarchyResult) -> str:
    chosen = reconciled.metrics.filter(pl.col("chosen"))
    levels = ", ".join(
        f"{level} {wape:.3f}" for level, wape in chosen.select("level", "wape").rows()
    )
    skipped = f"; {reconciled.note}" if reconciled.note else ""
    return (
        f"hierarchy reconciled by {reconciled.method} (backtest WAPE per level: {levels}){skipped}"
    )


def scenario_tables(
    data: ForecastData,
    spec: ForecastSpec,
    cutoff: date,
    baseline: pl.DataFrame,
    scenarios: pl.DataFrame,
    run_id: str,
) -> dict[str, TableWrite]:
    """forecast.scenario_forecast and forecast.price_elasticity from one response model."""
    response = scenario.response_model(data, spec, cutoff)
    elasticity = scenario.elasticity_table(data, spec, response)
    moved = scenario.scenario_forecast(response, spec, baseline, scenarios, elasticity)
    if moved.is_empty():
        raise UsageError(
            "no scenario row matches a product and date of the forecast horizon",
            hint=f"scenario dates must lie after the cutoff {cutoff}, within the horizon "
            f"({spec.horizon} {spec.freq}s), for products or categories that are forecast",
        )
    run = pl.lit(run_id).alias("run_id")
    return {
        contract.SCENARIO_FORECAST.name: contract.SCENARIO_FORECAST.write(
            moved.with_columns(run, cutoff_date=pl.lit(cutoff))
        ),
        contract.PRICE_ELASTICITY.name: contract.PRICE_ELASTICITY.write(
            elasticity.with_columns(run)
        ),
    }


def importance_table(backtest: Backtest, run_id: str) -> Tables:
    """forecast.feature_importance: the global LightGBM's gain and splits per feature."""
    name = contract.FEATURE_IMPORTANCE.name
    return {name: contract.FEATURE_IMPORTANCE.write(_importance(backtest, run_id))}


def _importance(backtest: Backtest, run_id: str) -> pl.DataFrame:
    source = backtest.last_fits.get("lightgbm")
    schema = {
        "run_id": pl.String,
        "model": pl.String,
        "feature": pl.String,
        "gain": pl.Float64,
        "split": pl.Int64,
    }
    if source is None or not source.boosters:
        return pl.DataFrame(schema=schema)
    booster = next(iter(source.boosters.values()))
    return pl.DataFrame(
        {
            "run_id": run_id,
            "model": source.name,
            "feature": booster.feature_name(),
            "gain": booster.feature_importance("gain").astype(float),
            "split": booster.feature_importance("split").astype(np.int64),
        },
        schema=schema,
    ).sort("gain", descending=True)


def customer_tables(
    settings: Settings,
    state: State,
    spec: ForecastSpec,
    predicted: pl.DataFrame,
    run_id: str,
    progress: Progress,
) -> dict[str, TableWrite]:
    """Replenishment from this forecast; purchase propensity from the customer profiles."""
    options = CustomerOptions(
        spec.freq,
        spec.default_lead_time_days,
        spec.customers,
        spec.propensity_days,
        spec.seed,
        spec.threads,
    )
    outputs = customer_outputs(settings, state, predicted, options, progress)
    tables = {
        contract.REPLENISHMENT_PLAN.name: contract.REPLENISHMENT_PLAN.write(outputs.replenishment)
    }
    if outputs.propensity is not None:
        run = pl.lit(run_id).alias("run_id")
        for table, frame in (
            (contract.CUSTOMER_PROPENSITY, outputs.propensity.scores),
            (contract.PROPENSITY_METRICS, outputs.propensity.metrics),
        ):
            tables[table.name] = table.write(frame.with_columns(run))
    return tables
