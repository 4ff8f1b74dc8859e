"""DuckDB adapter: connections, views over versions and sources, writing Parquet, errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from warehouse.config import Settings

Connection = duckdb.DuckDBPyConnection
Error = duckdb.Error


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def qualified(model_name: str) -> str:
    schema, table = model_name.split(".", 1)
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def parquet_scan(files: Sequence[str | Path]) -> str:
    listed = ", ".join(quote_literal(str(f)) for f in files)
    return f"read_parquet([{listed}], union_by_name = true, hive_partitioning = false)"


def connect(
    settings: Settings,
    database: str | Path = ":memory:",
    read_only: bool = False,
    spill: bool = True,
) -> Connection:
    """A connection tuned for builds: bounded memory, spilling into the warehouse's tmp dir
    (`spill=False`: a look that must not create the warehouse folder, e.g. source checks)."""
    config: dict[str, Any] = {"threads": settings.threads}
    if not read_only and spill:
        temp = settings.warehouse / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp)
        # keeps memory flat on large COPYs; ORDER BY is still honoured
        config["preserve_insertion_order"] = False
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    # dates of timestamps with time zones are UTC dates, whatever the machine's zone
    con.execute("SET TimeZone = 'UTC'")
    return con


def connect_plain() -> Connection:
    """An in-memory connection for a quick look (Parquet footers), with default settings."""
    return duckdb.connect()


def connect_locked_down(
    settings: Settings, path: Path, folders: Sequence[str] | None = None
) -> Connection:
    """For clients' SQL (`wh serve`): read-only, files readable only in `folders` (those the
    catalog's views read; default: the warehouse's version folder), no other external access,
    settings locked against the client."""
    con = connect(settings, path, read_only=True)
    allowed = list(folders) if folders else [str(settings.warehouse / "versions") + "/"]
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET enable_external_access = false")
    # Postgres semantics for `/`: 5/2 is 2 between integers, and x/0 an error, not inf
    con.execute("SET GLOBAL integer_division = true")
    # version files never change once written: their footers can be kept between queries
    # (binding a query over a view reads every file's footer otherwise)
    con.execute("SET GLOBAL parquet_metadata_cache = true")
    con.execute("SET lock_configuration = true")
    return con


def create_view(con: Connection, model_name: str, select_sql: str) -> None:
    schema = model_name.split(".", 1)[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
    con.execute(f"CREATE OR REPLACE VIEW {qualified(model_name)} AS {select_sql}")


def view_over_files(con: Connection, model_name: str, files: Sequence[str | Path]) -> None:
    create_view(con, model_name, f"SELECT * FROM {parquet_scan(files)}")


# types a version records that some writers cannot mark in Parquet (Spark writes JSON as
# text): a view over the version's files casts them back, so readers see the recorded type
RESTORED_TYPES = ("JSON",)


def version_select(files: Sequence[str | Path], columns: Sequence[tuple[str, str]]) -> str:
    """The rows of a version's files with the column types the version records."""
    casts = [
        f"CAST({quote_ident(name)} AS {kind}) AS {quote_ident(name)}"
        for name, kind in columns
        if kind in RESTORED_TYPES
    ]
    replace = f" REPLACE ({', '.join(casts)})" if casts else ""
    return f"SELECT *{replace} FROM {parquet_scan(files)}"


def _arrived_variables(source: str) -> tuple[str, str]:
    return f"wh_arrived_{source}", f"wh_arrived_{source}_none"


def view_over_arrived(
    con: Connection,
    source: str,
    files: Sequence[str | Path],
    select: Callable[[str], str] = lambda relation: f"SELECT * FROM {relation}",
) -> None:
    """`arrived.<source>`: a view over the files a connection's variables name (set per
    model run by `point_arrived`; `files`, every file of the source, until then), read
    through `select` (the source's erasure filter)."""
    listed, none = _arrived_variables(source)
    point_arrived(con, source, [], files)
    relation = (
        f"read_parquet(getvariable('{listed}'), union_by_name = true, hive_partitioning = false)"
    )
    create_view(
        con,
        f"arrived.{source}",
        f"SELECT * FROM ({select(relation)}) WHERE NOT getvariable('{none}')",
    )


def point_arrived(
    con: Connection, source: str, arrived: Sequence[str | Path], every: Sequence[str | Path]
) -> None:
    """Make `arrived.<source>` read `arrived` on this connection (a cursor's variables are its
    own). No file arrived: the view reads no rows (its filter is false, so DuckDB opens none
    of the files it still needs a list of to know the columns)."""
    listed, none = _arrived_variables(source)
    files = list(arrived) or list(every)
    con.execute(f"SET VARIABLE {listed} = [{', '.join(quote_literal(str(f)) for f in files)}]")
    con.execute(f"SET VARIABLE {none} = {'false' if arrived else 'true'}")


