"""Settings from wh.toml, overridden by WH_* environment variables, overridden by CLI flags."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import warnings
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

from warehouse.errors import ConfigError
from warehouse.resources import default_memory_limit, effective_threads

CONFIG_FILE = "wh.toml"
ENV_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# key -> (environment variable, type); the [project] table of wh.toml
PROJECT_KEYS: dict[str, tuple[str | None, type]] = {
    "name": (None, str),
    "sources": ("WH_SOURCES", str),
    "warehouse": ("WH_WAREHOUSE", str),
    "env": ("WH_ENV", str),
    "threads": ("WH_THREADS", int),
    "memory_limit": ("WH_MEMORY_LIMIT", str),
    "gc_retention_days": (None, float),
    "freq": ("WH_FREQ", str),
    "as_of_date": ("WH_AS_OF_DATE", str),
}
FREQS = ("day", "week", "month")
# Tables other issues own (forecast, serve, ...) are passed through untouched.
KNOWN_TABLES = {
    "project",
    "vars",
    "forecast",
    "customers",
    "serve",
    "docs",
    "checks",
    "engine",
    "privacy",
}
ENGINES = ("duckdb", "spark")
# [engine]: where models run (README "Scaling out"); key -> (environment variable, type)
ENGINE_KEYS: dict[str, tuple[str | None, type]] = {
    "name": ("WH_ENGINE", str),
    "master": ("WH_SPARK_MASTER", str),  # local[N], spark://host:7077, yarn, k8s://...
    "remote": ("WH_SPARK_REMOTE", str),  # a Spark Connect endpoint, sc://host:15002
    "app_name": (None, str),
    # a Python model without partition_by runs on the driver: refused above this many input rows
    "driver_max_rows": (None, int),
    "conf": (None, dict),  # Spark settings, e.g. "spark.executor.memory" = "8g"
}
# [checks]: plausibility limits of the cleaning models and when a build warns about rejects.
# A limit is a setting, not a constant in SQL: real series (a month of a country's tourism,
# a wholesale line) exceed any "implausible" number a demo would pick.
CHECKS: dict[str, tuple[type, Any]] = {
    "max_line_quantity": (int, 1_000_000_000),  # above: implausible_quantity
    "warn_reject_share": (float, 0.01),  # a source's rejected rows or units above this share
}


# parameters an incremental_by_time model's query gets from the build (its time window)
TIME_PARAMETERS = frozenset({"start_date", "end_date", "incremental"})


def builtin_variables(freq: str, as_of_date: date | None, checks: dict[str, Any]) -> dict[str, Any]:
    """Variables wh itself gives every model, next to the project's [vars]."""
    return {
        "freq": freq,
        "as_of_date": as_of_date,
        "max_line_quantity": checks["max_line_quantity"],
    }


# names a [vars] entry cannot take: derived, so a new built-in variable is reserved with it
RESERVED_VARIABLES = TIME_PARAMETERS | set(
    builtin_variables("day", None, {k: d for k, (_, d) in CHECKS.items()})
)


@dataclass(frozen=True)
class EngineSettings:
    """[engine]: DuckDB in this process (the default), or Spark."""

    name: str = "duckdb"
    master: str | None = None  # default local[threads]
    remote: str | None = None
    app_name: str = "wh"
    driver_max_rows: int = 50_000_000
    conf: dict[str, str] = field(default_factory=dict)


