"""Ragged panels in the source contract: series that start late, stop early, are shorter
than a season or than a backtest fold, and have gaps, in any freq.

Real panels (competition sets, store x brand sales) look like this; the demo generator's do
not (every product sells from the first day to the last). One order line per series and
period carries the period's units, so features.demand is exactly the panel written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

STEP = {"day": 1, "week": 7, "month": 0}  # month: calendar months


@dataclass(frozen=True)
class RaggedSpec:
    freq: str = "month"
    periods: int = 48  # the panel's length, first period to last
    products: int = 14
    seed: int = 11


def _period(start: date, freq: str, i: int) -> date:
    if freq == "month":
        months = start.month - 1 + i
        return date(start.year + months // 12, months % 12 + 1, 1)
    return start + timedelta(days=STEP[freq] * i)


def shapes(spec: RaggedSpec) -> list[tuple[int, int, set[int]]]:
    """Per product: (first period index, last period index, gap indices). Every kind of
    raggedness appears at least once; the rest are full series."""
    n = spec.periods
    rng = np.random.default_rng(spec.seed)
    kinds = [
        (0, n - 1, set()),  # full
        (n - 5, n - 1, set()),  # starts inside the last fold: no in-sample at early cutoffs
        (n - 2, n - 1, set()),  # two periods of history
        (n - 1, n - 1, set()),  # launched in the last period
        (0, n // 2, set()),  # stopped half way (discontinued)
        (n // 3, n - 8, set()),  # starts late and stops before the backtest's end
        (0, n - 1, set(range(n // 2, n // 2 + 6))),  # a gap of six periods with no rows
        (n - 14, n - 1, set()),  # shorter than a season
        (5, n - 1, {n - 3}),  # a hole in the holdout
    ]
    out = list(kinds)
    while len(out) < spec.products:
        first = int(rng.integers(0, n // 2))
        out.append((first, n - 1, set()))
    return out[: spec.products]


def write_ragged_sources(out: Path, spec: RaggedSpec = RaggedSpec()) -> pl.DataFrame:
    """Write products, orders, order_items, customers (and no promotions) to `out`; returns
    the panel (product_id, period, units) that features.demand should hold."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    start = date(2021, 1, 1) if spec.freq != "week" else date(2021, 1, 4)  # a Monday
    season = {"day": 7, "week": 52, "month": 12}[spec.freq]
    products, lines = [], []
    for p, (first, last, gaps) in enumerate(shapes(spec)):
        pid = f"P{p:03d}"
        level = rng.uniform(5, 60)
        products.append(
            {
                "product_id": pid,
                "sku": pid,
                "name": pid,
                "department": "dept_a" if p % 2 else "dept_b",
                "category": f"cat_{p % 4}",
                "base_price": 1.0,
                "launch_date": _period(start, spec.freq, first),
                # a series that stops before the panel's end is discontinued there
                "discontinued_date": (
                    _period(start, spec.freq, last) if last < spec.periods - 1 else None
                ),
            }
        )
        for i in range(first, last + 1):
            if i in gaps:
                continue
            seasonal = 1 + 0.3 * np.sin(2 * np.pi * i / season)
            units = int(rng.poisson(level * seasonal * (1 + 0.01 * i)))
            if units > 0:
                lines.append((pid, _period(start, spec.freq, i), units))
    frame = pl.DataFrame(lines, schema=["product_id", "period", "units"], orient="row")
    ids = np.arange(frame.height, dtype=np.int64)
    pl.DataFrame(products).write_parquet(out / "products.parquet")
    pl.DataFrame(
        {
            "order_id": ids,
            "customer_id": pl.Series([None] * frame.height, dtype=pl.String),
            "order_ts": frame["period"].cast(pl.Datetime("us")),
            "channel": "web",
            "status": "completed",
        }
    ).write_parquet(out / "orders.parquet")
    pl.DataFrame(
        {
            "order_id": ids,
            "product_id": frame["product_id"],
            "quantity": frame["units"].cast(pl.Int32),
            "unit_price": 1.0,
            "discount": 0.0,
        }
    ).write_parquet(out / "order_items.parquet")
    pl.DataFrame(
        schema={
            "customer_id": pl.String,
            "signup_date": pl.Date,
            "country": pl.String,
            "channel": pl.String,
            "segment": pl.String,
        }
    ).write_parquet(out / "customers.parquet")
    return frame
