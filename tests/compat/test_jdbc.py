"""pgjdbc, what DBeaver, Metabase, Tableau and DataGrip use, through a real JVM."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import need, rows

from warehouse.config import Settings

JAR = Path("/usr/share/java/postgresql.jar")  # Debian's libpostgresql-jdbc-java
PROBE = Path(__file__).with_name("JdbcProbe.java")


def test_pgjdbc_metadata_paging_parameters_and_binary(wh_server: tuple[Settings, int]) -> None:
    settings, port = wh_server
    java = need("java", "default-jre-headless")
    if not JAR.exists():
        message = f"pgjdbc is missing ({JAR}): .ci/run installs libpostgresql-jdbc-java"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    done = subprocess.run(
        [java, "-cp", str(JAR), str(PROBE), str(port)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    steps = dict(line.split("\t", 1) for line in done.stdout.splitlines() if "\t" in line)
    failed = {k: v for k, v in steps.items() if v.startswith("ERROR")}
    assert failed == {}, failed
    assert {"forecast", "features", "staging"} <= set(steps["schemas"].split(","))
    assert "main" not in steps["schemas"].split(",")
    assert "demand_forecast:TABLE" in steps["tables"].split(",")
    # every column, with its JDBC type: text 12 VARCHAR, date 91 DATE, float8 8 DOUBLE
    columns = [c.split(":") for c in steps["columns"].split(",")]
    described = rows(settings, "DESCRIBE forecast.demand_forecast")
    assert [c[0] for c in columns] == [d[0] for d in described]
    jdbc = {"VARCHAR": ("text", "12"), "DATE": ("date", "91"), "DOUBLE": ("float8", "8")}
    assert [tuple(c[1:]) for c in columns] == [jdbc[str(d[1])] for d in described]
    total = rows(settings, "SELECT count(*) FROM forecast.demand_forecast_history")[0][0]
    assert steps["count"] == f"rows={total}"
    assert steps["fetch_size_paging"] == f"rows={total}"  # every row, 7 at a time
    forecasts = rows(settings, "SELECT count(*), min(forecast_date) FROM forecast.demand_forecast")
    assert steps["prepared_dates"] == f"{forecasts[0][0]}@{forecasts[0][1]} runs=10"
    # after 5 executions pgjdbc asks for binary results: the same values as text gave
    assert steps["binary_types"] == (
        "1|2|3|1.5|2.25|12.34|true|2024-02-29|2024-02-29 13:14:15.123456|x runs=8"
    )
    assert steps["current"] == "prod,wh,public"
    # published tables have no keys or indexes: the calls answer with no rows, not errors
    assert (steps["primary_keys"], steps["index_info"]) == ("rows=0", "rows=0")
    assert (steps["imported_keys"], steps["exported_keys"]) == ("rows=0", "rows=0")
    # what DBeaver and Metabase ask while they connect: one database, the type list
    assert steps["catalogs"] == "rows=1" and int(steps["type_info"].split("=")[1]) > 20
