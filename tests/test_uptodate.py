"""The no-op fast path of `wh build`: taken only when provably nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import edit, served_version

from warehouse.config import Settings
from warehouse.runtime import uptodate
from warehouse.runtime.build import build
from warehouse.runtime.environments import rollback

PROBE = (
    "import sys\n"
    "from warehouse.interfaces.entry import main\n"
    "sys.argv = ['wh', '--project', sys.argv[1], 'build', '--quiet']\n"
    "try:\n"
    "    main()\n"
    "except SystemExit as done:\n"
    "    assert not done.code, done.code\n"
    "print('engine loaded:', 'duckdb' in sys.modules or 'sqlglot' in sys.modules)\n"
    "print('cli loaded:', 'typer' in sys.modules or 'pydantic' in sys.modules)\n"
    "print('parser loaded:', 'sqlglot' in sys.modules)\n"
    "print('rich loaded:', 'rich' in sys.modules)\n"
    "print('pyarrow loaded:', 'pyarrow' in sys.modules)\n"
)


def _probe(code: str, argument: Path) -> str:
    """What `code` prints in a new interpreter (so `sys.modules` starts empty)."""
    done = subprocess.run(
        [sys.executable, "-c", code, str(argument)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _wh_build(settings: Settings) -> str:
    return _probe(PROBE, settings.project_dir)


def test_up_to_date_build_answers_without_loading_the_engine(project: Settings) -> None:
    build(project)
    out = _wh_build(project)
    assert "engine loaded: False" in out


def test_a_build_skips_the_cli_and_parses_only_changed_models(project: Settings) -> None:
    out = _wh_build(project)  # the first build parses every model
    assert "engine loaded: True" in out and "cli loaded: False" in out
    assert "rich loaded: False" in out  # --quiet: nothing to draw
    new_orders = project.sources / "orders.parquet"
    stat = new_orders.stat()
    os.utime(new_orders, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    out = _wh_build(project)  # new data, same models: nothing to parse
    assert "engine loaded: True" in out and "parser loaded: False" in out
    edit(project, "sql/staging/orders.sql", lambda s: s.replace("o.channel,", "o.channel, 1 as x,"))
    out = _wh_build(project)
    assert "parser loaded: True" in out
    assert ("x", "INTEGER") in served_version(project, "staging.orders").columns


def test_source_checks_do_not_load_pyarrow(project: Settings) -> None:
    """DuckDB reads the source footers (PyArrow's import costs more than the checks)."""
    probe = (
        "import sys\nfrom pathlib import Path\n"
        "from warehouse.runtime.sources import CONTRACTS, load_sources\n"
        "load_sources(Path(sys.argv[1]), list(CONTRACTS))\n"
        "print('pyarrow loaded:', 'pyarrow' in sys.modules)\n"
    )
    assert "pyarrow loaded: False" in _probe(probe, project.sources)


def test_any_change_takes_the_full_path(project: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    build(project)
    assert uptodate.check(project) is not None
    edit(project, "sql/staging/orders.sql", lambda s: s + "\n-- a comment\n")
    assert uptodate.check(project) is None
    build(project)  # a reformat: nothing computed, but the digest is renewed
    assert uptodate.check(project) is not None

    source = next(project.sources.glob("orders*"))
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert uptodate.check(project) is None
    build(project)

    monkeypatch.setenv("WH_AS_OF_DATE", "2024-01-15")
    assert uptodate.check(project) is None
    monkeypatch.delenv("WH_AS_OF_DATE")
    assert uptodate.check(project) is not None

    (project.project_dir / "wh.toml").write_text(
        (project.project_dir / "wh.toml").read_text() + "\n# edited\n"
    )
    assert uptodate.check(project) is None


def test_rollback_and_other_environments_take_the_full_path(project: Settings) -> None:
    build(project)
    edit(project, "sql/staging/orders.sql", lambda s: s.replace("select", "select 1 as probe,", 1))
    build(project)
    assert uptodate.check(project) is not None
    rollback(project)
    assert uptodate.check(project) is None
    assert uptodate.check(project.with_overrides(env="dev")) is None


def test_a_selected_build_does_not_vouch_for_the_rest(project: Settings) -> None:
    build(project)
    edit(project, "sql/staging/orders.sql", lambda s: s + "\n-- x\n")
    build(project, ["staging.orders"])
    assert uptodate.check(project) is None
