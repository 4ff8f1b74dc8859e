"""Scale: staging -> demand -> demand_features at M5's shape (30,490 products x 1,941 days in
the full set), against the raw floor (the same statements, Parquet in and out, one DuckDB
process), then an incremental build after one more day of orders arrives; peak RSS of each.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb

from bench.common import (
    CACHE,
    Result,
    example_project,
    fresh_dir,
    full_build_query,
    run_command,
    wh,
)
from bench.dbt_bench import _literal, sources_for, values_of_a_full_build
from warehouse.config import load_settings
from warehouse.interfaces.demo import DemoSpec
from warehouse.project.loader import load_project
from warehouse.project.model import ModelKind
from warehouse.runtime.engine.duckdb import parquet_scan, quote_literal
from warehouse.runtime.sources import CONTRACTS, load_sources

TARGET = "features.demand_features"
MEMORY_LIMIT = "3GB"


def _split_last_day(sources: Path, out: Path) -> Path:
    """A copy of `sources` whose orders/order_items are part folders without the last day;
    returns the folder holding that day's parts, to be added for the incremental build."""
    fresh_dir(out)
    held = fresh_dir(out.parent / f"{out.name}-last-day")
    con = duckdb.connect(config={"threads": 2, "memory_limit": MEMORY_LIMIT})
    last = con.sql(f"SELECT max(order_ts)::date FROM '{sources}/orders.parquet'").fetchall()[0][0]
    for path in sources.glob("*.parquet"):
        if path.stem not in ("orders", "order_items"):
            shutil.copy(path, out / path.name)
    late = f"SELECT order_id FROM '{sources}/orders.parquet' WHERE order_ts::date = DATE '{last}'"
    for name, early, recent in (
        (
            "orders",
            f"SELECT * FROM '{sources}/orders.parquet' WHERE order_ts::date < DATE '{last}'",
            f"SELECT * FROM '{sources}/orders.parquet' WHERE order_ts::date = DATE '{last}'",
        ),
        (
            "order_items",
            f"SELECT * FROM '{sources}/order_items.parquet' WHERE order_id NOT IN ({late})",
            f"SELECT * FROM '{sources}/order_items.parquet' WHERE order_id IN ({late})",
        ),
    ):
        (out / name).mkdir()
        con.execute(f"COPY ({early}) TO '{out / name / 'part-0.parquet'}' (FORMAT parquet)")
        con.execute(f"COPY ({recent}) TO '{held / f'{name}.parquet'}' (FORMAT parquet)")
    con.close()
    return held


def _project(root: Path, sources: Path) -> Path:
    """The example project cut down to demand_features and what it reads."""
    example_project(root, sources, f'memory_limit = "{MEMORY_LIMIT}"\n')
    project = load_project(load_settings(root))
    needed = project.dag.ancestors(TARGET) | {TARGET}
    for name, model in project.models.items():
        if name not in needed:
            model.path.unlink()
    return root


FLOOR_SCRIPT = """
import sys, time, duckdb
statements = open(sys.argv[1]).read().split(";\\n-- next\\n")
con = duckdb.connect(config={"threads": 2, "memory_limit": "%s",
                             "preserve_insertion_order": False})
con.execute("SET TimeZone = 'UTC'")
started = time.perf_counter()
for statement in statements:
    con.execute(statement)
print(time.perf_counter() - started)
"""


def _floor_statements(root: Path, out: Path) -> list[str]:
    """What wh computes for +features.demand_features, as plain statements: views over the
    sources, then each model COPYed to Parquet with a view over the file."""
    settings = load_settings(root)
    project = load_project(settings)
    values = values_of_a_full_build(settings)
    needed = project.dag.ancestors(TARGET) | {TARGET}
    statements = ["CREATE SCHEMA source"]
    for name, src in load_sources(settings.sources, CONTRACTS).items():
        select = src.empty_select() if src.absent else f"SELECT * FROM {parquet_scan(src.files)}"
        statements.append(f"CREATE VIEW source.{name} AS {select}")
    fresh_dir(out)
    for model in project.ordered():
        if model.name not in needed:
            continue
        statements.append(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
        query = full_build_query(model)
        for param in sorted(model.parameters, key=len, reverse=True):
            query = query.replace(f"${param}", _literal(values[param]))
        if model.kind is ModelKind.VIEW:
            statements.append(f"CREATE VIEW {model.name} AS {query}")
            continue
        path = out / f"{model.name}.parquet"
        statements.append(
            f"COPY ({query}\n) TO {quote_literal(str(path))} (FORMAT parquet, COMPRESSION zstd)"
        )
        statements.append(f"CREATE VIEW {model.name} AS SELECT * FROM {parquet_scan([path])}")
    return statements


def run(full: bool) -> list[Result]:
    spec = (
        DemoSpec.ending_in_the_past(1941, products=30490, customers=100_000, seed=5)
        if full
        else DemoSpec(products=3000, customers=20_000, days=730, seed=5)
    )
    started = time.perf_counter()
    sources = sources_for(spec)
    generated = time.perf_counter() - started
    base = CACHE / ("scale-full" if full else "scale")
    split = base / "sources"
    held = _split_last_day(sources, split)
    root = _project(base / "project", split)
    settings = load_settings(root)

    build = run_command(wh("--project", str(root), "build", "--quiet"))
    con = duckdb.connect(str(settings.warehouse / "warehouse.duckdb"), read_only=True)
    feature_rows = con.sql(f"SELECT count(*) FROM {TARGET}").fetchall()[0][0]
    lines = con.sql("SELECT count(*) FROM staging.order_items").fetchall()[0][0]
    con.close()

    floor_sql = base / "floor.sql"
    floor_sql.write_text(";\n-- next\n".join(_floor_statements(root, base / "floor")))
    script = base / "floor.py"
    script.write_text(FLOOR_SCRIPT % MEMORY_LIMIT)
    floor = run_command(["python", str(script), str(floor_sql)])
    floor_seconds = float(floor.stdout.strip().splitlines()[-1])

    for name in ("orders", "order_items"):
        shutil.copy(held / f"{name}.parquet", split / name / "part-1.parquet")
    incremental = run_command(wh("--project", str(root), "build", "--quiet"))

    shape = (
        f"{spec.products:,} products x {spec.days:,} days: {lines / 1e6:.1f}M order lines, "
        f"{feature_rows / 1e6:.1f}M feature rows (generated in {generated:.0f} s, cached)"
    )
    return [
        Result(
            "scale: full feature build vs raw floor",
            build.seconds,
            floor.seconds,
            "s",
            "<= 1.3x floor",
            build.seconds <= 1.3 * floor.seconds,
            note=f"{shape}; floor = the same statements in one DuckDB process, Parquet in and "
            f"out ({floor_seconds:.1f} s of SQL), wall time of both processes",
        ),
        Result(
            "scale: peak RSS of the full build",
            build.peak_rss_mb,
            floor.peak_rss_mb,
            "MB",
            "<= 4096 MB",
            build.peak_rss_mb <= 4096,
            note=f"memory_limit {MEMORY_LIMIT} in wh.toml; DuckDB spills beyond it",
        ),
        Result(
            "scale: one new day, incremental vs full",
            incremental.seconds,
            build.seconds,
            "s",
            "<= 0.05x full",
            incremental.seconds <= 0.05 * build.seconds,
            note=f"peak RSS {incremental.peak_rss_mb:.0f} MB",
        ),
    ]
