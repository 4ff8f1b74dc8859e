"""Result rows in Postgres text format, rendered by DuckDB and framed with numpy.

Values are cast to Postgres' text forms inside DuckDB (parallel, in C++), fetched as Arrow
string columns, and framed into DataRow messages batch by batch with vectorised numpy
scatter: no Python loop per value, so a large table streams at close to fetch speed.
"""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import pyarrow as pa

from warehouse.interfaces.serve.binary import encode_column

TEXT_OID = 25
# DuckDB type (as DuckDB spells it) -> Postgres type oid; others are text (the catalog's
# pg_attribute uses the same map)
DUCKDB_OIDS = {
    "BOOLEAN": 16,
    "TINYINT": 21,
    "SMALLINT": 21,
    "UTINYINT": 21,
    "INTEGER": 23,
    "USMALLINT": 23,
    "BIGINT": 20,
    "UINTEGER": 20,
    "UBIGINT": 1700,
    "HUGEINT": 1700,
    "UHUGEINT": 1700,
    "FLOAT": 700,
    "DOUBLE": 701,
    "VARCHAR": 25,
    "DATE": 1082,
    "TIME": 1083,
    "TIMESTAMP": 1114,
    "TIMESTAMP_S": 1114,
    "TIMESTAMP_MS": 1114,
    "TIMESTAMP_NS": 1114,
    "TIMESTAMP WITH TIME ZONE": 1184,
    "INTERVAL": 1186,
    "BLOB": 17,
    "UUID": 2950,
    "JSON": 114,
}


def type_oid(duckdb_type: str) -> int:
    if duckdb_type.startswith("DECIMAL"):
        return 1700
    return DUCKDB_OIDS.get(duckdb_type, TEXT_OID)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def text_expression(column: str, duckdb_type: str) -> str:
    """A DuckDB expression giving the column's Postgres text form (NULL stays NULL)."""
    col = _quote(column)
    if duckdb_type == "BOOLEAN":
        return f"CASE WHEN {col} THEN 't' WHEN NOT {col} THEN 'f' END"
    if duckdb_type == "BLOB":
        return f"'\\x' || lower(hex({col}))"
    return f"CAST({col} AS VARCHAR)"


# types whose Arrow values the binary encoders read as they are (others go as text)
NATIVE_BINARY = {
    "BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "FLOAT", "DOUBLE", "DATE", "TIME", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE",
    "BLOB", "INTERVAL", "VARCHAR",
}  # fmt: skip


def binary_expression(column: str, duckdb_type: str) -> str:
    """A DuckDB expression the binary encoders can read for this column."""
    col = _quote(column)
    if duckdb_type in NATIVE_BINARY or duckdb_type.startswith("DECIMAL"):
        return col
    if duckdb_type.startswith("TIMESTAMP_"):
        return f"CAST({col} AS TIMESTAMP)"
    return f"CAST({col} AS VARCHAR)"  # numeric from text (HUGEINT...), uuid, json, nested


def text_query(query: str, types: list[str], binary: list[bool] | None = None) -> str:
    """Wrap a query so every column comes back as Postgres text, or for `binary` columns as
    values the binary encoders read (positional names, so duplicate or odd column names
    cannot clash)."""
    names = [f"c{i}" for i in range(len(types))]
    modes = binary or [False] * len(types)
    exprs = ", ".join(
        binary_expression(n, t) if b else text_expression(n, t)
        for n, t, b in zip(names, types, modes, strict=True)
    )
    aliases = ", ".join(_quote(n) for n in names)
    return f"SELECT {exprs} FROM ({query}\n) AS wh_result({aliases})"


def _put_int32(out: np.ndarray, positions: np.ndarray, values: np.ndarray) -> None:
    raw = values.astype(">i4").view(np.uint8).reshape(-1, 4)
    out[positions[:, None] + np.arange(4)] = raw


def _string_parts(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(offsets, data bytes, valid mask) of an Arrow string column, without copies."""
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = column.cast(pa.string())
    n = len(column)
    _, offsets_buf, data_buf = column.buffers()[:3]
    width = np.int64 if pa.types.is_large_string(column.type) else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[column.offset : column.offset + n + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    valid = (
        np.ones(n, dtype=bool)
        if column.null_count == 0
        else np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    )
    return offsets.astype(np.int64), data, valid


# below this many cells a batch of text columns is framed value by value: numpy's cost per
# call is paid per column, and for a small result that is most of the time (measured: 28 rows
# x 9 columns 73 us value by value, 289 us vectorised; even at ~130 rows)
SMALL_CELLS = 1_000


def encode_batch(batch: pa.RecordBatch, binary_oids: list[int] | None = None) -> bytes:
    """DataRow messages for every row of a batch: string columns as they are, columns with
    a binary oid (0: text) in that type's binary format."""
    n, k = batch.num_rows, batch.num_columns
    if n == 0:
        return b""
    if (
        n * k <= SMALL_CELLS
        and not any(binary_oids or ())
        and all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in batch.schema.types)
    ):
        return encode_small_text(batch)
    return encode_vectorised(batch, binary_oids)


