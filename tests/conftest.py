"""Fixtures: a copy of the example project on tiny seeded demo data, in a temp folder."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.config import Settings, load_settings
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.runtime.state import Version

REPO = Path(__file__).resolve().parents[1]
# test warehouses' pseudonymisation keys go to a temporary folder, not ~/.config/wh/keys
os.environ.setdefault("XDG_CONFIG_HOME", tempfile.mkdtemp(prefix="wh-test-config-"))
os.environ.setdefault("XDG_CACHE_HOME", tempfile.mkdtemp(prefix="wh-test-cache-"))
TINY = DemoSpec(products=12, customers=40, days=30, seed=3)


@pytest.fixture(scope="session")
def tiny_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sources")
    generate(out, TINY)
    return out


def copy_project(
    root: Path, sources: Path, project_toml: str = "", more_toml: str = ""
) -> Settings:
    """The repo's example project (sql/, pipeline/) in `root`, with a copy of `sources` and
    its own warehouse. `project_toml` adds [project] lines, `more_toml` further tables."""
    root.mkdir()
    shutil.copytree(REPO / "sql", root / "sql")
    shutil.copytree(
        REPO / "pipeline", root / "pipeline", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(sources, root / "sources")
    (root / "wh.toml").write_text(
        '[project]\nsources = "sources"\nwarehouse = "warehouse"\nthreads = 2\n'
        + project_toml
        + "[vars]\nrecommendation_min_support = 2\nrecommendation_top_k = 5\n"
        + more_toml
    )
    return load_settings(root)


@pytest.fixture
def project(tmp_path: Path, tiny_sources: Path) -> Settings:
    return copy_project(tmp_path / "project", tiny_sources)


def published_rows(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Every published view's rows in the settings' env, in clear (the steward's catalog)."""
    from warehouse.runtime.catalog import STEWARD, pointer_path

    con = duckdb.connect(str(pointer_path(settings, settings.env, STEWARD)), read_only=True)
    try:
        views = con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY ALL"
        ).fetchall()
        return {
            f"{schema}.{view}": con.execute(f'SELECT * FROM "{schema}"."{view}"').fetchall()
            for schema, view in views
        }
    finally:
        con.close()


def published(settings: Settings) -> dict[str, str]:
    """Checksum of every published view's rows in the settings' env."""
    sums = {}
    for name, rows in published_rows(settings).items():
        digest = hashlib.sha256(repr(sorted(map(repr, rows))).encode()).hexdigest()
        sums[name] = f"{len(rows)}:{digest[:16]}"
    return sums


