"""Published catalogs opened read-only, shared by sessions, swapped when a build publishes.

A publish is an immutable catalog file; the environment's pointer (a symlink) is renamed to
the new one. Each statement outside a transaction block asks for the current file: if the
pointer moved, the new catalog is opened and later statements use it, while statements
already running finish on the old one. An old catalog is closed when no session holds it.
Nothing here ever opens a file for writing, so builds and readers never wait on each other.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.config import Settings
from warehouse.interfaces.serve.pg_catalog import session_setup_sql
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine


class NotPublishedError(Exception):
    """The environment has no publish to serve yet."""


@dataclass
class Snapshot:
    """One publish, opened read-only with file access limited to its version data."""

    path: Path
    database: duckdb.DuckDBPyConnection
    users: int = 0
    link: str = ""  # the pointer's text when it named this catalog (see `is_current`)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one session (see `install_catalog`)."""
        return self.database.cursor()

    def install_catalog(
        self, cursor: duckdb.DuckDBPyConnection, env: str, user: str, settings: dict[str, str]
    ) -> None:
        """The Postgres catalog over this publish, on one connection (the database DuckDB
        names after the catalog file): installed the first time a statement needs it."""
        for statement in session_setup_sql(self.path.stem, env, user, settings):
            cursor.execute(statement)


class Snapshots:
    """The publishes one role reads (the analyst's and the steward's catalogs differ)."""

    def __init__(self, settings: Settings, role: str = catalog.ANALYST) -> None:
        self.settings = settings
        self.role = role
        self._lock = threading.Lock()
        self._open: dict[Path, Snapshot] = {}
        self._current: Path | None = None

    def current_path(self) -> Path:
        target = catalog.current_target(self.settings, self.settings.env, self.role)
        if target is None or not target.exists():
            raise NotPublishedError(f"environment '{self.settings.env}' has not been published yet")
        return target

    def _link(self) -> str:
        return os.readlink(catalog.pointer_path(self.settings, self.settings.env, self.role))

    def acquire(self) -> Snapshot:
        """The current publish, counted as in use until `release`."""
        try:
            link = self._link()  # read before the path: a publish in between is seen next
        except OSError:
            link = ""
        path = self.current_path()
        with self._lock:
            snapshot = self._open.get(path)
            if snapshot is None:
                snapshot = Snapshot(
                    path,
                    # a session reads files in the folders the catalog's views read only, so
                    # an analyst cannot read a clear version file by its path
                    engine.connect_locked_down(self.settings, path, catalog.readable_folders(path)),
                )
                self._open[path] = snapshot
            snapshot.link = link
            previous, self._current = self._current, path
            snapshot.users += 1
            if previous is not None and previous != path:
                self._close_unused()
            return snapshot

    def is_current(self, snapshot: Snapshot) -> bool:
        """Whether the pointer still names the snapshot's catalog: one readlink, asked before
        every statement outside a transaction block (each publish has its own file name, so
        the same text is the same catalog; resolving the path took ten system calls)."""
        try:
            return self._link() == snapshot.link
        except OSError:  # no pointer (yet, or removed): keep serving what is open
            return True

    def release(self, snapshot: Snapshot) -> None:
        with self._lock:
            snapshot.users -= 1
            self._close_unused()

    def _close_unused(self) -> None:
        for path, snapshot in list(self._open.items()):
            if snapshot.users <= 0 and path != self._current:
                snapshot.database.close()
                del self._open[path]

    def close(self) -> None:
        with self._lock:
            for snapshot in self._open.values():
                snapshot.database.close()
            self._open.clear()

    @property
    def open_count(self) -> int:
        return len(self._open)
