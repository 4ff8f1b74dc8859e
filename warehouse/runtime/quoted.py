"""Finding and replacing values that wh's SQLite files quote in text (build error messages,
audited statements): the state and the audit log, scanned and scrubbed alike when customers
are erased. The caller owns the connection and says which (table, column)s hold text."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable

Columns = Iterable[tuple[str, str]]


def whole_words(values: list[str]) -> re.Pattern[str]:
    """Matches any of `values` where it is not part of a longer id or word."""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(r"(?<![\w-])(" + alternatives + r")(?![\w-])")


def quoting(db: sqlite3.Connection, columns: Columns, pattern: re.Pattern[str]) -> list[str]:
    """The columns (`table.column`) with a cell that `pattern` finds."""
    found = []
    for table, column in columns:
        for (cell,) in db.execute(f"SELECT {column} FROM {table}"):
            if isinstance(cell, str) and pattern.search(cell):
                found.append(f"{table}.{column}")
                break
    return found


def replace_in(
    db: sqlite3.Connection, columns: Columns, pattern: re.Pattern[str], replacement: str
) -> int:
    """Replace what `pattern` finds in these columns, inside the caller's transaction; the
    cells changed."""
    changed = 0
    for table, column in columns:
        for rowid, text in db.execute(
            f"SELECT rowid, {column} FROM {table} WHERE {column} IS NOT NULL"
        ).fetchall():
            new = pattern.sub(replacement, text)
            if new != text:
                db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (new, rowid))
                changed += 1
    return changed


def compact(db: sqlite3.Connection) -> None:
    """Rewrite the file so that no freed page or write-ahead log keeps replaced text."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
