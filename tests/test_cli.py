"""The wh CLI through typer's CliRunner: output, formats and exit codes."""

from __future__ import annotations

import json

from conftest import edit, published
from typer.testing import CliRunner

from warehouse.config import Settings
from warehouse.interfaces.cli import app

runner = CliRunner()


def wh(project: Settings, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--project", str(project.project_dir), *args])
    return result.exit_code, result.stdout, result.stderr


def test_build_plan_and_query(project: Settings) -> None:
    code, out, _ = wh(project, "plan", "--json")
    assert code == 0
    plan = json.loads(out)
    assert {m["change"] for m in plan["models"]} == {"new"}
    code, out, _ = wh(project, "build", "--json")
    assert code == 0, out
    built = json.loads(out)
    assert built["status"] == "ok" and len(built["models"]) == 19
    code, out, _ = wh(project, "build", "--quiet")
    assert (code, out) == (0, "")
    code, out, _ = wh(project, "build")
    assert "Nothing to do" in out
    code, out, _ = wh(
        project, "sql", "select count(*) as n from staging.products", "--format", "json"
    )
    assert json.loads(out) == [{"n": 12}]
    code, out, _ = wh(project, "sql", "select 'a,b' as x, 2 as y", "--format", "csv")
    assert out.splitlines() == ["x,y", '"a,b",2']


def test_runs_lists_builds(project: Settings) -> None:
    wh(project, "build", "--quiet")
    wh(project, "build", "--quiet")
    code, out, _ = wh(project, "runs", "--json")
    assert code == 0
    assert [r["status"] for r in json.loads(out)] == ["noop", "ok"]


def test_audit_failure_exits_1_with_one_line_and_no_traceback(project: Settings) -> None:
    wh(project, "build", "--quiet")
    before = published(project)
    edit(
        project,
        "sql/staging/products.sql",
        lambda s: "-- assert: base_price < 0\n" + s + "  and product_id <> '1'\n",
    )
    code, out, err = wh(project, "build", "--quiet")
    assert code == 1
    assert "Error: staging.products: audit assert(base_price < 0) failed" in err
    assert "Traceback" not in err + out
    assert published(project) == before
    code, out, _ = wh(project, "runs", "--json")
    assert json.loads(out)[0]["status"] == "failed"


def test_usage_and_config_errors_exit_2(project: Settings) -> None:
    code, _, err = wh(project, "build", "--select", "nothing_like_this")
    assert code == 2 and "matches no model" in err
    code, _, err = wh(project, "sql", "select 1")
    assert code == 2 and "has not been published" in err
    (project.project_dir / "wh.toml").write_text("[project\n")
    code, _, err = wh(project, "build")
    assert code == 2 and "wh.toml:1:" in err


def test_model_error_exits_1_naming_file_line_column(project: Settings) -> None:
    edit(
        project,
        "sql/checks/orders.sql",
        lambda s: s.replace("from source.orders", "from source.orders where"),
    )
    code, _, err = wh(project, "build")
    assert code == 1
    assert "sql/checks/orders.sql:" in err and "SQL does not parse" in err


def test_lineage(project: Settings) -> None:
    wh(project, "build", "--quiet")
    code, out, _ = wh(project, "lineage", "features.demand")
    assert code == 0 and "staging.orders" in out and "features.product_demand_stats" in out
    code, out, _ = wh(project, "lineage", "staging.orders.order_date")
    assert code == 0 and "source.orders.order_ts" in out


def test_rollback_and_gc(project: Settings) -> None:
    wh(project, "build", "--quiet")
    first = published(project)
    edit(project, "sql/staging/products.sql", lambda s: s + "  and product_id <> '1'\n")
    _, second, _ = wh(project, "build", "--json")
    code, out, _ = wh(project, "rollback")
    assert code == 0 and "rolled back" in out
    assert published(project) == first
    code, out, _ = wh(project, "gc", "--retention-days", "0")
    computed_by_second = len(json.loads(second)["models"])
    assert code == 0 and f"dropped {computed_by_second} versions" in out
    assert published(project) == first
    code, _, err = wh(project, "rollback", "--to", "2")
    assert code == 1 and "garbage-collected" in err


def test_demo_builds_on_generated_sources(project: Settings, tmp_path: object) -> None:
    import shutil

    shutil.rmtree(project.sources)
    code, out, err = wh(project, "demo", "--products", "8", "--customers", "20", "--days", "130")
    assert code == 0, err
    assert "Rejected by cleaning (staging.rejects)" in out and "duplicate_line" in out
    assert "orders" in err
    code, out, _ = wh(
        project, "sql", "select count(distinct product_id) from features.demand", "--format", "csv"
    )
    assert out.splitlines()[1] == "8"


def test_forecast_on_too_short_history_says_what_it_did(project: Settings) -> None:
    code, _, err = wh(project, "forecast", "--quiet")
    assert code == 2 and "build it first: wh build --env prod" in err
    assert not (project.warehouse / "warehouse.duckdb").exists()  # nothing was published
    wh(project, "build", "--quiet")
    # 30 days cannot hold a 28-day backtest: a forecast without one, and the summary says so
    code, out, err = wh(project, "forecast")
    assert code == 0, err
    assert "30 days of history: too short for a backtest of 28 days" in out
    code, _, err = wh(project, "forecast", "--cutoff", "yesterday")
    assert code == 2 and "--cutoff must be a date" in err
    code, out, _ = wh(project, "sql", "select status from forecast.model_runs", "-f", "csv")
    assert out.splitlines() == ["status", "ok"]


def test_error_text_is_not_read_as_markup(project: Settings) -> None:
    (project.project_dir / "wh.toml").write_text(
        (project.project_dir / "wh.toml").read_text() + "\n[forecast]\nhorizon = 0\n"
    )
    code, _, err = wh(project, "forecast")
    assert code != 0 and "horizon, folds and origin_step" in err
    wh(project, "build", "--quiet")
    code, _, err = wh(project, "sql", "select '[forecast]'::INT")
    assert code != 0 and "[forecast]" in err, err


WIDE = (
    "select 'a rather long product description that will not fit' as description, "
    "'another long value that makes the row wider still' as notes, 42 as n"
)


def test_sql_output_formats(project: Settings) -> None:
    wh(project, "build", "--quiet")
    code, out, _ = wh(project, "sql", "select 'a,b' as x, 2 as y")  # piped: CSV
    assert code == 0 and out.splitlines() == ["x,y", '"a,b",2']
    code, out, _ = wh(project, "sql", "select 'a' as x, null as y", "-f", "tsv")
    assert out.splitlines() == ["x\ty", "a\t"]
    code, out, _ = wh(project, "sql", "select 'a|b' as x, 2 as y", "-f", "markdown")
    assert out.splitlines() == ["| x | y |", "|---|---|", "| a\\|b | 2 |"]
    code, out, _ = wh(project, "sql", WIDE, "-f", "vertical")
    assert out.splitlines()[0].startswith("-[ RECORD 1 ]")
    assert "notes       | another long value that makes the row wider still" in out
    code, out, _ = wh(project, "sql", "select * from range(25000) t(i)", "-f", "json")
    assert len(json.loads(out)) == 25000  # several batches, one array
    code, out, _ = wh(project, "sql", "select * from range(3) t(i)", "--limit", "0")
    assert out.splitlines() == ["i", "0", "1", "2"]  # 0: no limit, as before
    code, out, _ = wh(project, "sql", "select * from range(3) t(i)", "--limit", "2")
    assert out.splitlines() == ["i", "0", "1"]
    code, _, err = wh(project, "sql", "select 1", "-f", "xml")
    assert code == 2 and "use one of" in err


def test_sql_on_a_narrow_terminal_turns_wide_rows_vertical(project: Settings) -> None:
    """At a terminal (a real pseudo-terminal here) a table wider than the screen is shown
    one row per block instead of squeezing columns to `ru…`."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    wh(project, "build", "--quiet")
    outputs = {}
    for columns in ("60", "200"):
        leader, follower = pty.openpty()
        # the terminal's own size, as a real terminal window reports it
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, int(columns), 0, 0))
        done = subprocess.run(
            [sys.executable, "-m", "warehouse", "--project", str(project.project_dir),
             "sql", WIDE],
            stdout=follower, stderr=subprocess.PIPE, timeout=120,
            env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
        )  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert done.returncode == 0, done.stderr
        outputs[columns] = b"".join(chunks).decode()
    assert "-[ RECORD 1 ]" in outputs["60"] and "…" not in outputs["60"]
    assert "-[ RECORD 1 ]" not in outputs["200"]
    assert "a rather long product description that will not fit" in outputs["200"]
