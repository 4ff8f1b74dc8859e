"""Per-series candidates from statsforecast, and robust window baselines, fitted at a cutoff.

Each product's demand up to the cutoff (zero-filled, from its launch) is one series. The
statsforecast models fit every series at once: AutoETS, DynamicOptimizedTheta, AutoARIMA
(a restricted search), AutoCES, and the intermittent-demand family (CrostonOptimized,
IMAPA, TSB, ADIDA); series shorter than two
seasons are fitted without a season. The window baselines (mean and median of the last k
periods, the seasonal window average) are one Polars expression each: no library offers a
rolling median forecast. A candidate's forecasts join the scoring rows on (product, step),
so these models fit the same `Fitted` interface, and the same folds, as the global ones.
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse.forecasting.data import ForecastData
from warehouse.forecasting.models import Fitted, Prediction
from warehouse.forecasting.spec import LIBRARY_MODELS, SEASONAL_WINDOW, WINDOW, ForecastSpec

# name -> statsforecast model for (season length, long series?)
STATSFORECAST: dict[str, Callable[[int], Any]] = {}


def _register() -> None:
    from statsforecast import models as sf

    STATSFORECAST.update(
        {
            "ets": lambda m: sf.AutoETS(season_length=m, alias="ets"),
            "theta": lambda m: sf.DynamicOptimizedTheta(season_length=m, alias="theta"),
            # a restricted search (orders up to 3 / 1 seasonal, 30 models at most): the
            # default's 94 models cost several times more and rarely choose beyond these
            "arima": lambda m: sf.AutoARIMA(
                season_length=m,
                max_p=3,
                max_q=3,
                max_P=1,
                max_Q=1,
                max_order=4,
                nmodels=30,
                alias="arima",
            ),
            "ces": lambda m: sf.AutoCES(season_length=m, alias="ces"),
            "croston": lambda m: sf.CrostonOptimized(alias="croston"),
            "imapa": lambda m: sf.IMAPA(alias="imapa"),
            "tsb": lambda m: sf.TSB(alpha_d=0.2, alpha_p=0.2, alias="tsb"),
            "adida": lambda m: sf.ADIDA(alias="adida"),
        }
    )


# AutoETS considers no seasonal model beyond this season length (like R's ets); weekly
# data's 52 is fitted without a season there, and Theta deseasonalises instead. AutoARIMA
# and AutoCES likewise: a 52-period seasonal ARIMA or CES costs minutes a series
ETS_MAX_SEASON = 24
CAPPED = ("ets", "arima", "ces")
# the library models that can carry a fit forward to later data (the intermittent family
# cannot, and costs little to fit per fold)
FORWARD = ("ets", "theta", "arima", "ces")


# a library forecast above this many times the series' highest value so far is a fit that
# diverged (AutoCES on intermittent daily demand was seen at 27x the WAPE of the others):
# it is capped there
MAX_OVER_PEAK = 3.0


def _bounded(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Library forecasts capped at MAX_OVER_PEAK x `peak` (the series' max before the
    cutoff); non-finite ones become the cap too (and then the fallback's clip at zero)."""
    cap = pl.col("peak").cast(pl.Float64).fill_null(0.0) * MAX_OVER_PEAK
    return frame.with_columns(
        [
            pl.when(pl.col(n).is_finite()).then(pl.min_horizontal(pl.col(n), cap)).otherwise(cap)
            for n in names
            if n in frame.columns
        ]
    )


def _model(name: str, season: int) -> Any:
    return STATSFORECAST[name](1 if name in CAPPED and season > ETS_MAX_SEASON else season)


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


def _on(cluster: str, call: Any, subset: pl.DataFrame) -> pl.DataFrame:
    """statsforecast's `call(df=...)` over the series: here, or with `[forecast] cluster`
    one series partition per Dask worker (statsforecast's Fugue backend; its forecasts come
    back as float32 and are widened)."""
    if not cluster:
        return pl.DataFrame(call(df=subset))
    import dask.dataframe as dd

    from warehouse.forecasting import distributed

    workers = distributed.workers(cluster)
    frame = dd.from_pandas(subset.to_pandas(), npartitions=max(1, workers))  # type: ignore[no-untyped-call]
    found = pl.DataFrame(call(df=frame).compute())
    distributed.ran_statistical(cluster)
    return found.with_columns(pl.col(pl.Float32).cast(pl.Float64))


