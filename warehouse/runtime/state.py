"""The warehouse's own record: versions, environments (publishes), runs and audits, in
`<warehouse>/state.db`. This module is the only one that opens that file or writes SQL
against it: its path, schema, migrations and read-only opening live here, and callers ask
named questions (`recent_builds`, `audit_results`, `uptodate`, ...).

SQLite (WAL mode) rather than DuckDB because readers such as `wh runs` must work while a
build writes, and DuckDB allows one writer process or many readers, never both.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse.config import Settings
from warehouse.errors import StateError
from warehouse.runtime import quoted

STATE_FILE = "state.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    fingerprint TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    logic_fp TEXT NOT NULL,
    query TEXT NOT NULL,
    segments TEXT NOT NULL,       -- JSON list of {file, rows, tmin, tmax}
    columns TEXT NOT NULL,        -- JSON list of [name, type]
    row_count INTEGER NOT NULL,
    time_column TEXT,
    created_at REAL NOT NULL,
    build_id TEXT NOT NULL,
    source_files TEXT             -- JSON list of "path|size|mtime" of the sources upstream
);
CREATE TABLE IF NOT EXISTS publishes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    env TEXT NOT NULL,
    created_at REAL NOT NULL,
    build_id TEXT,
    action TEXT NOT NULL,         -- build | rollback
    mapping TEXT NOT NULL,        -- JSON {model: fingerprint}
    previous_id INTEGER
);
CREATE TABLE IF NOT EXISTS env_heads (
    env TEXT PRIMARY KEY,
    publish_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS builds (
    build_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    env TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    status TEXT NOT NULL,         -- running | ok | failed | noop
    selection TEXT,
    models_built INTEGER DEFAULT 0,
    models_reused INTEGER DEFAULT 0,
    rows_written INTEGER DEFAULT 0,
    error TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS build_models (
    build_id TEXT NOT NULL,
    model TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    action TEXT NOT NULL,         -- full | incremental | view
    status TEXT NOT NULL,         -- ok | failed
    rows_processed INTEGER,
    seconds REAL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS audit_results (
    build_id TEXT NOT NULL,
    model TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    audit TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failing_rows INTEGER NOT NULL,
    query TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS version_pii (
    fingerprint TEXT PRIMARY KEY,
    columns TEXT NOT NULL         -- JSON {column: direct | quasi}: what readers see pseudonymised
);
CREATE TABLE IF NOT EXISTS pii_cache (
    key TEXT PRIMARY KEY,         -- runtime/pii._tag_keys: what a model's tags depend on
    columns TEXT NOT NULL         -- JSON {column: level}
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    applied_at REAL NOT NULL,
    requests INTEGER NOT NULL,    -- customer ids requested (the ids themselves are not kept)
    first_requested TEXT,
    last_requested TEXT,
    files_rewritten INTEGER NOT NULL,
    rows_removed INTEGER NOT NULL,
    digest TEXT NOT NULL          -- of the request files' sizes and times, not of the ids
);
CREATE TABLE IF NOT EXISTS uptodate (
    env TEXT PRIMARY KEY,
    digest TEXT NOT NULL,         -- inputs digest of the last full build (runtime/uptodate.py)
    publish_id INTEGER,
    models INTEGER NOT NULL
);
"""


def state_path(warehouse: Path) -> Path:
    return warehouse / STATE_FILE


def open_state(settings: Settings) -> State:
    """The warehouse's state for reading and writing (created and migrated if needed)."""
    path = state_path(settings.warehouse)
    try:
        return State(path)
    except sqlite3.Error as exc:
        raise StateError(
            f"cannot open {path}: {exc}",
            hint="the warehouse folder must be writable by wh (read-only? full disk?); "
            "readers can still open warehouse.duckdb read-only",
        ) from None


def open_read_only(settings: Settings) -> State | None:
    """The state for looking only (doctor, the no-op check): never created, migrated or
    written; None when nothing was built yet. Raises sqlite3.Error if it cannot be read."""
    path = state_path(settings.warehouse)
    if not path.is_file():
        return None
    return State(path, read_only=True)


@dataclass(frozen=True)
class Segment:
    """One immutable Parquet file of a version; versions of one model may share segments."""

    file: str
    rows: int
    tmin: str | None = None
    tmax: str | None = None


@dataclass(frozen=True)
class Version:
    fingerprint: str
    model: str
    kind: str
    data_hash: str
    logic_fp: str
    query: str
    segments: tuple[Segment, ...]
    columns: tuple[tuple[str, str], ...]
    row_count: int
    time_column: str | None = None
    created_at: float = field(default_factory=time.time)
    build_id: str = ""
    # the source files (Source.file_stats) the version was computed from; None when unknown
    source_files: tuple[str, ...] | None = None

    @property
    def files(self) -> list[str]:
        return [s.file for s in self.segments]

    @property
    def time_max(self) -> str | None:
        values = [s.tmax for s in self.segments if s.tmax is not None]
        return max(values) if values else None