def empty_with_columns(names: Sequence[str]) -> str:
    """A query of no rows with these columns, of type NULL (which compares with anything)."""
    return empty_typed([(n, None) for n in names])


def empty_typed(columns: Sequence[tuple[str, str | None]]) -> str:
    """A query of no rows with these columns and types (None: type NULL)."""
    body = ", ".join(
        f"CAST(NULL AS {kind}) AS {quote_ident(name)}" if kind else f"NULL AS {quote_ident(name)}"
        for name, kind in columns
    )
    return f"SELECT {body} WHERE false"


def parquet_rows(con: Connection, files: Sequence[str | Path]) -> int:
    """Rows of Parquet files, from their footers."""
    listed = ", ".join(quote_literal(str(f)) for f in files)
    row = first_row(
        con, f"SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata([{listed}])"
    )
    return int(row[0]) if row else 0


def point_this(con: Connection, select_sql: str) -> None:
    """`this` on this connection only (a temporary view): what an incremental run extends."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW this AS {select_sql}")


# what COPY puts before a query: error positions are counted back past it (runtime/segments.py)
COPY_PREFIX = "COPY ("


def copy_to_parquet(
    con: Connection, select_sql: str, path: Path, params: dict[str, Any] | None = None
) -> int:
    """Stream a query into one Parquet file; returns the rows written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the query starts on the first line so DuckDB's error line numbers match the file
    statement = (
        f"{COPY_PREFIX}{select_sql}\n) TO {quote_literal(str(path))} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    result = first_row(con, statement, params or {})
    return int(result[0]) if result else 0


def copy_partitioned(
    con: Connection, select_sql: str, folder: Path, column: str, params: dict[str, Any]
) -> int:
    """Stream a query into `folder/<column>=<value>/*.parquet`, one folder per value of
    `column` (which is not stored in the files); returns the rows written."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    statement = (
        f"{COPY_PREFIX}{select_sql}\n) TO {quote_literal(str(folder))} "
        f"(FORMAT parquet, COMPRESSION zstd, PARTITION_BY ({quote_ident(column)}))"
    )
    result = first_row(con, statement, params)
    return int(result[0]) if result else 0


def describe(con: Connection, relation_sql: str) -> list[tuple[str, str]]:
    rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def scalar(con: Connection, sql: str, params: Iterable[Any] | None = None) -> Any:
    row = first_row(con, sql, list(params) if params else [])
    return row[0] if row else None


def first_row(con: Connection, sql: str, params: Any = None) -> tuple[Any, ...] | None:
    """The first row, with the result fully consumed (DuckDB 2.0 refuses new work on a
    connection that still holds an unfinished result)."""
    rows = con.execute(sql, params or []).fetchall()
    return tuple(rows[0]) if rows else None


LINE_MARK = re.compile(r"LINE (\d+):( ?)(.*)\n(\s*)\^", re.MULTILINE)


def error_position(message: str, first_line_offset: int = 0) -> tuple[int | None, int | None]:
    """Line and column from DuckDB's 'LINE n: ...' caret display."""
    found = LINE_MARK.search(message)
    if not found:
        return None, None
    line = int(found.group(1))
    prefix = len(f"LINE {line}:") + len(found.group(2))
    column = len(found.group(4)) - prefix + 1
    if line == 1:
        column -= first_line_offset
    return line, max(column, 1)


def is_sql_mistake(exc: BaseException) -> bool:
    """The query itself is wrong (as opposed to its input files or the disk)."""
    return isinstance(
        exc, duckdb.BinderException | duckdb.ParserException | duckdb.CatalogException
    )


def is_write_failure(exc: BaseException) -> bool:
    """Writing failed: a full disk, a file-size limit, a read-only folder."""
    return isinstance(exc, duckdb.IOException) or "Could not write file" in str(exc)


def short_message(message: str) -> str:
    """The first line of a DuckDB error, without the caret display."""
    return message.split("\n", 1)[0].strip()


def check_syntax(con: Connection, sql: str) -> str | None:
    """DuckDB's own parser verdict on a query, or None when it parses (on an open
    connection: the module-level function starts a DuckDB instance of its own)."""
    try:
        con.extract_statements(sql)
    except duckdb.Error as exc:
        return str(exc)
    return None
