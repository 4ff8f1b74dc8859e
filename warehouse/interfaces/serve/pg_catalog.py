"""Postgres' catalog over the published environment: `pg_catalog` and `information_schema`
tables with Postgres OIDs and type names, and the catalog functions clients call.

A session's connection gets them as temporary views and macros (`session_setup_sql`) the
first time one of its statements reads them (`uses_catalog`), computed from DuckDB's own
metadata of the snapshot when queried, so they always describe the publish it reads.
Queries reach them through `translate.py`, which points `pg_catalog.pg_class`,
`information_schema.columns`, ... at these views. Only the published schemas appear;
DuckDB's internal objects never do.
"""

from __future__ import annotations

import re

import duckdb

from warehouse.interfaces.serve.rows import DUCKDB_OIDS

PREFIX = "wh_pg_"  # temporary view names: wh_pg_pg_class, wh_pg_information_schema_columns
PG_CATALOG_OID, PUBLIC_OID, INFORMATION_SCHEMA_OID = 11, 2200, 13_000
OWNER_OID = 10

# Postgres types: oid, typname, format_type() name, typlen, typcategory, array oid
PG_TYPES: list[tuple[int, str, str, int, str, int]] = [
    (16, "bool", "boolean", 1, "B", 1000),
    (17, "bytea", "bytea", -1, "U", 1001),
    (18, "char", '"char"', 1, "Z", 1002),
    (19, "name", "name", 64, "S", 1003),
    (20, "int8", "bigint", 8, "N", 1016),
    (21, "int2", "smallint", 2, "N", 1005),
    (23, "int4", "integer", 4, "N", 1007),
    (24, "regproc", "regproc", 4, "N", 1008),
    (25, "text", "text", -1, "S", 1009),
    (26, "oid", "oid", 4, "N", 1028),
    (114, "json", "json", -1, "U", 199),
    (700, "float4", "real", 4, "N", 1021),
    (701, "float8", "double precision", 8, "N", 1022),
    (1042, "bpchar", "character", -1, "S", 1014),
    (1043, "varchar", "character varying", -1, "S", 1015),
    (1082, "date", "date", 4, "D", 1182),
    (1083, "time", "time without time zone", 8, "D", 1183),
    (1114, "timestamp", "timestamp without time zone", 8, "D", 1115),
    (1184, "timestamptz", "timestamp with time zone", 8, "D", 1185),
    (1186, "interval", "interval", 16, "T", 1187),
    (1700, "numeric", "numeric", -1, "N", 1231),
    (2205, "regclass", "regclass", 4, "N", 2210),
    (2206, "regtype", "regtype", 4, "N", 2211),
    (2950, "uuid", "uuid", 16, "U", 2951),
]


def _case(expression: str, mapping: dict[str, int], default: str) -> str:
    whens = " ".join(f"WHEN '{key}' THEN {value}" for key, value in mapping.items())
    return f"CASE {expression} {whens} ELSE {default} END"


# published objects of the snapshot's own database (not DuckDB's system or temp catalogs)
def _published(database: str, alias: str) -> str:
    """Objects of the snapshot's catalog file (its database is named after the file), not
    DuckDB's system or temporary catalogs, outside DuckDB's own schemas."""
    quoted = database.replace("'", "''")
    a = f"{alias}."
    return (
        f"{a}database_name = '{quoted}' AND NOT {a}internal "
        f"AND {a}schema_name NOT IN ('main', 'information_schema', 'pg_catalog')"
    )


