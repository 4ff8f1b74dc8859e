"""Seeded synthetic e-commerce sources that follow the source contract (DESIGN.md §4).

Demand per product-day is Poisson around a known rate: a product level, weekly seasonality,
a slow trend, promotion uplift, and occasional level shifts and stock-out days, so the
series are spiky like real retail demand, not only smooth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

DEPARTMENTS = {
    "home": ["kitchen", "bath", "decor"],
    "fashion": ["shoes", "tops", "accessories"],
    "outdoor": ["garden", "camping"],
}
COUNTRIES = ["US", "GB", "DE", "FR", "NL"]
CHANNELS = ["web", "app", "marketplace"]
SEGMENTS = ["consumer", "business"]


@dataclass(frozen=True)
class DemoSpec:
    products: int = 60
    customers: int = 400
    days: int = 120
    start: date = date(2024, 1, 1)
    seed: int = 7

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)


def _products(spec: DemoSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = spec.products
    departments = rng.choice(list(DEPARTMENTS), n)
    categories = [rng.choice(DEPARTMENTS[d]) for d in departments]
    launch = rng.integers(-60, spec.days // 3, n)
    discontinued = [
        spec.start + timedelta(days=int(d)) if rng.random() < 0.1 else None
        for d in rng.integers(spec.days // 2, spec.days, n)
    ]
    return pl.DataFrame(
        {
            "product_id": np.arange(1, n + 1),
            "sku": [f"SKU-{i:05d}" for i in range(1, n + 1)],
            "name": [f"{c.title()} item {i}" for i, c in enumerate(categories, start=1)],
            "department": departments,
            "category": categories,
            "base_price": np.round(rng.lognormal(3.0, 0.6, n), 2),
            "launch_date": [spec.start + timedelta(days=int(d)) for d in launch],
            "discontinued_date": pl.Series(discontinued, dtype=pl.Date),
        }
    )


def _customers(spec: DemoSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = spec.customers
    return pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "signup_date": [spec.start - timedelta(days=int(d)) for d in rng.integers(0, 700, n)],
            "country": rng.choice(COUNTRIES, n),
            "channel": rng.choice(CHANNELS, n),
            "segment": rng.choice(SEGMENTS, n, p=[0.85, 0.15]),
        }
    )


def _promotions(spec: DemoSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = max(1, spec.products // 4)
    starts = rng.integers(0, spec.days, n)
    lengths = rng.integers(3, 15, n)
    return pl.DataFrame(
        {
            "product_id": rng.integers(1, spec.products + 1, n),
            "start_date": [spec.start + timedelta(days=int(s)) for s in starts],
            "end_date": [
                spec.start + timedelta(days=int(s + k))
                for s, k in zip(starts, lengths, strict=True)
            ],
            "discount_pct": rng.choice([10.0, 20.0, 30.0, 50.0], n),
        }
    )


def demand_rates(
    spec: DemoSpec, products: pl.DataFrame, promotions: pl.DataFrame, rng: np.random.Generator
) -> np.ndarray:
    """Expected units per product (rows) and day (columns): the ground truth."""
    n, days = spec.products, spec.days
    level = rng.gamma(1.2, 1.6, n)[:, None]
    weekday = np.array([1.0, 0.9, 0.9, 1.0, 1.2, 1.5, 1.3])
    dow = np.array([(spec.start + timedelta(days=d)).weekday() for d in range(days)])
    trend = 1 + rng.normal(0, 0.002, n)[:, None] * np.arange(days)[None, :]
    rate = level * weekday[dow][None, :] * np.clip(trend, 0.3, None)
    # level shifts: a quarter of products jump or drop once
    for p in rng.choice(n, n // 4, replace=False):
        rate[p, rng.integers(1, days) :] *= rng.choice([0.4, 2.0])
    for row in promotions.iter_rows(named=True):
        first = (row["start_date"] - spec.start).days
        last = (row["end_date"] - spec.start).days + 1
        rate[row["product_id"] - 1, max(first, 0) : max(last, 0)] *= 1 + row["discount_pct"] / 25
    day_index = np.arange(days)[None, :]
    launch = np.array([(d - spec.start).days for d in products["launch_date"]])[:, None]
    ends = [(d - spec.start).days if d else days for d in products["discontinued_date"]]
    alive = (day_index >= launch) & (day_index <= np.array(ends)[:, None])
    stockout = rng.random((n, days)) < 0.02
    return np.where(alive & ~stockout, rate, 0.0)


def generate(out_dir: Path, spec: DemoSpec | None = None) -> dict[str, int]:
    """Write the demo sources as Parquet files into `out_dir`; returns rows per file."""
    spec = spec or DemoSpec()
    rng = np.random.default_rng(spec.seed)
    products = _products(spec, rng)
    customers = _customers(spec, rng)
    promotions = _promotions(spec, rng)
    rates = demand_rates(spec, products, promotions, rng)

    lines = rng.poisson(rates)  # order lines per product-day
    product_idx, day_idx = np.nonzero(lines)
    repeat = lines[product_idx, day_idx]
    product_idx, day_idx = np.repeat(product_idx, repeat), np.repeat(day_idx, repeat)
    n_lines = len(product_idx)
    # group the day's lines into orders of about two lines each
    per_day = np.bincount(day_idx, minlength=spec.days)
    orders_per_day = np.maximum(1, np.ceil(per_day / 1.8)).astype(int)
    first_order = np.concatenate([[0], np.cumsum(orders_per_day)[:-1]])
    order_of_line = first_order[day_idx] + (rng.random(n_lines) * orders_per_day[day_idx]).astype(
        int
    )
    n_orders = int(orders_per_day.sum())
    order_day = np.repeat(np.arange(spec.days), orders_per_day)
    seconds = rng.integers(0, 86400, n_orders)
    start = np.datetime64(spec.start.isoformat(), "s")
    customer = rng.integers(1, spec.customers + 1, n_orders).astype(float)
    customer[rng.random(n_orders) < 0.1] = np.nan  # guest checkouts
    orders = pl.DataFrame(
        {
            "order_id": np.arange(1, n_orders + 1),
            "customer_id": pl.Series(customer).fill_nan(None).cast(pl.Int64),
            "order_ts": (start + (order_day * 86400 + seconds).astype("timedelta64[s]")).astype(
                "datetime64[us]"
            ),
            "channel": rng.choice(CHANNELS, n_orders, p=[0.5, 0.35, 0.15]),
            "status": rng.choice(
                ["completed", "cancelled", "returned"], n_orders, p=[0.92, 0.05, 0.03]
            ),
        }
    )
    base = products["base_price"].to_numpy()[product_idx]
    promo_discount = np.zeros(n_lines)
    for row in promotions.iter_rows(named=True):
        first = (row["start_date"] - spec.start).days
        last = (row["end_date"] - spec.start).days
        hit = (product_idx == row["product_id"] - 1) & (day_idx >= first) & (day_idx <= last)
        promo_discount[hit] = np.maximum(promo_discount[hit], row["discount_pct"] / 100)
    items = pl.DataFrame(
        {
            "order_id": order_of_line + 1,
            "product_id": product_idx + 1,
            "quantity": (1 + rng.poisson(0.3, n_lines)).astype(np.int32),
            "unit_price": np.round(base * rng.uniform(0.97, 1.03, n_lines), 2),
            "discount": np.round(promo_discount, 2),
        }
    ).sort("order_id")
    inventory = pl.DataFrame(
        {
            "product_id": products["product_id"],
            "on_hand": rng.integers(0, 200, spec.products).astype(np.int32),
            "lead_time_days": rng.choice([3, 7, 14], spec.products).astype(np.int32),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "customers": customers,
        "products": products,
        "orders": orders,
        "order_items": items,
        "promotions": promotions,
        "inventory": inventory,
    }
    for name, frame in tables.items():
        frame.write_parquet(out_dir / f"{name}.parquet")
    return {name: frame.height for name, frame in tables.items()}


MARKER = ".wh-demo.json"


def write_demo_sources(out_dir: Path, spec: DemoSpec) -> dict[str, int]:
    """Generate into `out_dir` unless it already holds this very demo; never overwrite real
    sources (a folder without wh's demo marker that has Parquet files in it)."""
    import json

    from warehouse.errors import SourceError

    marker = out_dir / MARKER
    wanted = {
        "products": spec.products,
        "customers": spec.customers,
        "days": spec.days,
        "start": spec.start.isoformat(),
        "seed": spec.seed,
    }
    if marker.exists():
        recorded = json.loads(marker.read_text())
        if recorded.get("spec") == wanted:
            return dict(recorded["rows"])
    elif out_dir.exists() and any(out_dir.glob("*.parquet")):
        raise SourceError(
            "holds Parquet files that wh demo did not write",
            out_dir,
            hint="point WH_SOURCES (or `sources` in wh.toml) at an empty folder for the demo",
        )
    rows = generate(out_dir, spec)
    marker.write_text(json.dumps({"spec": wanted, "rows": rows}, indent=2))
    return rows
