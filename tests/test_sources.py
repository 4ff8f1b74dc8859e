"""The source contract: every bad input is an error naming file and column, before any model
runs; good variants (string ids, parts, globs, absent optional files) build."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from conftest import rows

from warehouse.config import Settings
from warehouse.errors import SourceError
from warehouse.runtime.build import build
from warehouse.runtime.sources import find_source, summarize


def rewrite(settings: Settings, name: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Path:
    path = settings.sources / f"{name}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)
    return path


def assert_nothing_ran(settings: Settings) -> None:
    assert not (settings.warehouse / "versions").exists()


@pytest.mark.parametrize(
    ("name", "change", "column", "message"),
    [
        ("orders", lambda f: f.drop("status"), "status", "required column is missing"),
        (
            "order_items",
            lambda f: f.with_columns(pl.col("quantity").cast(pl.String)),
            "quantity",
            "expected an integer (INT), found VARCHAR",
        ),
        (
            "order_items",
            lambda f: f.with_columns(pl.col("quantity").cast(pl.Float64)),
            "quantity",
            "expected an integer (INT), found DOUBLE",
        ),
        (
            "products",
            lambda f: f.with_columns(launch_date=pl.lit(20240101)),
            "launch_date",
            "expected DATE (or TIMESTAMP), found INTEGER",
        ),
        (
            "orders",
            lambda f: f.with_columns(pl.col("order_ts").cast(pl.String)),
            "order_ts",
            "expected TIMESTAMP (or DATE), found VARCHAR",
        ),
        (
            "order_items",
            lambda f: f.with_columns(unit_price=pl.lit("9.99")),
            "unit_price",
            "expected a number (DOUBLE), found VARCHAR",
        ),
        (
            "products",
            lambda f: f.with_columns(pl.col("product_id").cast(pl.Float64)),
            "product_id",
            "expected an integer or string id, found DOUBLE",
        ),
    ],
)
def test_contract_violations_name_file_and_column(
    project: Settings,
    name: str,
    change: Callable[[pl.DataFrame], pl.DataFrame],
    column: str,
    message: str,
) -> None:
    path = rewrite(project, name, change)
    with pytest.raises(SourceError) as failure:
        build(project)
    text = str(failure.value)
    assert text.startswith(f"{path}: column '{column}': {message}"), text
    assert failure.value.column == column
    assert_nothing_ran(project)


def test_missing_required_file(project: Settings) -> None:
    (project.sources / "order_items.parquet").unlink()
    with pytest.raises(SourceError, match="source 'order_items' not found") as failure:
        build(project)
    assert "order_items.parquet, a folder order_items/" in str(failure.value)
    assert_nothing_ran(project)


@pytest.mark.parametrize("content", [b"", b"PAR1 this is not parquet", None])
def test_corrupt_or_truncated_parquet(project: Settings, content: bytes | None) -> None:
    path = project.sources / "orders.parquet"
    data = path.read_bytes()
    path.write_bytes(content if content is not None else data[: len(data) // 2])
    with pytest.raises(SourceError, match="unreadable Parquet file") as failure:
        build(project)
    assert str(failure.value).startswith(str(path))
    assert_nothing_ran(project)


def test_empty_required_table(project: Settings) -> None:
    path = rewrite(project, "products", lambda f: f.head(0))
    with pytest.raises(SourceError, match="source 'products' has no rows") as failure:
        build(project)
    assert str(failure.value).startswith(str(path))


def test_empty_customers_and_absent_optional_sources_build(project: Settings) -> None:
    rewrite(project, "customers", lambda f: f.head(0))
    (project.sources / "promotions.parquet").unlink()
    (project.sources / "inventory.parquet").unlink()
    build(project)
    assert rows(project, "SELECT count(*) FROM features.customer_profile") == [(0,)]
    assert rows(project, "SELECT count(*) FROM features.demand WHERE on_promo") == [(0,)]
    assert rows(project, "SELECT count(*) FROM staging.inventory") == [(0,)]


def test_source_given_twice_is_ambiguous(project: Settings) -> None:
    (project.sources / "orders").mkdir()
    shutil.copy(project.sources / "orders.parquet", project.sources / "orders" / "p.parquet")
    with pytest.raises(SourceError, match="source 'orders' is given twice"):
        build(project)


def test_string_ids_parts_and_globs_give_the_same_demand(project: Settings, tmp_path: Path) -> None:
    build(project)
    expected = rows(
        project, "SELECT product_id, sum(units) FROM features.demand GROUP BY 1 ORDER BY 1"
    )
    other = project.with_overrides(sources=tmp_path / "other", warehouse=tmp_path / "wh2")
    shutil.copytree(project.sources, other.sources)
    for name, id_columns in (
        ("orders", ["order_id", "customer_id"]),
        ("order_items", ["order_id", "product_id"]),
    ):
        frame = pl.read_parquet(other.sources / f"{name}.parquet").with_columns(
            pl.col(id_columns).cast(pl.String)
        )
        (other.sources / f"{name}.parquet").unlink()
        half = frame.height // 2
        if name == "orders":  # a folder of parts
            (other.sources / "orders").mkdir()
            frame.head(half).write_parquet(other.sources / "orders" / "a.parquet")
            frame.tail(frame.height - half).write_parquet(other.sources / "orders" / "b.parquet")
        else:  # name_*.parquet parts
            frame.head(half).write_parquet(other.sources / "order_items_1.parquet")
            frame.tail(frame.height - half).write_parquet(other.sources / "order_items_2.parquet")
    build(other)
    assert (
        rows(other, "SELECT product_id, sum(units) FROM features.demand GROUP BY 1 ORDER BY 1")
        == expected
    )


def test_timezone_aware_timestamps_become_utc_dates(project: Settings) -> None:
    def to_new_york(frame: pl.DataFrame) -> pl.DataFrame:
        zoned = frame.with_columns(
            pl.col("order_ts").dt.replace_time_zone("UTC").dt.convert_time_zone("America/New_York")
        )
        late_evening = pl.datetime(2024, 1, 1, 23, 30, time_zone="America/New_York")
        return zoned.with_columns(
            order_ts=pl.when(pl.col("order_id") == 1).then(late_evening).otherwise("order_ts")
        )

    rewrite(project, "orders", to_new_york)
    build(project)
    first = rows(project, "SELECT order_date FROM staging.orders WHERE order_id = '1'")
    assert str(first[0][0]) == "2024-01-02"  # 23:30 in New York is 04:30 UTC the next day


def test_sources_check_summarises_every_file(project: Settings) -> None:
    summary = {s.name: s for s in summarize(project)}
    orders = pl.read_parquet(project.sources / "orders.parquet")
    assert summary["orders"].rows == orders.height
    assert summary["orders"].nulls["customer_id"] == orders["customer_id"].null_count()
    assert summary["orders"].first_date is not None
    assert summary["order_items"].nulls["quantity"] > 0  # the demo's dirty rows
    assert not project.warehouse.exists()  # a look at the sources creates no warehouse


def test_unknown_sources_need_only_exist(project: Settings) -> None:
    pl.DataFrame({"x": [1]}).write_parquet(project.sources / "weather.parquet")
    assert find_source(project.sources, "weather").files
    with pytest.raises(SourceError, match="source 'holidays' not found"):
        find_source(project.sources, "holidays")


def test_a_column_of_nulls_only_meets_the_contract(project: Settings) -> None:
    """Parquet has a type for a column that holds no value (DuckDB reads it as "NULL"): an
    export of an optional attribute nobody filled in is not a contract violation."""
    path = rewrite(project, "products", lambda f: f.with_columns(launch_date=pl.lit(None, pl.Null)))
    found = find_source(project.sources, "products")
    assert found.files == (path,)
