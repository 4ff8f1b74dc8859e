"""psql's meta-commands, as an analyst types them, against a real `wh serve`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import need, rows

from warehouse.config import Settings


def psql(port: int, *commands: str) -> subprocess.CompletedProcess[str]:
    args = [need("psql", "postgresql-client"), "-X", "-h", "127.0.0.1", "-p", str(port),
            "-U", "wh", "-d", "prod", "-v", "ON_ERROR_STOP=1"]  # fmt: skip
    for command in commands:
        args += ["-c", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (r"\dt forecast.*", "demand_forecast"),
        (r"\dt+ forecast.*", "demand_forecast"),
        (r"\d forecast.demand_forecast", 'Table "forecast.demand_forecast"'),
        (r"\d+ forecast.demand_forecast", "double precision"),
        (r"\dn", "forecast"),
        (r"\l", "prod"),
        (r"\du", "wh"),
        (r"\df", "List of functions"),
        (r"\dx", "plpgsql"),
        (r"\dv", "Did not find any relations"),
        (r"\di", "Did not find any relations"),
    ],
)
def test_meta_commands_answer(wh_server: tuple[Settings, int], command: str, expected: str) -> None:
    _, port = wh_server
    done = psql(port, command)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout + done.stderr, done.stdout


def test_every_schema_listing_shows_only_published_objects(
    wh_server: tuple[Settings, int],
) -> None:
    _, port = wh_server
    done = psql(port, r"\dt *.*")
    assert done.returncode == 0, done.stderr
    schemas = {line.split("|")[0].strip() for line in done.stdout.splitlines() if "|" in line}
    schemas.discard("Schema")
    assert schemas == {"checks", "features", "forecast", "marts", "staging"}, schemas


def test_gdesc_names_postgres_types(wh_server: tuple[Settings, int]) -> None:
    _, port = wh_server
    done = subprocess.run(
        [need("psql", "postgresql-client"), "-X", "-h", "127.0.0.1", "-p", str(port),
         "-U", "wh", "-d", "prod", "-v", "ON_ERROR_STOP=1"],
        input="select forecast_date, units_p50, product_id, count(*) "
        "from forecast.demand_forecast group by 1, 2, 3 \\gdesc\n",
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    described = {
        line.split("|")[0].strip(): line.split("|")[1].strip()
        for line in done.stdout.splitlines()
        if "|" in line
    }
    assert described == {
        "Column": "Type",
        "forecast_date": "date",
        "units_p50": "double precision",
        "product_id": "text",
        "count": "bigint",
    }


def test_postgres_answers_where_clients_depend_on_them(wh_server: tuple[Settings, int]) -> None:
    _, port = wh_server
    done = psql(
        port,
        "select current_database(), current_user, 7/2 as half, count(*) from "
        "forecast.demand_forecast",
    )
    assert done.returncode == 0, done.stderr
    header, _, values = done.stdout.splitlines()[:3]
    assert [h.strip() for h in header.split("|")] == [
        "current_database",
        "current_user",
        "half",
        "count",
    ]
    assert [v.strip() for v in values.split("|")][:3] == ["prod", "wh", "3"]
    failed = psql(port, "select 1/0")
    assert failed.returncode != 0 and "division by zero" in failed.stderr


def test_copy_to_a_local_file_streams_every_row(
    wh_server: tuple[Settings, int], tmp_path: Path
) -> None:
    """psql's \\copy is COPY ... TO STDOUT on the wire; COPY to a server file is refused."""
    settings, port = wh_server
    text, csv = tmp_path / "out.txt", tmp_path / "out.csv"
    done = psql(
        port,
        rf"\copy (select product_id, NULL::text as nothing, 'a' || chr(9) || 'b' as tab "
        rf"from forecast.demand_forecast_history order by 1) to '{text}'",
        rf"\copy forecast.demand_forecast to '{csv}' with csv header",
    )
    assert done.returncode == 0, done.stderr
    history = rows(settings, "SELECT count(*) FROM forecast.demand_forecast_history")[0][0]
    lines = text.read_text().splitlines()
    assert len(lines) == history and lines[0].split("\t")[1:] == ["\\N", "a\\tb"]
    table = rows(settings, "SELECT * FROM forecast.demand_forecast")
    with csv.open() as handle:
        parsed = list(__import__("csv").reader(handle))
    assert parsed[0][:2] == ["product_id", "forecast_date"] and len(parsed) == len(table) + 1
    refused = psql(port, "copy forecast.demand_forecast to '/tmp/wh_compat_copy.csv'")
    assert refused.returncode != 0 and "read-only" in refused.stderr
    assert not Path("/tmp/wh_compat_copy.csv").exists()
