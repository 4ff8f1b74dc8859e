"""The tables `wh forecast` publishes, and their columns: a contract other tools read
(DESIGN.md §5). The run writes each table through its contract and the HTTP API reads the
columns from here, so a column is named in one place.

A contract may add columns after the ones §5 lists (the backtest's p10/p90, the model
selection's scores): readers select by name, never by position.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from warehouse.customers.replenishment import PLAN_COLUMNS
from warehouse.forecasting.metrics import METRIC_COLUMNS, METRIC_KEYS
from warehouse.runtime.produced import FORECAST_COLUMNS
from warehouse.runtime.publish import TableWrite


@dataclass(frozen=True)
class TableContract:
    name: str
    columns: tuple[str, ...]
    append: bool = False  # every run's rows are kept (history), else the latest run's only

    def write(self, frame: pl.DataFrame) -> TableWrite:
        """The frame as this table, its columns in contract order; a missing one is a bug
        here, not something a reader should find out."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.name} lacks its contract columns {missing}")
        return TableWrite(frame.select(self.columns), self.append)

    def sql_columns(self, *names: str) -> str:
        """A SELECT list of these contract columns (all when none are named)."""
        chosen = names or self.columns
        unknown = [c for c in chosen if c not in self.columns]
        if unknown:
            raise ValueError(f"{self.name} has no columns {unknown}")
        return ", ".join(chosen)


DEMAND_FORECAST = TableContract("forecast.demand_forecast", FORECAST_COLUMNS)
DEMAND_FORECAST_HISTORY = TableContract(
    "forecast.demand_forecast_history", FORECAST_COLUMNS, append=True
)
DEMAND_BACKTEST = TableContract(
    "forecast.demand_backtest",
    (
        "run_id",
        "model",
        "fold",
        "cutoff_date",
        "product_id",
        "forecast_date",
        "horizon",
        "units_forecast",
        "units_actual",
        "units_p10",
        "units_p90",
    ),
    append=True,
)
FORECAST_METRICS = TableContract(
    "forecast.forecast_metrics", ("run_id", *METRIC_KEYS, *METRIC_COLUMNS), append=True
)
MODEL_SELECTION = TableContract(
    "forecast.model_selection",
    (
        "run_id",
        "product_id",
        "model",
        "score",
        "global_model",
        "global_score",
        "improvement",
        "backtest_rows",
    ),
)
FEATURE_IMPORTANCE = TableContract(
    "forecast.feature_importance", ("run_id", "model", "feature", "gain", "split"), append=True
)
CUSTOMER_PROPENSITY = TableContract(
    "forecast.customer_propensity",
    ("customer_id", "as_of_date", "p_purchase", "expected_orders", "model", "run_id"),
)
PROPENSITY_METRICS = TableContract(
    "forecast.propensity_metrics",
    (
        "run_id",
        "model",
        "auc",
        "accuracy",
        "precision",
        "recall",
        "f1",
        "log_loss",
        "base_rate",
    ),
    append=True,
)
DEMAND_FORECAST_HIERARCHY = TableContract(
    "forecast.demand_forecast_hierarchy",
    (
        "level",
        "key",
        "forecast_date",
        "units_p10",
        "units_p50",
        "units_p90",
        "method",
        "cutoff_date",
        "run_id",
    ),
)
HIERARCHY_METRICS = TableContract(
    "forecast.hierarchy_metrics",
    ("run_id", "method", "level", "series", "rows", "wape", "bias", "chosen"),
    append=True,
)
SCENARIO_FORECAST = TableContract(
    "forecast.scenario_forecast",
    (
        "scenario",
        "product_id",
        "forecast_date",
        "baseline_p50",
        "units_p10",
        "units_p50",
        "units_p90",
        "baseline_mean",
        "units_mean",
        "uplift",
        "price_ratio",
        "promo_depth",
        "cutoff_date",
        "run_id",
    ),
)
PRICE_ELASTICITY = TableContract(
    "forecast.price_elasticity",
    ("run_id", "category", "method", "elasticity", "low", "high", "products", "rows"),
)
REPLENISHMENT_PLAN = TableContract("marts.replenishment_plan", PLAN_COLUMNS)
# forecast.model_runs: one row per run, rewritten as the run moves from running to ok/failed
RUN_SCHEMA: dict[str, Any] = {
    "run_id": pl.String,
    "kind": pl.String,
    "started_at": pl.Datetime("us"),
    "finished_at": pl.Datetime("us"),
    "status": pl.String,
    "model": pl.String,
    "params": pl.String,
    "feature_fingerprints": pl.String,
    "cutoff_date": pl.Date,
    "horizon": pl.Int32,
    "freq": pl.String,
    "train_rows": pl.Int64,
    "wh_version": pl.String,
    "error": pl.String,
}
MODEL_RUNS = TableContract("forecast.model_runs", tuple(RUN_SCHEMA))

CONTRACTS = {
    c.name: c
    for c in (
        DEMAND_FORECAST,
        DEMAND_FORECAST_HISTORY,
        DEMAND_BACKTEST,
        FORECAST_METRICS,
        MODEL_SELECTION,
        FEATURE_IMPORTANCE,
        CUSTOMER_PROPENSITY,
        PROPENSITY_METRICS,
        DEMAND_FORECAST_HIERARCHY,
        HIERARCHY_METRICS,
        SCENARIO_FORECAST,
        PRICE_ELASTICITY,
        REPLENISHMENT_PLAN,
        MODEL_RUNS,
    )
}
# published by a run only when it has scenarios (`--scenario FILE`, or a scenarios source)
ON_REQUEST = frozenset({SCENARIO_FORECAST.name, PRICE_ELASTICITY.name})
