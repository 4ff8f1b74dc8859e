"""Python models: inputs arrive through Arrow without copies; the Polars model's numbers."""

from __future__ import annotations

import duckdb
import polars as pl
from conftest import rows

from warehouse.config import Settings
from warehouse.runtime.build import build
from warehouse.runtime.runner import frame_from_arrow


def _data_address(column: object) -> int:
    chunk = column.chunks[0]  # type: ignore[attr-defined]
    return int(chunk.buffers()[1].address)


def test_arrow_in_and_out_share_buffers() -> None:
    table = duckdb.sql(
        "SELECT range AS units, range * 2.5 AS price FROM range(100000)"
    ).to_arrow_table()
    frame = frame_from_arrow(table).collect()
    back = frame.to_arrow()
    for name in ("units", "price"):
        assert _data_address(back.column(name)) == _data_address(table.column(name))


def test_python_model_reading_a_view_gets_its_rows(project: Settings) -> None:
    (project.pipeline_dir / "order_counts.py").write_text(
        "import polars as pl\n"
        "from warehouse.python_model import model\n"
        "@model('marts.order_counts', inputs=['staging.orders'], grain=['status'])\n"
        "def order_counts(orders: pl.LazyFrame) -> pl.LazyFrame:\n"
        "    return orders.group_by('status').agg(n=pl.len())\n"
    )
    build(project)
    assert rows(project, "SELECT status, n FROM marts.order_counts ORDER BY 1") == rows(
        project, "SELECT status, count(*) FROM staging.orders GROUP BY 1 ORDER BY 1"
    )


def test_intermittency_classes_match_an_sql_oracle(project: Settings) -> None:
    build(project)
    oracle = rows(
        project,
        """
        SELECT product_id,
            CASE WHEN count(*) FILTER (units > 0) = 0 THEN 'lumpy'
                 WHEN count(*) / count(*) FILTER (units > 0) < 1.32
                      AND coalesce(power(stddev_samp(units) FILTER (units > 0)
                          / avg(units) FILTER (units > 0), 2), 0) < 0.49 THEN 'smooth'
                 WHEN count(*) / count(*) FILTER (units > 0) < 1.32 THEN 'erratic'
                 WHEN coalesce(power(stddev_samp(units) FILTER (units > 0)
                          / avg(units) FILTER (units > 0), 2), 0) < 0.49 THEN 'intermittent'
                 ELSE 'lumpy' END
        FROM features.demand GROUP BY 1 ORDER BY 1""",
    )
    got = rows(
        project, "SELECT product_id, demand_class FROM features.product_demand_stats ORDER BY 1"
    )
    assert got == oracle
    assert pl.DataFrame(got, orient="row").height == 12


def test_python_model_reads_lazyframes_and_writes_a_table(project: Settings) -> None:
    build(project)
    classes = rows(project, "SELECT DISTINCT demand_class FROM features.product_demand_stats")
    assert {c for (c,) in classes} <= {"smooth", "erratic", "intermittent", "lumpy"}
    # the oracle: the same statistic computed in SQL
    sql_adi = rows(
        project,
        "SELECT product_id, count(*) / count(*) FILTER (units > 0) FROM "
        "features.demand GROUP BY ALL HAVING count(*) FILTER (units > 0) > 0 "
        "ORDER BY 1",
    )
    py_adi = rows(
        project,
        "SELECT product_id, adi FROM features.product_demand_stats "
        "WHERE periods_with_demand > 0 ORDER BY 1",
    )
    assert [(p, round(a, 9)) for p, a in sql_adi] == [(p, round(a, 9)) for p, a in py_adi]
