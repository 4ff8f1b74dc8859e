"""`wh doctor`: check config, sources and the warehouse's integrity; say what to fix.

Read-only: it opens state.db and the catalogs for reading and never repairs anything itself,
so it is safe to run while a build is running.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from warehouse import resources
from warehouse.config import Settings
from warehouse.errors import WhError
from warehouse.runtime import catalog, erasure
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.sources import CONTRACTS, check_contract, erasure_requests, find_source
from warehouse.runtime.state import State, open_read_only, state_path
from warehouse.runtime.storage import orphan_files


@dataclass(frozen=True)
class Finding:
    level: str  # ok | warning | error
    area: str
    message: str
    fix: str = ""


def diagnose(settings: Settings) -> list[Finding]:
    """Findings, errors first in importance; the config already loaded (its warnings are
    printed by the CLI as for every command)."""
    findings = _resources(settings) + _sources(settings)
    try:
        state = open_read_only(settings)  # looks only: no schema created, nothing migrated
    except sqlite3.Error as exc:
        return [
            *findings,
            Finding(
                "error",
                "state",
                f"cannot open {state_path(settings.warehouse)}: {exc}",
                "check the folder's permissions and disk",
            ),
        ]
    if state is None:
        findings.append(Finding("warning", "warehouse", "nothing built yet", "run: wh build"))
        return findings
    try:
        findings += _state(settings, state)
    except sqlite3.Error as exc:
        findings.append(
            Finding(
                "error",
                "state",
                f"cannot read {state.path}: {exc}",
                "run wh build once with this version of wh (it upgrades the state), then "
                "run wh doctor again",
            )
        )
    finally:
        state.close()
    if not any(f.level != "ok" for f in findings):
        findings.append(Finding("ok", "warehouse", "every check passed"))
    return findings


def _resources(settings: Settings) -> list[Finding]:
    """What the process may use (CPUs, memory, OpenMP), as the build and forecast see it."""
    found = [
        Finding("ok", "resources", f"{name}: {value}")
        for name, value in resources.describe(settings.threads, settings.memory_limit)
    ]
    limit = resources.cgroup_memory_limit()
    configured = _bytes(settings.memory_limit)
    if limit.bytes and configured and configured > limit.bytes:
        found.append(
            Finding(
                "warning",
                "resources",
                f"memory_limit {settings.memory_limit} is above the {limit.source} limit "
                f"({limit.bytes / 2**30:.1f} GiB): a large build is OOM-killed instead of "
                "spilling to disk",
                "lower memory_limit in wh.toml (or WH_MEMORY_LIMIT), or remove it to use "
                f"{resources.default_memory_limit(limit)}",
            )
        )
    return found


def _bytes(text: str | None) -> int | None:
    """'4GB', '512MiB', '3.5 GB' in bytes; None when unreadable."""
    if not text:
        return None
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
    units |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
    number = text.strip().upper()
    digits = "".join(c for c in number if c.isdigit() or c == ".")
    unit = number[len(digits) :].strip()
    if not digits or unit not in units:
        return None
    return int(float(digits) * units[unit])


def _sources(settings: Settings) -> list[Finding]:
    found = []
    for name in CONTRACTS:
        try:
            source = find_source(settings.sources, name)
            if not source.absent:
                rows = check_contract(source)
                found.append(
                    Finding(
                        "ok", "sources", f"{name}: {rows:,} rows in {len(source.files)} file(s)"
                    )
                )
        except WhError as exc:
            found.append(Finding("error", "sources", exc.message, exc.hint or ""))
    return found


def _state(settings: Settings, state: State) -> list[Finding]:
    found: list[Finding] = []
    for build_id, pid in state.running_builds():
        found.append(
            Finding(
                "warning",
                "builds",
                f"build {build_id} (pid {pid}) is running or was killed",
                "if no wh process is running, the next wh build marks it abandoned",
            )
        )
    for env, head in state.heads().items():
        if not catalog.shows_publish(settings, env, head.id):
            found.append(
                Finding(
                    "error",
                    env,
                    f"published file does not show publish {head.id} "
                    "(a build was killed mid-publish?)",
                    "run: wh build (any write command repairs it)",
                )
            )
            continue
        missing = [
            f"{model} ({f})"
            for model, fp in sorted(head.mapping.items())
            if (v := state.get_version(fp)) is not None
            for f in v.files
            if not Path(f).exists()
        ]
        for item in missing:
            found.append(
                Finding(
                    "error",
                    env,
                    f"data file missing: {item}",
                    f"run: wh build --env {env} --full-refresh, or wh rollback --env {env}",
                )
            )
        for role in catalog.ROLES:
            found += _views_resolve(settings, env, catalog.catalog_file(settings, head, role))
    found += _erasures(settings, state)
    orphans = orphan_files(settings, state)
    if orphans:
        size = sum(p.stat().st_size for p in orphans)
        found.append(
            Finding(
                "warning",
                "storage",
                f"{len(orphans)} Parquet file(s) ({size / 1e6:.1f} MB) belong to no version "
                "(left by killed builds)",
                "run: wh gc",
            )
        )
    return found


def _erasures(settings: Settings, state: State) -> list[Finding]:
    """Every file under the warehouse checked for every erased customer id."""
    requests = erasure_requests(settings.sources)
    if not requests.files:
        return []
    pending = erasure.pending(settings, state)
    count, holding = erasure.scan(settings, state)
    found = [
        Finding(
            "error",
            "privacy",
            f"{f.path.relative_to(settings.warehouse)} still holds an erased customer: {f.detail}",
            "run: wh build (it applies new erasure requests), then wh doctor again",
        )
        for f in holding
    ]
    if pending:
        found.append(
            Finding(
                "warning",
                "privacy",
                "the erasure requests changed since a build last applied them",
                "run: wh build",
            )
        )
    if not found:
        found.append(
            Finding(
                "ok",
                "privacy",
                f"{count} erased customer id(s): no file under the warehouse holds one",
            )
        )
    return found


def _views_resolve(settings: Settings, env: str, path: Path) -> list[Finding]:
    con = engine.connect(settings, path, read_only=True)
    bad = []
    try:
        views = con.execute(
            "SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal"
        ).fetchall()
        for schema, view in views:
            try:
                con.execute(
                    f"SELECT * FROM {engine.quote_ident(schema)}.{engine.quote_ident(view)} LIMIT 0"
                ).fetchall()
            except engine.Error as exc:
                bad.append(
                    Finding(
                        "error",
                        env,
                        f"{schema}.{view} does not resolve: {engine.short_message(str(exc))}",
                        f"run: wh build --env {env}",
                    )
                )
    finally:
        con.close()
    if not bad:
        bad.append(Finding("ok", env, f"{len(views)} published views resolve"))
    return bad
