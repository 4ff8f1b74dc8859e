"""Replenishment from the demand forecast: how much to reorder so stock lasts a lead time.

Demand over the lead time sums the forecast steps the lead time covers (days, or the weeks /
months it spans). Summing per-step p90s overstates the p90 of the sum when steps are
independent, so the safety stock errs on the safe side. A lead time beyond the horizon is
covered by the horizon only (stated in `covered_days`).
"""

from __future__ import annotations

import polars as pl

DAYS_PER_STEP = {"day": 1, "week": 7, "month": 30}
# marts.replenishment_plan's columns, in order (forecasting/tables.py publishes them)
PLAN_COLUMNS = (
    "product_id",
    "lead_time_days",
    "covered_days",
    "demand_p50",
    "demand_p90",
    "safety_stock",
    "reorder_point",
    "on_hand",
    "suggested_order",
)


def replenishment_plan(
    forecast: pl.DataFrame, inventory: pl.DataFrame, freq: str, default_lead_time_days: int
) -> pl.DataFrame:
    per_step = DAYS_PER_STEP[freq]
    stock = inventory.select("product_id", "on_hand", "lead_time_days")
    ranked = (
        forecast.with_columns(
            step=pl.col("forecast_date").rank("dense").over("product_id").cast(pl.Int64)
        )
        .join(stock, on="product_id", how="left")
        .with_columns(lead_time_days=pl.col("lead_time_days").fill_null(default_lead_time_days))
        .with_columns(steps=(pl.col("lead_time_days") / per_step).ceil().cast(pl.Int64))
    )
    covered = ranked.filter(pl.col("step") <= pl.col("steps"))
    plan = covered.group_by("product_id").agg(
        lead_time_days=pl.col("lead_time_days").first(),
        covered_days=pl.len() * per_step,
        demand_p50=pl.col("units_p50").sum(),
        demand_p90=pl.col("units_p90").sum(),
        on_hand=pl.col("on_hand").first(),
    )
    return (
        plan.with_columns(
            safety_stock=pl.col("demand_p90") - pl.col("demand_p50"),
            reorder_point=pl.col("demand_p90"),
        )
        .with_columns(
            suggested_order=(pl.col("reorder_point") - pl.col("on_hand").fill_null(0))
            .clip(lower_bound=0)
            .ceil(),
        )
        .select(PLAN_COLUMNS)
        .sort("product_id")
    )