def _views(database: str, env: str, user: str) -> dict[str, str]:
    pg_oid = _case(
        "c.data_type", DUCKDB_OIDS, "CASE WHEN c.data_type LIKE 'DECIMAL%' THEN 1700 ELSE 25 END"
    )
    typmod = (
        "CASE WHEN c.data_type LIKE 'DECIMAL(%' THEN "
        "(CAST(regexp_extract(c.data_type, 'DECIMAL\\((\\d+),', 1) AS INTEGER) * 65536 + "
        "CAST(regexp_extract(c.data_type, ',(\\d+)\\)', 1) AS INTEGER) + 4) ELSE -1 END"
    )
    types = " UNION ALL ".join(
        f"SELECT {oid} AS oid, '{name}' AS typname, {length} AS typlen, '{category}' AS "
        f"typcategory, {array} AS typarray, 0 AS typelem, '{pg_name}' AS wh_format"
        for oid, name, pg_name, length, category, array in PG_TYPES
    )
    arrays = " UNION ALL ".join(
        f"SELECT {array}, '_{name}', -1, 'A', 0, {oid}, '{pg_name}[]'"
        for oid, name, pg_name, _, _, array in PG_TYPES
    )
    schemas = (
        "SELECT DISTINCT s.oid, s.schema_name AS nspname FROM duckdb_schemas() s JOIN "
        "duckdb_views() v ON v.schema_name = s.schema_name AND v.database_name = "
        f"s.database_name WHERE {_published(database, 'v')} UNION ALL SELECT "
        f"{PG_CATALOG_OID}, 'pg_catalog' UNION ALL SELECT {PUBLIC_OID}, 'public' UNION ALL "
        f"SELECT {INFORMATION_SCHEMA_OID}, 'information_schema'"
    )
    relations = (
        "SELECT v.view_oid AS oid, v.view_name AS relname, s.oid AS relnamespace, "
        "v.schema_name, (SELECT count(*) FROM duckdb_columns() c WHERE c.table_oid = "
        "v.view_oid) AS relnatts FROM duckdb_views() v JOIN duckdb_schemas() s ON "
        "s.schema_name = v.schema_name AND s.database_name = v.database_name WHERE "
        + _published(database, "v")
    )
    columns = (
        "SELECT c.table_oid AS attrelid, c.column_name AS attname, c.column_index AS attnum, "
        f"{pg_oid} AS atttypid, {typmod} AS atttypmod, NOT c.is_nullable AS attnotnull, "
        "c.schema_name, c.table_name, c.data_type FROM duckdb_columns() c WHERE "
        + _published(database, "c")
    )
    return {
        "pg_namespace": f"SELECT oid, nspname, {OWNER_OID} AS nspowner, NULL::VARCHAR[] AS "
        f"nspacl FROM ({schemas})",
        "pg_class": "SELECT oid, relname, relnamespace, 0 AS reltype, 0 AS reloftype, "
        f"{OWNER_OID} AS relowner, 0 AS relam, oid AS relfilenode, 0 AS reltablespace, "
        "0 AS relpages, -1.0::FLOAT AS reltuples, 0 AS relallvisible, 0 AS reltoastrelid, "
        "false AS relhasindex, false AS relisshared, 'p' AS relpersistence, 'r' AS relkind, "
        "relnatts::SMALLINT AS relnatts, 0::SMALLINT AS relchecks, false AS relhasrules, "
        "false AS relhastriggers, false AS relhassubclass, false AS relrowsecurity, "
        "false AS relforcerowsecurity, true AS relispopulated, 'd' AS relreplident, "
        "false AS relispartition, 0 AS relrewrite, 0 AS relfrozenxid, 0 AS relminmxid, "
        "NULL::VARCHAR[] AS relacl, NULL::VARCHAR[] AS reloptions, NULL AS relpartbound "
        f"FROM ({relations})",
        "pg_attribute": "SELECT attrelid, attname, atttypid, 0 AS attstattarget, "
        "CASE WHEN t.typlen IS NULL THEN -1 ELSE t.typlen END::SMALLINT AS attlen, "
        "attnum::SMALLINT AS attnum, 0 AS attndims, -1 AS attcacheoff, atttypmod, "
        "false AS attbyval, 'p' AS attstorage, '' AS attcompression, 'i' AS attalign, attnotnull, "
        "false AS atthasdef, false AS atthasmissing, '' AS attidentity, '' AS attgenerated, "
        "false AS attisdropped, true AS attislocal, 0 AS attinhcount, 0 AS attcollation, "
        "NULL::VARCHAR[] AS attacl, NULL::VARCHAR[] AS attoptions, "
        f"NULL::VARCHAR[] AS attfdwoptions FROM ({columns}) LEFT JOIN ({types}) t ON "
        "t.oid = atttypid",
        "pg_type": "SELECT oid, typname, "
        f"{PG_CATALOG_OID} AS typnamespace, {OWNER_OID} AS typowner, typlen::SMALLINT AS "
        "typlen, typlen > 0 AS typbyval, CASE WHEN typcategory = 'A' THEN 'b' ELSE 'b' END "
        "AS typtype, typcategory, false AS typispreferred, true AS typisdefined, ',' AS "
        "typdelim, 0 AS typrelid, typelem, typarray, CASE WHEN typcategory = 'A' THEN "
        "'array_in' ELSE typname || 'in' END AS typinput, "
        "typname || 'out' AS typoutput, typname || 'recv' AS typreceive, typname || 'send' "
        "AS typsend, 0 AS typmodin, 0 AS typmodout, 0 AS typanalyze, 'i' AS typalign, 'p' AS "
        "typstorage, false AS typnotnull, 0 AS typbasetype, -1 AS typtypmod, 0 AS typndims, "
        "0 AS typcollation, NULL AS typdefaultbin, NULL::VARCHAR AS typdefault, "
        f"NULL::VARCHAR[] AS typacl FROM ({types} UNION ALL {arrays})",
        "pg_database": "SELECT 1 AS oid, "
        f"'{env}' AS datname, {OWNER_OID} AS datdba, 6 AS encoding, 'c' AS datlocprovider, "
        "false AS datistemplate, true AS datallowconn, -1 AS datconnlimit, 0 AS datfrozenxid, "
        "0 AS datminmxid, 1663 AS dattablespace, 'C' AS datcollate, 'C' AS datctype, "
        "NULL::VARCHAR AS daticulocale, NULL::VARCHAR AS datcollversion, "
        "NULL::VARCHAR[] AS datacl",
        "pg_roles": f"SELECT {OWNER_OID} AS oid, '{user}' AS rolname, false AS rolsuper, "
        "false AS rolinherit, false AS rolcreaterole, false AS rolcreatedb, true AS "
        "rolcanlogin, false AS rolreplication, false AS rolbypassrls, -1 AS rolconnlimit, "
        "'********' AS rolpassword, NULL::TIMESTAMP AS rolvaliduntil, NULL::VARCHAR[] AS "
        "rolconfig",
        "pg_user": f"SELECT '{user}' AS usename, {OWNER_OID} AS usesysid, false AS usecreatedb, "
        "false AS usesuper, false AS userepl, false AS usebypassrls, '********' AS passwd, "
        "NULL::TIMESTAMP AS valuntil, NULL::VARCHAR[] AS useconfig",
        "pg_language": "SELECT * FROM (VALUES (12, 'internal', 10, false, false, 0, 0, 2246), "
        "(13, 'c', 10, false, false, 0, 0, 2247), (14, 'sql', 10, false, true, 0, 0, 2248)) "
        "AS l(oid, lanname, lanowner, lanispl, lanpltrusted, lanplcallfoid, laninline, "
        "lanvalidator)",
        "pg_extension": "SELECT * FROM (VALUES (13500, 'plpgsql', 10, 11, false, '1.0', "
        "NULL::VARCHAR[], NULL::VARCHAR[])) AS e(oid, extname, extowner, extnamespace, "
        "extrelocatable, extversion, extconfig, extcondition)",
        "pg_am": "SELECT * FROM (VALUES (2, 'heap', 'heap_tableam_handler', 't'), "
        "(403, 'btree', 'bthandler', 'i')) AS a(oid, amname, amhandler, amtype)",
        "pg_tablespace": "SELECT * FROM (VALUES (1663, 'pg_default', 10, NULL::VARCHAR[], "
        "NULL::VARCHAR[])) AS t(oid, spcname, spcowner, spcacl, spcoptions)",
        "pg_views": "SELECT v.schema_name AS schemaname, v.view_name AS viewname, "
        f"'{user}' AS viewowner, NULL::VARCHAR AS definition FROM duckdb_views() v WHERE false",
        "pg_tables": "SELECT n.nspname AS schemaname, c.relname AS tablename, "
        f"'{user}' AS tableowner, NULL::VARCHAR AS tablespace, false AS hasindexes, "
        "false AS hasrules, false AS hastriggers, false AS rowsecurity FROM wh_pg_pg_class c "
        "JOIN wh_pg_pg_namespace n ON n.oid = c.relnamespace",
        "information_schema_schemata": f"SELECT '{env}' AS catalog_name, nspname AS "
        f"schema_name, '{user}' AS schema_owner, NULL AS default_character_set_catalog, "
        "NULL AS default_character_set_schema, NULL AS default_character_set_name, "
        "NULL AS sql_path FROM wh_pg_pg_namespace",
        "information_schema_tables": f"SELECT '{env}' AS table_catalog, n.nspname AS "
        "table_schema, c.relname AS table_name, 'BASE TABLE' AS table_type, NULL AS "
        "self_referencing_column_name, NULL AS reference_generation, NULL AS "
        "user_defined_type_catalog, NULL AS user_defined_type_schema, NULL AS "
        "user_defined_type_name, 'NO' AS is_insertable_into, 'NO' AS is_typed, NULL AS "
        "commit_action FROM wh_pg_pg_class c JOIN wh_pg_pg_namespace n ON n.oid = "
        "c.relnamespace",
        "information_schema_columns": f"SELECT '{env}' AS table_catalog, n.nspname AS "
        "table_schema, c.relname AS table_name, a.attname AS column_name, a.attnum AS "
        "ordinal_position, NULL::VARCHAR AS column_default, CASE WHEN a.attnotnull THEN 'NO' "
        "ELSE 'YES' END AS is_nullable, CASE WHEN a.atttypid = 1700 THEN 'numeric' ELSE "
        "t.wh_format END AS data_type, NULL::INTEGER AS character_maximum_length, "
        "NULL::INTEGER AS character_octet_length, CASE WHEN a.atttypmod > 0 THEN "
        "(a.atttypmod - 4) // 65536 END AS numeric_precision, 10 AS numeric_precision_radix, "
        "CASE WHEN a.atttypmod > 0 THEN (a.atttypmod - 4) % 65536 END AS numeric_scale, "
        "NULL::INTEGER AS datetime_precision, NULL AS interval_type, "
        f"NULL AS interval_precision, '{env}' AS udt_catalog, 'pg_catalog' AS udt_schema, "
        "t.typname AS udt_name, 'NO' AS is_identity, 'NEVER' AS is_generated, "
        "'NO' AS is_updatable FROM wh_pg_pg_attribute a JOIN wh_pg_pg_class c ON c.oid = "
        "a.attrelid JOIN wh_pg_pg_namespace n ON n.oid = c.relnamespace LEFT JOIN "
        f"({types}) t ON t.oid = a.atttypid",
        "information_schema_views": f"SELECT '{env}' AS table_catalog, NULL AS "
        "table_schema, NULL AS table_name, NULL AS view_definition WHERE false",
    }


