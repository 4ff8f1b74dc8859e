"""Training and scoring rows for direct multi-step forecasting.

One row per (product, origin c, horizon h): the features known at c (the demand_features row
of period c, whose lags and windows end at c-1, plus the units of c itself), the horizon,
and what is known about the target period c+h in advance (calendar, planned promotion). The
target is the units of c+h. Direct, not recursive: one global model for all horizons, so
errors do not compound through fed-back predictions and every step is one prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine

UNIT = {"day": "d", "week": "w", "month": "mo"}
NOT_FEATURES = {
    "product_id",
    "period",
    "units",
    "department",
    "category",
    "target_period",
    "origin",
    "y",
}
CATEGORICAL = ("department", "category")


@dataclass(frozen=True)
class ForecastData:
    freq: str
    features: pl.DataFrame  # features.demand_features
    demand: pl.DataFrame  # product_id, period, units
    products: pl.DataFrame  # product_id, discontinued_date
    promotions: pl.DataFrame  # product_id, period, promo_pct: planned, per period
    holidays: pl.DataFrame | None = None  # period, t_holidays: public holidays in the period

    @property
    def last_period(self) -> date:
        value = self.demand["period"].max()
        assert isinstance(value, date)
        return value

    def demand_until(self, cutoff: date) -> ForecastData:
        """The same, with demand (targets, seasonal references) known at the end of
        `cutoff`; the feature rows are shared, not copied (at M5 size they are gigabytes):
        for building rows whose origins are already at or before the cutoff."""
        return replace(self, demand=self.demand.filter(pl.col("period") <= cutoff))

    def until(self, cutoff: date) -> ForecastData:
        """What was known at the end of period `cutoff` (promotions are planned ahead)."""
        return ForecastData(
            self.freq,
            self.features.filter(pl.col("period") <= cutoff),
            self.demand.filter(pl.col("period") <= cutoff),
            self.products,
            self.promotions,
            self.holidays,  # known in advance, like planned promotions
        )


def _frame(con: engine.Connection, sql: str) -> pl.DataFrame:
    frame = pl.DataFrame(con.sql(sql).to_arrow_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def load(settings: Settings, history: int | None = None, country: str = "") -> ForecastData:
    """Read the published feature tables of the environment (read-only): the last `history`
    periods before the last one and that one (all, when None). `country`: count its public
    holidays per period (the `holidays` package) as a feature known ahead."""
    con = catalog.open_published(settings)
    try:
        try:
            since = ""
            if history is not None:
                last = engine.scalar(con, "SELECT max(period) FROM features.demand")
                if last is not None:
                    first = pl.select(offset(pl.lit(last), pl.lit(-history), settings.freq)).item()
                    since = f" WHERE period >= DATE '{first.isoformat()}'"
            features = _frame(
                con,
                f"SELECT {_narrowed(con)} FROM features.demand_features{since} "
                "ORDER BY product_id, period",
            )
            demand = _frame(
                con,
                f"SELECT product_id, period, units FROM features.demand{since} "
                "ORDER BY product_id, period",
            )
            products = _frame(con, "SELECT product_id, discontinued_date FROM staging.products")
            promos = _frame(
                con, "SELECT product_id, start_date, end_date, discount_pct FROM staging.promotions"
            )
        except engine.Error as exc:
            raise UsageError(
                f"the forecast needs the feature tables: {engine.short_message(str(exc))}",
                hint="build them first: wh build",
            ) from None
    finally:
        con.close()
    if demand.is_empty():
        raise UsageError(
            "features.demand is empty: nothing to forecast",
            hint="check the sources with: wh sources check",
        )
    return ForecastData(
        settings.freq,
        features,
        demand,
        products,
        _promotions_per_period(promos, settings.freq),
        holiday_counts(country, demand, settings.freq) if country else None,
    )


def _narrowed(con: engine.Connection) -> str:
    """The feature columns, 8-byte numbers as FLOAT: the models read float32 (LightGBM's
    matrix) or float64 copies of a few columns, and the loaded history is most of the
    forecast's peak memory. Cast and sorted inside DuckDB, so Polars holds one copy."""
    columns = engine.describe(con, "features.demand_features")
    return ", ".join(
        f"{engine.quote_ident(name)}::FLOAT AS {engine.quote_ident(name)}"
        if kind in ("BIGINT", "DOUBLE") and name != "units"
        else engine.quote_ident(name)
        for name, kind in columns
    )


def holiday_counts(country: str, demand: pl.DataFrame, freq: str) -> pl.DataFrame:
    """period, t_holidays: public holidays of `country` in each period, from the first
    period through two years past the last (forecast targets lie ahead)."""
    import holidays

    first, last = demand["period"].min(), demand["period"].max()
    assert isinstance(first, date) and isinstance(last, date)
    years = range(first.year, last.year + 3)
    try:
        calendar = holidays.country_holidays(country, years=years)
    except NotImplementedError:
        raise UsageError(
            f"[forecast] country = '{country}' is not a country the holidays package knows",
            hint='use an ISO 3166 code such as US, GB, DE (python -c "import holidays; '
            'print(holidays.list_supported_countries())")',
        ) from None
    days = pl.DataFrame({"day": sorted(calendar)}, schema={"day": pl.Date})
    return days.group_by(period=pl.col("day").dt.truncate("1" + UNIT[freq])).agg(
        t_holidays=pl.len().cast(pl.Float32)
    )


def _promotions_per_period(promos: pl.DataFrame, freq: str) -> pl.DataFrame:
    if promos.is_empty():
        return pl.DataFrame(
            schema={"product_id": pl.String, "period": pl.Date, "promo_pct": pl.Float64}
        )
    return (
        promos.with_columns(day=pl.date_ranges("start_date", "end_date", "1d"))
        .explode("day")
        .with_columns(period=pl.col("day").dt.truncate("1" + UNIT[freq]))
        .group_by("product_id", "period")
        .agg(promo_pct=pl.col("discount_pct").max())
    )


