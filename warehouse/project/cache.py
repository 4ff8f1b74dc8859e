"""Work that depends only on file contents, kept between runs: parsed models and checked
source files. A build after editing one model parses that one; sqlglot and PyArrow are not
even imported when nothing they would read changed.

Entries are keyed by what they were made from (text, variables, file size and mtime) and by
the files of the code that made them, so an upgrade of wh or sqlglot starts afresh. The
cache is an optimisation only: unreadable or unwritable, it is ignored.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_PACKAGE = Path(__file__).resolve().parents[1]


def _code_stamp() -> str:
    """Changes when the code that parses models or checks sources changes: every module of
    the project layer (this one included) and the source checks, found rather than listed so
    a new parsing module cannot be forgotten."""
    files = [*sorted((_PACKAGE / "project").glob("*.py")), _PACKAGE / "runtime" / "sources.py"]
    spec = importlib.util.find_spec("sqlglot")  # finds the package without importing it
    if spec is not None and spec.origin:
        files.append(Path(spec.origin))
    parts = []
    for path in files:
        stat = path.stat()
        parts.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class FileCache:
    """A dict on disk (`<warehouse>/cache/files.pickle`) of results made from file contents."""

    def __init__(self, warehouse: Path) -> None:
        self.path = warehouse / "cache" / "files.pickle"
        self.stamp = _code_stamp()
        self.entries: dict[str, Any] = {}
        self.used: set[str] = set()
        self.changed = False
        try:
            with self.path.open("rb") as handle:
                stamp, entries = pickle.load(handle)
            if stamp == self.stamp and isinstance(entries, dict):
                self.entries = entries
        except Exception:  # missing, truncated or from another version: start afresh
            self.entries = {}

    def get(self, key_parts: tuple[Any, ...], make: Callable[[], T]) -> T:
        """The cached result for these inputs, or `make()`'s (errors are not cached)."""
        key = hashlib.sha256(repr(key_parts).encode()).hexdigest()
        self.used.add(key)
        if key in self.entries:
            return self.entries[key]  # type: ignore[no-any-return]
        value = make()
        self.entries[key] = value
        self.changed = True
        return value

    def save(self) -> None:
        """Write what this run used (entries for files gone or edited are dropped); called
        once per run, after the project was parsed and its sources checked."""
        if not self.changed:
            return
        kept = {k: v for k, v in self.entries.items() if k in self.used}
        temporary = self.path.with_name(f".files.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with temporary.open("wb") as handle:
                pickle.dump((self.stamp, kept), handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, self.path)
            self.changed = False
        except OSError:  # a read-only warehouse: run without the cache
            temporary.unlink(missing_ok=True)
