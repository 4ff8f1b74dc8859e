"""The Postgres protocol codec of `wh serve` on bytes, without a server or a client."""

from __future__ import annotations

import asyncio
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warehouse.interfaces.serve import wire


def read(data: bytes, reader_call: str) -> object:
    async def go() -> object:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await getattr(wire, reader_call)(reader)

    return asyncio.run(go())


def startup_packet(code: int, body: bytes) -> bytes:
    return struct.pack("!ii", len(body) + 8, code) + body


def test_startup_reads_parameters_and_special_requests() -> None:
    body = b"user\0ana\0database\0prod\0application_name\0psql\0\0"
    found = read(startup_packet(wire.PROTOCOL_3, body), "read_startup")
    assert isinstance(found, wire.Startup) and found.kind == "startup"
    assert found.parameters == {"user": "ana", "database": "prod", "application_name": "psql"}
    assert read(startup_packet(wire.SSL_REQUEST, b""), "read_startup") == wire.Startup("ssl")
    cancel = read(startup_packet(wire.CANCEL_REQUEST, struct.pack("!ii", 7, 9)), "read_startup")
    assert cancel == wire.Startup("cancel", cancel_key=(7, 9))


@pytest.mark.parametrize(
    "packet",
    [
        struct.pack("!ii", 4, wire.PROTOCOL_3),  # shorter than its own header
        struct.pack("!ii", 20_000, wire.PROTOCOL_3),  # far longer than any startup
        startup_packet(2 << 16, b""),  # protocol 2
    ],
)
def test_bad_startup_is_a_protocol_error(packet: bytes) -> None:
    with pytest.raises(wire.ProtocolError):
        read(packet, "read_startup")


@given(st.sampled_from([b"Q", b"P", b"B", b"E", b"S", b"X"]), st.binary(max_size=300))
def test_messages_round_trip(kind: bytes, body: bytes) -> None:
    assert read(wire.message(kind, body), "read_message") == (kind, body)


def test_a_bad_message_length_is_a_protocol_error() -> None:
    with pytest.raises(wire.ProtocolError, match="bad message length"):
        read(b"Q" + struct.pack("!i", 2), "read_message")
    with pytest.raises(wire.ProtocolError):
        read(b"Q" + struct.pack("!i", wire.MAX_MESSAGE + 1), "read_message")


def test_body_reads_typed_fields_in_order() -> None:
    body = wire.Body(b"portal\0" + struct.pack("!hi", 2, -1) + b"xyZ")
    assert body.cstring() == "portal"
    assert (body.int16(), body.int32()) == (2, -1)
    assert (body.take(2), body.byte()) == (b"xy", "Z")


def test_server_messages_are_framed_as_postgres_expects() -> None:
    assert wire.ready("I") == b"Z\0\0\0\x05I"
    assert wire.command_complete("SELECT 3") == b"C\0\0\0\x0dSELECT 3\0"
    description = wire.row_description([("n", 20)])
    assert (
        description[:1] == b"T" and struct.unpack("!i", description[1:5])[0] == len(description) - 1
    )
    assert description[5:7] == struct.pack("!h", 1) and b"n\0" in description
    assert struct.unpack("!ihihih", description[9:27])[2] == 20  # the type oid
    error = wire.error("42P01", "no such table", hint="list tables with \\dt")
    fields = dict((part[:1], part[1:].decode()) for part in error[5:-1].split(b"\0") if part)
    assert fields[b"C"] == "42P01" and fields[b"M"] == "no such table"
    assert fields[b"S"] == "ERROR" and fields[b"H"] == "list tables with \\dt"