# catalog tables with nothing in them here: wh has no indexes, constraints, functions, ...
EMPTY_TABLES = {
    "pg_index": "indexrelid BIGINT, indrelid BIGINT, indnatts SMALLINT, indnkeyatts SMALLINT, "
    "indisunique BOOLEAN, indisprimary BOOLEAN, indisexclusion BOOLEAN, indimmediate BOOLEAN, "
    "indisclustered BOOLEAN, indisvalid BOOLEAN, indcheckxmin BOOLEAN, indisready BOOLEAN, "
    "indislive BOOLEAN, indisreplident BOOLEAN, indkey SMALLINT[], indcollation BIGINT[], "
    "indclass BIGINT[], indoption SMALLINT[], indexprs VARCHAR, indpred VARCHAR, "
    "indnullsnotdistinct BOOLEAN",
    "pg_constraint": "oid BIGINT, conname VARCHAR, connamespace BIGINT, contype VARCHAR, "
    "condeferrable BOOLEAN, condeferred BOOLEAN, convalidated BOOLEAN, conrelid BIGINT, "
    "contypid BIGINT, conindid BIGINT, conparentid BIGINT, confrelid BIGINT, "
    "confupdtype VARCHAR, confdeltype VARCHAR, confmatchtype VARCHAR, conislocal BOOLEAN, "
    "coninhcount INTEGER, connoinherit BOOLEAN, conkey SMALLINT[], confkey SMALLINT[], "
    "conpfeqop BIGINT[], conppeqop BIGINT[], conffeqop BIGINT[], conexclop BIGINT[], "
    "conbin VARCHAR",
    "pg_attrdef": "oid BIGINT, adrelid BIGINT, adnum SMALLINT, adbin VARCHAR",
    "pg_description": "objoid BIGINT, classoid BIGINT, objsubid INTEGER, description VARCHAR",
    "pg_shdescription": "objoid BIGINT, classoid BIGINT, description VARCHAR",
    "pg_proc": "oid BIGINT, proname VARCHAR, pronamespace BIGINT, proowner BIGINT, "
    "prolang BIGINT, procost FLOAT, prorows FLOAT, provariadic BIGINT, prosupport BIGINT, "
    "prokind VARCHAR, prosecdef BOOLEAN, proleakproof BOOLEAN, proisstrict BOOLEAN, "
    "proretset BOOLEAN, provolatile VARCHAR, proparallel VARCHAR, pronargs SMALLINT, "
    "pronargdefaults SMALLINT, prorettype BIGINT, proargtypes BIGINT[], "
    "proallargtypes BIGINT[], proargmodes VARCHAR[], proargnames VARCHAR[], "
    "proargdefaults VARCHAR, protrftypes BIGINT[], prosrc VARCHAR, probin VARCHAR, "
    "prosqlbody VARCHAR, proconfig VARCHAR[], proacl VARCHAR[]",
    "pg_matviews": "schemaname VARCHAR, matviewname VARCHAR, matviewowner VARCHAR, "
    "tablespace VARCHAR, hasindexes BOOLEAN, ispopulated BOOLEAN, definition VARCHAR",
    "pg_sequence": "seqrelid BIGINT, seqtypid BIGINT, seqstart BIGINT, seqincrement BIGINT, "
    "seqmax BIGINT, seqmin BIGINT, seqcache BIGINT, seqcycle BOOLEAN",
    "pg_enum": "oid BIGINT, enumtypid BIGINT, enumsortorder FLOAT, enumlabel VARCHAR",
    "pg_depend": "classid BIGINT, objid BIGINT, objsubid INTEGER, refclassid BIGINT, "
    "refobjid BIGINT, refobjsubid INTEGER, deptype VARCHAR",
    "pg_policy": "oid BIGINT, polname VARCHAR, polrelid BIGINT, polcmd VARCHAR, "
    "polpermissive BOOLEAN, polroles BIGINT[], polqual VARCHAR, polwithcheck VARCHAR",
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
    "pg_opclass": "oid BIGINT, opcmethod BIGINT, opcname VARCHAR, opcnamespace BIGINT, "
    "opcowner BIGINT, opcfamily BIGINT, opcintype BIGINT, opcdefault BOOLEAN, "
    "opckeytype BIGINT",
    "pg_stat_activity": "datid BIGINT, datname VARCHAR, pid INTEGER, usename VARCHAR, "
    "application_name VARCHAR, client_addr VARCHAR, backend_start TIMESTAMP, "
    "xact_start TIMESTAMP, query_start TIMESTAMP, state VARCHAR, query VARCHAR, "
    "backend_type VARCHAR",
    "pg_auth_members": "roleid BIGINT, member BIGINT, grantor BIGINT, admin_option BOOLEAN",
    "pg_event_trigger": "oid BIGINT, evtname VARCHAR, evtevent VARCHAR, evtenabled VARCHAR",
    "information_schema_routines": "specific_catalog VARCHAR, specific_schema VARCHAR, "
    "specific_name VARCHAR, routine_catalog VARCHAR, routine_schema VARCHAR, "
    "routine_name VARCHAR, routine_type VARCHAR, data_type VARCHAR, "
    "type_udt_name VARCHAR, routine_definition VARCHAR, external_language VARCHAR",
    "information_schema_table_constraints": "constraint_catalog VARCHAR, "
    "constraint_schema VARCHAR, constraint_name VARCHAR, table_catalog VARCHAR, "
    "table_schema VARCHAR, table_name VARCHAR, constraint_type VARCHAR, "
    "is_deferrable VARCHAR, initially_deferred VARCHAR, enforced VARCHAR",
    "information_schema_key_column_usage": "constraint_catalog VARCHAR, "
    "constraint_schema VARCHAR, constraint_name VARCHAR, table_catalog VARCHAR, "
    "table_schema VARCHAR, table_name VARCHAR, column_name VARCHAR, "
    "ordinal_position INTEGER, position_in_unique_constraint INTEGER",
    "information_schema_referential_constraints": "constraint_catalog VARCHAR, "
    "constraint_schema VARCHAR, constraint_name VARCHAR, unique_constraint_catalog VARCHAR, "
    "unique_constraint_schema VARCHAR, unique_constraint_name VARCHAR, match_option VARCHAR, "
    "update_rule VARCHAR, delete_rule VARCHAR",
}
# pg_settings: what SHOW answers, filled from the session's settings at setup
SETTINGS_COLUMNS = "name, setting, unit, category, short_desc, context, vartype, source"


