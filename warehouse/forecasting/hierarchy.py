"""Coherent forecasts at product, category, department and total level (hierarchicalforecast).

Base forecasts: each product's published forecast (and, on the backtest folds, the model it
published), and for every aggregate series a statsforecast model of its own (AutoETS; Theta
for weekly data's 52-week season). Reconciliation: bottom-up and MinT with a shrunk error
covariance (`mint_shrink`; its negative product forecasts are zeroed and the levels summed
again; above MINT_MAX_SERIES series, bottom-up only). The product models have no in-sample
fit, so the covariance MinT needs is estimated from every series' in-sample seasonal-naive
residuals up to the cutoff: the same structure for all levels, nothing after the cutoff (no
leakage).

The method is chosen by the backtest: both reconcile the base forecasts of each fold, and the
lower mean WAPE over the levels wins (`[forecast.hierarchy] method` can fix it). p50 is the
reconciled forecast, so it adds up at every level; p10/p90 come from the chosen method's
scaled backtest residuals per level (quantiles do not add up, and are not made to).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from warehouse.config import Settings, strict_table
from warehouse.errors import ConfigError
from warehouse.forecasting.data import UNIT, offset
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine

PRODUCT = "product"
TOTAL = "total"
METHODS = ("bottom_up", "mint_shrink")
KEYS = {"levels", "method", "enabled"}
QUANTILES = (0.1, 0.9)
# MinT estimates a covariance of every series with every other: beyond this many series
# (a 2,000 x 2,000 matrix is 32 MB; M5's 30,000 products would need 7 GB) only bottom-up runs,
# summed by wh without a summing matrix, and the run's note says so
MINT_MAX_SERIES = 2_000
SLASH = "\u2215"  # stands for "/" inside a level value or product id (paths are "/"-joined)


@dataclass(frozen=True)
class HierarchySettings:
    """`[forecast.hierarchy]`: the levels between total and product, top down (columns of
    staging.products), and the reconciliation method ("auto": chosen by backtest)."""

    levels: tuple[str, ...] = ("department", "category")
    method: str = "auto"
    enabled: bool = True


def load_hierarchy_settings(raw: object, where: Path) -> HierarchySettings:
    raw = strict_table(raw, "forecast.hierarchy", KEYS, where)
    values: dict[str, Any] = {}
    if "enabled" in raw:
        if not isinstance(raw["enabled"], bool):
            raise ConfigError("[forecast.hierarchy] enabled must be true or false", where)
        values["enabled"] = raw["enabled"]
    if "method" in raw:
        if raw["method"] not in ("auto", *METHODS):
            raise ConfigError(
                f"[forecast.hierarchy] method must be one of auto, {', '.join(METHODS)}; "
                f"found {raw['method']!r}",
                where,
            )
        values["method"] = raw["method"]
    if "levels" in raw:
        levels = raw["levels"]
        if not (
            isinstance(levels, list)
            and all(isinstance(v, str) and v.isidentifier() for v in levels)
            and len(set(levels)) == len(levels)
            and not {TOTAL, PRODUCT, "product_id"} & set(levels)
        ):
            raise ConfigError(
                "[forecast.hierarchy] levels must be distinct column names of "
                "staging.products, top level first",
                where,
                hint='e.g. levels = ["department", "category"] (total and product are implied)',
            )
        values["levels"] = tuple(levels)
    return HierarchySettings(**values)


def product_levels(settings: Settings, levels: tuple[str, ...]) -> pl.DataFrame:
    """product_id (as text) and each level's value from staging.products ('unknown' when
    null): read from the published catalog, like the run's other inputs."""
    con = catalog.open_published(settings)
    try:
        known = {name for name, _ in engine.describe(con, "staging.products")}
        missing = [level for level in levels if level not in known]
        if missing:
            raise ConfigError(
                f"[forecast.hierarchy] level '{missing[0]}' is not a column of staging.products",
                settings.project_dir / "wh.toml",
                hint=f"columns: {', '.join(sorted(known))}",
            )
        columns = ", ".join(
            f"coalesce(CAST({engine.quote_ident(c)} AS VARCHAR), 'unknown') AS "
            f"{engine.quote_ident(c)}"
            for c in levels
        )
        table = con.sql(
            f"SELECT CAST(product_id AS VARCHAR) AS product_id, {columns} FROM staging.products"
        ).to_arrow_table()
    finally:
        con.close()
    frame = pl.DataFrame(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


@dataclass
class HierarchyResult:
    forecast: pl.DataFrame  # method, level, key, forecast_date, units_p10/p50/p90
    metrics: pl.DataFrame  # method, level, series, rows, wape, bias, chosen
    method: str
    note: str = ""


@dataclass(frozen=True)
class _Tree:
    """The hierarchy of one run: every series (unique_id), its level and key, and the
    summing matrix and tags hierarchicalforecast reconciles with."""

    actual: pl.DataFrame  # unique_id, ds (period), y: every series' history
    summing: Any
    tags: dict[str, np.ndarray]
    series: pl.DataFrame  # unique_id, level, key
    products: pl.DataFrame  # product_id, unique_id (the product's series)

    @property
    def mint(self) -> bool:
        """Small enough for MinT (and hierarchicalforecast's summing matrix)."""
        return self.series.height <= MINT_MAX_SERIES

    @property
    def methods(self) -> tuple[str, ...]:
        return METHODS if self.mint else ("bottom_up",)


def _tree(demand: pl.DataFrame, members: pl.DataFrame, levels: tuple[str, ...]) -> _Tree:
    from hierarchicalforecast.utils import aggregate

    # a series id is its path joined by "/": a "/" inside a value (a category "kids/baby", a
    # product "AB/12") would make paths ambiguous, so it becomes a division slash (U+2215) in
    # series ids and level keys; product keys stay the published product ids
    safe = [pl.col(c).str.replace_all("/", SLASH, literal=True) for c in (*levels, "product_id")]
    history = (
        demand.select(pl.col("product_id").cast(pl.String), "period", "units")
        .join(members, on="product_id", how="left")
        .with_columns(pl.col(list(levels)).fill_null("unknown"), total=pl.lit(TOTAL))
        .rename({"period": "ds", "units": "y"})
        .with_columns(pl.col("y").cast(pl.Float64), product_key=pl.col("product_id"))
        .with_columns(safe)
    )
    path = ["total", *levels]
    spec = [path[: i + 1] for i in range(len(path))] + [[*path, "product_id"]]
    count = sum(history.select(path[: i + 1]).n_unique() for i in range(len(path)))
    count += history["product_id"].n_unique()
    # sparse beyond MinT's size: a dense summing matrix of M5's products would be 7 GB
    actual, summing, tags = aggregate(
        history.drop("product_key"), spec, sparse_s=count > MINT_MAX_SERIES
    )
    products = history.select(
        product_id="product_key", unique_id=pl.concat_str([*path, "product_id"], separator="/")
    ).unique()
    names = [TOTAL, *levels, PRODUCT]
    series = (
        pl.concat(
            [
                pl.DataFrame({"unique_id": list(tags[tag]), "level": name})
                for tag, name in zip(tags, names, strict=True)
            ]
        )
        .join(products, on="unique_id", how="left")
        .with_columns(
            key=pl.when(pl.col("level") == TOTAL)
            .then(pl.lit(TOTAL))
            .when(pl.col("level") == PRODUCT)
            .then(pl.col("product_id"))  # the product id as published
            .otherwise(pl.col("unique_id").str.strip_prefix(f"{TOTAL}/"))
        )
        .drop("product_id")
    )
    return _Tree(actual, summing, tags, series, products)


def _aggregate_base(
    tree: _Tree, cutoff: date, horizon: int, freq: str, season: int
) -> pl.DataFrame:
    """unique_id, ds, base: statsforecast forecasts of the aggregate series from `cutoff`."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, DynamicOptimizedTheta, WindowAverage

    # imported here: statistical imports spec, which imports this module's settings
    from warehouse.forecasting.statistical import ETS_MAX_SEASON, PERIODS

    aggregates = tree.series.filter(pl.col("level") != PRODUCT)["unique_id"]
    train = (
        tree.actual.filter(pl.col("unique_id").is_in(aggregates.implode()))
        .filter(pl.col("ds") <= cutoff)
        .sort("unique_id", "ds")
        .with_columns(t=pl.col("ds").rank("dense").over("unique_id").cast(pl.Int64))
    )
    # as much history as the per-series candidates fit on
    train = train.filter(pl.col("t") > pl.col("t").max().over("unique_id") - PERIODS[freq])
    shortest = train.group_by("unique_id").len()["len"].min()
    length = shortest if isinstance(shortest, int) else 0
    seasonal = length >= 2 * season
    model: Any
    if season > ETS_MAX_SEASON:
        model = DynamicOptimizedTheta(season_length=season if seasonal else 1, alias="base")
    else:
        model = AutoETS(season_length=season if seasonal else 1, alias="base")
    series = train.select("unique_id", ds="t", y="y")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            predicted = StatsForecast(models=[model], freq=1).forecast(df=series, h=horizon)
        except (NotImplementedError, ValueError, np.linalg.LinAlgError):
            # AutoETS refuses very short series ("tiny datasets"): the recent mean then
            fallback = WindowAverage(window_size=max(1, min(season, length)), alias="base")
            predicted = StatsForecast(models=[fallback], freq=1).forecast(df=series, h=horizon)
    last_t = train.group_by("unique_id").agg(last=pl.col("t").max())
    return (
        pl.DataFrame(predicted)
        .join(last_t, on="unique_id")
        .with_columns(step=(pl.col("ds") - pl.col("last")).cast(pl.Int64))
        .select(
            "unique_id",
            ds=offset(pl.lit(cutoff), pl.col("step"), freq).cast(pl.Date),
            base=pl.col("base").clip(lower_bound=0.0).cast(pl.Float64),
        )
    )


def _reconcile(
    tree: _Tree, bottom: pl.DataFrame, cutoff: date, horizon: int, freq: str, season: int
) -> tuple[pl.DataFrame, str | None]:
    """unique_id, ds, base, bottom_up, mint_shrink for the horizon after `cutoff`, and why
    MinT failed there (its column is then bottom-up's). `bottom`: product_id, forecast_date,
    units_forecast (the products' base forecasts)."""
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import MinTrace

    products = (
        bottom.select(
            pl.col("product_id").cast(pl.String), ds="forecast_date", base="units_forecast"
        )
        .join(tree.products, on="product_id")
        .select("unique_id", "ds", pl.col("base").cast(pl.Float64))
    )
    dates = sorted(set(products["ds"].to_list()))
    grid = tree.series.select("unique_id").join(pl.DataFrame({"ds": dates}), how="cross")
    base = pl.concat([products, _aggregate_base(tree, cutoff, horizon, freq, season)])
    hat = grid.join(base, on=["unique_id", "ds"], how="left").with_columns(
        pl.col("base").fill_null(0.0)  # a product the run did not forecast: no demand
    )
    known = _recent(tree.actual.filter(pl.col("ds") <= cutoff).sort("unique_id", "ds"), freq)
    # seasonal naive's residuals when two seasons are known, else naive's
    lag = season if known["ds"].n_unique() > 2 * season else 1
    insample = known.with_columns(base=pl.col("y").shift(lag).over("unique_id")).drop_nulls("base")
    insample = _cover(insample, hat)
    bottom_up = hat.join(
        _sum_up(
            hat.join(tree.products, on="unique_id").select("unique_id", "ds", bottom_up="base"),
            tree,
        ),
        on=["unique_id", "ds"],
    )
    if not tree.mint:  # bottom-up only: the products' forecasts summed up the tree
        return bottom_up, None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reconciled = HierarchicalReconciliation([MinTrace(method="mint_shrink")]).reconcile(
                Y_hat_df=hat, Y_df=insample, S_df=tree.summing, tags=tree.tags
            )
        except Exception as exc:
            # MinT's covariance can be singular or its inputs refused on a ragged fold; the
            # fold then reconciles bottom-up (always defined) and the run's note says so
            failed = f"{type(exc).__name__}: {str(exc)[:200]}"
            return bottom_up.with_columns(mint_shrink=pl.col("bottom_up")), failed
    mint = [c for c in reconciled.columns if c.startswith("base/")]
    frame = pl.DataFrame(reconciled).rename({mint[0]: "mint_shrink"})
    mint_up = _sum_up(frame.select("unique_id", "ds", "mint_shrink"), tree)
    return bottom_up.join(mint_up, on=["unique_id", "ds"]), None


def _cover(insample: pl.DataFrame, hat: pl.DataFrame) -> pl.DataFrame:
    """In-sample rows for every series of `hat`: a series with none at this cutoff (a product
    or a whole category launched later, or with one period only) had no demand before it, so
    its rows are zeros with zero residuals over the same dates (MinT's ridge keeps its variance
    positive, and it keeps its base forecast). hierarchicalforecast refuses series in the
    forecasts that are missing from the in-sample frame."""
    missing = hat.select("unique_id").unique().join(insample, on="unique_id", how="anti")
    if missing.is_empty():
        return insample
    dates = insample.select("ds").unique()
    if dates.is_empty():
        dates = hat.select("ds").unique().head(1)
    filler = missing.join(dates, how="cross").with_columns(y=pl.lit(0.0), base=pl.lit(0.0))
    return pl.concat([insample, filler.select(insample.columns)], how="vertical_relaxed")


def _sum_up(frame: pl.DataFrame, tree: _Tree) -> pl.DataFrame:
    """Demand is not negative: MinT's product forecasts below zero are set to zero and every
    level is summed again from the products, so the result stays coherent. (MinT's own
    non-negative variant solves a quadratic program that is ill-conditioned on a few hundred
    intermittent series: it failed on the demo's 100 products.)"""
    column = frame.columns[-1]
    products = frame.join(tree.products, on="unique_id").with_columns(
        pl.col(column).clip(lower_bound=0.0)
    )
    # a product's ancestors are the prefixes of its path: total, total/d, total/d/c
    parts = pl.col("unique_id").str.split("/")
    ancestors = products.with_columns(
        ancestor=pl.int_ranges(1, parts.list.len()).list.eval(pl.element().cast(pl.Int64))
    )
    paths = ancestors.explode("ancestor").with_columns(
        unique_id=parts.list.head(pl.col("ancestor")).list.join("/")
    )
    sums = paths.group_by("unique_id", "ds").agg(pl.col(column).sum())
    return pl.concat([products.select("unique_id", "ds", column), sums])


def _recent(frame: pl.DataFrame, freq: str) -> pl.DataFrame:
    """Each series' rows of its last half year / three years / ten years (as much history as
    the per-series candidates fit on)."""
    from warehouse.forecasting.statistical import PERIODS

    start = pl.col("ds").max().over("unique_id").dt.offset_by(f"-{PERIODS[freq]}{UNIT[freq]}")
    return frame.filter(pl.col("ds") > start)


def reconcile_run(
    demand: pl.DataFrame,
    members: pl.DataFrame,
    hierarchy: HierarchySettings,
    freq: str,
    season: int,
    horizon: int,
    folds: pl.DataFrame,
    forecast: pl.DataFrame,
    last: date,
) -> HierarchyResult:
    """Reconcile the run's forecast, choosing the method on the backtest folds.

    `demand`: product_id, period, units (up to the run's cutoff); `members`: product_id and
    the level columns; `folds`: cutoff_date, product_id, forecast_date, units_forecast of the
    model each product published, on each backtest fold; `forecast`: product_id,
    forecast_date, units_forecast (the published forecast)."""
    tree = _tree(demand, members, hierarchy.levels)
    scored = []
    failures: list[str] = []
    for (cutoff,), part in folds.group_by("cutoff_date", maintain_order=True):
        assert isinstance(cutoff, date)
        fold, failed = _reconcile(tree, part, cutoff, horizon, freq, season)
        if failed:
            failures.append(f"fold {cutoff}: {failed}")
        scored.append(fold.with_columns(cutoff_date=pl.lit(cutoff)))
    levels = tree.series.select("unique_id", "level")
    metrics, residuals = _backtest_metrics(scored, tree, levels, freq, tree.methods)
    method = hierarchy.method
    if method not in tree.methods:  # auto, or mint_shrink on a hierarchy too large for it
        means = (
            metrics.filter(pl.col("method").is_in(tree.methods))
            .group_by("method")
            .agg(pl.col("wape").mean())
            .sort("wape", "method", nulls_last=True)
        )
        method = str(means["method"][0]) if means.height else "bottom_up"
    final, failed = _reconcile(tree, forecast, last, horizon, freq, season)
    if failed:
        failures.append(f"forecast: {failed}")
        method = "bottom_up"  # MinT's column there is bottom-up's: say so, not MinT
    metrics = metrics.with_columns(chosen=pl.col("method") == method)
    scale = _scales(tree, last, freq)
    spread = (
        residuals.filter(pl.col("method") == method)
        .group_by("level")
        .agg(q_low=pl.col("r").quantile(QUANTILES[0]), q_high=pl.col("r").quantile(QUANTILES[1]))
    )
    table = (
        final.join(tree.series, on="unique_id")
        .join(scale, on="unique_id", how="left")
        .join(spread, on="level", how="left")
        .with_columns(p50=pl.col(method).clip(lower_bound=0.0))
        .with_columns(
            units_p10=(pl.col("p50") + pl.col("q_low").fill_null(0.0) * pl.col("scale")).clip(
                lower_bound=0.0
            ),
            units_p90=pl.max_horizontal(
                pl.col("p50"), pl.col("p50") + pl.col("q_high").fill_null(0.0) * pl.col("scale")
            ),
        )
        .select(
            pl.lit(method).alias("method"),
            "level",
            "key",
            forecast_date=pl.col("ds").cast(pl.Date),
            units_p10="units_p10",
            units_p50=pl.col(method),
            units_p90="units_p90",
        )
        .sort("level", "key", "forecast_date")
    )
    notes = [] if tree.mint else [
        f"MinT skipped: {tree.series.height:,} series, above {MINT_MAX_SERIES:,}"
    ]  # fmt: skip
    if failures:
        notes.append(
            f"MinT failed, bottom-up used instead on {len(failures)} of {len(scored) + 1} "
            f"reconciliations ({failures[0]})"
        )
    return HierarchyResult(table, metrics, method, note="; ".join(notes))


def _scales(tree: _Tree, cutoff: date, freq: str) -> pl.DataFrame:
    """Per series: the mean absolute one-period change over the history window before the
    cutoff (1 when constant): what residuals are scaled by, so levels pool their quantiles."""
    window = _recent(tree.actual.filter(pl.col("ds") <= cutoff).sort("unique_id", "ds"), freq)
    return (
        window.with_columns(d=(pl.col("y") - pl.col("y").shift(1).over("unique_id")).abs())
        .group_by("unique_id")
        .agg(scale=pl.col("d").mean())
        .with_columns(
            pl.when(pl.col("scale") > 0).then(pl.col("scale")).otherwise(1.0).alias("scale")
        )
    )


def _backtest_metrics(
    scored: list[pl.DataFrame],
    tree: _Tree,
    levels: pl.DataFrame,
    freq: str,
    methods: tuple[str, ...],
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """WAPE and bias per method and level over every fold, and the scaled residuals."""
    if not scored:
        empty = pl.DataFrame(
            schema={"method": pl.String, "level": pl.String, "series": pl.Int64,
                    "rows": pl.Int64, "wape": pl.Float64, "bias": pl.Float64}
        )  # fmt: skip
        return empty, pl.DataFrame(
            schema={"method": pl.String, "level": pl.String, "r": pl.Float64}
        )
    rows = pl.concat(scored).join(tree.actual, on=["unique_id", "ds"]).join(levels, on="unique_id")
    long = rows.unpivot(
        index=["unique_id", "ds", "cutoff_date", "y", "level"],
        on=["base", *methods],
        variable_name="method",
        value_name="f",
    )
    metrics = long.group_by("method", "level").agg(
        series=pl.col("unique_id").n_unique().cast(pl.Int64),
        rows=pl.len().cast(pl.Int64),
        wape=((pl.col("f") - pl.col("y")).abs().sum() / pl.col("y").sum()),
        bias=((pl.col("f") - pl.col("y")).sum() / pl.col("y").sum()),
    )
    scales = pl.concat(
        [
            _scales(tree, cutoff, freq).with_columns(cutoff_date=pl.lit(cutoff))
            for cutoff in rows["cutoff_date"].unique().to_list()
        ]
    )
    residuals = long.join(scales, on=["unique_id", "cutoff_date"]).select(
        "method", "level", r=(pl.col("y") - pl.col("f")) / pl.col("scale")
    )
    order = {name: i for i, name in enumerate(tree.series["level"].unique(maintain_order=True))}
    return metrics.sort(pl.col("level").replace_strict(order), "method"), residuals
