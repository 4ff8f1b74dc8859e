"""What a client sent: split into statements, sorted into what runs, what the session
answers itself, and what a read-only server refuses (catalog emulation: pg_catalog.py).

DuckDB's own parser decides whether a statement is a query, so the verdict matches what
DuckDB would execute. Session commands (SET, SHOW of a setting, BEGIN/COMMIT, DISCARD) never
reach DuckDB: a client cannot change the engine's configuration through them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import duckdb

# kinds the session answers itself
SESSION_KINDS = {
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "rollback_to",
    "set",
    "reset",
    "show",
    "discard",
    "deallocate",
    "empty",
    "declare",
    "close",
}
QUERY_TYPES = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
READ_ONLY_HINT = "wh serve is read-only; tables change only through wh build and wh forecast"


@dataclass(frozen=True)
class Statement:
    text: str
    kind: str  # "query", a session kind, or "refused"
    name: str = ""  # setting name for set/reset/show; the refused verb
    value: str = ""  # value for set


class StatementError(Exception):
    """A statement the server will not run; carries the Postgres SQLSTATE to report."""

    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint


def split(sql: str) -> list[str]:
    """Statements of a query string, split on semicolons outside quotes and comments."""
    pieces: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch == "'" or ch == '"':
            escapes = ch == "'" and i > 0 and sql[i - 1] in "eE" and _word_start(sql, i - 1)
            i = _skip_quoted(sql, i, ch, escapes)
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif ch == "/" and sql.startswith("/*", i):
            i = _skip_block_comment(sql, i)
        elif ch == "$" and (tag := _dollar_tag(sql, i)):
            end = sql.find(tag, i + len(tag))
            i = n if end < 0 else end + len(tag)
        elif ch == ";":
            pieces.append(sql[start:i])
            i += 1
            start = i
        else:
            i += 1
    pieces.append(sql[start:])
    return [p.strip() for p in pieces if _strip_comments(p).strip()]


def _word_start(sql: str, i: int) -> bool:
    return i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_")


def _skip_quoted(sql: str, i: int, quote: str, backslash_escapes: bool) -> int:
    i += 1
    while i < len(sql):
        ch = sql[i]
        if backslash_escapes and ch == "\\":
            i += 2
            continue
        if ch == quote:
            if sql.startswith(quote * 2, i):
                i += 2
                continue
            return i + 1
        i += 1
    return i


def _skip_block_comment(sql: str, i: int) -> int:
    depth = 0
    while i < len(sql):
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return i


DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _dollar_tag(sql: str, i: int) -> str | None:
    if i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_"):
        return None  # part of an identifier, or a $1 parameter
    found = DOLLAR_TAG.match(sql, i)
    return found.group(0) if found else None


def _strip_comments(sql: str) -> str:
    """The statement without leading comments (for reading its first words)."""
    text = sql.lstrip()
    while True:
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :].lstrip()
        elif text.startswith("/*"):
            text = text[_skip_block_comment(text, 0) :].lstrip()
        else:
            return text


SET_STATEMENT = re.compile(
    r"^set\s+(?:session\s+|local\s+)?(?P<name>time\s+zone|[\w.]+)\s*(?:to|=)?\s*(?P<value>.*)$",
    re.IGNORECASE | re.DOTALL,
)


SHOW_ALIASES = {"transaction isolation level": "transaction_isolation", "time zone": "timezone"}


def classify(sql: str, settings: Collection[str] = ()) -> Statement:
    """Sort one statement; raises StatementError for what is refused or does not parse.
    `settings` are the names SHOW answers from the session (others go to DuckDB)."""
    text = _strip_comments(sql).rstrip().rstrip(";").rstrip()
    if not text:
        return Statement(sql, "empty")
    words = text.split(None, 3)
    first = words[0].lower()
    second = words[1].lower() if len(words) > 1 else ""
    if first in ("begin", "start"):
        return Statement(text, "begin")
    if first in ("commit", "end"):
        return Statement(text, "commit")
    if first in ("rollback", "abort"):
        if second == "to" or (second in ("work", "transaction") and len(words) > 2):
            return Statement(text, "rollback_to")
        return Statement(text, "rollback")
    if first == "savepoint":
        return Statement(text, "savepoint")
    if first == "release":
        return Statement(text, "release")
    if first == "discard":
        return Statement(text, "discard")
    if first == "deallocate":
        name = words[-1] if len(words) > 1 else ""
        return Statement(text, "deallocate", name=name.strip('"'))
    if first == "copy" and COPY_TO_STDOUT.match(text):
        return _copy_out(text)
    if first == "declare":
        return _declare(text)
    if first in ("fetch", "move"):
        return _fetch(text)
    if first == "close":
        found = CLOSE.match(text)
        if not found:
            raise StatementError("42601", f"cannot read the CLOSE statement: {text[:80]}")
        return Statement(text, "close", name=_cursor_name(found.group("name")))
    if first == "set":
        return _set_statement(text)
    if first == "reset":
        return Statement(text, "reset", name=_setting_name(second))
    if first == "show":
        rest = _setting_name(text[4:])
        name = SHOW_ALIASES.get(rest, rest)
        if name in settings:
            return Statement(text, "show", name=name)
    return _engine_statement(text)


DECLARE = re.compile(
    r"^declare\s+(?P<name>\"[^\"]+\"|\w+)\s+(?:binary\s+)?(?:(?:a|in)sensitive\s+)?"
    r"(?:no\s+)?(?:scroll\s+)?cursor\s+(?P<hold>(?:with|without)\s+hold\s+)?for\s+(?P<query>.+)$",
    re.IGNORECASE | re.DOTALL,
)
FETCH = re.compile(
    r"^(?P<verb>fetch|move)\s+(?:(?P<how>next|first|forward\s+all|forward\s+\d+|forward|all|\d+)"
    r"\s+)?(?:from\s+|in\s+)?(?P<name>\"[^\"]+\"|\w+)$",
    re.IGNORECASE,
)
CLOSE = re.compile(r"^close\s+(?P<name>\"[^\"]+\"|\w+)$", re.IGNORECASE)


COPY_TO_STDOUT = re.compile(
    r"^copy\s+(?P<source>\(.*\)|[\w.\"]+(?:\s*\([^)]*\))?)\s+to\s+stdout\b\s*(?P<options>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _copy_out(text: str) -> Statement:
    """COPY (query) TO STDOUT / COPY table [(columns)] TO STDOUT [WITH] [(] options [)]:
    a read, streamed to the client (psql's \\copy, ETL tools). The query runs as any query
    does; only TO STDOUT is a COPY here (to or from a file stays refused)."""
    found = COPY_TO_STDOUT.match(text)
    assert found is not None
    source = found.group("source").strip()
    if source.startswith("("):
        query = source[1:-1].strip()
    else:
        table, _, columns = source.partition("(")
        query = f"SELECT {columns.rstrip(')').strip() or '*'} FROM {table.strip()}"
    _engine_statement(query)  # refuses anything but a query
    options = re.sub(r"^with\s+", "", found.group("options").strip(), flags=re.IGNORECASE)
    options = options.strip().strip("()").lower()
    words = re.findall(r"'[^']*'|[\w]+", options)
    csv = "csv" in words
    header = "header" in words and words[words.index("header") + 1 : words.index("header") + 2] != [
        "false"
    ]
    delimiter = "," if csv else "\t"
    if "delimiter" in words and words.index("delimiter") + 1 < len(words):
        delimiter = words[words.index("delimiter") + 1].strip("'")
    if "binary" in words:
        raise StatementError("0A000", "COPY TO STDOUT supports text and csv formats")
    value = f"{'csv' if csv else 'text'}|{int(header)}|{delimiter}"
    return Statement(query, "copy_out", value=value)


def _cursor_name(raw: str) -> str:
    return raw[1:-1] if raw.startswith('"') else raw.lower()


def _declare(text: str) -> Statement:
    """DECLARE name CURSOR [WITH HOLD] FOR query: a read-only cursor over a query."""
    found = DECLARE.match(text)
    if not found:
        raise StatementError("42601", f"cannot read the DECLARE statement: {text[:80]}")
    query = found.group("query").strip()
    _engine_statement(query)  # refuses anything but a query, as on its own
    hold = "hold" if (found.group("hold") or "").lower().startswith("with ") else ""
    return Statement(query, "declare", name=_cursor_name(found.group("name")), value=hold)


def _fetch(text: str) -> Statement:
    """FETCH [NEXT | FORWARD n | ALL | n] [FROM] name; value: rows wanted, 0 for all."""
    found = FETCH.match(text)
    if not found or found.group("verb").lower() == "move":
        raise StatementError("0A000", f"only FETCH forward is supported: {text[:80]}")
    how = (found.group("how") or "next").lower().split()
    count = "0" if how[-1] == "all" else how[-1] if how[-1].isdigit() else "1"
    if how[0] == "first":
        raise StatementError("0A000", "cursors here are forward-only (NO SCROLL)")
    return Statement(text, "fetch", name=_cursor_name(found.group("name")), value=count)


def _set_statement(text: str) -> Statement:
    if re.match(r"^set\s+(session\s+characteristics|transaction)\b", text, re.IGNORECASE):
        return Statement(text, "set", name="transaction")
    found = SET_STATEMENT.match(text)
    if not found:
        raise StatementError("42601", f"cannot read the SET statement: {text[:80]}")
    value = found.group("value").strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1].replace("''", "'")
    return Statement(text, "set", name=_setting_name(found.group("name")), value=value)


def _setting_name(raw: str) -> str:
    name = re.sub(r"\s+", " ", raw.strip().strip('"').lower())
    return "timezone" if name == "time zone" else name


def _engine_statement(text: str) -> Statement:
    try:
        parsed = duckdb.extract_statements(text)
    except duckdb.Error as exc:
        raise StatementError("42601", _first_line(str(exc))) from None
    if len(parsed) != 1:
        raise StatementError("42601", "one statement at a time, please")
    kind = parsed[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        # EXPLAIN ANALYZE runs its statement: only a query may be explained
        inner = re.sub(r"^explain\s+(analy[sz]e\s+)?", "", text, flags=re.IGNORECASE)
        _engine_statement(inner)
        return Statement(text, "query")
    if kind in QUERY_TYPES:
        return Statement(text, "query")
    verb = _verb(text)
    raise StatementError(
        "25006", f"cannot execute {verb} in a read-only transaction", hint=READ_ONLY_HINT
    )


def _verb(text: str) -> str:
    words = text.split(None, 2)
    return " ".join(words[:2]).upper() if words[0].lower() == "create" else words[0].upper()


def _first_line(message: str) -> str:
    return message.split("\n", 1)[0].strip()