def _format_type() -> str:
    names = " ".join(
        f"WHEN {oid} THEN '{pg_name}' WHEN {array} THEN '{pg_name}[]'"
        for oid, _, pg_name, _, _, array in PG_TYPES
    )
    numeric = (
        "WHEN 1700 THEN CASE WHEN type_mod > 4 THEN 'numeric(' || ((type_mod - 4) // 65536) "
        "|| ',' || ((type_mod - 4) % 65536) || ')' ELSE 'numeric' END"
    )
    return f"(type_id, type_mod) AS CASE type_id {numeric} {names} ELSE NULL END"


# functions Postgres has and DuckDB lacks (or answers differently), as temporary macros
MACROS = {  # in order: a macro may use the ones before it
    "wh_regclass": "(class_name) AS (SELECT min(c.oid) FROM wh_pg_pg_class c JOIN "
    "wh_pg_pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = "
    "replace(split_part(class_name, '.', -1), '\"', '') AND (class_name NOT LIKE '%.%' "
    "OR n.nspname = replace(split_part(class_name, '.', 1), '\"', '')))",
    "wh_regnamespace": "(schema_name) AS (SELECT min(oid) FROM wh_pg_pg_namespace "
    "WHERE nspname = schema_name)",
    "format_type": _format_type(),
    "wh_typname": "(type_id) AS format_type(type_id, NULL)",
    "wh_regtype": "(wh_type) AS (SELECT min(t.oid) FROM wh_pg_pg_type t WHERE t.typname = "
    "lower(wh_type) OR format_type(t.oid, -1) = lower(wh_type))",
    "pg_get_userbyid": "(role_id) AS (SELECT min(rolname) FROM wh_pg_pg_roles)",
    "version": f"() AS 'PostgreSQL 15.0 (wh serve, DuckDB {duckdb.__version__})'",
    "array_upper": "(items, dimension) AS len(items)",
    "array_lower": "(items, dimension) AS CASE WHEN len(items) > 0 THEN 1 END",
    "to_regtype": "(wh_name) AS (SELECT min(t.oid) FROM wh_pg_pg_type t WHERE t.typname = wh_name)",
    "to_regclass": "(class_name) AS wh_regclass(class_name)",
    "wh_relname": "(class_id) AS (SELECT min(CASE WHEN n.nspname = 'public' THEN c.relname "
    "ELSE n.nspname || '.' || c.relname END) FROM wh_pg_pg_class c JOIN wh_pg_pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.oid = class_id)",
    "wh_nspname": "(schema_id) AS (SELECT min(nspname) FROM wh_pg_pg_namespace "
    "WHERE oid = schema_id)",
    "wh_current_setting": "(setting_name) AS (SELECT min(setting) FROM wh_pg_pg_settings "
    "WHERE name = lower(setting_name))",
    "pg_get_serial_sequence": "(table_name, column_name) AS NULL::VARCHAR",
    "pg_get_expr": "(expression, relation_id, pretty := false) AS NULL::VARCHAR",
    "pg_get_viewdef": "(view_id, pretty := false) AS NULL::VARCHAR",
    "pg_get_indexdef": "(index_id, column_no := 0, pretty := false) AS NULL::VARCHAR",
    "pg_get_constraintdef": "(constraint_id, pretty := false) AS NULL::VARCHAR",
    "pg_get_function_result": "(func_id) AS NULL::VARCHAR",
    "pg_get_function_arguments": "(func_id) AS NULL::VARCHAR",
    "pg_get_function_identity_arguments": "(func_id) AS ''",
    "pg_get_partkeydef": "(table_id) AS NULL::VARCHAR",
    "pg_get_statisticsobjdef_columns": "(stat_id) AS NULL::VARCHAR",
    "pg_encoding_to_char": "(encoding) AS 'UTF8'",
    "pg_relation_is_publishable": "(table_id) AS false",
    "pg_table_is_visible": "(table_id) AS true",
    "pg_type_is_visible": "(type_id) AS true",
    "pg_function_is_visible": "(func_id) AS true",
    # sizes of views over Parquet: nothing is stored in the catalog itself
    "pg_total_relation_size": "(table_id) AS 0::BIGINT",
    "pg_table_size": "(table_id) AS 0::BIGINT",
    "pg_relation_size": "(table_id, fork := 'main') AS 0::BIGINT",
    "pg_indexes_size": "(table_id) AS 0::BIGINT",
    "pg_database_size": "(database) AS 0::BIGINT",
    "pg_size_pretty": "(size) AS format_bytes(size::BIGINT)",
    "obj_description": "(object_id, catalog := NULL) AS NULL::VARCHAR",
    "col_description": "(table_id, column_no) AS NULL::VARCHAR",
    "shobj_description": "(object_id, catalog) AS NULL::VARCHAR",
    "has_table_privilege": "(a, b, c := NULL) AS true",
    "has_schema_privilege": "(a, b, c := NULL) AS true",
    "has_database_privilege": "(a, b, c := NULL) AS true",
    "has_column_privilege": "(a, b, c, d := NULL) AS true",
    "pg_has_role": "(a, b, c := NULL) AS true",
    "pg_is_in_recovery": "() AS false",
    "pg_postmaster_start_time": "() AS TIMESTAMP '2000-01-01'",
    "inet_server_addr": "() AS NULL::VARCHAR",
    "inet_server_port": "() AS NULL::INTEGER",
    "pg_get_keywords": "() AS TABLE SELECT keyword_name AS word, 'U' AS catcode, "
    "keyword_category AS catdesc FROM duckdb_keywords()",
    # information_schema._pg_expandarray(array): (x, n) pairs; wh has no index arrays
    "_pg_expandarray": "(items) AS {'x': NULL::INTEGER, 'n': NULL::INTEGER}",
}


