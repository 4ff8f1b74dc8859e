"""The Python API in `warehouse/__init__.py`, used as the README and its docstring show."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import copy_project


def test_build_plan_query_rollback_as_documented(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(tmp_path / "project", tiny_sources)
    script = textwrap.dedent(
        f"""
        import pathlib

        import warehouse as wh

        project = {str(settings.project_dir)!r}
        first = wh.build(project)
        assert first.status == "ok" and first.results, first
        assert wh.plan(project).to_compute == []           # nothing left to do
        assert wh.build(project).status == "noop"
        names = {{m for m in wh.load_project(project).models}}
        assert "staging.orders" in names, names
        result = wh.query("SELECT count(*) AS n FROM staging.orders", project)
        assert result.columns == ["n"] and result.rows[0][0] > 0, result
        dev = wh.build(project, env="dev")  # another environment, same versions reused
        assert dev.env == "dev" and dev.status == "ok", dev
        sql = pathlib.Path(project, "sql", "staging", "promotions.sql")
        sql.write_text(sql.read_text() + " and discount_pct >= 0\\n")  # a new version
        assert wh.build(project).status == "ok"
        back = wh.rollback(project)
        assert back.restored.id == first.published.id, back
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")


def test_errors_are_wh_errors_with_hints(tmp_path: Path) -> None:
    import pytest

    import warehouse as wh
    from warehouse.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        wh.build(tmp_path)  # no wh.toml here
    assert "wh.toml" in caught.value.message and caught.value.hint


def test_importing_the_api_loads_no_engine() -> None:
    """`import warehouse` stays cheap: the no-op `wh build` answers in milliseconds on it."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, warehouse; print(sorted(m for m in ('duckdb', 'polars', 'sqlglot', "
            "'lightgbm', 'typer') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
