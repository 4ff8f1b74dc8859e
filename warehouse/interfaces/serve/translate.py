"""Postgres SQL in, DuckDB SQL out: each query a client sends is parsed as Postgres by
sqlglot, adjusted where Postgres and DuckDB differ, and generated as DuckDB.

What changes: catalog tables (`pg_catalog.*`, `information_schema.*`) point at wh's
emulation (`pg_catalog.py`); object-identifier casts (`'t'::regclass`) become lookups;
Postgres operators sqlglot keeps verbatim (`OPERATOR(pg_catalog.~)`, `COLLATE
pg_catalog.default`) become DuckDB's; session facts (`current_user`, `current_database()`,
`pg_backend_pid()`) are the session's; and result columns are named as Postgres names them
(`count`, `sum`, `?column?`). Format strings of `to_date`/`to_timestamp`/`to_char` and
`::` casts are sqlglot's own Postgres-to-DuckDB translation. A statement sqlglot cannot
parse is run as sent (DuckDB's parser is Postgres-derived).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from warehouse.interfaces.serve.params import text_array
from warehouse.interfaces.serve.pg_catalog import emulated

OBJECT_TYPES = {
    "regclass": "wh_regclass",
    "regtype": "wh_regtype",
    "regnamespace": "wh_regnamespace",
}
# an object identifier displayed: the macros that name it
OBJECT_NAMES = {"regclass": "wh_relname", "regtype": "wh_typname", "regnamespace": "wh_nspname"}
OID_TYPES = {*OBJECT_TYPES, "regproc", "regprocedure", "regrole", "regoper", "oid"}
CATALOG_SCHEMAS = {"pg_catalog", "information_schema"}
# Postgres names an unaliased cast of an expression after the type (`select 1::int` -> int4)
PG_TYPE_NAMES = {
    exp.DataType.Type.INT: "int4", exp.DataType.Type.BIGINT: "int8",
    exp.DataType.Type.SMALLINT: "int2", exp.DataType.Type.TEXT: "text",
    exp.DataType.Type.VARCHAR: "varchar", exp.DataType.Type.DATE: "date",
    exp.DataType.Type.DECIMAL: "numeric", exp.DataType.Type.DOUBLE: "float8",
    exp.DataType.Type.FLOAT: "float4", exp.DataType.Type.BOOLEAN: "bool",
    exp.DataType.Type.TIMESTAMP: "timestamp", exp.DataType.Type.TIMESTAMPTZ: "timestamptz",
}  # fmt: skip
# functions whose Postgres column name differs from sqlglot's name for them
FUNCTION_NAMES = {
    "currenttimestamp": "now",
    "currentdate": "current_date",
    "currentversion": "version",
    "currentuser": "current_user",
    "currentschema": "current_schema",
    "sessionuser": "session_user",
}


@dataclass(frozen=True)
class SessionFacts:
    env: str  # the database name clients connected to
    user: str
    pid: int
    settings: Mapping[str, str] = field(default_factory=dict)  # what SHOW answers


# sqlglot logs statements it keeps as raw commands (EXPLAIN ANALYZE, SUMMARIZE): they run
# as sent, which is no news worth a line on the server's stderr each time
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# the one textual rewrite: sqlglot 30 cannot parse an array of object identifiers
# (pgcli's `proargtypes::regtype[]`); their elements are numbers here
OID_ARRAY = re.compile(
    r"::\s*(?:pg_catalog\s*\.\s*)?(?:regtype|regclass|regproc|regprocedure|regnamespace"
    r"|regrole|oid)\s*\[\s*\]",
    re.IGNORECASE,
)


def to_duckdb(sql: str, facts: SessionFacts) -> str:
    """The DuckDB form of one Postgres query (unchanged if sqlglot cannot read it)."""
    sql = OID_ARRAY.sub("::bigint[]", sql)
    try:
        tree = sqlglot.parse_one(sql, read="postgres")
    except (SqlglotError, ValueError):
        return sql
    if tree is None or isinstance(tree, exp.Command):
        return sql
    _name_like_postgres(tree)  # before the rewrite: names come from what the client wrote
    # children before parents: a rewritten node's subtree is already rewritten (sqlglot's
    # transform() would skip the subtree of a node it replaced)
    for node in reversed(list(tree.dfs())):
        new = _rewrite(node, facts)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    try:
        return str(tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE))
    except SqlglotError:  # something DuckDB's dialect cannot say: DuckDB gets the original
        return sql


def _type_name(node: Any) -> str | None:
    """'regclass' for a cast target ObjectIdentifier(REGCLASS) or pg_catalog.regclass."""
    if isinstance(node, exp.ObjectIdentifier):
        return node.name.lower()
    if isinstance(node, exp.DataType):
        kind = node.args.get("kind")
        if isinstance(kind, exp.Dot):
            return str(kind.expression.name).lower()
        if node.this == exp.DataType.Type.USERDEFINED and kind is not None:
            return str(kind.name if isinstance(kind, exp.Expression) else kind).lower()
    return None


def _rewrite(node: Any, facts: SessionFacts) -> Any:
    if (
        isinstance(node, exp.Table)
        and isinstance(node.this, exp.Func)
        and node.db.lower() in CATALOG_SCHEMAS
    ):  # FROM pg_catalog.unnest(...) -> FROM unnest(...)
        node.set("db", None)
        return node
    if isinstance(node, exp.Table) and not node.args.get("joins"):
        schema = node.db.lower() or None
        view = emulated(schema, node.name) if schema in (None, *CATALOG_SCHEMAS) else None
        if view is not None:
            table = exp.to_table(view)
            if node.alias:
                table.set("alias", node.args.get("alias"))
            else:  # keep the name queries qualify columns with (pg_class.relname)
                table.set("alias", exp.TableAlias(this=exp.to_identifier(node.name)))
            return table
    if (
        isinstance(node, exp.Column)
        and node.args.get("db") is not None
        and node.db.lower() in CATALOG_SCHEMAS
        and emulated(node.db.lower(), node.table) is not None
    ):  # pg_catalog.pg_namespace.nspname -> pg_namespace.nspname (the emulation's alias)
        return exp.column(node.name, table=node.table, quoted=False)
    if isinstance(node, exp.Cast):
        name = _type_name(node.to)
        if name in OID_TYPES:
            literal = isinstance(node.this, exp.Literal) and node.this.is_string
            if name in OBJECT_TYPES and literal:
                return exp.func(OBJECT_TYPES[name], node.this)
            if literal:  # 'array_in'::regproc: functions are named by text in this catalog
                return node.this
            if name in OBJECT_NAMES and _shown(node):
                # shown or cast to text, Postgres prints the object's name, not its number
                return exp.func(OBJECT_NAMES[name], node.this)
            return exp.cast(node.this, "BIGINT", copy=False)
    if isinstance(node, exp.DataType) and isinstance(node.args.get("kind"), exp.Dot):
        # pg_catalog.int2 -> int2 (SMALLINT), wherever a type is named (casts, arrays)
        return exp.DataType.build(node.args["kind"].expression.name, dialect="postgres")
    if (
        isinstance(node, exp.Dot)
        and isinstance(node.this, exp.Identifier)
        and node.this.name.lower() in CATALOG_SCHEMAS
        and isinstance(node.expression, exp.Func)
    ):
        return node.expression  # pg_catalog.format_type(...) -> format_type(...)
    if isinstance(node, exp.Any):
        inner = node.this.this if isinstance(node.this, exp.Paren) else node.this
        if _is_array_literal(inner):
            # x = ANY('{r,p}'): Postgres reads the text as an array where one is expected
            inner.replace(_array(inner))
            return node
    if isinstance(node, exp.Cast) and _is_array_literal(node.this) and node.to.is_type("array"):
        return exp.cast(_array(node.this), node.to, copy=False)  # '{1,2}'::int[]
    if isinstance(node, exp.Operator):
        return _operator(node)
    if isinstance(node, exp.Collate):
        return node.this  # one collation here; COLLATE pg_catalog.default changes nothing
    if isinstance(node, exp.CurrentUser | exp.SessionUser):
        return exp.Literal.string(facts.user)
    if isinstance(node, exp.Anonymous | exp.Func):
        name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
        if name in ("current_database", "current_catalog"):
            return exp.Literal.string(facts.env)
        if name == "current_schema":
            return exp.Literal.string("public")
        if name == "pg_backend_pid":
            return exp.Literal.number(facts.pid)
        first = (
            (node.expressions[0] if node.expressions else None)
            if isinstance(node, exp.Anonymous)
            else node.this
        )
        if name == "current_setting" and isinstance(first, exp.Literal):
            # the session's setting (SET changes it), not DuckDB's configuration
            value = facts.settings.get(str(first.this).lower())
            return exp.Null() if value is None else exp.Literal.string(value)
        if name == "current_setting" and first is not None:  # current_setting($1)
            return exp.Anonymous(this="wh_current_setting", expressions=[first])
        if name == "json_build_object":
            return exp.Anonymous(this="json_object", expressions=node.expressions)
    if isinstance(node, exp.Column) and _is_session_user(node):
        return exp.Literal.string(facts.user)
    return node


def _shown(cast: exp.Cast) -> bool:
    """The cast's value is a result column, or is cast on to text."""
    parent = cast.parent
    if isinstance(parent, exp.Alias):
        parent = parent.parent
    if (isinstance(parent, exp.Select) and cast in parent.expressions) or (
        isinstance(parent, exp.Select) and cast.parent in parent.expressions
    ):
        return True
    return isinstance(cast.parent, exp.Cast) and cast.parent.to.is_type(
        "text", "varchar", "char", "name"
    )