def session_setup_sql(
    database: str, env: str, user: str, settings: dict[str, str] | None = None
) -> list[str]:
    """Statements run once on each session's connection (temporary, per connection):
    `database` is DuckDB's name of the snapshot, `env` the name clients see."""

    def literal(text: str) -> str:
        return text.replace("'", "''")

    env, user = literal(env), literal(user)
    macros = [f"CREATE OR REPLACE TEMP MACRO {name}{body}" for name, body in MACROS.items()]
    empty = [
        f"CREATE OR REPLACE TEMP VIEW {PREFIX}{name} AS SELECT * FROM (SELECT "
        f"{_null_columns(columns)}) WHERE false"
        for name, columns in EMPTY_TABLES.items()
    ]
    views = [
        f"CREATE OR REPLACE TEMP VIEW {PREFIX}{name} AS {select}"
        for name, select in _views(database, env, user).items()
    ]
    return [settings_view(settings or {}), *empty, *views, *macros]


def settings_view(values: dict[str, str]) -> str:
    if not values:
        return (
            f"CREATE OR REPLACE TEMP VIEW {PREFIX}pg_settings AS SELECT * FROM (SELECT "
            f"{_null_columns(', '.join(f'{c} VARCHAR' for c in SETTINGS_COLUMNS.split(', ')))})"
            " WHERE false"
        )
    rows = ", ".join(
        "('{}', '{}', NULL, 'wh serve', '', 'user', 'string', 'session')".format(
            name.replace("'", "''"), value.replace("'", "''")
        )
        for name, value in sorted(values.items())
    )
    return (
        f"CREATE OR REPLACE TEMP VIEW {PREFIX}pg_settings AS SELECT * FROM (VALUES {rows}) "
        f"AS s({SETTINGS_COLUMNS})"
    )


