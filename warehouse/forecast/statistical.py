"""Per-series candidates from statsforecast, and robust window baselines, fitted at a cutoff.

Each product's demand up to the cutoff (zero-filled, from its launch) is one series. The
statsforecast models fit every series at once: AutoETS, DynamicOptimizedTheta, and the
intermittent-demand family (CrostonOptimized, IMAPA, TSB, ADIDA); series shorter than two
seasons are fitted without a season. The window baselines (mean and median of the last k
periods, the seasonal window average) are one Polars expression each: no library offers a
rolling median forecast. A candidate's forecasts join the scoring rows on (product, step),
so these models fit the same `Fitted` interface, and the same folds, as the global ones.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse.forecast.data import ForecastData
from warehouse.forecast.models import Fitted, Prediction
from warehouse.forecast.spec import LIBRARY_MODELS, SEASONAL_WINDOW, WINDOW, ForecastSpec

# name -> statsforecast model for (season length, long series?)
STATSFORECAST: dict[str, Callable[[int], Any]] = {}


def _register() -> None:
    from statsforecast import models as sf

    STATSFORECAST.update(
        {
            "ets": lambda m: sf.AutoETS(season_length=m, alias="ets"),
            "theta": lambda m: sf.DynamicOptimizedTheta(season_length=m, alias="theta"),
            "croston": lambda m: sf.CrostonOptimized(alias="croston"),
            "imapa": lambda m: sf.IMAPA(alias="imapa"),
            "tsb": lambda m: sf.TSB(alpha_d=0.2, alpha_p=0.2, alias="tsb"),
            "adida": lambda m: sf.ADIDA(alias="adida"),
        }
    )


# AutoETS considers no seasonal model beyond this season length (like R's ets); weekly
# data's 52 is fitted without a season there, and Theta deseasonalises instead
ETS_MAX_SEASON = 24
# below this many series a process pool costs more than it saves (~1 s to start)
POOL_MIN_SERIES = 50
# history the per-series models fit on: AutoETS's time grows with it, and level and season
# estimates gain little beyond a few seasons (day: half a year; 3 years; 10 years)
PERIODS = {"day": 182, "week": 156, "month": 120}


def _series(data: ForecastData, cutoff: date, periods: int) -> pl.DataFrame:
    """unique_id, ds (integer period index, the cutoff is 0), y: the last `periods`."""
    history = data.demand.filter(pl.col("period") <= cutoff).sort("product_id", "period")
    return (
        history.with_columns(
            ds=(pl.int_range(pl.len()).over("product_id") - pl.len().over("product_id") + 1),
            y=pl.col("units").cast(pl.Float64),
        )
        .filter(pl.col("ds") > -periods)
        .select(unique_id=pl.col("product_id").cast(pl.String), ds="ds", y="y")
    )


def _windows(series: pl.DataFrame, names: list[str], season: int, horizon: int) -> pl.DataFrame:
    """unique_id, horizon, one column per window model."""
    steps = pl.DataFrame({"horizon": np.arange(1, horizon + 1, dtype=np.int32)})
    out = series.select("unique_id").unique().join(steps, how="cross")
    flat = [n for n in names if WINDOW.match(n)]
    if flat:
        levels = series.group_by("unique_id").agg(
            [
                getattr(pl.col("y").filter(pl.col("ds") > -int(k)), kind)().alias(name)
                for name in flat
                for kind, k in [WINDOW.match(name).groups()]  # type: ignore[union-attr]
            ]
        )
        out = out.join(levels, on="unique_id", how="left")
    if SEASONAL_WINDOW in names:
        # the mean of the same season position over the last (up to) three seasons
        position = series.with_columns(pos=(pl.col("ds") % season + season) % season)
        by_pos = (
            position.filter(pl.col("ds") > -3 * season)
            .group_by("unique_id", "pos")
            .agg(pl.col("y").mean().alias(SEASONAL_WINDOW))
        )
        out = (
            out.with_columns(pos=(pl.col("horizon") % season + season) % season)
            .join(by_pos, on=["unique_id", "pos"], how="left")
            .drop("pos")
        )
    return out


def _library(
    series: pl.DataFrame, names: list[str], season: int, horizon: int, threads: int
) -> pl.DataFrame:
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    if not STATSFORECAST:
        _register()
    lengths = series.group_by("unique_id").agg(n=pl.len())
    long_ids = lengths.filter(pl.col("n") >= 2 * season)["unique_id"]
    frames = []
    for subset, m in (
        (series.filter(pl.col("unique_id").is_in(long_ids.implode())), season),
        (series.filter(~pl.col("unique_id").is_in(long_ids.implode())), 1),
    ):
        if subset.is_empty():
            continue
        models = [STATSFORECAST[n](1 if n == "ets" and m > ETS_MAX_SEASON else m) for n in names]
        n_series = subset["unique_id"].n_unique()
        engine = StatsForecast(
            models=models,
            freq=1,
            n_jobs=threads if n_series >= POOL_MIN_SERIES else 1,
            fallback_model=Naive(),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = engine.forecast(df=subset, h=horizon)
        frames.append(pl.DataFrame(fc).with_columns(horizon=pl.col("ds").cast(pl.Int32)).drop("ds"))
    return pl.concat(frames) if frames else pl.DataFrame()


def fit_statistical(
    data: ForecastData, cutoff: date, spec: ForecastSpec, names: list[str]
) -> dict[str, Fitted]:
    """Every named statistical candidate fitted on each product's history up to `cutoff`."""
    if not names:
        return {}
    periods = max(PERIODS[spec.freq], 3 * spec.season + spec.horizon)
    series = _series(data, cutoff, periods)
    table = _windows(series, names, spec.season, spec.horizon)
    library = [n for n in names if n in LIBRARY_MODELS]
    if library and not series.is_empty():
        fc = _library(series, library, spec.season, spec.horizon, spec.threads)
        if not fc.is_empty():
            table = table.join(fc, on=["unique_id", "horizon"], how="left")
    table = table.rename({"unique_id": "product_id"})

    def fitted(name: str) -> Fitted:
        column = table.select("product_id", "horizon", pl.col(name).alias("_f"))

        def predict(rows: pl.DataFrame) -> Prediction:
            joined = rows.select(
                pl.col("product_id").cast(pl.String), pl.col("horizon").cast(pl.Int32)
            ).join(column, on=["product_id", "horizon"], how="left", maintain_order="left")
            # a product with no history at the cutoff: its last units (0 when new)
            fallback = rows["units_last"].cast(pl.Float64).fill_null(0.0).to_numpy()
            values = joined["_f"].cast(pl.Float64).fill_nan(None).to_numpy()
            point = np.where(np.isnan(values), fallback, values)
            return Prediction(np.clip(point, 0, None))

        return Fitted(name, predict)

    return {name: fitted(name) for name in names}
