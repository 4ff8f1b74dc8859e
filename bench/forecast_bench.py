"""Forecast at scale: `wh forecast` on the scale benchmark's warehouse (28-day horizon, two
backtest folds): wall time, peak RSS and WAPE against seasonal naive and the oracle."""

from __future__ import annotations

import duckdb

from bench import scale_bench
from bench.common import CACHE, Result, run_command, wh

FORECAST = """
[forecast]
horizon = 28
folds = 2
train_periods = 365
origin_step = 14
customers = false
models = ["seasonal_naive", "moving_average", "lightgbm"]
[forecast.lightgbm]
num_boost_round = 300
"""


def run(full: bool) -> list[Result]:
    base = CACHE / ("scale-full" if full else "scale")
    root = base / "project"
    if not (root / "warehouse" / "warehouse.duckdb").exists():
        scale_bench.run(full)
    config = root / "wh.toml"
    text = config.read_text().split("\n[forecast]")[0]
    config.write_text(text.rstrip() + "\n" + FORECAST)
    truth = max(base.parent.glob(f"data-{30490 if full else 3000}p-*")) / "truth.parquet"
    done = run_command(wh("--project", str(root), "forecast", "--against-truth", str(truth)))
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    wape = dict(
        con.sql(
            "SELECT model, avg(wape) FROM forecast.forecast_metrics "
            "WHERE scope = 'overall' AND horizon IS NULL GROUP BY model"
        ).fetchall()
    )
    rows = con.sql("SELECT count(*) FROM features.demand_features").fetchall()[0][0]
    con.close()
    best = min(wape, key=lambda m: wape[m])
    return [
        Result(
            "forecast at scale: wh forecast wall time",
            done.seconds,
            None,
            "s",
            "<= 900 s",
            done.seconds <= 900,
            note=f"{rows / 1e6:.1f}M feature rows, 2 folds x 28 days, lightgbm 300 rounds with "
            f"early stopping, origins every 14 days within 365 days, at most 2M training rows "
            f"per fit (max_train_rows: a seeded sample of product-origins); peak RSS "
            f"{done.peak_rss_mb:,.0f} MB",
        ),
        Result(
            f"forecast at scale: WAPE, {best} vs seasonal naive",
            wape[best],
            wape.get("seasonal_naive"),
            "WAPE",
            "(reference)",
            None,
            note=", ".join(f"{m} {v:.3f}" for m, v in sorted(wape.items())),
        ),
    ]
