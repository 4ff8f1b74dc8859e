"""Published catalogs: small DuckDB files of views, swapped in atomically.

Each publish of an environment writes fresh files holding one view per model (over the
version's immutable Parquet files, or the model's SQL for view models) and a `wh_meta.models`
table, one per reader role: `catalogs/<env>-<publish id>.duckdb` for analysts (columns tagged
as personal data read pseudonymised copies, `runtime/pseudonym.py`) and
`catalogs/<env>-<publish id>.steward.duckdb` (clear values, mode 600). Symlinks
(`warehouse.duckdb` and `warehouse-steward.duckdb` for prod, `envs/<env>.duckdb` and
`envs/<env>-steward.duckdb` for the others) are then renamed over the old ones. A reader
that has an old file open keeps its consistent snapshot; the next open sees the new publish; a
build never opens a published file for writing, so DuckDB's single-writer lock never blocks
anyone. wh's own readers (the forecast, `wh sql`) open the steward catalog.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
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
ANALYST = "analyst"  # tagged columns pseudonymised: what readers open by default
STEWARD = "steward"  # clear values
ROLES = (ANALYST, STEWARD)


def pointer_path(settings: Settings, env: str, role: str = ANALYST) -> Path:
    suffix = "" if role == ANALYST else f"-{role}"
    if env == PROD:
        return settings.warehouse / f"warehouse{suffix}.duckdb"
    return settings.warehouse / "envs" / f"{env}{suffix}.duckdb"


def catalog_file(settings: Settings, publish: Publish, role: str = ANALYST) -> Path:
    return _catalog_path(settings, publish.env, publish.id, role)


def _catalog_path(settings: Settings, env: str, publish_id: int, role: str = ANALYST) -> Path:
    suffix = "" if role == ANALYST else f".{role}"
    return settings.warehouse / "catalogs" / f"{env}-{publish_id}{suffix}.duckdb"


@dataclass(frozen=True)
class Shown:
    """What a catalog's view of one model reads: the version's files or their copies."""

    files: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]


def view_sql(version: Version, shown: Shown | None = None) -> str:
    from warehouse.runtime.engine import duckdb as engine

    if version.kind == "view":
        return version.query
    if shown is not None:
        return engine.version_select(shown.files, shown.columns)
    return engine.version_select(version.files, version.columns)


EMPTY_SCHEMAS = (
    "SELECT s.schema_name FROM duckdb_schemas() AS s "
    "WHERE s.database_name = current_database() AND NOT s.internal "
    "AND s.schema_name NOT IN (SELECT schema_name FROM duckdb_views() "
    "WHERE database_name = current_database() AND NOT internal) "
    "AND s.schema_name NOT IN (SELECT schema_name FROM duckdb_tables() "
    "WHERE database_name = current_database())"
)


def write_catalog(
    settings: Settings,
    publish: Publish,
    versions: dict[str, Version],
    role: str = STEWARD,
    shown_as: dict[str, Shown] | None = None,
    base: Path | None = None,
) -> Path:
    """Write the catalog file of one publish for one role (not yet visible to readers): a
    copy of `base` or of the catalog the environment shows now, with the views that differ
    replaced, or a new file. `shown_as`: the models whose views read other files
    (pseudonymised copies)."""
    from warehouse.runtime.engine import duckdb as engine

    path = catalog_file(settings, publish, role)
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = base or current_target(settings, publish.env, role)
    if shown is not None and shown != path.resolve() and shown.exists():
        try:
            _remove(path)
            shutil.copyfile(shown, path)
            _fill(settings, path, publish, versions, True, shown_as or {})
            return _private(path, role)
        except (engine.Error, OSError):
            pass  # an unreadable or older catalog: write the file afresh
    _remove(path)
    _fill(settings, path, publish, versions, False, shown_as or {})
    return _private(path, role)


def _private(path: Path, role: str) -> Path:
    """The steward's catalog is for wh's user only, like the clear files of tagged versions
    (`_owner_only`)."""
    if role == STEWARD:
        os.chmod(path, 0o600)
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
    shown_as: dict[str, Shown],
) -> None:
    """Create the publish's views and its wh_meta tables in the file at `path`. With
    `patch`, the file is a copy of an earlier catalog: only the views whose version differs
    are replaced (creating a view reads its Parquet footers, the cost of a publish), and
    the models no longer published are dropped. wh_meta.readable lists the folders the views
    read (`wh serve` lets a session read files there only)."""
    from warehouse.runtime.engine import duckdb as engine

    con = engine.connect(settings, path)
    try:
        pending = dict(sorted(publish.mapping.items()))
        if patch:
            shown = dict(
                con.execute(
                    "SELECT model, fingerprint || coalesce(':' || shown, '') FROM wh_meta.models"
                ).fetchall()
            )
            for model in sorted(set(shown) - set(pending)):
                con.execute(f"DROP VIEW IF EXISTS {engine.qualified(model)}")
            # a schema whose last model went is gone too, as in a catalog written afresh
            for (schema,) in con.execute(EMPTY_SCHEMAS).fetchall():
                con.execute(f"DROP SCHEMA {engine.quote_ident(schema)}")
            pending = {
                m: fp for m, fp in pending.items() if shown.get(m) != _shown_key(m, fp, shown_as)
            }
        # view models read other views: create what binds, retry the rest until no progress
        while pending:
            failed: dict[str, str] = {}
            errors: list[str] = []
            for model, fingerprint in pending.items():
                try:
                    engine.create_view(
                        con, model, view_sql(versions[fingerprint], shown_as.get(model))
                    )
                except engine.Error as exc:
                    failed[model] = fingerprint
                    errors.append(f"{model}: {engine.short_message(str(exc))}")
            if len(failed) == len(pending):
                raise engine.Error("; ".join(errors))
            pending = failed
        con.execute("CREATE SCHEMA IF NOT EXISTS wh_meta")
        con.execute("DROP TABLE IF EXISTS wh_meta.models")
        con.execute("DROP TABLE IF EXISTS wh_meta.readable")
        con.execute(
            "CREATE TABLE wh_meta.models (model VARCHAR, fingerprint VARCHAR, "
            "kind VARCHAR, row_count BIGINT, built_at TIMESTAMP, env VARCHAR, "
            "publish_id BIGINT, published_at TIMESTAMP, shown VARCHAR)"
        )
        con.execute("CREATE TABLE wh_meta.readable (folder VARCHAR)")
        folders = sorted(
            {
                str(Path(f).parent) + "/"
                for m, fp in publish.mapping.items()
                for f in (shown_as[m].files if m in shown_as else versions[fp].files)
            }
        )
        if folders:
            con.executemany("INSERT INTO wh_meta.readable VALUES (?)", [(f,) for f in folders])
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
                _shown_key(m, fp, shown_as).partition(":")[2] or None,
            )
            for m, fp in sorted(publish.mapping.items())
        ]
        if rows:
            con.executemany("INSERT INTO wh_meta.models VALUES (?,?,?,?,?,?,?,?,?)", rows)
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _shown_key(model: str, fingerprint: str, shown_as: dict[str, Shown]) -> str:
    """A view's identity in a catalog: its version, and which copies it reads if any."""
    if model not in shown_as:
        return fingerprint
    digest = hashlib.sha256("|".join(shown_as[model].files).encode()).hexdigest()[:12]
    return f"{fingerprint}:{digest}"


