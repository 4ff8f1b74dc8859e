"""Feature tables against independent computations on small generated data."""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from conftest import load_demand_features_module, rounded, rows

from warehouse.config import Settings, load_settings
from warehouse.runtime.build import build

FREQ_TRUNCATE = {"day": "1d", "week": "1w", "month": "1mo"}
STATUSES = ["completed", "cancelled", "returned"]


def demand_oracle(sources: Path, freq: str) -> set[tuple[str, date, int]]:
    """Units per product and period from the raw files, cleaned independently in Polars."""
    orders = pl.read_parquet(sources / "orders.parquet")
    valid = orders.filter(pl.col("status").is_in(STATUSES) & pl.col("order_ts").is_not_null())
    items = (
        pl.read_parquet(sources / "order_items.parquet")
        .unique(maintain_order=True)  # exact duplicate lines count once
        .filter(
            (pl.col("quantity") > 0)
            & (pl.col("unit_price") >= 0)
            & pl.col("order_id").is_in(valid["order_id"].implode())
        )
    )
    sold = items.join(valid.filter(pl.col("status") != "cancelled"), on="order_id").with_columns(
        period=pl.col("order_ts").dt.date().dt.truncate(FREQ_TRUNCATE[freq])
    )
    totals = sold.group_by("product_id", "period").agg(pl.col("quantity").sum())
    return {(str(p), d, int(u)) for p, d, u in totals.iter_rows()}


@pytest.mark.parametrize("freq", ["day", "week", "month"])
def test_units_equal_clean_non_cancelled_lines(project: Settings, freq: str) -> None:
    settings = project.with_overrides(freq=freq)
    build(settings)
    built = rows(settings, "SELECT product_id, period, units FROM features.demand WHERE units > 0")
    assert {(p, d, u) for p, d, u in built} == demand_oracle(project.sources, freq)
    # zero-filled: one row per product and period, contiguous from first to last period
    gaps = rows(
        settings,
        f"SELECT count(*) FROM (SELECT product_id, period, lag(period) OVER (PARTITION BY "
        f"product_id ORDER BY period) AS previous FROM features.demand) WHERE previous IS NOT "
        f"NULL AND period <> previous + INTERVAL 1 {freq}",
    )
    assert gaps == [(0,)]


@pytest.mark.parametrize("freq", ["day", "week", "month"])
def test_every_lag_is_the_value_k_periods_earlier(project: Settings, freq: str) -> None:
    features = load_demand_features_module()
    settings = project.with_overrides(freq=freq)
    build(settings)
    for k in features.LAGS[freq]:
        wrong = rows(
            settings,
            f"SELECT count(*) FROM features.demand_features f LEFT JOIN features.demand d "
            f"ON d.product_id = f.product_id AND d.period = f.period - INTERVAL {k} {freq} "
            f"WHERE f.units_lag_{k} IS DISTINCT FROM d.units",
        )
        assert wrong == [(0,)], f"units_lag_{k}"
    n = features.WINDOWS[freq][0]
    wrong = rows(
        settings,
        f"SELECT count(*) FROM (SELECT f.product_id, f.period, any_value(f.units_mean_{n}) AS "
        f"feature, avg(d.units) AS oracle FROM features.demand_features f JOIN "
        f"features.demand d ON d.product_id = f.product_id AND d.period BETWEEN f.period - "
        f"INTERVAL {n} {freq} AND f.period - INTERVAL 1 {freq} GROUP BY ALL) "
        f"WHERE abs(feature - oracle) > 1e-9",
    )
    assert wrong == [(0,)]


def _change_from(sources: Path, cutoff: date) -> None:
    """Rewrite every order line on or after the cutoff: other quantities, half of them gone."""
    orders = pl.read_parquet(sources / "orders.parquet")
    late = orders.filter(pl.col("order_ts").dt.date() >= cutoff)["order_id"].implode()
    items = pl.read_parquet(sources / "order_items.parquet").with_row_index()
    is_late = pl.col("order_id").is_in(late)
    changed = items.filter(~is_late | (pl.col("index") % 2 == 0)).with_columns(
        quantity=pl.when(is_late).then(pl.col("quantity") * 3 + 1).otherwise("quantity")
    )
    changed.drop("index").write_parquet(sources / "order_items.parquet")