def rows(settings: Settings, sql: str, role: str = "steward") -> list[tuple[object, ...]]:
    """Rows of a query on the published catalog of `role` (default: clear values)."""
    from warehouse.runtime.catalog import pointer_path

    con = duckdb.connect(str(pointer_path(settings, settings.env, role)), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def rounded(table: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Floats to 9 places: parallel sums may add in another order."""
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in table]


def edit(settings: Settings, relative: str, change: Callable[[str], str]) -> None:
    path = settings.project_dir / relative
    path.write_text(change(path.read_text()))


def fail_orders_audit(settings: Settings) -> None:
    """Change staging.orders so its next version fails an assert (a new version: a column
    is added, so the build must compute, audit and refuse it)."""
    edit(
        settings,
        "sql/staging/orders.sql",
        lambda s: (
            "-- assert: status = 'completed'\n"
            + s.replace("    o.status,\n", "    o.status,\n    1 as changed,\n")
        ),
    )


def wh_command(settings: Settings, *args: str) -> list[str]:
    """`wh --project <project> <args>` as a new process of this interpreter."""
    return [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir), *args]


def split_last_day(sources: Path) -> None:
    """Turn orders/order_items into part folders, holding back the last day as a new part
    (returned by `append_last_day`)."""
    orders = pl.read_parquet(sources / "orders.parquet")
    items = pl.read_parquet(sources / "order_items.parquet")
    last = orders["order_ts"].dt.date().max()
    late = orders.filter(pl.col("order_ts").dt.date() == last)
    early = orders.filter(pl.col("order_ts").dt.date() < last)
    for name, frame, held in (
        ("orders", early, late),
        (
            "order_items",
            items.filter(~pl.col("order_id").is_in(late["order_id"].implode())),
            items.filter(pl.col("order_id").is_in(late["order_id"].implode())),
        ),
    ):
        (sources / f"{name}.parquet").unlink()
        (sources / name).mkdir()
        frame.write_parquet(sources / name / "part-0.parquet")
        held.write_parquet(sources / f".held-{name}.parquet")


def append_last_day(sources: Path) -> None:
    for name in ("orders", "order_items"):
        (sources / f".held-{name}.parquet").rename(sources / name / "part-1.parquet")


def load_demand_features_module() -> object:
    """pipeline/demand_features.py, imported for its LAGS and WINDOWS tables."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "demand_features_for_tests", REPO / "pipeline" / "demand_features.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FORECAST_TOML = """
[forecast]
horizon = {horizon}
folds = 2
train_periods = {train}
origin_step = {step}
[forecast.lightgbm]
num_boost_round = 60
"""


@pytest.fixture(scope="session")
def forecast_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("forecast") / "sources"
    generate(out, DemoSpec(products=16, customers=60, days=160, seed=4))
    return out


def forecast_project(
    tmp_path: Path, sources: Path, freq: str = "day", hierarchy: bool = False
) -> Settings:
    """The example project set up to forecast in seconds. The hierarchy step (its own
    statsforecast fits and hierarchicalforecast's imports: seconds per run) is off unless
    asked for; `[forecast.hierarchy]` is the last table, so a test may append its keys."""
    horizon, train, step = {"day": (7, 90, 5), "week": (4, 20, 1), "month": (2, 4, 1)}[freq]
    return copy_project(
        tmp_path / "project",
        sources,
        f'freq = "{freq}"\n',
        FORECAST_TOML.format(horizon=horizon, train=train, step=step)
        + f"[forecast.hierarchy]\nenabled = {'true' if hierarchy else 'false'}\n",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A server `running` started; `log` is what it wrote to stderr, once the block ended."""

    process: subprocess.Popen[str]
    log: str = ""


@contextlib.contextmanager
def running(settings: Settings, *args: str, ready: Callable[[], bool]) -> Iterator[Served]:
    """`wh <args>` as a real server process, until the block ends; waits for `ready`."""
    server = subprocess.Popen(
        wh_command(settings, *args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(150):  # at most 15 s for the server to listen
            if server.poll() is not None:
                raise RuntimeError(f"wh {args[0]} exited: {server.stderr and server.stderr.read()}")
            if ready():
                break
            time.sleep(0.1)
        served = Served(server)
        yield served
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    served.log = log or ""


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`: proves a warehouse was not touched."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def served_version(settings: Settings, model: str) -> Version:
    """The version of `model` that the settings' environment publishes now."""
    from warehouse.runtime.state import open_state

    state = open_state(settings)
    try:
        head = state.head(settings.env)
        assert head is not None
        version = state.get_version(head.mapping[model])
    finally:
        state.close()
    assert version is not None
    return version


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def wh_server(
    tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path
) -> Iterator[tuple[Settings, int]]:
    """A real `wh serve` on a small forecast project, for the client tests (tests/compat):
    one per worker, read by every test, changed by none."""
    from warehouse.forecasting.run import forecast
    from warehouse.runtime.build import build

    settings = forecast_project(tmp_path_factory.mktemp("compat"), forecast_sources)
    build(settings)
    forecast(settings, models=["naive"])
    port = free_port()
    with running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)):
        yield settings, port


def need(program: str, package: str) -> str:
    """The program's path; in CI a missing client fails the test (.ci/run installs it)."""
    import os

    path = shutil.which(program)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{program} is missing in CI: .ci/run installs Debian's {package}")
        pytest.skip(f"{program} is not installed (Debian package '{package}')")
    return path