def _ts(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def swap_pointer(settings: Settings, env: str, target: Path, role: str = ANALYST) -> None:
    """Atomically point the environment's file at `target` (rename of a symlink)."""
    pointer = pointer_path(settings, env, role)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(target, pointer.parent), tmp)
    os.replace(tmp, pointer)


def publish_catalog(settings: Settings, state: State, publish: Publish) -> None:
    """Write the publish's steward and analyst catalogs, then point readers at them."""
    versions = {
        fp: v for fp in set(publish.mapping.values()) if (v := state.get_version(fp)) is not None
    }
    steward = write_catalog(settings, publish, versions, STEWARD)
    # the steward's file with the tagged views replaced: creating a view reads its files'
    # footers, so only those are made again
    analyst = write_catalog(
        settings,
        publish,
        versions,
        ANALYST,
        pseudonymised(settings, state, publish, versions),
        base=steward,
    )
    faults.point("catalog_written")
    swap_pointer(settings, publish.env, steward, STEWARD)
    swap_pointer(settings, publish.env, analyst, ANALYST)


def pseudonymised(
    settings: Settings, state: State, publish: Publish, versions: dict[str, Version]
) -> dict[str, Shown]:
    """The models whose analyst view reads pseudonymised copies (made here if missing)."""
    from warehouse.runtime import pseudonym

    hidden = pseudonym.levels(settings)
    tagged = {
        model: sorted(c for c, level in state.pii(fp).items() if level in hidden)
        for model, fp in publish.mapping.items()
        if fp in versions and versions[fp].kind != "view"
    }
    tagged = {m: columns for m, columns in tagged.items() if columns}
    if not tagged:
        return {}
    key = pseudonym.load_key(settings, state.warehouse_id())
    if state.meta(pseudonym.KEY_ID) != key.id:
        state.set_meta(pseudonym.KEY_ID, key.id)
    maker = pseudonym.Pseudonymiser(settings, key)
    try:
        shown = {}
        for model, columns in sorted(tagged.items()):
            version = versions[publish.mapping[model]]
            present = [c for c in columns if c in dict(version.columns)]
            if not present or not version.files:
                continue  # nothing of it to hide
            _owner_only(version.files)
            files = maker.files(version.files, version.columns, present)
            shown[model] = Shown(
                tuple(files), pseudonym.pseudonymised_types(version.columns, present)
            )
        return shown
    finally:
        maker.close()