@dataclass(frozen=True)
class Publish:
    id: int
    env: str
    created_at: float
    build_id: str | None
    action: str
    mapping: dict[str, str]
    previous_id: int | None


def _version(row: sqlite3.Row) -> Version:
    return Version(
        fingerprint=row["fingerprint"],
        model=row["model"],
        kind=row["kind"],
        data_hash=row["data_hash"],
        logic_fp=row["logic_fp"],
        query=row["query"],
        segments=tuple(Segment(**s) for s in json.loads(row["segments"])),
        columns=tuple((c[0], c[1]) for c in json.loads(row["columns"])),
        row_count=row["row_count"],
        time_column=row["time_column"],
        created_at=row["created_at"],
        build_id=row["build_id"],
        source_files=tuple(json.loads(row["source_files"])) if row["source_files"] else None,
    )


def _publish(row: sqlite3.Row) -> Publish:
    return Publish(
        id=row["id"],
        env=row["env"],
        created_at=row["created_at"],
        build_id=row["build_id"],
        action=row["action"],
        mapping=json.loads(row["mapping"]),
        previous_id=row["previous_id"],
    )


class State:
    """Read and write the state database; every write is one SQLite transaction."""

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if read_only:
            self.db = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, timeout=5, check_same_thread=False
            )
            self.db.row_factory = sqlite3.Row
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a killed process never loses a commit; only an OS crash can lose the
        # last ones, and then the pointer repair re-publishes the head the state still has
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Columns added since a warehouse was created (older versions read them as null)."""
        columns = {r["name"] for r in self.db.execute("PRAGMA table_info(versions)")}
        if "source_files" not in columns:
            self.db.execute("ALTER TABLE versions ADD COLUMN source_files TEXT")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # versions -----------------------------------------------------------------------------
    def get_version(self, fingerprint: str) -> Version | None:
        row = self.db.execute(
            "SELECT * FROM versions WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return _version(row) if row else None

    def versions(self) -> list[Version]:
        return [_version(r) for r in self.db.execute("SELECT * FROM versions ORDER BY created_at")]

    def add_version(self, version: Version) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO versions (fingerprint, model, kind, data_hash, logic_fp, "
                "query, segments, columns, row_count, time_column, created_at, build_id, "
                "source_files) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    version.fingerprint,
                    version.model,
                    version.kind,
                    version.data_hash,
                    version.logic_fp,
                    version.query,
                    json.dumps([s.__dict__ for s in version.segments]),
                    json.dumps([list(c) for c in version.columns]),
                    version.row_count,
                    version.time_column,
                    version.created_at,
                    version.build_id,
                    None if version.source_files is None else json.dumps(version.source_files),
                ),
            )

    def delete_versions(self, fingerprints: list[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM versions WHERE fingerprint = ?", [(f,) for f in fingerprints]
            )
            db.executemany(
                "DELETE FROM version_pii WHERE fingerprint = ?", [(f,) for f in fingerprints]
            )

    def set_segment_rows(self, rows: dict[str, int]) -> None:
        """New row counts of rewritten segment files (an erasure removed rows), in every
        version that lists them."""
        with self.transaction() as db:
            for row in db.execute("SELECT fingerprint, segments FROM versions").fetchall():
                segments = json.loads(row["segments"])
                if not any(s["file"] in rows for s in segments):
                    continue
                for s in segments:
                    s["rows"] = rows.get(s["file"], s["rows"])
                db.execute(
                    "UPDATE versions SET segments = ?, row_count = ? WHERE fingerprint = ?",
                    (json.dumps(segments), sum(s["rows"] for s in segments), row["fingerprint"]),
                )

    # personal data: the tagged columns of each version ----------------------------------------
    def pii(self, fingerprint: str) -> dict[str, str]:
        row = self.db.execute(
            "SELECT columns FROM version_pii WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return dict(json.loads(row["columns"])) if row else {}

    def set_pii(self, tags: dict[str, dict[str, str]]) -> bool:
        """Record {fingerprint: {column: level}}; whether any version's tags changed."""
        changed = False
        with self.transaction() as db:
            for fingerprint, columns in sorted(tags.items()):
                text = json.dumps(columns, sort_keys=True)
                row = db.execute(
                    "SELECT columns FROM version_pii WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
                if (row["columns"] if row else "{}") != text:
                    changed = True
                    db.execute(
                        "INSERT OR REPLACE INTO version_pii VALUES (?, ?)", (fingerprint, text)
                    )
        return changed

    def cached_tags(self, keys: list[str]) -> dict[str, dict[str, str]]:
        found = {}
        for key in keys:
            row = self.db.execute("SELECT columns FROM pii_cache WHERE key = ?", (key,)).fetchone()
            if row:
                found[key] = dict(json.loads(row["columns"]))
        return found

    def cache_tags(self, tags: dict[str, dict[str, str]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pii_cache VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in tags.items()],
            )

    def tagged_models(self) -> dict[str, dict[str, str]]:
        """{model: {column: level}} over every version (any version's tag counts)."""
        found: dict[str, dict[str, str]] = {}
        for row in self.db.execute(
            "SELECT v.model, p.columns FROM version_pii p JOIN versions v USING (fingerprint)"
        ):
            found.setdefault(row["model"], {}).update(json.loads(row["columns"]))
        return found

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row["value"]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def warehouse_id(self) -> str:
        """A random id of this warehouse (names its pseudonymisation key file; not secret)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'warehouse_id'").fetchone()
        if row:
            return str(row["value"])
        import uuid

        with self.transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('warehouse_id', ?)", (uuid.uuid4().hex,))
            row = db.execute("SELECT value FROM meta WHERE key = 'warehouse_id'").fetchone()
        return str(row["value"])

    # erasure requests ----------------------------------------------------------------------
    def last_erasure_digest(self) -> str | None:
        row = self.db.execute("SELECT digest FROM erasures ORDER BY id DESC LIMIT 1").fetchone()
        return str(row["digest"]) if row else None

    def record_erasure(
        self,
        requests: int,
        first: str | None,
        last: str | None,
        files: int,
        rows: int,
        digest: str,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO erasures (applied_at, requests, first_requested, last_requested, "
                "files_rewritten, rows_removed, digest) VALUES (?,?,?,?,?,?,?)",
                (time.time(), requests, first, last, files, rows, digest),
            )

    def erasures(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM erasures ORDER BY id")]

    def quoting(self, pattern: re.Pattern[str]) -> list[str]:
        """The message columns (`table.column`) with a cell that `pattern` finds."""
        return quoted.quoting(self.db, self.MESSAGE_COLUMNS, pattern)

    # where the state quotes data: error messages and audit queries
    MESSAGE_COLUMNS = (
        ("builds", "error"),
        ("build_models", "error"),
        ("audit_results", "query"),
    )

    def scrub(self, values: list[str], replacement: str = "[erased]") -> int:
        """Replace `values` (as whole words) where the state quotes data, then rewrite the
        file so that no freed page or write-ahead log keeps the old text."""
        if not values:
            return 0
        with self.transaction() as db:
            changed = quoted.replace_in(
                db, self.MESSAGE_COLUMNS, quoted.whole_words(values), replacement
            )
        quoted.compact(self.db)
        return changed

    # environments -------------------------------------------------------------------------
    def head(self, env: str) -> Publish | None:
        row = self.db.execute(
            "SELECT p.* FROM env_heads h JOIN publishes p ON p.id = h.publish_id WHERE h.env = ?",
            (env,),
        ).fetchone()
        return _publish(row) if row else None

    def get_publish(self, publish_id: int) -> Publish | None:
        row = self.db.execute("SELECT * FROM publishes WHERE id = ?", (publish_id,)).fetchone()
        return _publish(row) if row else None

    def publishes(self) -> list[Publish]:
        return [_publish(r) for r in self.db.execute("SELECT * FROM publishes ORDER BY id")]

    def heads(self) -> dict[str, Publish]:
        rows = self.db.execute(
            "SELECT p.* FROM env_heads h JOIN publishes p ON p.id = h.publish_id ORDER BY h.env"
        )
        return {r["env"]: _publish(r) for r in rows}

    def publish(
        self,
        env: str,
        mapping: dict[str, str],
        action: str,
        build_id: str | None,
        previous_id: int | None,
    ) -> Publish:
        """Point `env` at `mapping` in one transaction."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT INTO publishes (env, created_at, build_id, action, mapping, previous_id)"
                " VALUES (?,?,?,?,?,?)",
                (
                    env,
                    time.time(),
                    build_id,
                    action,
                    json.dumps(mapping, sort_keys=True),
                    previous_id,
                ),
            )
            publish_id = cursor.lastrowid
            db.execute("INSERT OR REPLACE INTO env_heads VALUES (?, ?)", (env, publish_id))
        published = self.get_publish(int(publish_id or 0))
        assert published is not None
        return published

    # runs ---------------------------------------------------------------------------------
    def start_build(
        self, build_id: str, command: str, env: str, selection: str | None, pid: int
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO builds (build_id, command, env, started_at, status, "
                "selection, pid) VALUES (?,?,?,?,?,?,?)",
                (build_id, command, env, time.time(), "running", selection, pid),
            )

    def finish_build(
        self,
        build_id: str,
        status: str,
        built: int = 0,
        reused: int = 0,
        rows: int = 0,
        error: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE builds SET finished_at = ?, status = ?, models_built = ?, "
                "models_reused = ?, rows_written = ?, error = ? WHERE build_id = ?",
                (time.time(), status, built, reused, rows, error, build_id),
            )

    def abandon_running_builds(self) -> int:
        """Mark builds left 'running' by a killed process; call while holding the lock."""
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE builds SET status = 'abandoned', finished_at = ?, "
                "error = 'process stopped before the build finished' WHERE status = 'running'",
                (time.time(),),
            )
            return cursor.rowcount

    def record_model(
        self,
        build_id: str,
        model: str,
        fingerprint: str,
        action: str,
        status: str,
        rows: int | None,
        seconds: float,
        error: str | None = None,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO build_models VALUES (?,?,?,?,?,?,?,?)",
                (build_id, model, fingerprint, action, status, rows, seconds, error),
            )

    def record_audit(
        self, build_id: str, model: str, fingerprint: str, audit: str, failing: int, query: str
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO audit_results VALUES (?,?,?,?,?,?,?)",
                (build_id, model, fingerprint, audit, int(failing == 0), failing, query),
            )

    def running_builds(self) -> list[tuple[str, int | None]]:
        """(build_id, pid) of builds still marked running: live, or killed and not yet
        marked abandoned by the next build."""
        rows = self.db.execute("SELECT build_id, pid FROM builds WHERE status = 'running'")
        return [(r["build_id"], r["pid"]) for r in rows]

    def build_status(self, build_id: str) -> str | None:
        row = self.db.execute("SELECT status FROM builds WHERE build_id = ?", (build_id,))
        found = row.fetchone()
        return str(found["status"]) if found else None

    def recent_builds(self, limit: int) -> list[dict[str, Any]]:
        """The latest builds (and forecast runs), newest first, as `wh runs` lists them."""
        rows = self.db.execute(
            "SELECT build_id, env, status, started_at, "
            "round(finished_at - started_at, 2) AS seconds, models_built AS built, "
            "models_reused AS reused, rows_written AS rows, error "
            "FROM builds ORDER BY started_at DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def recent_publishes(self, limit: int) -> list[dict[str, Any]]:
        """The latest publishes (rollback targets), newest first, with their model counts."""
        rows = self.db.execute(
            "SELECT id, env, action, build_id, previous_id, created_at, "
            "(SELECT count(*) FROM json_each(mapping)) AS models FROM publishes "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def audit_results(self, fingerprint: str) -> list[tuple[str, bool, int]]:
        """(audit, passed, failing rows) of a version, in the order they ran."""
        rows = self.db.execute(
            "SELECT audit, passed, failing_rows FROM audit_results WHERE fingerprint = ? "
            "ORDER BY rowid",
            (fingerprint,),
        )
        return [(r["audit"], bool(r["passed"]), int(r["failing_rows"])) for r in rows]

    # the no-op fast path's record -----------------------------------------------------------
    def remember_uptodate(self, env: str, digest: str | None, models: int) -> None:
        """Record the inputs digest of a full build of `env` (None forgets it), against the
        publish the environment points at now."""
        with self.transaction() as db:
            if digest is None:
                db.execute("DELETE FROM uptodate WHERE env = ?", (env,))
                return
            head = db.execute("SELECT publish_id FROM env_heads WHERE env = ?", (env,)).fetchone()
            db.execute(
                "INSERT OR REPLACE INTO uptodate VALUES (?, ?, ?, ?)",
                (env, digest, head["publish_id"] if head else None, models),
            )

    def uptodate(self, env: str) -> tuple[str, int | None, int] | None:
        """(digest, publish_id, models) when the environment still points at the publish the
        recorded full build made and no build is running; else None."""
        row = self.db.execute(
            "SELECT u.digest, u.publish_id, u.models, h.publish_id AS head FROM uptodate u "
            "LEFT JOIN env_heads h ON h.env = u.env WHERE u.env = ?",
            (env,),
        ).fetchone()
        if row is None or row["publish_id"] != row["head"] or self.running_builds():
            return None
        return str(row["digest"]), row["publish_id"], int(row["models"])