def offset(column: str | pl.Expr, periods: pl.Expr, freq: str) -> pl.Expr:
    expr = pl.col(column) if isinstance(column, str) else column
    return expr.dt.offset_by(pl.concat_str(periods.cast(pl.String), pl.lit(UNIT[freq])))


def rows_for(data: ForecastData, origins: pl.DataFrame, horizon: int, season: int) -> pl.DataFrame:
    """Feature rows for each origin row (a demand_features row) and horizon 1..horizon."""
    h = pl.DataFrame({"horizon": np.arange(1, horizon + 1, dtype=np.int32)})
    base = origins.rename({"period": "origin"}).with_columns(units_last=pl.col("units"))
    pairs = (
        base.drop("units")
        .join(h, how="cross")
        .with_columns(
            target_period=offset("origin", pl.col("horizon"), data.freq),
            # seasonal reference: the same season's last observed period, at or before the origin
            reference=offset(
                "origin",
                pl.col("horizon") - ((pl.col("horizon") + season - 1) // season) * season,
                data.freq,
            ),
        )
    )
    demand = data.demand.select("product_id", "period", "units")
    pairs = (
        pairs.join(
            demand.rename({"period": "target_period", "units": "y"}),
            on=["product_id", "target_period"],
            how="left",
        )
        .join(
            demand.rename({"period": "reference", "units": "seasonal_ref"}),
            on=["product_id", "reference"],
            how="left",
        )
        .join(
            data.promotions.rename({"period": "target_period", "promo_pct": "t_promo_pct"}),
            on=["product_id", "target_period"],
            how="left",
        )
        .join(data.products, on="product_id", how="left")
        .filter(
            pl.col("discontinued_date").is_null()
            | (pl.col("target_period") <= pl.col("discontinued_date"))
        )
    )
    if data.holidays is not None:
        pairs = pairs.join(
            data.holidays.rename({"period": "target_period"}), on="target_period", how="left"
        ).with_columns(pl.col("t_holidays").fill_null(0.0))
    return pairs.drop("reference", "discontinued_date").with_columns(
        t_promo_pct=pl.col("t_promo_pct").fill_null(0.0),
        t_on_promo=pl.col("t_promo_pct").is_not_null().cast(pl.Float32),
        t_price_ratio=target_price_ratio(pairs.columns, pl.col("t_promo_pct").fill_null(0.0)),
        t_month=pl.col("target_period").dt.month(),
        t_week=pl.col("target_period").dt.week(),
        t_weekday=pl.col("target_period").dt.weekday(),
        t_day=pl.col("target_period").dt.day(),
    )


LIST_PRICE = "last_list_price_ratio"  # a demand_features column (a project may lack it)


def target_price_ratio(
    columns: list[str], promo_pct: pl.Expr, change: pl.Expr | float = 0.0
) -> pl.Expr:
    """The price at the target period / base price, as known at the origin: the last list
    price holds (changed by `change`, a scenario's fraction), less the planned promotion.
    What price scenarios move; LightGBM's response to it is monotone (models.MONOTONE)."""
    list_ratio = pl.col(LIST_PRICE).fill_null(1.0) if LIST_PRICE in columns else pl.lit(1.0)
    return (list_ratio * (1 + change) * (1 - promo_pct / 100)).cast(pl.Float32)


def training_rows(
    data: ForecastData,
    cutoff: date,
    horizon: int,
    season: int,
    train_periods: int,
    origin_step: int,
    max_rows: int = 0,
    seed: int = 0,
) -> pl.DataFrame:
    """Rows whose origin and target both lie at or before the cutoff; beyond `max_rows`
    (0: no limit), a seeded sample of (product, origin) pairs, each with all its horizons."""
    start = data.demand.select(offset(pl.lit(cutoff), pl.lit(-train_periods), data.freq)).item()
    origins = data.features.filter(pl.col("period").is_between(start, cutoff))
    periods = origins["period"].unique().sort(descending=True)
    chosen = periods.gather_every(origin_step)
    origins = origins.filter(pl.col("period").is_in(chosen.implode()))
    if max_rows and origins.height * horizon > max_rows:
        origins = origins.sample(n=max(1, max_rows // horizon), seed=seed).sort(
            "product_id", "period"
        )
    rows = rows_for(data.demand_until(cutoff), origins, horizon, season)
    return rows.filter((pl.col("target_period") <= cutoff) & pl.col("y").is_not_null())


def scoring_rows(data: ForecastData, cutoff: date, horizon: int, season: int) -> pl.DataFrame:
    """One row per product active at the cutoff and horizon step (targets after it)."""
    origins = data.features.filter(pl.col("period") == cutoff)
    return rows_for(data.demand_until(cutoff), origins, horizon, season)


def feature_names(rows: pl.DataFrame) -> list[str]:
    """Numeric features, then the categorical product attributes."""
    return [c for c in rows.columns if c not in NOT_FEATURES] + [
        c for c in CATEGORICAL if c in rows.columns
    ]


def matrix(rows: pl.DataFrame, names: list[str], categories: dict[str, list[str]]) -> Any:
    """float32 matrix; categorical columns as stable integer codes."""
    columns = []
    for name in names:
        if name in categories:
            lookup = {v: i for i, v in enumerate(categories[name])}
            values = rows[name].to_list()
            columns.append(np.array([lookup.get(v, np.nan) for v in values], dtype=np.float32))
        else:
            columns.append(rows[name].cast(pl.Float32).to_numpy().astype(np.float32))
    return np.column_stack(columns) if columns else np.zeros((rows.height, 0), np.float32)
