"""Serving: rows/s through `wh serve` with psycopg vs direct DuckDB, and small-query latency
with 16 concurrent clients.

The table has the shape of forecast.demand_forecast_history (a text id, two dates, four
doubles, two texts) and is a real published model, built by `wh build`."""

from __future__ import annotations

import shutil
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import psycopg

from bench.common import CACHE, REPO, Result, fresh_dir, median_seconds, wh

WIDE = """-- kind: full
-- description: forecast-history-shaped rows for the serving benchmark
select
    'P' || lpad((i % 30490)::varchar, 5, '0') as product_id,
    date '2024-01-01' + (i // 30490)::int as forecast_date,
    (i % 97) * 0.37 as units_forecast,
    (i % 97) * 0.21 as units_p10,
    (i % 97) * 0.33 as units_p50,
    (i % 97) * 0.52 as units_p90,
    date '2023-12-31' as cutoff_date,
    'lightgbm' as model,
    'run-0001' as run_id
from range({rows}) t(i)
"""
SMALL = "select * from bench.wide where product_id = %s and forecast_date < date '2024-01-29'"


def _project(rows: int) -> Path:
    root = fresh_dir(CACHE / "serve")
    (root / "sql" / "bench").mkdir(parents=True)
    (root / "sql" / "bench" / "wide.sql").write_text(WIDE.format(rows=rows))
    (root / "sources").mkdir()
    (root / "wh.toml").write_text(
        '[project]\nsources = "sources"\nwarehouse = "warehouse"\nthreads = 2\n'
    )
    # only the one model: no demo sources needed
    subprocess.run(wh("--project", str(root), "build", "--quiet"), check=True)
    return root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int) -> None:
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("wh serve did not start")


def _direct(root: Path) -> int:
    """DuckDB's own Python client into tuples, as psycopg delivers them."""
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    cursor = con.execute("select * from bench.wide")
    count = 0
    while batch := cursor.fetchmany(100_000):
        count += len(batch)
    con.close()
    return count


def _direct_arrow(root: Path) -> int:
    con = duckdb.connect(str(root / "warehouse" / "warehouse.duckdb"), read_only=True)
    count = sum(b.num_rows for b in con.sql("select * from bench.wide").to_arrow_reader(100_000))
    con.close()
    return count


def _through_server(dsn: str) -> int:
    count = 0
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        for _ in cur.stream("select * from bench.wide", size=10_000):
            count += 1
    return count


def _latencies(dsn: str | Path, clients: int, queries: int) -> list[float]:
    """Each of `clients` threads runs `queries` small queries: through wh serve (a DSN) or
    on its own cursor of one direct read-only DuckDB connection (a catalog path)."""
    times: list[float] = []
    lock = threading.Lock()
    direct = duckdb.connect(str(dsn), read_only=True) if isinstance(dsn, Path) else None

    def client(index: int) -> None:
        mine = []
        if direct is not None:
            cursor = direct.cursor()
            for q in range(queries):
                started = time.perf_counter()
                cursor.execute(SMALL.replace("%s", "?"), [_product(index, q, queries)]).fetchall()
                mine.append(time.perf_counter() - started)
        else:
            with psycopg.connect(str(dsn), autocommit=True) as conn:
                for q in range(queries):
                    started = time.perf_counter()
                    conn.execute(SMALL, [_product(index, q, queries)]).fetchall()
                    mine.append(time.perf_counter() - started)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if direct is not None:
        direct.close()
    return sorted(times)


def _product(client: int, query: int, per_client: int) -> str:
    return f"P{(client * per_client + query) % 30490:05d}"


def _percentiles(times: list[float]) -> tuple[float, float]:
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def run(full: bool) -> list[Result]:
    rows = 10_000_000 if full else 2_000_000
    repeat = 3
    root = _project(rows)
    port = _free_port()
    server = subprocess.Popen(
        wh("--project", str(root), "serve", "--port", str(port)),
        stdout=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        _wait(port)
        dsn = f"host=127.0.0.1 port={port} user=wh dbname=prod"
        assert _through_server(dsn) == rows == _direct(root)
        direct_s, _ = median_seconds(lambda: _direct(root), repeat)
        arrow_s, _ = median_seconds(lambda: _direct_arrow(root), repeat)
        served_s, _ = median_seconds(lambda: _through_server(dsn), repeat)
        p50, p99 = _percentiles(_latencies(dsn, clients=16, queries=40))
        catalog = root / "warehouse" / "warehouse.duckdb"
        direct_p50, direct_p99 = _percentiles(_latencies(catalog, clients=16, queries=40))
    finally:
        server.terminate()
        server.wait(timeout=30)
    shutil.rmtree(root / "warehouse" / "tmp", ignore_errors=True)
    served_rate, direct_rate, arrow_rate = rows / served_s, rows / direct_s, rows / arrow_s
    return [
        Result(
            f"serve: fetch {rows / 1e6:.0f}M rows, psycopg vs direct DuckDB",
            served_rate,
            direct_rate,
            "rows/s",
            ">= 0.5x direct",
            served_rate >= 0.5 * direct_rate,
            note=f"median of {repeat}: wh serve {served_s:.1f} s, direct DuckDB fetchmany "
            f"{direct_s:.1f} s (both into Python tuples)",
        ),
        Result(
            f"serve: fetch {rows / 1e6:.0f}M rows, psycopg vs DuckDB to Arrow",
            served_rate,
            arrow_rate,
            "rows/s",
            "(reference)",
            None,
            note=f"direct DuckDB into Arrow {arrow_s:.1f} s: columnar, no Python objects",
        ),
        Result(
            "serve: small query, 16 clients, p50",
            p50,
            direct_p50,
            "ms",
            "<= 1.1x direct",
            p50 <= 1.1 * direct_p50,
            note="640 queries through psycopg (16 connections) vs 16 threads on cursors of one "
            "direct DuckDB connection; each query scans the table for one product",
        ),
        Result(
            "serve: small query, 16 clients, p99",
            p99,
            direct_p99,
            "ms",
            "<= 1.1x direct",
            p99 <= 1.1 * direct_p99,
        ),
    ]
