"""`wh plan --engine spark` and [engine] settings: what Spark cannot run is listed at plan time
with file:line:col, before any Spark starts (no JVM here: these run in the main suite)."""

from __future__ import annotations

import json

import pytest
from test_cli import wh

from warehouse.config import Settings, load_settings
from warehouse.errors import ConfigError, ModelError
from warehouse.runtime.build import build


def test_plan_on_spark_translates_every_model_of_the_example_project(project: Settings) -> None:
    code, out, _ = wh(project, "plan", "--engine", "spark", "--sql", "features.demand")
    assert code == 0, out
    assert "spark: all 18 SQL models to compute translate." in out
    # the Spark SQL of a model: parameters bound, tables replaced by the build's views
    assert "-- features.demand on Spark" in out
    assert "wh__staging__order_items" in out and "$freq" not in out


def test_plan_on_spark_names_file_line_and_column_of_what_cannot_run(project: Settings) -> None:
    path = project.project_dir / "sql" / "marts" / "hours.sql"
    path.write_text(
        "-- kind: full\n"
        "select order_id,\n"
        "    date_diff('hour', order_ts, order_ts) as hours,\n"
        "    to_json(o) as row\n"
        "from staging.orders as o\n"
    )
    code, out, _ = wh(project, "plan", "--engine", "spark")
    assert code == 1
    assert f"{path}:3:5: date_diff('hour', order_ts, order_ts)" in out
    assert f"{path}:4:5: to_json(o)" in out
    code, out, _ = wh(project, "plan", "--engine", "spark", "--json")
    refused = {m["model"]: m["problems"] for m in json.loads(out)["spark"] if m["problems"]}
    assert [(p["line"], p["column"]) for p in refused["marts.hours"]] == [(3, 5), (4, 5)]
    # a build refuses before anything runs (and before a JVM starts)
    with pytest.raises(ModelError, match=r"hours\.sql:3:5: cannot run on Spark.*and 1 more"):
        build(project.with_overrides(engine="spark"))
    assert not list((project.warehouse / "versions").rglob("*.parquet"))


def test_engine_settings_and_their_errors(project: Settings) -> None:
    toml = project.project_dir / "wh.toml"
    base = toml.read_text()
    toml.write_text(
        base + '[engine]\nname = "spark"\nmaster = "local[1]"\n[engine.conf]\n'
        '"spark.executor.memory" = "2g"\n'
    )
    loaded = load_settings(project.project_dir)
    assert loaded.engine.name == "spark" and loaded.engine.master == "local[1]"
    assert loaded.engine.conf == {"spark.executor.memory": "2g"}
    assert loaded.with_overrides(engine="duckdb").engine.master == "local[1]"
    toml.write_text(base + '[engine]\nname = "flink"\n')
    with pytest.raises(ConfigError, match="name must be one of duckdb, spark"):
        load_settings(project.project_dir)
    toml.write_text(base + '[engine]\nmaster = "local[2]"\nremote = "sc://h:15002"\n')
    with pytest.raises(ConfigError, match="both master and remote"):
        load_settings(project.project_dir)
    with pytest.raises(ConfigError, match="--engine must be one of"):
        project.with_overrides(engine="sparky")


def test_partition_by_needs_one_input(project: Settings) -> None:
    (project.project_dir / "pipeline" / "two.py").write_text(
        "from warehouse.python_model import model\n\n\n"
        '@model("features.two", inputs=["features.demand", "staging.products"],\n'
        '       partition_by="product_id")\n'
        "def two(demand, products):\n"
        "    return demand\n"
    )
    with pytest.raises(ModelError, match=r"two\.py:4: partition_by needs a model with one input"):
        build(project)


def test_a_named_window_is_written_out_with_its_own_or_the_uses_frame() -> None:
    from warehouse.runtime.engine.spark_sql import translate

    sql = (
        "select sum(x) over w as a, avg(x) over (w rows between 3 preceding and 1 preceding) "
        "as b from t window w as (partition by k order by d rows between 2 preceding and "
        "current row)"
    )
    spark = translate(sql, {}, lambda s, t: t, lambda s, t: []).upper()
    assert "WINDOW" not in spark
    assert (
        "SUM(X) OVER (PARTITION BY K ORDER BY D NULLS LAST ROWS BETWEEN 2 PRECEDING AND "
        "CURRENT ROW)"
    ) in spark
    assert (
        "AVG(X) OVER (PARTITION BY K ORDER BY D NULLS LAST ROWS BETWEEN 3 PRECEDING AND "
        "1 PRECEDING)"
    ) in spark
