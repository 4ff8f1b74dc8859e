"""The customer-side tables a forecast run publishes with its forecasts: the replenishment
plan (from this run's forecast and the inventory model) and purchase propensity (from the
customer profiles). They publish together with the forecast so a reader never sees a plan
made from another run's forecast."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from warehouse.config import Settings
from warehouse.customers.propensity import PropensityResult, run_propensity
from warehouse.customers.replenishment import replenishment_plan
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.state import State


@dataclass(frozen=True)
class CustomerOptions:
    freq: str
    default_lead_time_days: int
    propensity: bool  # [forecast] customers: score purchase propensity too
    propensity_days: int
    seed: int
    threads: int


@dataclass(frozen=True)
class CustomerOutputs:
    replenishment: pl.DataFrame
    propensity: PropensityResult | None  # None: no customer profiles, or switched off


def customer_outputs(
    settings: Settings,
    state: State,
    forecast: pl.DataFrame,
    options: CustomerOptions,
    progress: Callable[[str], None],
) -> CustomerOutputs:
    """Replenishment from `forecast`; propensity from the published customer profiles."""
    con = catalog.open_published(settings)
    try:
        head = state.head(settings.env)
        if head is not None and "staging.inventory" in head.mapping:
            inventory = pl.DataFrame(con.sql("SELECT * FROM staging.inventory").to_arrow_table())
        else:  # a project without an inventory model: every product gets the default lead time
            inventory = pl.DataFrame(
                schema={"product_id": pl.String, "on_hand": pl.Int32, "lead_time_days": pl.Int32}
            )
        plan = replenishment_plan(forecast, inventory, options.freq, options.default_lead_time_days)
        profile = head.mapping.get("features.customer_profile") if head else None
        version = state.get_version(profile) if profile else None
        if not options.propensity or version is None:
            return CustomerOutputs(plan, None)
        progress("purchase propensity")
        last = engine.first_row(con, "SELECT max(order_date) FROM staging.orders")
        if last is None or last[0] is None:
            return CustomerOutputs(plan, None)
        scored = run_propensity(
            con, version.query, last[0], options.propensity_days, options.seed, options.threads
        )
        return CustomerOutputs(plan, scored)
    finally:
        con.close()