def _library(
    series: pl.DataFrame,
    names: list[str],
    season: int,
    horizon: int,
    threads: int,
    cluster: str = "",
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
        models = [_model(n, m) for n in names]
        n_series = subset["unique_id"].n_unique()
        engine = StatsForecast(
            models=models,
            freq=1,
            n_jobs=threads if n_series >= POOL_MIN_SERIES else 1,
            fallback_model=Naive(),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = _on(cluster, functools.partial(engine.forecast, h=horizon), subset)
        peak = subset.group_by("unique_id").agg(peak=pl.col("y").max())
        fc = _bounded(fc.join(peak, on="unique_id", how="left"), names)
        frames.append(fc.with_columns(horizon=pl.col("ds").cast(pl.Int32)).drop("ds", "peak"))
    return pl.concat(frames) if frames else pl.DataFrame()


def backtest_library(
    data: ForecastData,
    spec: ForecastSpec,
    cutoffs: list[date],
    names: list[str],
    final: bool = False,
    seconds: dict[str, float] | None = None,
) -> dict[date, pl.DataFrame]:
    """Library models' forecasts at every fold cutoff from one fit per series: parameters
    estimated on the history before the first cutoff, then carried forward through the data
    up to each later cutoff (statsforecast's cross_validation with refit=False). A fit per
    fold costs folds x more and changes little. Only series observed up to the last target
    period and long enough are done this way; fit_statistical fits the others per fold.
    `seconds`: each model's fit time is added under its name."""
    library = [n for n in names if n in FORWARD]
    if not library or not cutoffs:
        return {}
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    if not STATSFORECAST:
        _register()
    end = data.last_period
    step = spec.step
    windows = list(cutoffs)
    final = final and step == spec.horizon
    if final:
        windows.append(end)
    folds_size = spec.horizon + step * (len(cutoffs) - 1)
    # the same real history whether or not the final window rides along
    periods = max(PERIODS[spec.freq], 3 * spec.season + spec.horizon) + folds_size
    test_size = spec.horizon + step * (len(windows) - 1)
    series = _series(data, end, periods)
    if final:
        future = pl.DataFrame({"ds": np.arange(1, spec.horizon + 1), "y": 0.0})
        series = pl.concat(
            [series, series.select("unique_id").unique().join(future, how="cross")],
            how="vertical_relaxed",
        ).sort("unique_id", "ds")
    ends = data.demand.group_by("product_id").agg(pl.col("period").max())
    aligned = ends.filter(pl.col("period") == end)["product_id"].cast(pl.String)
    lengths = series.group_by("unique_id").agg(n=pl.len())
    out: dict[date, list[pl.DataFrame]] = {c: [] for c in windows}
    long_enough = pl.col("n") >= 2 * spec.season + test_size
    # the first window's fit needs some history of its own: 8 periods at least
    for m, fits in ((spec.season, long_enough), (1, ~long_enough & (pl.col("n") >= test_size + 8))):
        ids = lengths.filter(fits & pl.col("unique_id").is_in(aligned.implode()))
        subset = series.filter(pl.col("unique_id").is_in(ids["unique_id"].implode()))
        if subset.is_empty():
            continue
        cv: pl.DataFrame | None = None
        for name in library:  # one call a model, so the summary can say what each cost
            started = time.perf_counter()
            engine = StatsForecast(
                models=[_model(name, m)],
                freq=1,
                n_jobs=spec.threads if ids.height >= POOL_MIN_SERIES else 1,
                fallback_model=Naive(),
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                found = _on(
                    spec.cluster,
                    functools.partial(
                        engine.cross_validation,
                        h=spec.horizon,
                        n_windows=len(windows),
                        step_size=step,
                        refit=False,
                    ),
                    subset,
                )
            keys = ["unique_id", "ds", "cutoff"]
            cv = found if cv is None else cv.join(found.drop("y"), on=keys, how="left")
            if seconds is not None:
                seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
        assert cv is not None
        # each window's bound from the history before its own cutoff (no leakage)
        peaks = subset.sort("unique_id", "ds").select(
            "unique_id", cutoff="ds", peak=pl.col("y").cum_max().over("unique_id")
        )
        cv = _bounded(cv.join(peaks, on=["unique_id", "cutoff"], how="left"), library).drop("peak")
        # window cutoffs are integer periods before `end`, oldest first, like `windows`
        for cutoff, (_, part) in zip(
            windows, sorted(cv.group_by("cutoff"), key=lambda kv: kv[0][0]), strict=True
        ):
            out[cutoff].append(
                part.with_columns(horizon=(pl.col("ds") - pl.col("cutoff")).cast(pl.Int32)).drop(
                    "ds", "cutoff", "y"
                )
            )
    return {c: pl.concat(frames) for c, frames in out.items() if frames}


def _join(table: pl.DataFrame, forecasts: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Library forecasts (unique_id, horizon, one column per model) beside the windows'."""
    if forecasts.is_empty():
        return table
    keys = ["unique_id", "horizon"]
    return table.join(forecasts.select(*keys, *names), on=keys, how="left")


def fit_statistical(
    data: ForecastData,
    cutoff: date,
    spec: ForecastSpec,
    names: list[str],
    known: pl.DataFrame | None = None,
    only: set[str] | None = None,
) -> dict[str, Fitted]:
    """Every named statistical candidate fitted on each product's history up to `cutoff`;
    `known`: library forecasts at this cutoff already made (backtest_library) for some
    series, which are not fitted again; `only`: the products whose library forecasts are
    used (the refit after selection), the others are not fitted."""
    if not names:
        return {}
    periods = max(PERIODS[spec.freq], 3 * spec.season + spec.horizon)
    series = _series(data, cutoff, periods)
    table = _windows(series, names, spec.season, spec.horizon)
    library = [n for n in names if n in LIBRARY_MODELS]
    if only is not None:
        series = series.filter(pl.col("unique_id").is_in(sorted(only)))
    if library and not series.is_empty():
        carried = [n for n in library if n in known.columns] if known is not None else []
        if known is not None and carried:
            # the carried-forward forecasts, and a fit at this cutoff for the series they lack
            rest = series.filter(~pl.col("unique_id").is_in(known["unique_id"].implode()))
            parts = [known.select("unique_id", "horizon", *carried)]
            if not rest.is_empty():
                parts.append(
                    _library(rest, carried, spec.season, spec.horizon, spec.threads, spec.cluster)
                )
            table = _join(table, pl.concat(parts, how="diagonal_relaxed"), carried)
        per_fold = [n for n in library if n not in carried]
        if per_fold:
            fc = _library(series, per_fold, spec.season, spec.horizon, spec.threads, spec.cluster)
            table = _join(table, fc, per_fold)
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