def strict_table(raw: object, name: str, keys: set[str], where: Path) -> dict[str, Any]:
    """A wh.toml table whose unknown keys are errors (the forecast's: a misspelt key would
    change what is published): its keys, or {} when it is absent."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table", where)
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(
            f"[{name}] has unknown key '{unknown[0]}'",
            where,
            hint=f"known keys: {', '.join(sorted(keys))}",
        )
    return dict(raw)


def _engine(raw: Any, path: Path) -> EngineSettings:
    if not isinstance(raw, dict):
        raise ConfigError("[engine] must be a table", path)
    _warn_unknown(list(raw), set(ENGINE_KEYS), f"{path} [engine]")
    values = _read_keys(ENGINE_KEYS, raw, path)
    name = values.get("name", "duckdb")
    if name not in ENGINES:
        raise ConfigError(
            f"[engine] name must be one of {', '.join(ENGINES)}, found '{name}'", path
        )
    if values.get("master") and values.get("remote"):
        raise ConfigError(
            "[engine] sets both master and remote",
            path,
            hint="keep one: a master URL "
            "(local[2], spark://...) or a Spark Connect endpoint (sc://...)",
        )
    if values.get("driver_max_rows", 1) < 1:
        raise ConfigError("[engine] driver_max_rows must be at least 1", path)
    values["conf"] = {str(k): str(v) for k, v in values.get("conf", {}).items()}
    return EngineSettings(**values)


class ConfigWarning(UserWarning):
    """A wh.toml key wh does not know; it is ignored."""


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    sources: Path
    warehouse: Path
    env: str = "prod"
    threads: int = 2  # what the process may use (affinity, cgroup quota), capped by wh.toml
    memory_limit: str | None = None  # wh.toml, else a share of a cgroup memory limit
    gc_retention_days: float = 7.0
    name: str = "wh"
    freq: str = "day"
    as_of_date: date | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=lambda: {k: d for k, (_, d) in CHECKS.items()})
    engine: EngineSettings = field(default_factory=EngineSettings)

    @property
    def variables(self) -> dict[str, Any]:
        """What SQL models may read as `$name` parameters."""
        return {**self.vars, **builtin_variables(self.freq, self.as_of_date, self.checks)}

    @property
    def sql_dir(self) -> Path:
        return self.project_dir / "sql"

    @property
    def pipeline_dir(self) -> Path:
        return self.project_dir / "pipeline"

    def with_overrides(self, **overrides: Any) -> Settings:
        given = {k: v for k, v in overrides.items() if v is not None}
        if "env" in given:
            check_env_name(given["env"])
        if isinstance(given.get("engine"), str):  # a name alone (--engine spark)
            if given["engine"] not in ENGINES:
                raise ConfigError(
                    f"--engine must be one of {', '.join(ENGINES)}, found '{given['engine']}'"
                )
            given["engine"] = replace(self.engine, name=given["engine"])
        if "threads" in given:
            if given["threads"] < 1:
                raise ConfigError("--threads must be at least 1")
            given["threads"] = effective_threads(given["threads"])
        return replace(self, **given)


def check_env_name(env: str) -> str:
    if not ENV_NAME.match(env):
        raise ConfigError(
            f"invalid environment name '{env}'",
            hint="use lower-case letters, digits and underscores, starting with a letter",
        )
    return env


def find_project_dir(start: Path | None = None) -> Path:
    """The nearest directory at or above `start` that holds wh.toml (like git)."""
    explicit = os.environ.get("WH_PROJECT")
    if explicit:
        path = Path(explicit).resolve()
        if not (path / CONFIG_FILE).is_file():
            raise ConfigError(f"WH_PROJECT={explicit} has no {CONFIG_FILE}")
        return path
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise ConfigError(
        f"no {CONFIG_FILE} found in {here} or any parent directory",
        hint="run wh inside a project (a folder with wh.toml, sql/ and pipeline/) "
        "or set WH_PROJECT",
    )


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    found = re.search(r"line (\d+)", str(exc))
    return int(found.group(1)) if found else None


def _coerce(key: str, value: Any, kind: type, origin: str, path: Path) -> Any:
    if kind is float and isinstance(value, int):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if isinstance(value, str) and kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    raise ConfigError(f"{key} must be {kind.__name__}, found {value!r} (from {origin})", path)


def _read_keys(
    keys: dict[str, tuple[str | None, type]], table: dict[str, Any], path: Path
) -> dict[str, Any]:
    """A wh.toml table's known keys, each overridden by its WH_* variable when set."""
    values: dict[str, Any] = {}
    for key, (env_var, kind) in keys.items():
        if env_var and os.environ.get(env_var):
            values[key] = _coerce(key, os.environ[env_var], kind, env_var, path)
        elif key in table:
            values[key] = _coerce(key, table[key], kind, CONFIG_FILE, path)
    return values


