"""forecast.demand_forecast_hierarchy: product, category, department and total forecasts that
add up, reconciled by hierarchicalforecast with the method the backtest chose."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from conftest import forecast_project, rows

from warehouse import forecast
from warehouse.config import Settings, load_settings
from warehouse.forecasting import hierarchy
from warehouse.runtime.build import build

MODELS = ["seasonal_naive", "moving_average"]


def _add_up(settings: Settings) -> None:
    """Every level's p50 equals the sum of the level below, date by date."""
    for parent, child, key in (
        ("total", "department", "'total'"),
        ("department", "category", "split_part(c.key, '/', 1)"),
        ("category", "product", "p.key"),
    ):
        join = (
            "JOIN (SELECT DISTINCT CAST(product_id AS VARCHAR) AS product_id, "
            "replace(department, '/', '\u2215') || '/' || replace(category, '/', '\u2215') "
            "AS key FROM features.demand_features) AS p "
            "ON p.product_id = c.key"
            if child == "product"
            else ""
        )
        gaps = rows(
            settings,
            f"""
            WITH sums AS (
                SELECT c.forecast_date, {key} AS key, sum(c.units_p50) AS units, count(*) AS n
                FROM forecast.demand_forecast_hierarchy AS c {join}
                WHERE c.level = '{child}' GROUP BY ALL
            )
            SELECT count(*), max(abs(s.units - h.units_p50) / greatest(h.units_p50, 1)),
                   sum(s.n)
            FROM sums AS s JOIN forecast.demand_forecast_hierarchy AS h
              ON h.level = '{parent}' AND h.key = s.key AND h.forecast_date = s.forecast_date
            """,
        )[0]
        matched, worst, children = gaps
        assert matched > 0 and worst is not None and worst < 1e-6, (parent, child, gaps)
        total = rows(
            settings,
            f"SELECT count(*) FROM forecast.demand_forecast_hierarchy WHERE level = '{child}'",
        )[0][0]
        assert children == total, (child, "every series has its parent")


def _with_keys(tmp_path: Path, sources: Path, keys: str) -> Settings:
    """A forecast project whose [forecast.hierarchy] (its last table) has these keys too."""
    settings = forecast_project(tmp_path, sources, hierarchy=True)
    toml = settings.project_dir / "wh.toml"
    toml.write_text(toml.read_text() + keys + "\n")
    return load_settings(settings.project_dir)


@pytest.mark.parametrize("freq", ["day", "week"])
def test_reconciled_forecasts_add_up_at_every_level(
    tmp_path: Path, forecast_sources: Path, freq: str
) -> None:
    settings = forecast_project(tmp_path, forecast_sources, freq, hierarchy=True)
    build(settings)
    result = forecast(settings, models=MODELS)
    _add_up(settings)
    levels = rows(
        settings,
        "SELECT level, count(DISTINCT key), min(units_p10 <= units_p50 AND units_p50 <= "
        "units_p90), min(units_p10 >= 0) FROM forecast.demand_forecast_hierarchy GROUP BY 1 "
        "ORDER BY 1",
    )
    products = result.forecast["product_id"].n_unique()
    assert [(level, n) for level, n, _, _ in levels][-2:] == [("product", products), ("total", 1)]
    assert all(ordered and nonnegative for _, _, ordered, nonnegative in levels)
    metrics = rows(
        settings,
        "SELECT method, level, wape, chosen FROM forecast.hierarchy_metrics ORDER BY 1, 2",
    )
    assert {(m, level) for m, level, _, _ in metrics} == {
        (m, level)
        for m in ("base", "bottom_up", "mint_shrink")
        for level in ("category", "department", "product", "total")
    }
    chosen = {m for m, _, _, c in metrics if c}
    assert len(chosen) == 1
    # the chosen method has the lower mean WAPE over the levels
    mean = {m: sum(w for n, _, w, _ in metrics if n == m) / 4 for m in ("bottom_up", "mint_shrink")}
    assert chosen == {min(mean, key=lambda m: mean[m])}
    # base forecasts of the products are the published ones: their backtest rows agree
    base = {level: w for m, level, w, _ in metrics if m == "base"}
    bottom_up = {level: w for m, level, w, _ in metrics if m == "bottom_up"}
    assert base["product"] == pytest.approx(bottom_up["product"])
    assert any("hierarchy reconciled by" in n for n in result.notes)


