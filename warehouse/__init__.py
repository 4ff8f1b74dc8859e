"""wh: a SQL + Python feature warehouse for demand forecasting.

The public Python API; the `wh` command line is a thin shell over it::

    import warehouse as wh

    result = wh.build("path/to/project")          # plan, compute, audit, publish
    print(result.status, [r.plan.model.name for r in result.results])
    wh.forecast("path/to/project", horizon=28)     # backtest, pick, publish forecast tables
    rows = wh.query("SELECT * FROM forecast.demand_forecast LIMIT 5", "path/to/project").rows

Every function takes the project as a folder (the one holding wh.toml; default: the nearest
at or above the working directory) or as `Settings` from `wh.settings(...)`, and the
environment by name (default `prod`, or WH_ENV). Errors are `warehouse.errors.WhError`
subclasses with a message, a hint and an exit code.

Python models register with `from warehouse.python_model import model`.

Imports are deferred to each call: `import warehouse` stays cheap, which the no-op
`wh build` path (milliseconds) depends on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warehouse.config import Settings
    from warehouse.forecasting.run import ForecastResult, ScenarioResult
    from warehouse.project.loader import Project
    from warehouse.runtime.build import BuildResult
    from warehouse.runtime.environments import RollbackResult
    from warehouse.runtime.plan import Plan
    from warehouse.runtime.query import QueryResult

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "build",
    "forecast",
    "load_project",
    "plan",
    "query",
    "rollback",
    "scenario",
    "settings",
]


def settings(
    project: Settings | str | os.PathLike[str] | None = None,
    env: str | None = None,
    **overrides: Any,
) -> Settings:
    """The project's settings (wh.toml, then WH_* variables, then these overrides)."""
    from warehouse.config import Settings, load_settings

    if isinstance(project, Settings):
        base = project
    else:
        base = load_settings(Path(project) if project is not None else None)
    return base.with_overrides(env=env, **overrides)


def load_project(
    project: Settings | str | os.PathLike[str] | None = None, env: str | None = None
) -> Project:
    """Parse and check every model of the project (SQL and Python); computes nothing."""
    from warehouse.project.loader import load_project as load

    return load(settings(project, env))


def plan(
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    select: list[str] | None = None,
    full_refresh: bool = False,
) -> Plan:
    """What a build would compute, reuse and publish; runs nothing."""
    from warehouse.runtime.plan import plan_build

    return plan_build(settings(project, env), select, full_refresh)


def build(
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    select: list[str] | None = None,
    full_refresh: bool = False,
    reporter: Callable[[str, str, str], None] | None = None,
) -> BuildResult:
    """Bring the environment up to date: compute new versions, audit them, publish them
    together. `select` takes the CLI's syntax (`name`, `+name`, `name+`, `schema.*`,
    `tag:x`); `reporter(event, model, detail)` hears progress."""
    from warehouse.runtime.build import build as run

    if reporter is None:
        return run(settings(project, env), select, full_refresh)
    return run(settings(project, env), select, full_refresh, reporter=reporter)


def rollback(
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    to: int | None = None,
) -> RollbackResult:
    """Point the environment back at its previous publish (or publish `to`): no recompute."""
    from warehouse.runtime.environments import rollback as run

    return run(settings(project, env), to)


def forecast(
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    horizon: int | None = None,
    models: list[str] | None = None,
    cutoff: date | None = None,
    truth: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    force: bool = False,
) -> ForecastResult:
    """Backtest the candidate models, pick per product, refit, audit and publish the
    forecast tables (DESIGN.md §5) into the environment. `cutoff` forecasts as of that date.
    A failing `[forecast.audits]` audit raises and publishes nothing, unless `force`."""
    from warehouse.forecasting.run import forecast as run

    return run(
        settings(project, env),
        horizon,
        models,
        cutoff,
        progress or (lambda _: None),
        Path(truth) if truth is not None else None,
        force,
    )


def scenario(
    path: str | os.PathLike[str],
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScenarioResult:
    """Move the published forecast by the price/promotion scenarios in `path` (Parquet or
    CSV) and publish forecast.scenario_forecast and forecast.price_elasticity; the published
    forecast is left as it is."""
    from warehouse.forecasting.run import forecast_scenarios

    return forecast_scenarios(settings(project, env), Path(path), progress or (lambda _: None))


def query(
    sql: str,
    project: Settings | str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    limit: int | None = None,
) -> QueryResult:
    """Run read-only SQL against what the environment publishes (`.columns`, `.rows`)."""
    from warehouse.runtime.query import run_query

    return run_query(settings(project, env), sql, limit)