def _owner_only(files: list[str]) -> None:
    """The clear files of a tagged version: readable by wh's user only, so another user who
    is given the analyst catalog reads the pseudonymised copies and nothing else."""
    for file in files:
        with contextlib.suppress(OSError):  # a file system without modes (a mounted share)
            if os.stat(file).st_mode & 0o077:
                os.chmod(file, 0o600)


def key_changed(settings: Settings, state: State) -> bool:
    """Whether the published analyst catalogs were made with another key than the current
    one (it was rotated): they are then published again. Standard library only (the no-op
    check asks it)."""
    from warehouse.errors import ConfigError
    from warehouse.runtime import pseudonym

    used = state.meta(pseudonym.KEY_ID)
    if used is None:
        return False
    try:
        return pseudonym.current_key_id(settings, state.warehouse_id()) != used
    except ConfigError:
        return True  # let the full path say what is wrong


def readable_folders(path: Path) -> list[str]:
    """The folders a catalog's views read (wh_meta.readable; empty for a catalog written
    before it existed)."""
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        try:
            return [f for (f,) in con.execute("SELECT folder FROM wh_meta.readable").fetchall()]
        except duckdb.Error:
            return []


def current_target(settings: Settings, env: str, role: str = ANALYST) -> Path | None:
    pointer = pointer_path(settings, env, role)
    if not pointer.is_symlink():
        return None
    return (pointer.parent / os.readlink(pointer)).resolve()


def shows_publish(settings: Settings, env: str, publish_id: int) -> bool:
    """Whether the environment's files are the catalogs of that publish (not after a crash
    between the state commit and the pointer swaps)."""
    for role in ROLES:
        expected = _catalog_path(settings, env, publish_id, role).resolve()
        if current_target(settings, env, role) != expected or not expected.exists():
            return False
    return True


def open_published(settings: Settings, role: str = STEWARD) -> engine.Connection:
    """A read-only connection to what the environment publishes, as `role` sees it (wh's
    own readers, the forecast among them, see clear values)."""
    from warehouse.errors import UsageError
    from warehouse.runtime.engine import duckdb as engine

    path = pointer_path(settings, settings.env, role)
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