def _is_array_literal(node: Any) -> bool:
    return isinstance(node, exp.Literal) and node.is_string and node.this.startswith("{")


def _array(node: exp.Literal) -> Any:
    """'{a,"b c",NULL}' as an array expression of its (text) elements."""
    try:
        items = text_array(node.this)
    except (ValueError, IndexError):
        return node  # not an array after all: left to DuckDB
    # elements that all read as numbers are numbers: Postgres types the literal from the
    # other side of the comparison, DuckDB will not compare an integer with text
    numeric = all(v is None or _is_number(v) for v in items) and any(v is not None for v in items)
    return exp.Array(
        expressions=[
            exp.Null()
            if v is None
            else (exp.Literal.number(v) if numeric else exp.Literal.string(v))
            for v in items
        ]
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip().lower() not in ("nan", "inf", "-inf", "infinity", "-infinity")


def _is_session_user(node: exp.Column) -> bool:
    """`current_user` parsed as a column (it takes no parentheses)."""
    identifier = node.this
    quoted = isinstance(identifier, exp.Identifier) and identifier.quoted  # "user": a column
    return (
        not quoted
        and not node.table
        and node.name.lower()
        in (
            "current_user",
            "session_user",
            "user",
        )
    )


def _operator(node: exp.Operator) -> Any:
    """OPERATOR(pg_catalog.~) and friends as DuckDB expressions."""
    op = str(node.args.get("operator", "")).split(".")[-1].strip()
    left, right = node.this, node.expression
    if isinstance(right, exp.Collate):
        right = right.this
    if op in ("~", "~*", "!~", "!~*"):
        flags = [exp.Literal.string("i")] if "*" in op else []
        match: exp.Expression = exp.Anonymous(
            this="regexp_matches", expressions=[left, right, *flags]
        )
        return exp.Not(this=match) if op.startswith("!") else match
    if op in ("~~", "!~~"):
        like = exp.Like(this=left, expression=right)
        return exp.Not(this=like) if op.startswith("!") else like
    comparisons = {
        "=": exp.EQ,
        "<>": exp.NEQ,
        "<": exp.LT,
        ">": exp.GT,
        "<=": exp.LTE,
        ">=": exp.GTE,
    }
    if op in comparisons:
        return comparisons[op](this=left, expression=right)
    return node


def _name_like_postgres(tree: Any) -> None:
    """Alias the outermost select's unnamed expressions as Postgres names them."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select):
        return
    for projection in list(select.expressions):
        if isinstance(projection, exp.Alias | exp.Star) or (
            isinstance(projection, exp.Column) and not _is_session_user(projection)
        ):
            continue
        name = _postgres_name(projection)
        projection.replace(exp.alias_(projection.copy(), name, quoted=True))


def _postgres_name(node: Any) -> str:
    if isinstance(node, exp.Paren):
        return _postgres_name(node.this)
    if isinstance(node, exp.Dot):  # pg_catalog.array_to_string(...)
        return _postgres_name(node.expression)
    if isinstance(node, exp.Cast):
        if isinstance(node.this, exp.Column):
            return node.this.name
        if _type_name(node.to):  # 'x'::regclass -> regclass
            return str(_type_name(node.to))
        if isinstance(node.this, exp.Cast | exp.Func):
            return _postgres_name(node.this)
        kind = node.to.this if isinstance(node.to, exp.DataType) else None
        return PG_TYPE_NAMES.get(kind, "?column?") if kind is not None else "?column?"
    if isinstance(node, exp.Case):
        return "case"
    if isinstance(node, exp.Column):  # current_user
        return node.name.lower()
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Func) and not isinstance(node, exp.Binary):
        name = type(node).__name__.lower()
        return FUNCTION_NAMES.get(name, str(node.sql_name()).lower())
    return "?column?"