def _warn_unknown(keys: list[str], known: set[str], where: str) -> None:
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            warnings.warn(
                f"{where}: unknown key '{key}' is ignored{hint}", ConfigWarning, stacklevel=3
            )


def _checks(raw: Any, path: Path) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError("[checks] must be a table", path)
    _warn_unknown(list(raw), set(CHECKS), f"{path} [checks]")
    checks = {}
    for key, (kind, default) in CHECKS.items():
        value = _coerce(key, raw.get(key, default), kind, CONFIG_FILE, path)
        if value <= 0:
            raise ConfigError(f"[checks] {key} must be above 0, found {value}", path)
        checks[key] = value
    return checks


def load_settings(project_dir: Path | None = None) -> Settings:
    """Read wh.toml of the project and apply WH_* environment overrides."""
    root = (project_dir or find_project_dir()).resolve()
    path = root / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(
            f"no {CONFIG_FILE} in {root}", hint="pass the folder that holds the project's wh.toml"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"invalid TOML: {exc}", path, _toml_error_line(exc), hint="fix the syntax at that line"
        ) from None
    _warn_unknown(list(raw), KNOWN_TABLES, str(path))
    project = raw.get("project", {})
    if not isinstance(project, dict):
        raise ConfigError("[project] must be a table", path)
    _warn_unknown(list(project), set(PROJECT_KEYS), f"{path} [project]")

    values = _read_keys(PROJECT_KEYS, project, path)

    if values.get("freq", "day") not in FREQS:
        raise ConfigError(f"freq must be one of {', '.join(FREQS)}, found '{values['freq']}'", path)
    if values.get("as_of_date"):
        try:
            values["as_of_date"] = date.fromisoformat(values["as_of_date"])
        except ValueError:
            raise ConfigError(
                f"as_of_date must be a date like 2024-12-31, found '{values['as_of_date']}'",
                path,
            ) from None
    else:
        values.pop("as_of_date", None)
    variables = raw.get("vars", {})
    if not isinstance(variables, dict):
        raise ConfigError("[vars] must be a table of name = value", path)
    for name in variables:
        if not re.match(r"^[a-z_][a-z0-9_]*$", name) or name in RESERVED_VARIABLES:
            reserved = name in RESERVED_VARIABLES
            raise ConfigError(
                f"[vars] name '{name}' is "
                + ("reserved: wh sets it itself" if reserved else "not an identifier"),
                path,
                hint="use a lower-case identifier other than "
                + ", ".join(sorted(RESERVED_VARIABLES)),
            )
    values["vars"] = variables
    values["checks"] = _checks(raw.get("checks", {}), path)
    values["engine"] = _engine(raw.get("engine", {}), path)
    sources = root / values.pop("sources", "data/sources")
    warehouse = root / values.pop("warehouse", "data/warehouse")
    check_env_name(values.get("env", "prod"))
    if values.get("threads", 1) < 1:
        raise ConfigError("threads must be at least 1", path)
    # never more threads than CPUs the process may run on, whatever wh.toml asks for
    values["threads"] = effective_threads(values.get("threads"))
    values["memory_limit"] = values.get("memory_limit") or default_memory_limit()
    extra = {k: v for k, v in raw.items() if k not in ("project", "vars", "engine")}
    return Settings(
        project_dir=root,
        sources=sources.resolve(),
        warehouse=warehouse.resolve(),
        extra=extra,
        **values,
    )
