"""Result columns in Postgres binary format, for clients that ask for it in Bind (pgjdbc
switches a prepared statement to binary after its fifth execution; psycopg's binary
cursors). Fixed-width types are encoded with numpy, column at a time; numeric, uuid and
interval, value at a time. Each encoder returns what the DataRow framing needs: (offsets,
bytes, valid) in the layout of an Arrow variable-width column."""

from __future__ import annotations

import struct
import uuid
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

Parts = tuple[np.ndarray, np.ndarray, np.ndarray]
# days and microseconds from the Unix epoch to Postgres' (2000-01-01)
PG_EPOCH_DAYS = 10_957
PG_EPOCH_MICROS = PG_EPOCH_DAYS * 86_400 * 1_000_000
FIXED: dict[int, tuple[Any, str]] = {  # oid -> (Arrow type to cast to, big-endian dtype)
    16: (pa.uint8(), "u1"),
    21: (pa.int16(), ">i2"),
    23: (pa.int32(), ">i4"),
    20: (pa.int64(), ">i8"),
    26: (pa.int32(), ">u4"),
    700: (pa.float32(), ">f4"),
    701: (pa.float64(), ">f8"),
}
BINARY_OIDS = frozenset({*FIXED, 17, 19, 25, 114, 1043, 1082, 1083, 1114, 1184, 1186, 1700, 2950})


def _valid(column: pa.Array) -> np.ndarray:
    if column.null_count == 0:
        return np.ones(len(column), dtype=bool)
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _fixed(values: np.ndarray, dtype: str, valid: np.ndarray) -> Parts:
    width = np.dtype(dtype).itemsize
    data = np.ascontiguousarray(values.astype(dtype)).view(np.uint8)
    offsets = np.arange(len(values) + 1, dtype=np.int64) * width
    return offsets, data, valid


def _numbers(column: pa.Array, target: Any) -> np.ndarray:
    filled = pc.fill_null(column.cast(target), pa.scalar(0, target))
    return np.asarray(filled.to_numpy(zero_copy_only=False))


def _per_value(column: pa.Array, encode: Any) -> Parts:
    valid = _valid(column)
    chunks = [encode(v) if v is not None else b"" for v in column.to_pylist()]
    sizes = np.fromiter((len(c) for c in chunks), dtype=np.int64, count=len(chunks))
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    return offsets, data, valid


def numeric(value: Decimal | int | float | str) -> bytes:
    """Postgres NUMERIC binary: base-10000 digits, weight, sign, display scale."""
    number = Decimal(str(value)) if not isinstance(value, Decimal) else value
    if number.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    sign, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    scale = max(-exponent, 0)
    text = "".join(map(str, digits)) or "0"
    if exponent > 0:
        text += "0" * exponent
    text = text.rjust(scale + 1, "0")  # 0.01: digits "1", scale 2 -> "001"
    integer = text[: len(text) - scale] if scale else text
    fraction = text[len(text) - scale :] if scale else ""
    integer = integer.lstrip("0")
    integer = "0" * (-len(integer) % 4) + integer
    fraction = fraction + "0" * (-len(fraction) % 4)
    groups = [int(integer[i : i + 4]) for i in range(0, len(integer), 4)]
    weight = len(groups) - 1
    groups += [int(fraction[i : i + 4]) for i in range(0, len(fraction), 4)]
    while groups and groups[0] == 0:  # leading zero groups move the weight down
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(
        f"!hhHh{len(groups)}H", len(groups), weight, 0x4000 if sign else 0, scale, *groups
    )


def _interval(value: Any) -> bytes:
    months, days, nanos = value.months, value.days, value.nanoseconds
    return struct.pack("!qii", nanos // 1000, days, months)


def encode_column(column: pa.Array, oid: int) -> Parts:
    """The column's values in the binary format of `oid`."""
    valid = _valid(column)
    if oid in FIXED:
        target, dtype = FIXED[oid]
        return _fixed(_numbers(column, target), dtype, valid)
    if oid == 1082:
        days = _numbers(column.cast(pa.date32()).cast(pa.int32()), pa.int32()) - PG_EPOCH_DAYS
        return _fixed(days, ">i4", valid)
    if oid in (1114, 1184):
        unit = pa.timestamp("us", column.type.tz) if pa.types.is_timestamp(column.type) else None
        micros = column.cast(unit) if unit is not None else column
        values = _numbers(micros.cast(pa.int64()), pa.int64()) - PG_EPOCH_MICROS
        return _fixed(values, ">i8", valid)
    if oid == 1083:
        micros = _numbers(column.cast(pa.time64("us")).cast(pa.int64()), pa.int64())
        return _fixed(micros, ">i8", valid)
    if oid == 1700:
        return _per_value(column, numeric)
    if oid == 2950:
        return _per_value(column, lambda v: uuid.UUID(str(v)).bytes)
    if oid == 1186:
        return _per_value(column, _interval)
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return _variable(column)
    # text-like types: the binary form is the UTF-8 text
    return _variable(column if pa.types.is_string(column.type) else column.cast(pa.string()))


def _variable(column: pa.Array) -> Parts:
    n = len(column)
    _, offsets_buf, data_buf = column.buffers()[:3]
    large = pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)
    width = np.int64 if large else np.int32
    offsets = np.frombuffer(offsets_buf, dtype=width)[column.offset : column.offset + n + 1]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return offsets.astype(np.int64), data, _valid(column)
