"""Accuracy vs peers on identical folds: wh's published backtest (its winning model) against
statsforecast (AutoETS, SeasonalNaive, CrostonOptimized) and mlforecast (LightGBM on its own
lag features), per demand shape (the Syntetos-Boylan class wh computes, and promoted rows),
with the generator's expected demand as the oracle floor.

Every peer sees exactly the history wh saw at each fold's cutoff (features.demand, zero
filled) and forecasts the same products and days."""

from __future__ import annotations

import time
import warnings

import duckdb
import numpy as np
import pandas as pd

from bench.common import CACHE, Result, example_project, run_command, wh
from bench.dbt_bench import sources_for
from warehouse.interfaces.demo import DemoSpec


def _wape(actual: np.ndarray, predicted: np.ndarray) -> float:
    total = float(np.abs(actual).sum())
    return float(np.abs(actual - predicted).sum() / total) if total else float("nan")


def _peer_forecasts(
    history: pd.DataFrame, cutoffs: list[object], horizon: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Forecasts of every peer for every fold: (unique_id, ds, cutoff, model columns)."""
    import lightgbm as lgb
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, CrostonOptimized, SeasonalNaive

    seconds = {
        "AutoETS": 0.0,
        "SeasonalNaive": 0.0,
        "CrostonOptimized": 0.0,
        "mlforecast_lgbm": 0.0,
    }
    frames = []
    for cutoff in cutoffs:
        train = history[history["ds"] <= pd.Timestamp(cutoff)]
        # series need two seasons of history for ETS; shorter ones are left to the others
        out = None
        for model in (AutoETS(season_length=7), SeasonalNaive(season_length=7), CrostonOptimized()):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fc = StatsForecast(models=[model], freq="D", n_jobs=1).forecast(df=train, h=horizon)
            seconds[str(model)] += time.perf_counter() - started
            fc = fc.reset_index() if "unique_id" not in fc.columns else fc
            out = fc if out is None else out.merge(fc, on=["unique_id", "ds"], how="outer")
        started = time.perf_counter()
        ml = MLForecast(
            models={
                "mlforecast_lgbm": lgb.LGBMRegressor(
                    n_estimators=300, learning_rate=0.05, verbose=-1, n_jobs=2
                )
            },
            freq="D",
            lags=[1, 7, 14, 28],
            lag_transforms={1: [RollingMean(window_size=7), RollingMean(window_size=28)]},
            date_features=["dayofweek", "month"],
        )
        ml.fit(train)
        preds = ml.predict(horizon)
        seconds["mlforecast_lgbm"] += time.perf_counter() - started
        assert out is not None
        out = out.merge(preds, on=["unique_id", "ds"], how="outer")
        out["cutoff"] = pd.Timestamp(cutoff)
        frames.append(out)
    return pd.concat(frames, ignore_index=True), seconds


def run(full: bool) -> list[Result]:
    spec = DemoSpec(
        products=300 if full else 100, customers=3000 if full else 1000, days=730, seed=21
    )
    sources = sources_for(spec)
    root = example_project(CACHE / "accuracy" / "project", sources)
    run_command(wh("--project", str(root), "build", "--quiet"))
    started = time.perf_counter()
    run_command(wh("--project", str(root), "forecast", "--horizon", "28"))
    wh_seconds = time.perf_counter() - started

    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    # what wh published: one model for every product, or the per-product selection (whose
    # backtest rows, model 'selected', are each fold chosen on the other folds)
    published = [
        m for (m,) in con.sql("SELECT DISTINCT model FROM forecast.demand_forecast").fetchall()
    ]
    winner = published[0] if len(published) == 1 else "selected"
    backtest = con.sql(
        "SELECT b.cutoff_date, b.product_id, b.forecast_date, b.units_forecast AS wh, "
        "b.units_actual AS actual, s.demand_class, "
        "coalesce(d.on_promo, false) AS on_promo "
        "FROM forecast.demand_backtest b "
        "LEFT JOIN features.product_demand_stats s USING (product_id) "
        "LEFT JOIN features.demand d ON d.product_id = b.product_id AND d.period = b.forecast_date "
        f"WHERE b.model = '{winner}'"
    ).df()
    history = con.sql(
        "SELECT product_id AS unique_id, period AS ds, units::DOUBLE AS y FROM features.demand "
        "ORDER BY 1, 2"
    ).df()
    con.close()
    history["ds"] = pd.to_datetime(history["ds"])
    truth = pd.read_parquet(sources.parent / "truth.parquet")
    truth = truth.rename(columns={"date": "forecast_date", "expected_units": "oracle"})
    truth["product_id"] = truth["product_id"].astype(str)

    cutoffs = sorted(backtest["cutoff_date"].unique())
    peers, peer_seconds = _peer_forecasts(history, cutoffs, 28)
    peers = peers.rename(
        columns={"unique_id": "product_id", "ds": "forecast_date", "cutoff": "cutoff_date"}
    )
    backtest["forecast_date"] = pd.to_datetime(backtest["forecast_date"])
    backtest["cutoff_date"] = pd.to_datetime(backtest["cutoff_date"])
    truth["forecast_date"] = pd.to_datetime(truth["forecast_date"])
    table = backtest.merge(peers, on=["cutoff_date", "product_id", "forecast_date"], how="left")
    table = table.merge(truth, on=["product_id", "forecast_date"], how="left")
    models = ["wh", "AutoETS", "SeasonalNaive", "CrostonOptimized", "mlforecast_lgbm", "oracle"]
    table[models] = table[models].fillna(0.0).clip(lower=0.0)

    shapes = {"all": table}
    for shape in ("smooth", "erratic", "intermittent", "lumpy"):
        part = table[table["demand_class"] == shape]
        if len(part):
            shapes[shape] = part
    shapes["promoted"] = table[table["on_promo"]]
    results = []
    lines = []
    for shape, part in shapes.items():
        actual = part["actual"].to_numpy(float)
        scores = {m: _wape(actual, part[m].to_numpy(float)) for m in models}
        peers_only = {m: v for m, v in scores.items() if m not in ("wh", "oracle")}
        best_peer = min(peers_only, key=lambda m: peers_only[m])
        lines.append(
            f"{shape} ({part['product_id'].nunique()} products): "
            + ", ".join(f"{m} {v:.3f}" for m, v in scores.items())
        )
        results.append(
            Result(
                f"accuracy: WAPE, {shape}, wh ({winner}) vs best peer ({best_peer})",
                scores["wh"],
                peers_only[best_peer],
                "WAPE",
                "<= best peer",
                scores["wh"] <= peers_only[best_peer],
                note=f"oracle (expected demand) {scores['oracle']:.3f}",
            )
        )
    timing = ", ".join(f"{m} {s:.1f} s" for m, s in peer_seconds.items())
    results[0].note += (
        f"; {len(cutoffs)} folds x 28 days; wh forecast (every candidate, quantiles) "
        f"{wh_seconds:.0f} s; peers: {timing}"
    )
    for line in lines:
        print("   ", line)
    return results
