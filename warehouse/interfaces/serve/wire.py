"""Postgres frontend/backend protocol v3: reading client messages, encoding server ones.

Only what a read-only server needs: startup (SSL/GSS refused, cancel requests), cleartext
password auth, the simple and the extended query flows, and errors. No COPY.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field

PROTOCOL_3 = 196608
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 64 * 1024 * 1024


class ProtocolError(Exception):
    """The client sent something that is not the Postgres protocol; the connection ends."""


@dataclass
class Startup:
    kind: str  # "startup" | "ssl" | "gss" | "cancel"
    parameters: dict[str, str] = field(default_factory=dict)
    cancel_key: tuple[int, int] | None = None


async def read_startup(reader: asyncio.StreamReader) -> Startup:
    header = await reader.readexactly(8)
    length, code = struct.unpack("!ii", header)
    if length < 8 or length > 10_000:
        raise ProtocolError(f"bad startup packet length {length}")
    body = await reader.readexactly(length - 8)
    if code == SSL_REQUEST:
        return Startup("ssl")
    if code == GSSENC_REQUEST:
        return Startup("gss")
    if code == CANCEL_REQUEST:
        pid, secret = struct.unpack("!ii", body[:8])
        return Startup("cancel", cancel_key=(pid, secret))
    if code != PROTOCOL_3:
        raise ProtocolError(f"unsupported protocol version {code >> 16}.{code & 0xFFFF}")
    parts = body.split(b"\0")
    parameters = {
        parts[i].decode(): parts[i + 1].decode() for i in range(0, len(parts) - 1, 2) if parts[i]
    }
    return Startup("startup", parameters)


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One typed message: (type byte, body)."""
    header = await reader.readexactly(5)
    kind = header[:1]
    (length,) = struct.unpack("!i", header[1:])
    if length < 4 or length > MAX_MESSAGE:
        raise ProtocolError(f"bad message length {length}")
    return kind, await reader.readexactly(length - 4)


class Body:
    """A cursor over a message body."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.pos)
        value = self.data[self.pos : end].decode()
        self.pos = end + 1
        return value

    def int16(self) -> int:
        (value,) = struct.unpack_from("!h", self.data, self.pos)
        self.pos += 2
        return int(value)

    def int32(self) -> int:
        (value,) = struct.unpack_from("!i", self.data, self.pos)
        self.pos += 4
        return int(value)

    def take(self, n: int) -> bytes:
        value = self.data[self.pos : self.pos + n]
        self.pos += n
        return value

    def byte(self) -> str:
        return self.take(1).decode()


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def cstr(value: str) -> bytes:
    return value.encode() + b"\0"


def auth_ok() -> bytes:
    return message(b"R", struct.pack("!i", 0))


def auth_sasl(mechanisms: list[str]) -> bytes:
    return message(b"R", struct.pack("!i", 10) + b"".join(cstr(m) for m in mechanisms) + b"\0")


def auth_sasl_continue(data: str) -> bytes:
    return message(b"R", struct.pack("!i", 11) + data.encode())


def auth_sasl_final(data: str) -> bytes:
    return message(b"R", struct.pack("!i", 12) + data.encode())


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!ii", pid, secret))


def ready(status: str) -> bytes:
    return message(b"Z", status.encode())


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def empty_query() -> bytes:
    return message(b"I")


def parse_complete() -> bytes:
    return message(b"1")


def bind_complete() -> bytes:
    return message(b"2")


def close_complete() -> bytes:
    return message(b"3")


def no_data() -> bytes:
    return message(b"n")


def portal_suspended() -> bytes:
    return message(b"s")


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", struct.pack(f"!h{len(oids)}i", len(oids), *oids))


def row_description(columns: list[tuple[str, int]], formats: list[int] | None = None) -> bytes:
    """Columns as (name, type oid), with each one's format (0 text, 1 binary)."""
    parts = [struct.pack("!h", len(columns))]
    for i, (name, oid) in enumerate(columns):
        code = formats[i] if formats else 0
        parts.append(cstr(name) + struct.pack("!ihihih", 0, 0, oid, -1, -1, code))
    return message(b"T", b"".join(parts))


def error(
    code: str,
    text: str,
    *,
    severity: str = "ERROR",
    detail: str | None = None,
    hint: str | None = None,
) -> bytes:
    fields = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(code), b"M" + cstr(text)]
    if detail:
        fields.append(b"D" + cstr(detail))
    if hint:
        fields.append(b"H" + cstr(hint))
    return message(b"E", b"".join(fields) + b"\0")


def notice(text: str) -> bytes:
    return message(b"N", b"S" + cstr("NOTICE") + b"C" + cstr("00000") + b"M" + cstr(text) + b"\0")


def copy_out_response(columns: int) -> bytes:
    """CopyOutResponse: text format (0) overall and for each column."""
    return message(b"H", struct.pack(f"!bh{columns}h", 0, columns, *([0] * columns)))


def copy_data(data: bytes) -> bytes:
    return message(b"d", data)


def copy_done() -> bytes:
    return message(b"c")
