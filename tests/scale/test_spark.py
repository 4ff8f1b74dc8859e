"""The same project on Spark (local[2]): every published table equals the DuckDB build, for
each freq, in full and incrementally; audits gate the publish; and each construct DuckDB and
Spark read differently gives DuckDB's values (a regression test per silent difference).

Run by `just scale` (marker `scale`): a Spark JVM and 19 models per build are minutes, not
the main suite's seconds.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from conftest import (
    accepting,
    append_last_day,
    copy_project,
    edit,
    fail_orders_audit,
    free_port,
    published,
    rows,
    split_last_day,
    wh_command,
)
from equality import compare

from warehouse.config import EngineSettings, Settings, load_settings
from warehouse.errors import AuditError, ModelError
from warehouse.runtime.build import build
from warehouse.runtime.engine import spark_sql
from warehouse.runtime.engine.spark import Spark, session, view_name
from warehouse.runtime.plan import Action

pytestmark = pytest.mark.scale


@pytest.fixture(scope="module")
def spark() -> Iterator[Spark]:
    yield Spark(session(EngineSettings(name="spark", master="local[2]"), 2))


def on_spark(settings: Settings) -> Settings:
    return settings.with_overrides(engine="spark")


def twin(settings: Settings, name: str) -> Settings:
    """The same project and sources with its own warehouse."""
    return settings.with_overrides(warehouse=settings.warehouse.parent / name)


@pytest.mark.parametrize("freq", ["day", "week", "month"])
def test_every_published_table_equals_the_duckdb_build(
    tmp_path: Path, tiny_sources: Path, spark: Spark, freq: str
) -> None:
    project = copy_project(tmp_path / "p", tiny_sources, f'freq = "{freq}"\n')
    build(project)
    on = on_spark(twin(project, "spark"))
    result = build(on)
    assert result.status == "ok" and len(result.results) == 19
    assert compare(project.warehouse, on.warehouse) == {}
    # versions in wh's layout: Parquet files only, one folder per month for incremental models
    files = [p for p in (on.warehouse / "versions").rglob("*") if p.is_file()]
    assert files and all(p.suffix == ".parquet" for p in files)
    assert any("wh_month=" in str(p) for p in files)


def _forecast_history(settings: Settings, weekly_cutoffs: int = 2) -> pl.DataFrame:
    """Forecast rows as `wh forecast` publishes them, made up (deterministic, no model run):
    each product from cutoffs one and two weeks before the last period, 14 days ahead."""
    demand = pl.DataFrame(
        rows(settings, "SELECT product_id, period FROM features.demand"),
        schema=["product_id", "period"],
        orient="row",
    )
    last = demand["period"].max()
    assert isinstance(last, date)
    frames = []
    for k in range(1, weekly_cutoffs + 1):
        cutoff = last - timedelta(days=7 * k)
        ahead = demand.filter(pl.col("period") == cutoff).select("product_id")
        steps = pl.DataFrame({"h": list(range(1, 15))})
        frames.append(
            ahead.join(steps, how="cross").select(
                "product_id",
                forecast_date=pl.lit(cutoff) + pl.duration(days=pl.col("h")),
                units_forecast=(
                    pl.col("h") % 3 + pl.col("product_id").cast(pl.String).str.len_chars() % 2
                ).cast(pl.Float64),
                units_p10=pl.lit(0.0),
                units_p50=(
                    pl.col("h") % 3 + pl.col("product_id").cast(pl.String).str.len_chars() % 2
                ).cast(pl.Float64),
                units_p90=(pl.col("h") % 3 + 2).cast(pl.Float64),
                cutoff_date=pl.lit(cutoff),
                model=pl.lit("made_up"),
                run_id=pl.lit(f"run-{k}"),
            )
        )
    return pl.concat(frames)


def test_forecast_accuracy_on_spark_equals_duckdb(project: Settings, spark: Spark) -> None:
    """marts.forecast_accuracy reads a table `wh forecast` publishes: with rows in it, its
    Spark build equals DuckDB's (windows over running sums, date_diff by freq, the seasonal
    naive join)."""
    from warehouse.runtime.publish import TableWrite, publish_tables
    from warehouse.runtime.state import open_state

    build(project)
    history = _forecast_history(project)
    on = on_spark(twin(project, "spark"))
    for settings in (project, on):
        state = open_state(settings)
        try:
            write = TableWrite(history)
            publish_tables(settings, state, {"forecast.demand_forecast_history": write}, "t", "t")
        finally:
            state.close()
    build(project)
    result = build(on)
    assert "marts.forecast_accuracy" in {r.plan.model.name for r in result.results}
    scored = rows(project, "SELECT count(*), count(naive_forecast) FROM marts.forecast_accuracy")
    assert scored[0][0] > 0 and scored[0][1] > 0
    assert compare(project.warehouse, on.warehouse) == {}


def test_incremental_on_spark_equals_a_full_build(project: Settings, spark: Spark) -> None:
    split_last_day(project.sources)
    on = on_spark(project)
    build(on)
    append_last_day(project.sources)
    result = build(on)
    extended = {r.plan.model.name for r in result.results if r.plan.action is Action.INCREMENTAL}
    assert {"checks.orders", "features.demand", "features.demand_features"} <= extended
    fresh = twin(project, "fresh")
    build(fresh)  # DuckDB, from nothing
    assert compare(fresh.warehouse, on.warehouse) == {}


def test_erasure_requests_on_spark_equal_duckdb(project: Settings, spark: Spark) -> None:
    """Spark reads the sources through the erasure filter too (`spark_runner._erased`): the
    customers' rows go, their orders stay as guest orders, as on DuckDB; incremental runs
    after the request read new files through it as well."""
    split_last_day(project.sources)
    late = pl.read_parquet(project.sources / ".held-orders.parquet")
    customers = late.filter(pl.col("customer_id").is_not_null())["customer_id"].cast(pl.Utf8)
    erased = sorted(set(customers.to_list()))[:2]
    pl.DataFrame({"customer_id": erased, "requested_at": [None] * len(erased)}).with_columns(
        pl.col("requested_at").cast(pl.Date)
    ).write_parquet(project.sources / "erasures.parquet")
    on = on_spark(project)
    build(on)
    append_last_day(project.sources)
    result = build(on)
    assert "checks.orders" in {
        r.plan.model.name for r in result.results if r.plan.action is Action.INCREMENTAL
    }
    fresh = twin(project, "fresh")
    build(fresh)  # DuckDB, from nothing
    assert compare(fresh.warehouse, on.warehouse) == {}
    quoted = ", ".join(repr(e) for e in erased)
    assert rows(on, f"SELECT count(*) FROM staging.customers WHERE customer_id IN ({quoted})") == [
        (0,)
    ]
    assert rows(on, f"SELECT count(*) FROM checks.orders WHERE customer_id IN ({quoted})") == [(0,)]


def test_a_failing_audit_on_spark_leaves_the_published_environment_unchanged(
    project: Settings, spark: Spark
) -> None:
    on = on_spark(project)
    build(on)
    before = published(on)
    fail_orders_audit(on)
    with pytest.raises(AuditError) as failure:
        build(on)
    assert failure.value.model == "staging.orders" and failure.value.count > 0
    assert published(on) == before


# -- each construct the two engines read differently, on both engines ----------------------

DAYS = [date(2024, 1, 1) + timedelta(days=i) for i in range(0, 400, 13)]
ROWS = pl.DataFrame(
    {
        "d": DAYS,
        "d2": [date(2025, 3, 31) if i % 2 else date(2023, 12, 31) for i in range(len(DAYS))],
        "t": [datetime(2024, 1, 1, 23, 0) for _ in DAYS],
        "t2": [datetime(2024, 1, 2, 1, 0) for _ in DAYS],
        "x": [float(i) for i in range(len(DAYS) - 4)] + [math.nan, math.inf, -math.inf, None],
    }
)


def both(tmp_path: Path, spark: Spark, expression: str) -> tuple[list[Any], list[Any]]:
    """The expression over the same rows in DuckDB and, translated, on Spark."""
    path = tmp_path / "rows.parquet"
    ROWS.write_parquet(path)
    query = f"SELECT d, {expression} AS v FROM source.t ORDER BY d"
    con = duckdb.connect()
    con.execute("CREATE SCHEMA source")
    con.execute(f"CREATE VIEW source.t AS SELECT * FROM read_parquet('{path}')")
    duck = [r[1] for r in con.execute(query).fetchall()]
    spark.view_over_files(view_name("source", "t"), [path])
    columns = [(c, None) for c in ROWS.columns]
    text = spark_sql.translate(query, {}, view_name, lambda s, t: columns)
    return duck, [r[1] for r in spark.sql(text).collect()]


@pytest.mark.parametrize(
    "expression",
    [
        "isodow(d)",  # sqlglot writes (dayofweek(d) % 7) + 1: off by one for six days in seven
        "isodow(d) >= 6",  # is_weekend of demand_features
        "dayofweek(d)",  # DuckDB: 0 = Sunday; Spark: 1 = Sunday
        "date_diff('month', d, d2)",  # DuckDB counts month boundaries, Spark whole months
        "datediff('month', d, d2)",
        "date_diff('quarter', d, d2)",
        "date_diff('year', d, d2)",
        "date_diff('week', d, d2)",
        "date_diff('day', t, t2)",  # 23:00 to 01:00 the next day is one day in DuckDB
        "isfinite(x)",  # no Spark function; NaN and infinities are not finite, null stays null
    ],
)
def test_each_silent_difference_gives_duckdbs_values(
    tmp_path: Path, spark: Spark, expression: str
) -> None:
    duck, on_spark_values = both(tmp_path, spark, expression)
    assert on_spark_values == duck


def test_a_python_model_too_large_for_the_driver_is_refused(
    project: Settings, spark: Spark
) -> None:
    """Without partition_by a Python model runs on the driver: above [engine]
    driver_max_rows input rows the build stops and says what to do."""
    toml = project.project_dir / "wh.toml"
    toml.write_text(toml.read_text() + "[engine]\ndriver_max_rows = 10\n")
    edit(project, "pipeline/demand_stats.py", lambda s: s.replace('partition_by="product_id",', ""))
    on = on_spark(load_settings(project.project_dir))
    with pytest.raises(
        ModelError,
        match=r"demand_stats\.py:\d+: Python model reads [\d,]+ input "
        r"rows; on Spark a Python model runs on the driver, which takes at most 10",
    ):
        build(on)


def test_a_python_model_with_partition_by_runs_per_group_on_the_workers(
    project: Settings, spark: Spark
) -> None:
    """The function sees one product per call, in a Python worker process (not the driver),
    and its rows equal the DuckDB build's, which runs it once over every product."""
    (project.project_dir / "pipeline" / "per_product.py").write_text(
        "import os\n"
        "import polars as pl\n"
        "from warehouse.python_model import model\n\n\n"
        '@model("features.per_product", inputs=["features.demand"], partition_by="product_id")\n'
        "def per_product(demand: pl.LazyFrame) -> pl.DataFrame:\n"
        "    frame = demand.collect()\n"
        "    return frame.group_by('product_id').agg(\n"
        "        units=pl.col('units').sum(), periods=pl.len()\n"
        "    ).with_columns(\n"
        "        products_in_call=pl.lit(frame['product_id'].n_unique(), pl.Int64),\n"
        "        pid=pl.lit(os.getpid(), pl.Int64),\n"
        "    )\n\n\n"
        "# no partition_by, and its input a view: on the driver, the view computed by Spark\n"
        '@model("features.categories", inputs=["staging.products"])\n'
        "def categories(products: pl.LazyFrame) -> pl.LazyFrame:\n"
        "    return products.group_by('category').agg(products=pl.len()).sort('category')\n"
    )
    on = on_spark(project)
    build(on)
    from conftest import rows

    seen = rows(
        on,
        "SELECT product_id, units, periods, products_in_call, pid FROM "
        "features.per_product ORDER BY product_id",
    )
    assert seen and {r[3] for r in seen} == {1}  # one product per call
    assert os.getpid() not in {r[4] for r in seen}  # not on the driver
    fresh = twin(project, "duck")
    build(fresh)
    # periods: Polars' len() is UInt32, widened to BIGINT on both engines
    assert rows(on, "DESCRIBE features.per_product") == rows(fresh, "DESCRIBE features.per_product")
    categories = "SELECT * FROM features.categories ORDER BY category"
    assert rows(on, categories) == rows(fresh, categories) and rows(on, categories)
    assert [r[:3] for r in seen] == [
        r[:3]
        for r in rows(
            fresh, "SELECT product_id, units, periods FROM features.per_product ORDER BY product_id"
        )
    ]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Spark Connect server (the jar ships in pyspark), started in the foreground
    on a free port; its Python workers run this interpreter."""
    import pyspark

    home = Path(pyspark.__file__).parent
    port = free_port()
    logs = tmp_path_factory.mktemp("connect")
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOG_DIR": str(logs),
        "SPARK_PID_DIR": str(logs),
    }
    server = subprocess.Popen(
        [
            "bash",
            str(home / "sbin" / "start-connect-server.sh"),
            "--wait",
            "--master",
            "local[2]",
            "--conf",
            f"spark.connect.grpc.binding.port={port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not accepting(port):
            assert server.poll() is None, "the Spark Connect server exited"
            assert time.monotonic() < deadline, "the Spark Connect server did not start"
            time.sleep(0.5)
        yield f"sc://localhost:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def wh_build(settings: Settings, **env: str) -> subprocess.CompletedProcess[str]:
    """`wh build --engine spark` in its own process: one process holds one Spark session,
    and this one has a local session (the `spark` fixture); a remote one cannot join it."""
    return subprocess.run(
        wh_command(settings, "build", "--quiet", "--engine", "spark"),
        env={**os.environ, "WH_WAREHOUSE": str(settings.warehouse), **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_project_on_spark_connect_equals_the_duckdb_build(
    tmp_path: Path, tiny_sources: Path, connect_server: str
) -> None:
    """`remote = "sc://..."`: the client in the wh process, the work in the server's."""
    project = copy_project(
        tmp_path / "p", tiny_sources, more_toml=f'[engine]\nremote = "{connect_server}"\n'
    )
    build(project)
    on = twin(project, "connect")
    done = wh_build(on)
    assert done.returncode == 0, done.stderr
    assert compare(project.warehouse, on.warehouse) == {}
    # the endpoint is what ran it: one nobody listens on fails the build, publishing nothing
    edit(on, "sql/staging/orders.sql", lambda s: s.replace("o.status,", "o.status, 1 as n,"))
    failed = wh_build(on, WH_SPARK_REMOTE=f"sc://localhost:{free_port()}")
    assert failed.returncode == 2 and "cannot reach the Spark Connect endpoint" in failed.stderr
    assert compare(project.warehouse, on.warehouse) == {}
