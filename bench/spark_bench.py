"""Scale-out: the whole example project built on Spark local[1] and local[2] and with DuckDB
(the 3,000-product quick data, 4.1 M order lines), and the global LightGBM trained on one
machine and on a Dask LocalCluster of 1 and 2 workers (the demo's data).

Runs in the dev environment (pyspark, dask): `python -m uv run just bench-spark`. Each
figure is a median of `REPEAT` runs; every ratio is within this run.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import duckdb

from bench.common import CACHE, Result, example_project, fresh_dir, run_command, wh
from bench.dbt_bench import sources_for
from warehouse.interfaces.demo import DemoSpec

REPEAT = 3
MEMORY = "4g"  # Spark's driver (local mode: the executors too) and DuckDB alike
FORECAST_SCRIPT = """
import sys, time, warehouse as wh
from warehouse.forecasting.run import forecast
if __name__ == "__main__":
    settings = wh.settings(sys.argv[1])
    started = time.perf_counter()
    result = forecast(settings, models=["lightgbm"], force=True)
    print(time.perf_counter() - started, result.scores["lightgbm"]["wape"])
"""


def _counts(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True)
    try:
        views = con.execute(
            "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        return {v: con.execute(f"SELECT count(*) FROM {v}").fetchall()[0][0] for (v,) in views}
    finally:
        con.close()


def _build(root: Path, name: str, engine: dict[str, str]) -> tuple[float, float, Path]:
    """Median wall seconds and peak RSS of a full build from nothing, and its warehouse."""
    seconds, rss = [], []
    warehouse = root / name
    for _ in range(REPEAT):
        fresh_dir(warehouse)
        env = {**os.environ, "WH_WAREHOUSE": str(warehouse), **engine}
        done = run_command(wh("--project", str(root), "build", "--quiet"), env=env)
        seconds.append(done.seconds)
        rss.append(done.peak_rss_mb)
    return statistics.median(seconds), max(rss), warehouse


def _training(base: Path) -> dict[str, tuple[float, float]]:
    """Seconds of `wh forecast` (LightGBM only, every fold and the refit) and backtest WAPE:
    on one machine, and on Dask LocalClusters of 1 and 2 single-threaded workers."""
    sources = sources_for(DemoSpec())
    script = base / "forecast.py"
    script.write_text(FORECAST_SCRIPT)
    found = {}
    for cluster in ("", "local:1", "local:2"):
        root = base / f"train-{cluster.replace(':', '') or 'one'}"
        forecast = "[forecast]\ncustomers = false\n" + (
            f'cluster = "{cluster}"\n' if cluster else ""
        )
        example_project(root, sources, more_toml=forecast)
        run_command(wh("--project", str(root), "build", "--quiet"))
        runs = [
            run_command([sys.executable, str(script), str(root)]).stdout.split()[-2:]
            for _ in range(REPEAT)
        ]
        found[cluster or "one machine"] = (
            statistics.median(float(r[0]) for r in runs),
            float(runs[0][1]),
        )
    return found


def run(full: bool) -> list[Result]:
    spec = DemoSpec(products=3000, customers=20_000, days=730, seed=5)
    sources = sources_for(spec)
    base = CACHE / "spark"
    root = example_project(
        base / "project",
        sources,
        f'memory_limit = "{MEMORY.upper()}B"\n[engine.conf]\n"spark.driver.memory" = "{MEMORY}"\n',
    )
    started = time.perf_counter()
    duck, duck_rss, duck_wh = _build(root, "duckdb", {"WH_ENGINE": "duckdb"})
    one, _, one_wh = _build(root, "spark1", {"WH_ENGINE": "spark", "WH_SPARK_MASTER": "local[1]"})
    two, two_rss, two_wh = _build(
        root, "spark2", {"WH_ENGINE": "spark", "WH_SPARK_MASTER": "local[2]"}
    )
    builds = time.perf_counter() - started
    counts = _counts(duck_wh)
    same = counts == _counts(one_wh) == _counts(two_wh)
    lines = counts["staging.order_items"]
    training = _training(base)
    single, single_wape = training["one machine"]
    dask1, wape1 = training["local:1"]
    dask2, wape2 = training["local:2"]
    shape = (
        f"{spec.products:,} products x {spec.days} days, {lines / 1e6:.1f} M order lines, "
        f"17 models; medians of {REPEAT} builds from nothing, JVM start included "
        f"({builds:.0f} s for all); published row counts equal on all three: {same}"
    )
    per_core = [lines / one / 1e3, lines / two / 2 / 1e3]
    return [
        Result(
            "spark: full build on local[2] vs DuckDB (2 threads)",
            two,
            duck,
            "s",
            "report",
            None,
            note=f"{shape}; peak RSS of the wh process {two_rss:.0f} MB vs {duck_rss:.0f} MB "
            "(the JVM, which does the work, is not counted: it is not wh's waited child)",
        ),
        Result(
            "spark: local[1] vs local[2] (scaling with cores)",
            one,
            two,
            "s",
            "report",
            None,
            note=f"throughput per core: {per_core[0]:.0f}k lines/s on 1 core, "
            f"{per_core[1]:.0f}k lines/s per core on 2",
        ),
        Result(
            "dask: LightGBM training on 2 workers vs 1 (LocalCluster)",
            dask2,
            dask1,
            "s",
            "report; WAPE within 2 % of one machine",
            abs(wape2 - single_wape) <= 0.02 * single_wape,
            note=f"one machine (2 threads) {single:.1f} s; backtest WAPE {single_wape:.4f} "
            f"one machine, {wape1:.4f} on 1 worker, {wape2:.4f} on 2 (demo data, 100 "
            "products x 730 days; wh forecast --models lightgbm, folds and refit)",
        ),
    ]