def test_features_at_t_do_not_see_data_at_or_after_t(project: Settings, tmp_path: Path) -> None:
    build(project)
    first, last = rows(project, "SELECT min(order_date), max(order_date) FROM staging.orders")[0]
    cutoff = first + (last - first) * 2 // 3
    columns = [
        c
        for (c,) in rows(
            project,
            "SELECT column_name FROM information_schema.columns WHERE "
            "table_schema = 'features' AND table_name = 'demand_features'",
        )
        if c != "units"  # the target itself
    ]
    query = (
        f"SELECT {', '.join(columns)} FROM features.demand_features WHERE period <= "
        f"DATE '{cutoff}' ORDER BY product_id, period"
    )
    before = rounded(rows(project, query))
    assert rows(
        project,
        f"SELECT sum(units_lag_1) > 0 FROM features.demand_features WHERE period = DATE '{cutoff}'",
    ) == [(True,)]

    changed = project.with_overrides(sources=tmp_path / "changed", warehouse=tmp_path / "wh2")
    shutil.copytree(project.sources, changed.sources)
    _change_from(changed.sources, cutoff)
    build(changed)
    assert rows(
        changed, f"SELECT sum(units) FROM features.demand WHERE period >= DATE '{cutoff}'"
    ) != rows(project, f"SELECT sum(units) FROM features.demand WHERE period >= DATE '{cutoff}'")
    assert rounded(rows(changed, query)) == before


def test_rejects_reconcile_with_raw_rows(project: Settings) -> None:
    build(project)
    for source, staged in (
        ("order_items", "staging.order_items"),
        ("orders", "staging.orders"),
        ("customers", "staging.customers"),
        ("products", "staging.products"),
        ("promotions", "staging.promotions"),
    ):
        raw = pl.read_parquet(project.sources / f"{source}.parquet").height
        kept = rows(project, f"SELECT count(*) FROM {staged}")[0][0]
        rejected = rows(project, f"SELECT count(*) FROM staging.rejects WHERE source = '{source}'")[
            0
        ][0]
        assert raw == kept + rejected, source
    reasons = {r for (r,) in rows(project, "SELECT DISTINCT reason FROM staging.rejects")}
    assert {
        "duplicate_line",
        "null_quantity",
        "non_positive_quantity",
        "negative_price",
        "missing_order",
        "unknown_status",
        "duplicate_customer_id",
    } <= reasons
    sample = rows(
        project, "SELECT row FROM staging.rejects WHERE reason = 'null_quantity' LIMIT 1"
    )[0][0]
    assert '"quantity":null' in sample


def test_unknown_products_and_customers_are_kept_and_flagged(project: Settings) -> None:
    items = pl.read_parquet(project.sources / "order_items.parquet")
    items.with_columns(
        product_id=pl.when(pl.col("order_id") == 1).then(999_999).otherwise("product_id")
    ).write_parquet(project.sources / "order_items.parquet")
    orders = pl.read_parquet(project.sources / "orders.parquet")
    orders.with_columns(
        customer_id=pl.when(pl.col("order_id") == 2).then(888_888).otherwise("customer_id")
    ).write_parquet(project.sources / "orders.parquet")
    build(project)
    assert rows(
        project,
        "SELECT bool_and(unknown_product) FROM staging.order_items WHERE product_id = '999999'",
    ) == [(True,)]
    assert rows(project, "SELECT unknown_customer FROM staging.orders WHERE order_id = '2'") == [
        (True,)
    ]
    assert rows(
        project, "SELECT count(*) > 0 FROM features.demand WHERE product_id = '999999'"
    ) == [(True,)]


def _fixture_sources(root: Path) -> None:
    """Three customers, two products, five orders: figures checked by hand below."""
    root.mkdir(parents=True)
    pl.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "signup_date": [date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)],
            "country": ["US", "GB", "DE"],
            "channel": ["web"] * 3,
            "segment": ["consumer"] * 3,
        }
    ).write_parquet(root / "customers.parquet")
    pl.DataFrame(
        {
            "product_id": [1, 2],
            "sku": ["A", "B"],
            "name": ["Shoe", "Top"],
            "department": ["fashion"] * 2,
            "category": ["shoes", "tops"],
            "base_price": [10.0, 20.0],
            "launch_date": [date(2024, 1, 1)] * 2,
            "discontinued_date": pl.Series([None, None], dtype=pl.Date),
        }
    ).write_parquet(root / "products.parquet")
    pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5],
            "customer_id": [1, 1, 1, 2, None],
            "order_ts": [datetime(2024, 3, d, 12) for d in (1, 11, 21, 31, 15)],
            "channel": ["web"] * 5,
            "status": ["completed", "returned", "cancelled", "completed", "completed"],
        }
    ).write_parquet(root / "orders.parquet")
    pl.DataFrame(
        {
            "order_id": [1, 2, 3, 4, 5],
            "product_id": [1, 2, 2, 2, 1],
            "quantity": pl.Series([2, 1, 5, 1, 1], dtype=pl.Int32),
            "unit_price": [10.0, 20.0, 20.0, 20.0, 10.0],
            "discount": [0.0, 0.5, 0.0, 0.0, 0.0],
        }
    ).write_parquet(root / "order_items.parquet")


