"""Seeded synthetic e-commerce sources that follow the source contract (DESIGN.md §4).

The ground truth is the expected daily demand (units of non-cancelled orders) per product:
a product level, weekly and yearly seasonality, a trend, price changes with a per-product
elasticity, promotion uplift, level shifts, stock-out days, launches and discontinuations,
and an intermittent long tail. Realised order lines are drawn around it. Customers differ
(a few loyal heavy buyers, many occasional ones, some churn); some orders are guest orders,
cancelled or returned. A small share of dirty rows (duplicate lines, null and negative
quantities, negative prices, lines whose order is missing, unknown statuses, duplicate
customers) is *added*, so staging must catch them and the truth still holds for clean rows.

Generation runs in chunks of days and appends row groups to each file, so tens of millions
of order lines fit in little memory. `truth.parquet` (and `truth_products.parquet`, each
product's price elasticity) is written beside the sources folder, never inside it: it is not
a source.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

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
STATUSES = ["completed", "cancelled", "returned"]
STATUS_P = [0.92, 0.05, 0.03]
LINES_PER_ORDER = 1.8
MEAN_QUANTITY = 1.3  # 1 + Poisson(0.3)
MARKER = ".wh-demo.json"


@dataclass(frozen=True)
class DemoSpec:
    products: int = 100
    customers: int = 1000
    days: int = 730
    start: date = date(2023, 1, 2)
    seed: int = 7
    dirty: bool = True

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    @classmethod
    def ending_in_the_past(cls, days: int, **kwargs: Any) -> DemoSpec:
        """The default start, moved back when `days` would run past yesterday: staging
        rejects orders dated after the day of the build (future_order_ts)."""
        latest = date.today() - timedelta(days=days)
        return cls(days=days, start=min(cls.start, latest), **kwargs)


@dataclass(frozen=True)
class Catalogue:
    """Per-product parameters of the demand process."""

    products: pl.DataFrame
    level: np.ndarray
    trend: np.ndarray
    elasticity: np.ndarray
    yearly_amplitude: np.ndarray
    yearly_phase: np.ndarray
    launch: np.ndarray  # day index
    end: np.ndarray  # last day index (inclusive)
    shift_day: np.ndarray
    shift_factor: np.ndarray
    price_day: np.ndarray
    price_factor: np.ndarray


def _catalogue(spec: DemoSpec, rng: np.random.Generator) -> Catalogue:
    n = spec.products
    departments = rng.choice(list(DEPARTMENTS), n)
    categories = np.array([rng.choice(DEPARTMENTS[d]) for d in departments])
    launch = rng.integers(-120, max(2, spec.days // 3), n)
    launch[: max(1, n // 2)] = -365  # half the range is older than the history
    discontinued = rng.random(n) < 0.08
    end = np.where(discontinued, rng.integers(spec.days // 2, spec.days, n), spec.days + 10_000)
    # long tail: a third of the products sell a few units a month
    level = np.where(rng.random(n) < 0.33, rng.uniform(0.03, 0.3, n), rng.gamma(1.5, 2.0, n))
    base_price = np.round(rng.lognormal(3.0, 0.6, n), 2)
    products = pl.DataFrame(
        {
            "product_id": np.arange(1, n + 1),
            "sku": [f"SKU-{i:06d}" for i in range(1, n + 1)],
            "name": [f"{c.title()} item {i}" for i, c in enumerate(categories, start=1)],
            "department": departments,
            "category": categories,
            "base_price": base_price,
            "launch_date": [spec.start + timedelta(days=int(d)) for d in launch],
            "discontinued_date": pl.Series(
                [
                    spec.start + timedelta(days=int(e)) if d else None
                    for e, d in zip(end, discontinued, strict=True)
                ],
                dtype=pl.Date,
            ),
        }
    )
    category_amplitude = {c: rng.uniform(0.0, 0.45) for c in sorted(set(categories))}
    return Catalogue(
        products=products,
        level=level,
        trend=rng.normal(0, 0.0006, n),
        elasticity=rng.uniform(-2.5, -0.5, n),
        yearly_amplitude=np.array([category_amplitude[c] for c in categories]),
        yearly_phase=rng.uniform(0, 365, n),
        launch=launch,
        end=end,
        shift_day=np.where(rng.random(n) < 0.25, rng.integers(1, spec.days, n), spec.days + 1),
        shift_factor=rng.choice([0.5, 1.8], n),
        price_day=np.where(rng.random(n) < 0.4, rng.integers(1, spec.days, n), spec.days + 1),
        price_factor=rng.choice([0.85, 0.9, 1.1, 1.2], n),
    )


def _promotions(spec: DemoSpec, rng: np.random.Generator) -> pl.DataFrame:
    n = max(1, spec.products * spec.days // 120)
    starts = rng.integers(0, spec.days + 14, n)  # some are planned beyond the history
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


def _promo_depth(spec: DemoSpec, promotions: pl.DataFrame, first: int, days: int) -> np.ndarray:
    """Deepest promotion discount (fraction) per product and day of the chunk."""
    depth = np.zeros((spec.products, days))
    for row in promotions.iter_rows(named=True):
        lo = max((row["start_date"] - spec.start).days - first, 0)
        hi = min((row["end_date"] - spec.start).days - first + 1, days)
        if lo < hi:
            p = row["product_id"] - 1
            depth[p, lo:hi] = np.maximum(depth[p, lo:hi], row["discount_pct"] / 100)
    return depth


def _rates(
    spec: DemoSpec, cat: Catalogue, depth: np.ndarray, first: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(expected units, list price) per product and day of the chunk; the units are the
    ground truth. Promotions discount the list price by `depth`."""
    days = depth.shape[1]
    index = np.arange(first, first + days)[None, :]
    weekday = np.array([0.9, 0.85, 0.9, 1.0, 1.15, 1.4, 1.25])
    dow = np.array([(spec.start + timedelta(days=int(d))).weekday() for d in index[0]])
    doy = np.array([(spec.start + timedelta(days=int(d))).timetuple().tm_yday for d in index[0]])
    yearly = 1 + cat.yearly_amplitude[:, None] * np.sin(
        2 * np.pi * (doy[None, :] - cat.yearly_phase[:, None]) / 365.25
    )
    trend = np.clip(1 + cat.trend[:, None] * index, 0.2, None)
    shift = np.where(index >= cat.shift_day[:, None], cat.shift_factor[:, None], 1.0)
    list_price = np.where(index >= cat.price_day[:, None], cat.price_factor[:, None], 1.0)
    price_ratio = list_price * (1 - depth)
    elastic = price_ratio ** cat.elasticity[:, None]
    alive = (index >= cat.launch[:, None]) & (index <= cat.end[:, None])
    stockout = rng.random((spec.products, days)) < 0.015
    rate = cat.level[:, None] * weekday[dow][None, :] * yearly * trend * shift * elastic
    base = cat.products["base_price"].to_numpy()[:, None]
    return np.where(alive & ~stockout, rate, 0.0), base * list_price


