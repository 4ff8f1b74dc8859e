"""Postgres catalog emulation: the pg_catalog views and functions each snapshot connection
gets (`session_setup_sql`), and the rewrites that make the catalog queries clients send
(psql's \\d, drivers' metadata calls) fit DuckDB (`rewrite_catalog_query`)."""

from __future__ import annotations

import re

import duckdb

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
