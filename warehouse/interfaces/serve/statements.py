"""What a client sent: split into statements, sorted into what runs, what the session
answers itself, and what a read-only server refuses; and catalog queries made to fit DuckDB.

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


# --- catalog queries ----------------------------------------------------------------------

# psql's pattern matching spells operators and collations out in full; DuckDB wants them plain
OPERATOR = re.compile(r"OPERATOR\s*\(\s*pg_catalog\s*\.\s*([~!*<>=]+)\s*\)", re.IGNORECASE)
COLLATE = re.compile(r"\s+COLLATE\s+(?:pg_catalog\s*\.\s*)?\"?default\"?", re.IGNORECASE)
# published models are views; to BI tools they are tables (psql \dt, get_table_names)
PG_CLASS = re.compile(r"(?<![\w.\"])(?:pg_catalog\s*\.\s*)?pg_class\b", re.IGNORECASE)
# Postgres' object-identifier types are plain numbers here
REG_TYPES = r"(?:pg_catalog\s*\.\s*)?(?:regclass|regtype|regproc|regnamespace|regrole)\b"
CATALOG_CAST = re.compile(rf"(::\s*|\bAS\s+){REG_TYPES}", re.IGNORECASE)
CATALOG_TYPE = re.compile(r"::\s*pg_catalog\s*\.\s*", re.IGNORECASE)
TYPE_NAMES = {
    "varchar": "text",
    "float8": "double precision",
    "float4": "real",
    "int2": "smallint",
    "int4": "integer",
    "int8": "bigint",
    "bool": "boolean",
    "timestamp": "timestamp without time zone",
    "timestamptz": "timestamp with time zone",
    "time": "time without time zone",
    "hugeint": "numeric",
    "ubigint": "numeric",
    "uinteger": "bigint",
    "usmallint": "integer",
    "utinyint": "smallint",
    "tinyint": "smallint",
    "list": "text",
    "struct": "text",
    "map": "text",
}
# functions Postgres has and DuckDB lacks, defined per session as temporary macros
MACROS = {
    "pg_get_userbyid": "(role_id) AS 'wh'",
    # Postgres' spelling of type names, which BI tools and SQLAlchemy map to their types
    "format_type": "(type_id, type_mod) AS CASE pg_catalog.format_type(type_id, type_mod) "
    + " ".join(f"WHEN '{duck}' THEN '{pg}'" for duck, pg in TYPE_NAMES.items())
    + " ELSE pg_catalog.format_type(type_id, type_mod) END",
    "version": f"() AS 'PostgreSQL 15.0 (wh serve, DuckDB {duckdb.__version__})'",
    "array_upper": "(items, dimension) AS len(items)",
    "to_regtype": "(wh_name) AS "
    "(SELECT min(t.oid) FROM pg_catalog.pg_type t WHERE t.typname = wh_name)",
    "to_regclass": "(class_name) AS NULL::BIGINT",
    "pg_get_serial_sequence": "(table_name, column_name) AS NULL::VARCHAR",
    "pg_get_expr": "(expression, relation_id, pretty := false) AS NULL",
    "pg_get_viewdef": "(view_id, pretty := false) AS NULL",
    "pg_encoding_to_char": "(encoding) AS 'UTF8'",
    "pg_get_function_identity_arguments": "(func_id) AS ''",
    "pg_get_partkeydef": "(table_id) AS NULL",
    "pg_get_statisticsobjdef_columns": "(stat_id) AS NULL",
    "pg_relation_is_publishable": "(table_id) AS false",
    "pg_total_relation_size": "(table_id) AS 0::BIGINT",
    "obj_description": "(object_id, catalog := NULL) AS NULL",
    "col_description": "(table_id, column_no) AS NULL",
    "shobj_description": "(object_id, catalog) AS NULL",
}
# catalog tables Postgres has and DuckDB lacks, empty (wh has no policies, triggers, ...)
EMPTY_TABLES = {
    "pg_policy": "polname VARCHAR, polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, "
    "polwithcheck VARCHAR, polcmd VARCHAR, polrelid BIGINT",
    "pg_roles": "oid BIGINT, rolname VARCHAR",
    "pg_collation": "oid BIGINT, collname VARCHAR, collnamespace BIGINT, collowner BIGINT, "
    "collprovider VARCHAR, collencoding INTEGER, collcollate VARCHAR, collctype VARCHAR",
    "pg_statistic_ext": "oid BIGINT, stxname VARCHAR, stxrelid BIGINT, stxnamespace BIGINT, "
    "stxkind VARCHAR[], stxstattarget INTEGER, stxkeys INTEGER[]",
    "pg_publication": "oid BIGINT, pubname VARCHAR, puballtables BOOLEAN",
    "pg_publication_rel": "prpubid BIGINT, prrelid BIGINT, prqual VARCHAR, prattrs INTEGER[]",
    "pg_publication_namespace": "pnpubid BIGINT, pnnspid BIGINT",
    "pg_inherits": "inhrelid BIGINT, inhparent BIGINT, inhseqno INTEGER, inhdetachpending BOOLEAN",
    "pg_trigger": "oid BIGINT, tgrelid BIGINT, tgname VARCHAR, tgisinternal BOOLEAN, "
    "tgenabled VARCHAR, tgparentid BIGINT",
    "pg_rewrite": "oid BIGINT, ev_class BIGINT, rulename VARCHAR, ev_type VARCHAR",
    "pg_foreign_table": "ftrelid BIGINT, ftserver BIGINT, ftoptions VARCHAR[]",
    "pg_partitioned_table": "partrelid BIGINT, partstrat VARCHAR",
}
PG_TABLE = re.compile(r"\bpg_catalog\s*\.\s*(" + "|".join(EMPTY_TABLES) + r")\b", re.IGNORECASE)
# schema.table.column references bind as table.column (DuckDB binds the former only sometimes)
QUALIFIED_COLUMN = re.compile(r"\bpg_catalog\s*\.\s*(pg_\w+\s*\.\s*\w+)", re.IGNORECASE)
JSON_BUILD = re.compile(r"\bjson_build_object\s*\(", re.IGNORECASE)
# calls resolve unqualified: to the macros above, or to DuckDB's own (pg_catalog is searched)
PG_FUNCTION = re.compile(r"\bpg_catalog\s*\.\s*(\w+)\s*\(", re.IGNORECASE)
CLASS_VIEW = (
    "CREATE OR REPLACE TEMP VIEW wh_pg_class AS SELECT * REPLACE "
    "(CASE relkind WHEN 'v' THEN 'r' ELSE relkind END AS relkind), "
    "false AS relforcerowsecurity "
    "FROM pg_catalog.pg_class WHERE relname <> 'wh_pg_class'"
)


def session_setup_sql() -> list[str]:
    """Statements run once on each session's connection (temporary, per connection)."""
    macros = [f"CREATE OR REPLACE TEMP MACRO {name}{body}" for name, body in MACROS.items()]
    tables = [
        f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM (SELECT {_null_columns(cols)}) "
        "WHERE false"
        for name, cols in EMPTY_TABLES.items()
    ]
    return [CLASS_VIEW, *macros, *tables]


def _null_columns(spec: str) -> str:
    """'a INT, b VARCHAR' -> 'NULL::INT AS a, NULL::VARCHAR AS b'."""
    pairs = (column.split(None, 1) for column in spec.split(", "))
    return ", ".join(f"NULL::{kind} AS {name}" for name, kind in pairs)


def rewrite_catalog_query(sql: str) -> str:
    """Make the catalog queries psql and BI tools send run on DuckDB's pg_catalog."""
    if "pg_" not in sql.lower():
        return sql
    sql = OPERATOR.sub(r" \1 ", sql)
    sql = QUALIFIED_COLUMN.sub(r"\1", sql)
    sql = COLLATE.sub("", sql)
    sql = PG_CLASS.sub("wh_pg_class", sql)
    sql = CATALOG_CAST.sub(lambda m: m.group(1) + "BIGINT", sql)
    sql = JSON_BUILD.sub("json_object(", sql)
    sql = CATALOG_TYPE.sub("::", sql)
    sql = PG_FUNCTION.sub(lambda m: m.group(1) + "(", sql)
    sql = PG_TABLE.sub(lambda m: m.group(1), sql)
    return sql