@dataclass
class _Writers:
    """One Parquet file per table, appended chunk by chunk."""

    out_dir: Path
    writers: dict[str, Any]
    rows: dict[str, int]

    def write(self, name: str, frame: pl.DataFrame, path: Path | None = None) -> None:
        import pyarrow.parquet as pq

        table = frame.to_arrow()
        if name not in self.writers:
            target = path or self.out_dir / f"{name}.parquet"
            self.writers[name] = pq.ParquetWriter(target, table.schema, compression="zstd")
        self.writers[name].write_table(table)
        self.rows[name] = self.rows.get(name, 0) + frame.height

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _customers(
    spec: DemoSpec, rng: np.random.Generator
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    n = spec.customers
    frame = pl.DataFrame(
        {
            "customer_id": np.arange(1, n + 1),
            "signup_date": [
                spec.start - timedelta(days=int(d)) for d in rng.integers(-spec.days // 2, 700, n)
            ],
            "country": rng.choice(COUNTRIES, n),
            "channel": rng.choice(CHANNELS, n),
            "segment": rng.choice(SEGMENTS, n, p=[0.85, 0.15]),
        }
    )
    weight = rng.gamma(0.6, 1.0, n)  # a few loyal heavy buyers, many occasional ones
    churn_day = np.where(rng.random(n) < 0.3, rng.integers(0, spec.days, n), spec.days + 1)
    return frame, weight, churn_day


def _chunk_orders(
    spec: DemoSpec,
    first: int,
    units_rate: np.ndarray,
    price: np.ndarray,
    depth: np.ndarray,
    weight: np.ndarray,
    churn: np.ndarray,
    signup_day: np.ndarray,
    next_order_id: int,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    line_rate = units_rate / MEAN_QUANTITY / (1 - STATUS_P[1])
    lines = rng.poisson(line_rate)
    product_idx, day_idx = np.nonzero(lines)
    repeat = lines[product_idx, day_idx]
    product_idx, day_idx = np.repeat(product_idx, repeat), np.repeat(day_idx, repeat)
    days = units_rate.shape[1]
    per_day = np.bincount(day_idx, minlength=days)
    orders_per_day = np.where(
        per_day > 0, np.maximum(1, np.ceil(per_day / LINES_PER_ORDER)), 0
    ).astype(int)
    first_order = np.concatenate([[0], np.cumsum(orders_per_day)[:-1]])
    order_of_line = first_order[day_idx] + (
        rng.random(len(day_idx)) * orders_per_day[day_idx]
    ).astype(int)
    n_orders = int(orders_per_day.sum())
    order_day = np.repeat(np.arange(days), orders_per_day) + first
    active = weight * (churn > first) * (signup_day <= first + days)
    if active.sum() > 0:
        customer = rng.choice(len(weight), n_orders, p=active / active.sum()).astype(float) + 1
    else:
        customer = np.full(n_orders, np.nan)
    customer[rng.random(n_orders) < 0.1] = np.nan  # guest checkouts
    start = np.datetime64(spec.start.isoformat(), "s")
    seconds = order_day * 86400 + rng.integers(0, 86400, n_orders)
    orders = pl.DataFrame(
        {
            "order_id": np.arange(next_order_id, next_order_id + n_orders),
            "customer_id": pl.Series(customer).fill_nan(None).cast(pl.Int64),
            "order_ts": (start + seconds.astype("timedelta64[s]")).astype("datetime64[us]"),
            "channel": rng.choice(CHANNELS, n_orders, p=[0.5, 0.35, 0.15]),
            "status": rng.choice(STATUSES, n_orders, p=STATUS_P),
        }
    )
    list_price = price[product_idx, day_idx]
    items = pl.DataFrame(
        {
            "order_id": order_of_line + next_order_id,
            "product_id": product_idx + 1,
            "quantity": (1 + rng.poisson(MEAN_QUANTITY - 1, len(day_idx))).astype(np.int32),
            "unit_price": np.round(list_price * rng.uniform(0.99, 1.01, len(day_idx)), 2),
            "discount": np.round(depth[product_idx, day_idx], 2),
        }
    ).sort("order_id")
    return orders, items


def _dirty_items(items: pl.DataFrame, orders_max: int, rng: np.random.Generator) -> pl.DataFrame:
    """Extra rows staging must reject: duplicates, bad quantities/prices, missing orders."""
    n = items.height
    if n == 0:
        return items

    def pick(share: float) -> pl.DataFrame:
        return items.sample(max(1, int(n * share)), seed=int(rng.integers(1 << 31)))

    duplicates = pick(0.004)
    null_qty = pick(0.001).with_columns(quantity=pl.lit(None, dtype=pl.Int32))
    negative = pick(0.001).with_columns(quantity=-pl.col("quantity"))
    bad_price = pick(0.0005).with_columns(unit_price=-pl.col("unit_price"))
    orphan = pick(0.0005).with_columns(order_id=pl.col("order_id") + orders_max + 10_000_000)
    return pl.concat([duplicates, null_qty, negative, bad_price, orphan])


def generate(
    out_dir: Path, spec: DemoSpec | None = None, chunk_cells: int = 2_000_000
) -> dict[str, int]:
    """Write the demo sources into `out_dir` (and truth.parquet beside it); rows per file.

    Days are generated in chunks of about `chunk_cells` product-days, each appended to the
    files as row groups, so memory stays flat however long the history.
    """
    spec = spec or DemoSpec()
    rng = np.random.default_rng(spec.seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    cat = _catalogue(spec, rng)
    promotions = _promotions(spec, rng)
    # each product's true price elasticity, beside truth.parquet (what price scenarios and
    # forecast.price_elasticity are checked against); not a source
    pl.DataFrame(
        {
            "product_id": np.arange(1, spec.products + 1),
            "elasticity": cat.elasticity,
            "category": cat.products["category"],
        }
    ).write_parquet(out_dir.parent / "truth_products.parquet")
    customers, weight, churn = _customers(spec, rng)
    signup_day = np.array([(d - spec.start).days for d in customers["signup_date"]])
    writers = _Writers(out_dir, {}, {})
    chunk_days = max(1, min(spec.days, chunk_cells // max(spec.products, 1)))
    next_order = 1
    try:
        for first in range(0, spec.days, chunk_days):
            days = min(chunk_days, spec.days - first)
            depth = _promo_depth(spec, promotions, first, days)
            units_rate, price = _rates(spec, cat, depth, first, rng)
            orders, items = _chunk_orders(
                spec, first, units_rate, price, depth, weight, churn, signup_day, next_order, rng
            )
            next_order += orders.height
            if spec.dirty:
                bad_status = orders.sample(max(1, orders.height // 1000), seed=spec.seed)
                orders = pl.concat(
                    [
                        orders,
                        bad_status.with_columns(
                            order_id=pl.col("order_id") + 5_000_000_000, status=pl.lit("pending")
                        ),
                    ]
                )
                items = pl.concat([items, _dirty_items(items, next_order, rng)])
            writers.write("orders", orders)
            writers.write("order_items", items)
            truth_days = [spec.start + timedelta(days=first + d) for d in range(days)]
            truth = pl.DataFrame(
                {
                    "product_id": np.repeat(np.arange(1, spec.products + 1), days),
                    "date": truth_days * spec.products,
                    "expected_units": units_rate.reshape(-1),
                }
            )
            writers.write("truth", truth, out_dir.parent / "truth.parquet")
    finally:
        writers.close()
    if spec.dirty and customers.height:
        customers = pl.concat([customers, customers.head(2)])  # duplicate customer rows
    inventory = pl.DataFrame(
        {
            "product_id": cat.products["product_id"],
            "on_hand": rng.integers(0, 200, spec.products).astype(np.int32),
            "lead_time_days": rng.choice([3, 7, 14], spec.products).astype(np.int32),
        }
    )
    small = {
        "customers": customers,
        "products": cat.products,
        "promotions": promotions,
        "inventory": inventory,
    }
    for name, frame in small.items():
        frame.write_parquet(out_dir / f"{name}.parquet", compression="zstd")
    rows = {name: frame.height for name, frame in small.items()}
    rows.update({k: v for k, v in writers.rows.items() if k != "truth"})
    return rows


def write_demo_sources(out_dir: Path, spec: DemoSpec) -> dict[str, int]:
    """Generate into `out_dir` unless it already holds this very demo; never overwrite real
    sources (a folder without wh's demo marker that has Parquet files in it)."""
    from warehouse.errors import SourceError

    marker = out_dir / MARKER
    wanted = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in asdict(spec).items()}
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
