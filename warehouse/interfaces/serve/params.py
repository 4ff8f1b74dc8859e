"""Bind parameters from Postgres wire format to Python values DuckDB can bind."""

from __future__ import annotations

import re
import struct
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from warehouse.interfaces.serve.statements import StatementError

PG_EPOCH_DATE = date(2000, 1, 1)
PG_EPOCH = datetime(2000, 1, 1)
_INTS = {20, 21, 23, 26}
_FLOATS = {700, 701}


TEXT_ARRAY = 1009
# array type oid -> element type oid (Postgres' _int4, _text, ...)
ARRAY_ELEMENTS = {
    1000: 16, 1005: 21, 1007: 23, 1016: 20, 1021: 700, 1022: 701, 1009: 25, 1015: 1043,
    1014: 1042, 1182: 1082, 1115: 1114, 1185: 1184, 1231: 1700, 2951: 2950, 1028: 26,
    1002: 18, 1003: 19,
}  # fmt: skip


def decode(value: bytes | None, oid: int, binary: bool) -> Any:
    if value is None:
        return None
    try:
        if oid in ARRAY_ELEMENTS:
            element = ARRAY_ELEMENTS[oid]
            if binary:
                return _binary_array(value)
            return [None if v is None else _text(v, element) for v in text_array(value.decode())]
        return _binary(value, oid) if binary else _text(value.decode(), oid)
    except (ValueError, struct.error, ArithmeticError) as exc:
        raise StatementError("22P02", f"invalid value for parameter of type {oid}: {exc}") from None


# pgjdbc's setDate sends an untyped "2024-01-31 +01" (a date with its zone); Postgres reads
# it where a date is expected, DuckDB's date cast refuses the zone
_DATE_WITH_ZONE = re.compile(r"^(\d{4,}-\d\d-\d\d) [+-]\d\d(?::?\d\d)?$")


def _text(text: str, oid: int) -> Any:
    if oid in (0, 1082):
        dated = _DATE_WITH_ZONE.match(text)
        if dated:
            text = dated.group(1)
    if oid in _INTS:
        return int(text)
    if oid in _FLOATS:
        return float(text)
    if oid == 1700:
        return Decimal(text)
    if oid == 16:
        return text.strip().lower() in ("t", "true", "y", "yes", "on", "1")
    if oid == 1082:
        return date.fromisoformat(text)
    if oid in (1114, 1184):
        return datetime.fromisoformat(_iso_zone(text))
    return text


def _iso_zone(text: str) -> str:
    # Postgres writes "+00" for a zone; Python wants "+00:00"
    if len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit():
        return text + ":00"
    return text


def _binary(data: bytes, oid: int) -> Any:
    if oid == 16:
        return data != b"\0"
    if oid == 21:
        return struct.unpack("!h", data)[0]
    if oid in (23, 26):
        return struct.unpack("!i", data)[0]
    if oid == 20:
        return struct.unpack("!q", data)[0]
    if oid == 700:
        return struct.unpack("!f", data)[0]
    if oid == 701:
        return struct.unpack("!d", data)[0]
    if oid == 1082:
        return PG_EPOCH_DATE + timedelta(days=struct.unpack("!i", data)[0])
    if oid in (1114, 1184):
        return PG_EPOCH + timedelta(microseconds=struct.unpack("!q", data)[0])
    if oid == 17:
        return data
    if oid in (0, 25, 1043, 19, 114):
        return data.decode()
    raise StatementError(
        "0A000",
        f"binary parameters of type {oid} are not supported",
        hint="send this parameter in text format",
    )


def text_array(text: str) -> list[str | None]:
    """A one-dimensional Postgres array literal: {a,"b c",NULL,"x\\"y"}."""
    text = text.strip()
    if text.startswith("[") and "=" in text:  # dimension decoration: [1:2]={a,b}
        text = text.split("=", 1)[1]
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError(f"not an array literal: {text!r}")
    items: list[str | None] = []
    body, i, n = text[1:-1], 0, len(text) - 2
    while i < n:
        if body[i] == '"':
            i += 1
            chars = []
            while body[i] != '"':
                if body[i] == "\\":
                    i += 1
                chars.append(body[i])
                i += 1
            items.append("".join(chars))
            i += 1
        else:
            end = body.find(",", i)
            end = n if end < 0 else end
            raw = body[i:end].strip()
            items.append(None if raw.upper() == "NULL" else raw)
            i = end
        if i < n and body[i] == ",":
            i += 1
    if body.endswith(","):
        raise ValueError(f"not an array literal: {text!r}")
    return items


def _binary_array(data: bytes) -> list[Any]:
    """Postgres binary array: dims, has-nulls, element oid, (length, lower bound) per
    dimension, then (length, bytes) per element; one dimension here."""
    dims, _, element = struct.unpack("!iii", data[:12])
    if dims == 0:
        return []
    if dims != 1:
        raise ValueError("only one-dimensional arrays are supported as parameters")
    count, _ = struct.unpack("!ii", data[12:20])
    position = 20
    values: list[Any] = []
    for _ in range(count):
        (length,) = struct.unpack("!i", data[position : position + 4])
        position += 4
        if length < 0:
            values.append(None)
            continue
        values.append(_binary(data[position : position + length], element))
        position += length
    return values