def encode_small_text(batch: pa.RecordBatch) -> bytes:
    """DataRow messages of a batch of text columns, value by value."""
    count = struct.pack("!h", batch.num_columns)
    null = struct.pack("!i", -1)
    chunks = []
    for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
        fields = [count]
        for value in row:
            if value is None:
                fields.append(null)
            else:
                data = value.encode()
                fields.append(struct.pack("!i", len(data)) + data)
        body = b"".join(fields)
        chunks.append(b"D" + struct.pack("!i", len(body) + 4) + body)
    return b"".join(chunks)


def encode_vectorised(batch: pa.RecordBatch, binary_oids: list[int] | None = None) -> bytes:
    """DataRow messages framed with numpy, whole columns at a time."""
    n, k = batch.num_rows, batch.num_columns
    if n == 0:
        return b""
    oids = binary_oids or [0] * k
    parts = [
        encode_column(batch.column(i), oids[i]) if oids[i] else _string_parts(batch.column(i))
        for i in range(k)
    ]
    lengths = [np.where(valid, np.diff(offsets), 0) for offsets, _, valid in parts]
    row_size = 7 + 4 * k + (np.sum(lengths, axis=0) if k else np.zeros(n, np.int64))
    row_start = np.concatenate(([0], np.cumsum(row_size)[:-1])).astype(np.int64)
    out = np.empty(int(row_size.sum()), dtype=np.uint8)
    out[row_start] = ord("D")
    _put_int32(out, row_start + 1, row_size - 1)
    count = np.frombuffer(struct.pack("!h", k), dtype=np.uint8)
    out[row_start + 5] = count[0]
    out[row_start + 6] = count[1]
    position = row_start + 7
    for (offsets, data, valid), length in zip(parts, lengths, strict=True):
        _put_int32(out, position, np.where(valid, length, -1))
        position = position + 4
        has_bytes = length > 0
        if has_bytes.any():
            sizes = length[has_bytes]
            total = int(sizes.sum())
            within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            out[np.repeat(position[has_bytes], sizes) + within] = data[
                np.repeat(offsets[:-1][has_bytes], sizes) + within
            ]
        position = position + length
    return out.tobytes()


def encode_rows_slow(rows: list[tuple[Any, ...]]) -> bytes:
    """DataRow messages from Python values (str() of each): for the few statements that
    cannot be wrapped, such as EXPLAIN, and as the reference the tests compare against."""
    chunks = []
    for row in rows:
        fields = [struct.pack("!h", len(row))]
        for value in row:
            if value is None:
                fields.append(struct.pack("!i", -1))
            else:
                data = _text(value).encode()
                fields.append(struct.pack("!i", len(data)) + data)
        body = b"".join(fields)
        chunks.append(b"D" + struct.pack("!i", len(body) + 4) + body)
    return b"".join(chunks)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return str(value)


def copy_lines(batch: pa.RecordBatch, csv: bool, delimiter: str) -> bytes:
    """Rows of text columns in COPY's text format (\\N for NULL, backslash escapes) or CSV
    (quoted where needed, empty for NULL), a line each."""
    import pyarrow.compute as pc

    if batch.num_rows == 0:
        return b""
    cells = []
    for column in batch.columns:
        text = column.cast(pa.string())
        if csv:
            special = pc.match_substring_regex(text, f'[{re.escape(delimiter)}"\\n\\r]')
            quoted = pc.binary_join_element_wise(
                '"', pc.replace_substring(text, '"', '""'), '"', ""
            )
            text = pc.fill_null(pc.if_else(special, quoted, text), "")
        else:
            for raw, escaped in (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
                text = pc.replace_substring(text, raw, escaped)
            text = pc.fill_null(text, "\\N")
        cells.append(text)
    lines = pc.binary_join_element_wise(*cells, delimiter)
    return ("\n".join(lines.to_pylist()) + "\n").encode()
