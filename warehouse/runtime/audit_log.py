"""Who read what through `wh serve` and `wh api`: `<warehouse>/audit/audit.db` (SQLite), on
when `[serve] audit_log = true`.

A table in the warehouse, not in a catalog readers open: readers cannot see who else read,
and a catalog is immutable while the log grows. SQLite (WAL) because it is written while
served and read by `wh audit` at the same time. Writes go through one background thread
with a queue, so a query never waits on the log's disk; a record is lost only if the
process is killed within the moment between the query and the write.
"""

from __future__ import annotations

import contextlib
import queue
import re
import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.runtime import quoted

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    started_at REAL NOT NULL,
    interface TEXT NOT NULL,      -- serve | api
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    client TEXT
);
CREATE TABLE IF NOT EXISTS queries (
    session_id TEXT NOT NULL,
    at REAL NOT NULL,
    interface TEXT NOT NULL,
    user TEXT NOT NULL,
    role TEXT NOT NULL,
    statement TEXT NOT NULL,
    rows INTEGER,
    status TEXT NOT NULL,         -- ok | error
    error TEXT,
    seconds REAL
);
"""


def log_path(settings: Settings) -> Path:
    return log_path_in(settings.warehouse)


def log_path_in(warehouse: Path) -> Path:
    return warehouse / "audit" / "audit.db"


def enabled(settings: Settings) -> bool:
    table = settings.extra.get("serve", {})
    value = table.get("audit_log", False) if isinstance(table, dict) else False
    if not isinstance(value, bool):
        raise ConfigError(
            f"[serve] audit_log must be true or false, not {value!r}",
            settings.project_dir / "wh.toml",
        )
    return value


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # who read what is for wh's user only (stewards' statements may quote clear values)
    path.touch(mode=0o600, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
    return db


class AuditLog:
    """The writer: `session` and `query` return at once; a thread writes in batches."""

    def __init__(self, settings: Settings, interface: str) -> None:
        self.interface = interface
        self.path = log_path(settings)
        _connect(self.path).close()  # a bad path fails at start, not in the thread
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._write, name="wh-audit", daemon=True)
        self._thread.start()

    def session(self, user: str, role: str, client: str) -> str:
        session_id = uuid.uuid4().hex[:16]
        self._queue.put(
            (
                "INSERT INTO sessions VALUES (?,?,?,?,?,?)",
                (session_id, time.time(), self.interface, user, role, client),
            )
        )
        return session_id

    def query(
        self,
        session_id: str,
        user: str,
        role: str,
        statement: str,
        rows: int | None,
        error: str | None = None,
        seconds: float | None = None,
    ) -> None:
        self._queue.put(
            (
                "INSERT INTO queries VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    session_id,
                    time.time(),
                    self.interface,
                    user,
                    role,
                    statement,
                    rows,
                    "error" if error else "ok",
                    error,
                    seconds,
                ),
            )
        )

    def _write(self) -> None:
        db = _connect(self.path)
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while not self._queue.empty() and len(batch) < 1000:
                    batch.append(self._queue.get_nowait())
                records = [b for b in batch if b is not None]
                if records:
                    self._write_batch(db, records)
                if len(records) < len(batch):
                    return
        finally:
            db.close()

    def _write_batch(
        self, db: sqlite3.Connection, records: list[tuple[str, tuple[Any, ...]]]
    ) -> None:
        """One transaction; a failure is reported and the log goes on (serving never stops
        because its log could not be written)."""
        try:
            db.execute("BEGIN IMMEDIATE")
            for sql, values in records:
                db.execute(sql, values)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            print(
                f"wh: could not write {len(records)} record(s) to the audit log {self.path}: {exc}",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=30)


def read(settings: Settings, limit: int = 100, user: str | None = None) -> list[dict[str, Any]]:
    """The latest queries, newest first (`wh audit`)."""
    path = log_path(settings)
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    db.row_factory = sqlite3.Row
    try:
        where, params = ("WHERE user = ?", [user]) if user else ("", [])
        rows = db.execute(
            f"SELECT * FROM queries {where} ORDER BY at DESC LIMIT ?", [*params, limit]
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


# where the log quotes what readers typed (and who they are)
TEXT_COLUMNS = (("queries", "statement"), ("queries", "error"), ("sessions", "user"))


def scrub(settings: Settings, values: list[str], replacement: str = "[erased]") -> int:
    """Replace erased ids (whole words) in logged statements and errors; rewrite the file so
    no freed page keeps them. Returns the cells changed."""
    path = log_path(settings)
    if not path.exists() or not values:
        return 0
    db = _connect(path)
    try:
        db.execute("BEGIN IMMEDIATE")
        changed = quoted.replace_in(db, TEXT_COLUMNS, quoted.whole_words(values), replacement)
        db.execute("COMMIT")
        quoted.compact(db)
    finally:
        db.close()
    return changed


def quoting(path: Path, pattern: re.Pattern[str]) -> list[str]:
    """The logged columns (`table.column`) with a cell that `pattern` finds (erasure scans)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return quoted.quoting(db, TEXT_COLUMNS, pattern)
    finally:
        db.close()
