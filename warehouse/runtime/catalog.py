"""Published catalogs: small DuckDB files of views, swapped in atomically.

Each publish of an environment writes a fresh file `catalogs/<env>-<publish id>.duckdb`
holding one view per model (over the version's immutable Parquet files, or the model's SQL
for view models) and a `wh_meta.models` table. A symlink (`warehouse.duckdb` for prod,
`envs/<env>.duckdb` for the others) is then renamed over the old one. A reader that has the
old file open keeps its consistent snapshot; the next open sees the new publish; a build never
opens a published file for writing, so DuckDB's single-writer lock never blocks anyone.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse import faults
from warehouse.config import Settings
from warehouse.runtime.state import Publish, State, Version

if TYPE_CHECKING:
    from warehouse.runtime.engine import duckdb as engine
# The engine (DuckDB) is imported inside the functions that write or open catalogs: the
# no-op `wh build` path (uptodate.py) reads pointers through this module without it.

PROD = "prod"


def pointer_path(settings: Settings, env: str) -> Path:
    if env == PROD:
        return settings.warehouse / "warehouse.duckdb"
    return settings.warehouse / "envs" / f"{env}.duckdb"


def catalog_file(settings: Settings, publish: Publish) -> Path:
    return _catalog_path(settings, publish.env, publish.id)


def _catalog_path(settings: Settings, env: str, publish_id: int) -> Path:
    return settings.warehouse / "catalogs" / f"{env}-{publish_id}.duckdb"


def view_sql(version: Version) -> str:
    from warehouse.runtime.engine import duckdb as engine

    if version.kind == "view":
        return version.query
    return engine.version_select(version.files, version.columns)


EMPTY_SCHEMAS = (
    "SELECT s.schema_name FROM duckdb_schemas() AS s "
    "WHERE s.database_name = current_database() AND NOT s.internal "
    "AND s.schema_name NOT IN (SELECT schema_name FROM duckdb_views() "
    "WHERE database_name = current_database() AND NOT internal) "
    "AND s.schema_name NOT IN (SELECT schema_name FROM duckdb_tables() "
    "WHERE database_name = current_database())"
)


def write_catalog(settings: Settings, publish: Publish, versions: dict[str, Version]) -> Path:
    """Write the catalog file of one publish (not yet visible to readers): a copy of the
    catalog the environment shows now with the views that changed replaced, or a new file."""
    from warehouse.runtime.engine import duckdb as engine

    path = catalog_file(settings, publish)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = current_target(settings, publish.env)
    if shown is not None and shown != path.resolve() and shown.exists():
        try:
            _remove(path)
            shutil.copyfile(shown, path)
            _fill(settings, path, publish, versions, patch=True)
            return path
        except (engine.Error, OSError):
            pass  # an unreadable or older catalog: write the file afresh
    _remove(path)
    _fill(settings, path, publish, versions, patch=False)
    return path


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def _fill(
    settings: Settings,
    path: Path,
    publish: Publish,
    versions: dict[str, Version],
    patch: bool,
) -> None:
    """Create the publish's views and its wh_meta.models table in the file at `path`. With
    `patch`, the file is a copy of an earlier catalog: only the views whose version differs
    are replaced (creating a view reads its Parquet footers, the cost of a publish), and
    the models no longer published are dropped."""
    from warehouse.runtime.engine import duckdb as engine

    con = engine.connect(settings, path)
    try:
        pending = dict(sorted(publish.mapping.items()))
        if patch:
            shown = dict(con.execute("SELECT model, fingerprint FROM wh_meta.models").fetchall())
            for model in sorted(set(shown) - set(pending)):
                con.execute(f"DROP VIEW IF EXISTS {engine.qualified(model)}")
            # a schema whose last model went is gone too, as in a catalog written afresh
            for (schema,) in con.execute(EMPTY_SCHEMAS).fetchall():
                con.execute(f"DROP SCHEMA {engine.quote_ident(schema)}")
            pending = {m: fp for m, fp in pending.items() if shown.get(m) != fp}
        # view models read other views: create what binds, retry the rest until no progress
        while pending:
            failed: dict[str, str] = {}
            errors: list[str] = []
            for model, fingerprint in pending.items():
                try:
                    engine.create_view(con, model, view_sql(versions[fingerprint]))
                except engine.Error as exc:
                    failed[model] = fingerprint
                    errors.append(f"{model}: {engine.short_message(str(exc))}")
            if len(failed) == len(pending):
                raise engine.Error("; ".join(errors))
            pending = failed
        if patch:
            con.execute("DELETE FROM wh_meta.models")
        else:
            con.execute("CREATE SCHEMA wh_meta")
            con.execute(
                "CREATE TABLE wh_meta.models (model VARCHAR, fingerprint VARCHAR, "
                "kind VARCHAR, row_count BIGINT, built_at TIMESTAMP, env VARCHAR, "
                "publish_id BIGINT, published_at TIMESTAMP)"
            )
        rows = [
            (
                m,
                fp,
                versions[fp].kind,
                versions[fp].row_count,
                _ts(versions[fp].created_at),
                publish.env,
                publish.id,
                _ts(publish.created_at),
            )
            for m, fp in sorted(publish.mapping.items())
        ]
        if rows:
            con.executemany("INSERT INTO wh_meta.models VALUES (?,?,?,?,?,?,?,?)", rows)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def swap_pointer(settings: Settings, env: str, target: Path) -> None:
    """Atomically point the environment's file at `target` (rename of a symlink)."""
    pointer = pointer_path(settings, env)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, pointer.parent), tmp)
    os.replace(tmp, pointer)


def publish_catalog(settings: Settings, state: State, publish: Publish) -> None:
    versions = {
        fp: v for fp in set(publish.mapping.values()) if (v := state.get_version(fp)) is not None
    }
    target = write_catalog(settings, publish, versions)
    faults.point("catalog_written")
    swap_pointer(settings, publish.env, target)


def current_target(settings: Settings, env: str) -> Path | None:
    pointer = pointer_path(settings, env)
    if not pointer.is_symlink():
        return None
    return (pointer.parent / os.readlink(pointer)).resolve()


def shows_publish(settings: Settings, env: str, publish_id: int) -> bool:
    """Whether the environment's file is the catalog of that publish (not after a crash
    between the state commit and the pointer swap)."""
    expected = _catalog_path(settings, env, publish_id).resolve()
    return current_target(settings, env) == expected and expected.exists()


def open_published(settings: Settings) -> engine.Connection:
    """A read-only connection to what the environment publishes."""
    from warehouse.errors import UsageError
    from warehouse.runtime.engine import duckdb as engine

    path = pointer_path(settings, settings.env)
    if not path.exists():
        raise UsageError(
            f"environment '{settings.env}' has not been published yet",
            hint=f"run: wh build --env {settings.env}",
        )
    return engine.connect(settings, path, read_only=True)


def repair(settings: Settings, state: State) -> list[str]:
    """Re-publish environments whose file does not show their head (a crash mid-publish)."""
    repaired = []
    for env, head in state.heads().items():
        if not shows_publish(settings, env, head.id):
            publish_catalog(settings, state, head)
            repaired.append(env)
    return repaired