def _null_columns(spec: str) -> str:
    """'a INT, b VARCHAR' -> 'NULL::INT AS a, NULL::VARCHAR AS b'."""
    pairs = (column.split(None, 1) for column in spec.split(", "))
    return ", ".join(f"NULL::{kind} AS {name}" for name, kind in pairs)


def emulated(schema: str | None, table: str) -> str | None:
    """The temporary view that stands in for `schema.table`, if wh emulates it."""
    name = table.lower()
    if schema in (None, "pg_catalog") and name.startswith("pg_") and name in CATALOG_TABLES:
        return PREFIX + name
    if schema == "information_schema" and f"information_schema_{name}" in CATALOG_TABLES:
        return f"{PREFIX}information_schema_{name}"
    return None


CATALOG_TABLES = frozenset({*EMPTY_TABLES, *_views("x", "x", "x"), "pg_settings"})


# what a translated statement names when it needs the catalog installed on its connection
_CATALOG_WORDS = re.compile(
    r"\b(?:" + PREFIX + r"\w+|" + "|".join(sorted(MACROS, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def uses_catalog(sql: str) -> bool:
    """Whether `sql` reads wh's Postgres catalog (its views or functions). Most queries do
    not, and their connections never pay for installing it."""
    return _CATALOG_WORDS.search(sql) is not None