def test_customer_profile_matches_hand_checked_fixture(project: Settings, tmp_path: Path) -> None:
    settings = project.with_overrides(sources=tmp_path / "fixture", warehouse=tmp_path / "wh")
    _fixture_sources(settings.sources)
    build(settings)
    columns = (
        "customer_id, as_of_date, first_order_date, last_order_date, orders, units, "
        "revenue, avg_order_value, recency_days, tenure_days, mean_days_between_orders, "
        "favourite_category, cancel_rate, return_rate, recency_score, frequency_score, "
        "monetary_score, segment"
    )
    got = rows(settings, f"SELECT {columns} FROM features.customer_profile ORDER BY 1")
    day = date(2024, 3, 31)
    assert got == [
        (
            "1",
            day,
            date(2024, 3, 1),
            date(2024, 3, 11),
            2,
            3,
            30.0,
            15.0,
            20,
            90,
            10.0,
            "shoes",
            1 / 3,
            0.5,
            1,
            2,
            2,
            "hibernating",
        ),
        (
            "2",
            day,
            day,
            day,
            1,
            1,
            20.0,
            20.0,
            0,
            59,
            None,
            "tops",
            0.0,
            0.0,
            2,
            1,
            1,
            "hibernating",
        ),
        (
            "3",
            day,
            None,
            None,
            0,
            0,
            0.0,
            None,
            None,
            30,
            None,
            None,
            0.0,
            0.0,
            None,
            None,
            None,
            "no_orders",
        ),
    ]
    as_of = settings.with_overrides(as_of_date=date(2024, 3, 15), warehouse=tmp_path / "wh2")
    build(as_of)
    assert rows(
        as_of, "SELECT customer_id, orders, recency_days FROM features.customer_profile ORDER BY 1"
    ) == [("1", 2, 4), ("2", 0, None), ("3", 0, None)]


def test_weekly_and_monthly_settings_from_wh_toml(project: Settings) -> None:
    toml = project.project_dir / "wh.toml"
    toml.write_text(toml.read_text().replace("[project]\n", '[project]\nfreq = "week"\n'))
    weekly = load_settings(project.project_dir)
    assert weekly.freq == "week"
    build(weekly)
    periods = rows(weekly, "SELECT DISTINCT isodow(period) FROM features.demand")
    assert periods == [(1,)]  # weeks start on Monday
    assert rows(
        weekly,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = "
        "'demand_features' AND column_name = 'units_lag_52'",
    ) == [(1,)]
    first = rows(weekly, "SELECT min(period) FROM features.demand")[0][0]
    assert first.weekday() == 0 and first - timedelta(days=7) < first


def test_recommendations_are_cosine_co_purchase_with_min_support(project: Settings) -> None:
    build(project)
    baskets = rows(
        project,
        "SELECT DISTINCT i.order_id, i.product_id FROM staging.order_items i "
        "JOIN staging.orders o USING (order_id) WHERE o.status <> 'cancelled'",
    )
    frame = pl.DataFrame(baskets, schema=["order_id", "product_id"], orient="row")
    orders = dict(frame.group_by("product_id").len().iter_rows())
    pairs = (
        frame.join(frame, on="order_id")
        .filter(pl.col("product_id") != pl.col("product_id_right"))
        .group_by("product_id", "product_id_right")
        .len()
    )
    expected = {
        (a, b): (n, n / (orders[a] * orders[b]) ** 0.5) for a, b, n in pairs.iter_rows() if n >= 2
    }
    got = rows(
        project,
        "SELECT product_id, recommended_product_id, rank, score, support "
        "FROM marts.product_recommendations ORDER BY product_id, rank",
    )
    assert got, "the tiny demo has co-purchases"
    for product, other, rank, score, support in got:
        assert expected[(product, other)] == (support, pytest.approx(score))
        assert rank <= 5
    for product in {g[0] for g in got}:
        scores = [g[3] for g in got if g[0] == product]
        assert scores == sorted(scores, reverse=True)
        assert len(scores) == min(5, sum(1 for a, _ in expected if a == product))
