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


def decode(value: bytes | None, oid: int, binary: bool) -> Any:
    if value is None:
        return None
    try:
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
