"""Crash safety: `wh build`, `wh forecast` and `wh gc` killed with SIGKILL at injected points
(WH_FAULT) and at random moments. After every kill the published views return exactly what
they returned before (or, past the pointer swap, the complete new publish), the next command
succeeds, and no partial file survives it.

The default run covers every injection point once; `just faults` adds repeated and random
kills (`-m faults`)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_project, edit, forecast_project, published, rows, wh_command

from warehouse.config import Settings
from warehouse.forecasting.run import forecast
from warehouse.project.loader import load_project
from warehouse.runtime import storage
from warehouse.runtime.build import build
from warehouse.runtime.plan import make_plan
from warehouse.runtime.state import open_state

KILLED = -signal.SIGKILL


def wh(
    settings: Settings, *args: str, fault: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "WH_FAULT"}
    if fault:
        env["WH_FAULT"] = fault
    return subprocess.run(
        wh_command(settings, *args), capture_output=True, text=True, env=env, timeout=600
    )


def orphan_files(settings: Settings) -> list[Path]:
    state = open_state(settings)
    try:
        return storage.orphan_files(settings, state)
    finally:
        state.close()


def assert_consistent(settings: Settings) -> None:
    """The state serves exactly what the project defines, and nothing is left over."""
    state = open_state(settings)
    try:
        plan = make_plan(load_project(settings), state, settings.env, None, False)
    finally:
        state.close()
    assert not plan.to_compute and not plan.publishes_something
    assert orphan_files(settings) == []


def change_orders(settings: Settings, generation: int) -> None:
    """A real change upstream: staging.orders and everything after it must be recomputed."""
    edit(
        settings,
        "sql/staging/orders.sql",
        lambda s: (
            s.replace("    o.status,\n", f"    o.status,\n    {generation} as generation,\n")
            if "as generation" not in s
            else s.replace(f"{generation - 1} as generation", f"{generation} as generation")
        ),
    )


BUILD_POINTS = [
    "compute",
    "compute#4",
    "audit",
    "audit#6",
    "state_published",
    "catalog_written",
    "pointer_swapped",
]


@pytest.mark.parametrize("point", BUILD_POINTS)
def test_killed_build_loses_nothing(project: Settings, point: str) -> None:
    build(project)
    before = published(project)
    change_orders(project, 1)
    killed = wh(project, "build", "--quiet", fault=f"after:{point}")
    assert killed.returncode == KILLED, killed.stderr
    if point == "pointer_swapped":  # the publish was complete: the new state, whole
        assert published(project) != before
        assert rows(project, "SELECT max(generation) FROM staging.orders") == [(1,)]
    else:
        assert published(project) == before
    recovered = wh(project, "build", "--quiet")
    assert recovered.returncode == 0, recovered.stderr
    assert_consistent(project)
    assert rows(project, "SELECT max(generation) FROM staging.orders") == [(1,)]


@pytest.fixture(scope="module")
def forecast_settings(tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path) -> Settings:
    settings = forecast_project(tmp_path_factory.mktemp("crash"), forecast_sources)
    build(settings)
    forecast(settings, models=["naive"])
    return settings


# kill point -> runs the next run finds left `running` (and marks abandoned): the first
# forecast_table write is the run record itself, so nothing says running yet; the third is
# a forecast table of the final publish, after the record said running
FORECAST_POINTS = {
    "forecast_started": 1,
    "forecast_table": 0,
    "forecast_table#3": 1,
    "forecast_published": 0,
}


@pytest.mark.parametrize("point", FORECAST_POINTS)
def test_killed_forecast_loses_nothing(forecast_settings: Settings, point: str) -> None:
    settings = forecast_settings
    before = published(settings)
    runs_before = rows(settings, "SELECT count(*) FROM forecast.model_runs")[0][0]
    # the module's runs share one warehouse: count this kill's abandoned run, not earlier ones
    abandoned_before = rows(
        settings, "SELECT count(*) FROM forecast.model_runs WHERE status = 'abandoned'"
    )[0][0]
    killed = wh(settings, "forecast", "--models", "naive", fault=f"after:{point}")
    assert killed.returncode == KILLED, killed.stderr
    after = published(settings)
    if point == "forecast_published":
        assert rows(
            settings, "SELECT status FROM forecast.model_runs ORDER BY started_at DESC LIMIT 1"
        ) == [("ok",)]
    else:
        # only the run record moved (it says running); every forecast table is unchanged
        changed = {k for k in before if before[k] != after.get(k)}
        assert changed <= {"forecast.model_runs"}
    again = wh(settings, "forecast", "--models", "naive")
    assert again.returncode == 0, again.stderr
    statuses = rows(settings, "SELECT status FROM forecast.model_runs ORDER BY started_at")
    assert len(statuses) >= runs_before + 1
    assert ("running",) not in statuses
    abandoned = sum(1 for (status,) in statuses if status == "abandoned")
    assert abandoned == abandoned_before + FORECAST_POINTS[point], statuses
    assert orphan_files(settings) == []


def test_killed_gc_loses_nothing(project: Settings) -> None:
    build(project)
    for generation in (1, 2):
        change_orders(project, generation)
        build(project)
    before = published(project)
    killed = wh(project, "gc", "--retention-days", "0", fault="after:gc_delete")
    assert killed.returncode == KILLED, killed.stderr
    assert published(project) == before
    assert wh(project, "gc", "--retention-days", "0").returncode == 0
    assert published(project) == before
    assert_consistent(project)


@pytest.mark.faults
@pytest.mark.parametrize("seed", range(30))
def test_build_killed_at_a_random_moment(tmp_path: Path, tiny_sources: Path, seed: int) -> None:
    """`just faults`: kill a build after a random delay, check, recover; 30 runs."""
    settings = copy_project(tmp_path / "project", tiny_sources)
    build(settings)
    before = published(settings)
    change_orders(settings, 1)
    delay = random.Random(seed).uniform(0.3, 6.0)
    process = subprocess.Popen(
        [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir),
         "build", "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    now = published(settings)
    generation = (
        rows(settings, "SELECT max(generation) FROM staging.orders") if now != before else []
    )
    assert now == before or generation == [(1,)]
    assert wh(settings, "build", "--quiet").returncode == 0
    assert_consistent(settings)


@pytest.mark.faults
@pytest.mark.parametrize(
    "point", [f"compute#{n}" for n in range(2, 7)] + [f"audit#{n}" for n in range(2, 7)]
)
def test_build_killed_at_every_model(project: Settings, point: str) -> None:
    """The change recomputes 6 models: a kill after each one's data and each one's audits."""
    test_killed_build_loses_nothing(project, point)
