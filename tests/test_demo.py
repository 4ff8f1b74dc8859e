"""The demo generator: contract-shaped sources, a ground truth, dirty rows, chunked writes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from warehouse.errors import SourceError
from warehouse.interfaces.demo import DemoSpec, generate, write_demo_sources
from warehouse.runtime.sources import CONTRACTS, find_source


def test_sources_follow_the_contract_and_truth_is_not_a_source(tmp_path: Path) -> None:
    counts = generate(tmp_path / "sources", DemoSpec(products=10, customers=30, days=20))
    for name in CONTRACTS:
        assert find_source(tmp_path / "sources", name).files  # contract checked inside
    assert counts["orders"] > 0 and counts["order_items"] > counts["orders"]
    assert (tmp_path / "truth.parquet").exists()
    assert not list((tmp_path / "sources").glob("truth*"))


def test_realised_demand_matches_the_truth(tmp_path: Path) -> None:
    spec = DemoSpec(products=40, customers=200, days=200, seed=11, dirty=False)
    generate(tmp_path / "sources", spec)
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    assert truth.height == spec.products * spec.days
    orders = pl.read_parquet(tmp_path / "sources" / "orders.parquet")
    items = pl.read_parquet(tmp_path / "sources" / "order_items.parquet")
    sold = items.join(orders.filter(pl.col("status") != "cancelled"), on="order_id")
    realised, expected = sold["quantity"].sum(), truth["expected_units"].sum()
    assert abs(realised - expected) / expected < 0.03
    # per product too, for the products that sell
    per_product = (
        sold.group_by("product_id")
        .agg(pl.col("quantity").sum())
        .join(truth.group_by("product_id").agg(pl.col("expected_units").sum()), on="product_id")
        .filter(pl.col("expected_units") > 500)
    )
    ratio = per_product["quantity"] / per_product["expected_units"]
    assert ratio.min() > 0.85 and ratio.max() < 1.15


def test_series_are_spiky_intermittent_and_promoted(tmp_path: Path) -> None:
    generate(tmp_path / "sources", DemoSpec(products=60, customers=100, days=120, seed=5))
    truth = pl.read_parquet(tmp_path / "truth.parquet")
    per_product = truth.group_by("product_id").agg(pl.col("expected_units").mean())
    assert (per_product["expected_units"] < 0.3).sum() >= 5  # an intermittent long tail
    items = pl.read_parquet(tmp_path / "sources" / "order_items.parquet")
    assert (items["discount"] > 0).sum() > 0  # promotions discount lines


def test_chunked_generation_appends_row_groups_consistently(tmp_path: Path) -> None:
    spec = DemoSpec(products=20, customers=50, days=60, seed=2, dirty=False)
    generate(tmp_path / "sources", spec, chunk_cells=20 * 7)
    orders_file = tmp_path / "sources" / "orders.parquet"
    assert pq.ParquetFile(orders_file).num_row_groups >= 8
    orders = pl.read_parquet(orders_file)
    items = pl.read_parquet(tmp_path / "sources" / "order_items.parquet")
    assert orders["order_id"].is_unique().all()
    assert items["order_id"].is_in(orders["order_id"].implode()).all()
    assert pl.read_parquet(tmp_path / "truth.parquet").height == 20 * 60


def test_write_demo_sources_reuses_its_own_and_never_overwrites_real_data(
    tmp_path: Path,
) -> None:
    spec = DemoSpec(products=5, customers=10, days=10)
    first = write_demo_sources(tmp_path / "demo", spec)
    stamp = (tmp_path / "demo" / "orders.parquet").stat().st_mtime_ns
    assert write_demo_sources(tmp_path / "demo", spec) == first
    assert (tmp_path / "demo" / "orders.parquet").stat().st_mtime_ns == stamp
    real = tmp_path / "real"
    real.mkdir()
    pl.DataFrame({"order_id": [1]}).write_parquet(real / "orders.parquet")
    with pytest.raises(SourceError, match="wh demo did not write"):
        write_demo_sources(real, spec)


def test_a_long_demo_ends_before_today() -> None:
    """Staging rejects orders dated after the build day, so `wh demo --days N` never
    generates them; the usual two years keep their fixed dates."""
    from datetime import date

    assert DemoSpec.ending_in_the_past(3000).end < date.today()
    assert DemoSpec.ending_in_the_past(730) == DemoSpec()