def test_a_slash_inside_a_category_keeps_the_levels_apart(
    tmp_path: Path, forecast_sources: Path
) -> None:
    """Series ids are "/"-joined paths: a category "kitchen/dining" must not look like a
    deeper level."""
    settings = forecast_project(tmp_path, forecast_sources, "week", hierarchy=True)
    products = pl.read_parquet(settings.sources / "products.parquet")
    first = products["category"][0]
    products.with_columns(
        category=pl.when(pl.col("category") == first)
        .then(pl.lit(f"{first}/dining"))
        .otherwise(pl.col("category"))
    ).write_parquet(settings.sources / "products.parquet")
    build(settings)
    forecast(settings, models=MODELS)
    _add_up(settings)
    keys = [k for (k,) in rows(settings, "SELECT DISTINCT key FROM "
            "forecast.demand_forecast_hierarchy WHERE level = 'category'")]  # fmt: skip
    assert any(k.endswith(f"{first}\u2215dining") for k in keys), keys


def test_bottom_up_keeps_the_published_product_forecasts(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = _with_keys(tmp_path, forecast_sources, 'method = "bottom_up"\nlevels = ["category"]')
    build(settings)
    forecast(settings, models=MODELS)
    diffs = rows(
        settings,
        "SELECT count(*), max(abs(h.units_p50 - f.units_forecast)) "
        "FROM forecast.demand_forecast_hierarchy AS h JOIN forecast.demand_forecast AS f "
        "ON h.key = CAST(f.product_id AS VARCHAR) AND h.forecast_date = f.forecast_date "
        "WHERE h.level = 'product'",
    )[0]
    published = rows(settings, "SELECT count(*) FROM forecast.demand_forecast")[0][0]
    assert diffs[0] == published and diffs[1] < 1e-9
    assert rows(
        settings, "SELECT DISTINCT level FROM forecast.demand_forecast_hierarchy ORDER BY 1"
    ) == [("category",), ("product",), ("total",)]


def test_a_hierarchy_too_large_for_mint_is_summed_bottom_up(
    tmp_path: Path, forecast_sources: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above MINT_MAX_SERIES (M5's 30,000 products would need a 7 GB covariance) only
    bottom-up runs, without hierarchicalforecast's dense summing matrix; it still adds up."""
    monkeypatch.setattr(hierarchy, "MINT_MAX_SERIES", 5)
    settings = forecast_project(tmp_path, forecast_sources, hierarchy=True)
    build(settings)
    result = forecast(settings, models=MODELS)
    _add_up(settings)
    assert rows(settings, "SELECT DISTINCT method, chosen FROM forecast.hierarchy_metrics "
                "ORDER BY 1") == [("base", False), ("bottom_up", True)]  # fmt: skip
    assert any("MinT skipped" in n for n in result.notes)


def test_a_level_that_is_not_a_product_column_is_a_clear_error(
    tmp_path: Path, forecast_sources: Path
) -> None:
    settings = _with_keys(tmp_path, forecast_sources, 'levels = ["aisle"]')
    build(settings)
    # an optional step: the forecast is published, the note says what to fix and where
    result = forecast(settings, models=MODELS)
    assert result.forecast.height > 0
    [note] = [n for n in result.notes if "hierarchy step failed" in n]
    assert "ConfigError" in note and "wh.toml" in note, note
    assert "level 'aisle' is not a column of staging.products" in note
    assert "hint: columns:" in note and "category" in note
