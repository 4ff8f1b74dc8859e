"""One client connection: startup and auth, then the simple and extended query flows.

Queries run in worker threads (DuckDB releases the GIL), results stream batch by batch, and
each write waits for the client to drain, so a slow client holds only its own session. A
statement outside a transaction block sees the publish current when it starts; a transaction
block keeps the publish it started on until COMMIT/ROLLBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import secrets
import ssl
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import pyarrow as pa

from warehouse.interfaces.serve import params as wire_params
from warehouse.interfaces.serve import rows, wire
from warehouse.interfaces.serve.auth import MECHANISM, AuthFailed, ScramExchange
from warehouse.interfaces.serve.pg_catalog import uses_catalog
from warehouse.interfaces.serve.settings import SessionSettings
from warehouse.interfaces.serve.snapshots import NotPublishedError, Snapshot
from warehouse.interfaces.serve.sqlstate import error_fields
from warehouse.interfaces.serve.statements import (
    SESSION_KINDS,
    Statement,
    StatementError,
    classify,
    split,
)
from warehouse.interfaces.serve.transaction import Transaction
from warehouse.interfaces.serve.translate import SessionFacts, to_duckdb
from warehouse.runtime.catalog import ANALYST

if TYPE_CHECKING:
    from warehouse.interfaces.serve.server import Server

T = TypeVar("T")
ARRAY_PARAMETER = re.compile(r"\b(?:ANY|ALL)\s*\(\s*\$(\d+)\s*\)", re.IGNORECASE)
BATCH_ROWS = 16_384
FLUSH_BYTES = 256 * 1024  # queued output written before more is computed (back-pressure)
RESULT_TYPES_KEPT = 256
INLINE_ROWS = 2_000  # a result this small is read ahead and encoded on the event loop


class ClientGone(Exception):
    """The client closed the connection."""


@dataclass
class Prepared:
    statement: Statement
    param_oids: list[int]
    source: str = ""  # the client's text, for the audit log (a statement may run many times)

    @functools.cached_property
    def array_params(self) -> set[int]:
        """Parameters used as `= ANY($n)`: an untyped value there is an array literal.
        Read once per prepared statement, not at each of its Binds."""
        return {int(n) for n in ARRAY_PARAMETER.findall(self.statement.text)}


@dataclass
class Portal:
    prepared: Prepared
    values: list[Any]
    columns: list[tuple[str, int]] | None = None
    batches: Iterator[pa.RecordBatch] | None = None
    pending: list[pa.RecordBatch] = field(default_factory=list)  # read, not yet sent
    sent: int = 0
    fallback_rows: list[tuple[Any, ...]] | None = None
    result_formats: list[int] = field(default_factory=list)  # from Bind: none, one, or each
    connection: duckdb.DuckDBPyConnection | None = None  # a declared cursor's own
    hold: bool = False  # a declared cursor WITH HOLD outlives its transaction
    binary_oids: list[int] | None = None  # per column: its oid if sent binary, else 0

    def formats(self) -> list[int] | None:
        return [1 if oid else 0 for oid in self.binary_oids] if self.binary_oids else None


@dataclass
class Session:
    server: Server
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int = 0
    secret: int = field(default_factory=lambda: secrets.randbits(31))
    user: str = ""
    role: str = ANALYST  # which catalog the session reads (README "Privacy")
    audit_id: str = ""  # the session's id in the audit log, when [serve] audit_log is on
    statement_sql: str = ""  # the client's text of the statement running, for the audit log
    statement_started: float = 0.0
    settings: SessionSettings = field(default_factory=SessionSettings)
    tx: Transaction = field(default_factory=Transaction)
    snapshot: Snapshot | None = None
    cursor: duckdb.DuckDBPyConnection | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    skipping: bool = False  # after an error in the extended flow, until Sync
    cursors: dict[str, Portal] = field(default_factory=dict)  # DECLAREd cursors
    tls: bool = False  # the connection was upgraded after an SSLRequest
    streaming: Portal | None = None
    # connections that have the Postgres catalog installed (by id; the object is kept so
    # an id is never reused while listed)
    catalogued: dict[int, duckdb.DuckDBPyConnection] = field(default_factory=dict)
    outbox: list[bytes] = field(default_factory=list)  # messages not yet written
    outbox_bytes: int = 0
    # result column types of statements already run on this session's publish (a query's
    # types are known before it runs only by binding it: once is enough)
    result_types: dict[tuple[object, ...], tuple[list[str], list[str]]] = field(
        default_factory=dict
    )

    @property
    def peer(self) -> str:
        address = self.writer.get_extra_info("peername")
        return f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if await self.startup():
                await self.loop()
        except (ClientGone, asyncio.IncompleteReadError, ConnectionError, wire.ProtocolError):
            pass
        except ssl.SSLError as exc:  # a client that gave up the TLS handshake
            self.server.log(self.peer, f"TLS handshake failed: {exc}")
        finally:
            await self.close()

    async def close(self) -> None:
        with contextlib.suppress(ClientGone, ConnectionError, OSError):
            await self.flush()  # a refusal or a last error still reaches the client
        self.server.forget(self)
        self.drop_portal_results()
        for name in list(self.cursors):
            await self.close_cursor(name)
        if self.snapshot is not None:
            snapshot, cursor = self.snapshot, self.cursor
            self.snapshot = self.cursor = None
            await self.in_thread(_close_quietly, cursor)
            self.server.snapshots[self.role].release(snapshot)
        self.writer.close()

    async def startup(self) -> bool:
        while True:
            start = await wire.read_startup(self.reader)
            if start.kind == "ssl" and self.server.tls is not None and not self.tls:
                self.writer.write(b"S")
                await self.writer.drain()
                await self.writer.start_tls(self.server.tls)
                self.tls = True
                continue
            if start.kind in ("ssl", "gss"):
                self.writer.write(b"N")
                await self.writer.drain()
                continue
            if start.kind == "cancel" and start.cancel_key:
                self.server.cancel(*start.cancel_key)
                return False
            break
        self.user = start.parameters.get("user", "")
        self.role = self.server.options.role_of(self.user)
        if self.server.require_tls and not self.tls:
            await self.refuse(
                "28000", "this server accepts only TLS connections", "use sslmode=require"
            )
            return False
        database = start.parameters.get("database") or self.user
        env = self.server.settings.env
        if database != env:
            await self.refuse(
                "3D000",
                f'database "{database}" does not exist',
                f"this server serves environment '{env}': connect to database {env}, or run "
                f"wh serve --env {database}",
            )
            return False
        if not await self.authenticate():
            return False
        self.settings = SessionSettings(self.user, start.parameters)
        self.pid = self.server.register(self)
        if self.server.audit is not None:
            self.audit_id = self.server.audit.session(self.user, self.role, self.peer)
        await self.send(
            wire.auth_ok(),
            *self.settings.startup_messages(),
            wire.backend_key(self.pid, self.secret),
            wire.ready(self.tx.status),
        )
        return True

    async def refuse(self, code: str, message: str, hint: str | None = None) -> None:
        self.server.log(self.peer, f"refused: {message}")
        await self.send(wire.error(code, message, severity="FATAL", hint=hint))

    async def authenticate(self) -> bool:
        """SCRAM-SHA-256 when the server has users; open on loopback otherwise."""
        if not self.server.users:
            return True
        # an unknown user goes through the same exchange, so failures look alike
        verifier = self.server.users.get(self.user) or self.server.decoy
        exchange = ScramExchange(verifier)
        failed = f'password authentication failed for user "{self.user}"'
        try:
            await self.send(wire.auth_sasl([MECHANISM]))
            kind, body = await self.receive()
            message = wire.Body(body)
            if kind != b"p" or message.cstring() != MECHANISM:
                raise AuthFailed("the client did not start SCRAM-SHA-256")
            first = message.take(message.int32()).decode()
            await self.send(wire.auth_sasl_continue(exchange.first(first)))
            kind, body = await self.receive()
            if kind != b"p":
                raise AuthFailed("the client did not answer the SCRAM challenge")
            final = exchange.final(body.decode())
            if self.user not in self.server.users:
                raise AuthFailed("unknown user")
        except (AuthFailed, UnicodeDecodeError, ValueError) as exc:
            self.server.log(self.peer, f"{failed} ({exc})")
            await self.send(wire.error("28P01", failed, severity="FATAL"))
            return False
        await self.send(wire.auth_sasl_final(final))
        return True

    async def loop(self) -> None:
        while True:
            kind, body = await self.receive()
            if kind == b"X":
                return
            if kind == b"Q":
                await self.simple_query(wire.Body(body).cstring())
            elif kind == b"S":
                self.skipping = False
                await self.send(wire.ready(self.tx.status))
            elif kind == b"H":
                await self.flush()
            elif self.skipping:
                continue
            elif kind in (b"P", b"B", b"D", b"E", b"C"):
                await self.extended(kind, wire.Body(body))
            elif kind in (b"d", b"c", b"f"):
                continue  # COPY data: nothing here ever asked for it
            else:
                await self.send(wire.error("08P01", f"unsupported message type {kind!r}"))
                return

    # --- plumbing -------------------------------------------------------------------------

    async def send(self, *messages: bytes) -> None:
        """Queue messages; they go out when the session is about to wait for the client
        (`flush`) or when enough is queued. One write per round trip instead of one per
        message: what Postgres does too (its output buffer is flushed at Sync and Flush)."""
        if self.writer.is_closing():
            raise ClientGone
        self.outbox.extend(messages)
        self.outbox_bytes += sum(len(m) for m in messages)
        if self.outbox_bytes >= FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self.outbox:
            if self.writer.is_closing():
                raise ClientGone
            self.writer.writelines(self.outbox)
            self.outbox, self.outbox_bytes = [], 0
        await self.writer.drain()

    async def receive(self) -> tuple[bytes, bytes]:
        """The client's next message. What is queued goes out first unless the client has
        already sent more (a pipeline: Parse, Bind, Execute, Sync in one packet)."""
        if self.outbox and not _has_input(self.reader):
            await self.flush()
        return await wire.read_message(self.reader)

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.server.pool, fn, *args)

    def interrupt(self) -> None:
        if self.cursor is not None:
            self.cursor.interrupt()

    async def connection(self) -> duckdb.DuckDBPyConnection:
        """The session's connection on the right publish (moves to a new one when idle)."""
        snapshots = self.server.snapshots[self.role]
        if self.snapshot is not None and (
            self.tx.in_block
            or self.cursors  # open cursors read this publish: the session stays on it
            or snapshots.is_current(self.snapshot)  # a readlink: not worth a thread hop
        ):
            assert self.cursor is not None
            return self.cursor
        self.drop_portal_results()
        fresh = await self.in_thread(snapshots.acquire)
        try:
            cursor = await self.in_thread(fresh.cursor)
        except BaseException:
            snapshots.release(fresh)
            raise
        if self.snapshot is not None:
            self.catalogued.pop(id(self.cursor), None)
            await self.in_thread(_close_quietly, self.cursor)
            snapshots.release(self.snapshot)
        self.snapshot, self.cursor = fresh, cursor
        return cursor

    async def with_catalog(self, cursor: duckdb.DuckDBPyConnection, sql: str) -> None:
        """Install the Postgres catalog on `cursor` if `sql` reads it and it is not there:
        ~50 ms of temporary views and macros that plain queries never pay for."""
        if id(cursor) in self.catalogued or not uses_catalog(sql):
            return
        assert self.snapshot is not None
        await self.in_thread(
            self.snapshot.install_catalog,
            cursor,
            self.server.settings.env,
            self.user,
            self.settings.values,
        )
        self.catalogued[id(cursor)] = cursor

    def drop_portal_results(self) -> None:
        """DuckDB runs one result per connection: an unfinished one is dropped first."""
        if self.streaming is not None:
            self.streaming.batches = None
            self.streaming.pending = []
            self.streaming = None

    def audited(self, rows: int | None, error: str | None = None) -> None:
        """One statement in the audit log (when it is on): who, as which role, what, rows."""
        if self.server.audit is None or not self.statement_sql:
            return
        self.server.audit.query(
            self.audit_id, self.user, self.role, self.statement_sql, rows, error,
            time.perf_counter() - self.statement_started,
        )  # fmt: skip
        self.statement_sql = ""

    async def report_error(self, exc: BaseException) -> None:
        code, message, hint = error_fields(exc)
        self.audited(None, f"{code}: {message}")
        self.tx.fail()
        await self.send(wire.error(code, message, hint=hint))

    async def report_internal(self, exc: Exception) -> None:
        traceback.print_exception(exc, file=sys.stderr)
        self.audited(None, f"XX000: {type(exc).__name__}: {exc}")
        self.tx.fail()
        await self.send(
            wire.error("XX000", f"internal error in wh serve: {type(exc).__name__}: {exc}")
        )

    # --- simple query ---------------------------------------------------------------------

    async def simple_query(self, sql: str) -> None:
        try:
            pieces = split(sql)
            if not pieces:
                await self.send(wire.empty_query())
            for piece in pieces:
                portal = Portal(Prepared(self.prepare_statement(piece), [], piece), [])
                columns = await self.describe(portal)
                if columns is not None:
                    await self.send(wire.row_description(columns))
                await self.execute(portal, 0)
        except (StatementError, duckdb.Error, NotPublishedError) as exc:
            await self.report_error(exc)
        except Exception as exc:  # a bug here: the client gets an error, not a dropped line
            await self.report_internal(exc)
        await self.send(wire.ready(self.tx.status))

    def prepare_statement(self, sql: str) -> Statement:
        self.statement_sql, self.statement_started = sql, time.perf_counter()
        try:
            statement = classify(sql, self.settings.values)
        except StatementError as exc:
            if exc.code in ("25006", "42501", "0A000"):  # refused: always in the log
                self.server.log(self.peer, f"refused statement ({exc.message}): {sql[:500]}")
            raise
        self.tx.check(statement.kind)
        if statement.kind in ("query", "declare", "copy_out"):
            facts = SessionFacts(
                self.server.settings.env, self.user, self.pid, self.settings.values
            )
            statement = replace(statement, text=to_duckdb(statement.text, facts))
        if self.server.log_statements:
            print(f"[{self.pid}] {statement.kind}: {statement.text}", file=sys.stderr, flush=True)
        return statement

    # --- extended query -------------------------------------------------------------------

    async def extended(self, kind: bytes, body: wire.Body) -> None:
        try:
            if kind == b"P":
                await self.parse(body)
            elif kind == b"B":
                await self.bind(body)
            elif kind == b"D":
                await self.describe_message(body)
            elif kind == b"E":
                name = body.cstring()
                portal = self.portals.get(name) or self.cursors.get(name)
                if portal is None:
                    raise StatementError("34000", f'portal "{name}" does not exist')
                await self.execute(portal, body.int32())
            elif kind == b"C":
                target, name = body.byte(), body.cstring()
                (self.prepared if target == "S" else self.portals).pop(name, None)
                await self.send(wire.close_complete())
        except (StatementError, duckdb.Error, NotPublishedError) as exc:
            self.skipping = True
            await self.report_error(exc)
        except Exception as exc:  # a bug here: the client gets an error, not a dropped line
            self.skipping = True
            await self.report_internal(exc)

    async def parse(self, body: wire.Body) -> None:
        name, sql = body.cstring(), body.cstring()
        oids = [body.int32() for _ in range(body.int16())]
        pieces = split(sql)
        if len(pieces) > 1:
            raise StatementError(
                "42601", "cannot insert multiple commands into a prepared statement"
            )
        statement = self.prepare_statement(pieces[0] if pieces else "")
        self.prepared[name] = Prepared(statement, oids, pieces[0] if pieces else "")
        await self.send(wire.parse_complete())

    async def bind(self, body: wire.Body) -> None:
        portal_name, statement_name = body.cstring(), body.cstring()
        prepared = self.prepared.get(statement_name)
        if prepared is None:
            raise StatementError("26000", f'prepared statement "{statement_name}" does not exist')
        formats = [body.int16() for _ in range(body.int16())]
        count = body.int16()
        values: list[Any] = []
        for i in range(count):
            length = body.int32()
            raw = None if length < 0 else body.take(length)
            binary = _binary(formats, i)
            oid = prepared.param_oids[i] if i < len(prepared.param_oids) else 0
            if oid == 0 and i + 1 in prepared.array_params:
                oid = wire_params.TEXT_ARRAY  # untyped, but where Postgres infers an array
            values.append(wire_params.decode(raw, oid, binary))
        result_formats = [body.int16() for _ in range(body.int16())]
        if any(f not in (0, 1) for f in result_formats):
            raise StatementError("08P01", f"unknown result format code in {result_formats}")
        self.tx.check(prepared.statement.kind)
        self.portals[portal_name] = Portal(prepared, values, result_formats=result_formats)
        await self.send(wire.bind_complete())

    async def describe_message(self, body: wire.Body) -> None:
        target, name = body.byte(), body.cstring()
        if target == "S":
            prepared = self.prepared.get(name)
            if prepared is None:
                raise StatementError("26000", f'prepared statement "{name}" does not exist')
            placeholders = _parameter_count(prepared)
            oids = [o or rows.TEXT_OID for o in prepared.param_oids]
            oids += [rows.TEXT_OID] * (placeholders - len(oids))
            portal = Portal(prepared, [None] * len(oids))
            columns = await self.describe(portal, run=False)
            await self.send(
                wire.parameter_description(oids),
                wire.row_description(columns) if columns is not None else wire.no_data(),
            )
            return
        # a DECLAREd cursor is a portal too: psycopg 3 describes it by its name
        bound = self.portals.get(name) or self.cursors.get(name)
        if bound is None:
            raise StatementError("34000", f'portal "{name}" does not exist')
        columns = await self.describe(bound)
        await self.send(
            wire.row_description(columns, bound.formats())
            if columns is not None
            else wire.no_data()
        )

    # --- running statements ---------------------------------------------------------------

    async def describe(
        self,
        portal: Portal,
        run: bool = True,
        own: duckdb.DuckDBPyConnection | None = None,
    ) -> list[tuple[str, int]] | None:
        """Result columns of a portal (None for commands); with `run`, the query starts
        (on `own`, a declared cursor's connection, or the session's)."""
        statement = portal.prepared.statement
        if statement.kind == "show":
            return [(statement.name, rows.TEXT_OID)]
        if statement.kind == "fetch":
            return self.declared(statement.name).columns
        if statement.kind != "query":
            return None
        if portal.columns is not None:
            return portal.columns
        if own is None:
            cursor = await self.connection()
            self.drop_portal_results()
        else:
            cursor = own
        await self.with_catalog(cursor, statement.text)
        if not run:
            relation = await self.in_thread(_relation, cursor, statement.text, portal.values)
            return [
                (name, rows.type_oid(str(kind)))
                for name, kind in zip(relation.columns, relation.types, strict=True)
            ]
        # the types a statement returned before on this publish, for these parameter types
        assert self.snapshot is not None
        key = (self.snapshot.path, statement.text, *(type(v) for v in portal.values))
        started = await self.in_thread(
            _start, cursor, statement.text, portal.values, portal.result_formats,
            self.result_types.get(key),
        )  # fmt: skip
        if started.fallback_rows is None:
            self.result_types[key] = ([c for c, _ in started.columns], started.types)
            if len(self.result_types) > RESULT_TYPES_KEPT:  # a session of ad-hoc queries
                self.result_types.pop(next(iter(self.result_types)))
            if own is None:
                self.streaming = portal
        portal.batches, portal.binary_oids = started.batches, started.binary_oids
        portal.pending = started.first
        portal.fallback_rows = started.fallback_rows
        portal.columns = started.columns
        return started.columns

    async def execute(self, portal: Portal, max_rows: int) -> None:
        statement = portal.prepared.statement
        if portal.prepared.source and not portal.sent:  # not a suspended portal resumed
            self.statement_sql, self.statement_started = (
                portal.prepared.source,
                time.perf_counter(),
            )
        if statement.kind == "copy_out":
            await self.copy_out(statement, portal.values)
            return
        if statement.kind == "fetch":
            cursor = self.declared(statement.name)
            sent = await self.send_rows(cursor, int(statement.value))
            await self.send(wire.command_complete(f"FETCH {sent}"))
            return
        if statement.kind in SESSION_KINDS:
            await self.session_command(statement)
            return
        if portal.columns is None:
            await self.describe(portal)
        if portal.fallback_rows is not None:
            data = rows.encode_rows_slow(portal.fallback_rows)
            self.audited(len(portal.fallback_rows))
            await self.send(data, wire.command_complete(f"SELECT {len(portal.fallback_rows)}"))
            portal.fallback_rows = []
            return
        await self.send_rows(portal, max_rows)
        if portal.batches is not None or portal.pending:
            await self.send(wire.portal_suspended())
            return
        if self.streaming is portal:
            self.streaming = None
        self.audited(portal.sent)
        await self.send(wire.command_complete(f"SELECT {portal.sent}"))

    async def send_rows(self, portal: Portal, max_rows: int) -> int:
        """DataRows for the portal's next `max_rows` rows (0: all); the number sent.
        The count starts at this call: a client paging with a fetch size executes the
        suspended portal again for the next rows."""
        first = portal.sent
        limit = portal.sent + max_rows if max_rows > 0 else None
        while (limit is None or portal.sent < limit) and (
            portal.batches is not None or bool(portal.pending)
        ):
            if portal.batches is None and sum(b.num_rows for b in portal.pending) <= INLINE_ROWS:
                encoded = _take_rows(portal, limit)  # all read and few: no thread hop
            else:
                encoded = await self.in_thread(_take_rows, portal, limit)
            if encoded is None:
                break
            await self.send(encoded)
        return portal.sent - first

    async def copy_out(self, statement: Statement, values: list[Any]) -> None:
        """COPY (query) TO STDOUT: the rows as CopyData in text or CSV format."""
        form, header, delimiter = statement.value.split("|")
        cursor = await self.connection()
        self.drop_portal_results()
        await self.with_catalog(cursor, statement.text)
        relation = await self.in_thread(_relation, cursor, statement.text, values)
        types = [str(t) for t in relation.types]
        text = rows.text_query(statement.text, types)
        batches = await self.in_thread(_arrow_stream, cursor, text, values)
        out = [wire.copy_out_response(len(types))]
        if header == "1":
            names = [str(c) for c in relation.columns]
            out.append(wire.copy_data((delimiter.join(names) + "\n").encode()))
        await self.send(*out)
        sent = 0
        while chunk := await self.in_thread(_copy_chunk, batches, form == "csv", delimiter):
            data, count = chunk
            sent += count
            await self.send(wire.copy_data(data))
        self.audited(sent)
        await self.send(wire.copy_done(), wire.command_complete(f"COPY {sent}"))

    def declared(self, name: str) -> Portal:
        cursor = self.cursors.get(name)
        if cursor is None:
            raise StatementError("34000", f'cursor "{name}" does not exist')
        return cursor

    async def declare(self, statement: Statement) -> None:
        """A cursor on a connection of its own (DuckDB streams one result per
        connection), on the session's publish, started now and read by FETCH."""
        if statement.name in self.cursors:
            raise StatementError("42P03", f'cursor "{statement.name}" already exists')
        await self.connection()
        assert self.snapshot is not None
        own = await self.in_thread(self.snapshot.cursor)
        portal = Portal(Prepared(Statement(statement.text, "query"), []), [])
        portal.connection, portal.hold = own, statement.value == "hold"
        self.cursors[statement.name] = portal
        await self.describe(portal, own=own)

    async def close_cursor(self, name: str) -> None:
        cursor = self.cursors.pop(name, None)
        if cursor is not None:
            cursor.batches, cursor.pending = None, []
            self.catalogued.pop(id(cursor.connection), None)
            await self.in_thread(_close_quietly, cursor.connection)

    async def end_transaction_cursors(self) -> None:
        """Cursors WITHOUT HOLD end with their transaction, as in Postgres."""
        for name, cursor in list(self.cursors.items()):
            if not cursor.hold:
                await self.close_cursor(name)

    async def session_command(self, statement: Statement) -> None:
        kind = statement.kind
        tag = kind.upper()
        out: list[bytes] = []
        if kind == "begin":
            if not self.tx.in_block:
                await self.connection()  # the block keeps the publish current now
            if not self.tx.begin():
                out.append(wire.notice("there is already a transaction in progress"))
        elif kind in ("commit", "rollback"):
            tag = self.tx.end(kind)
            await self.end_transaction_cursors()
        elif kind == "declare":
            await self.declare(statement)
            tag = "DECLARE CURSOR"
        elif kind == "close":
            if statement.name == "all":
                for name in list(self.cursors):
                    await self.close_cursor(name)
            else:
                self.declared(statement.name)
                await self.close_cursor(statement.name)
            tag = "CLOSE CURSOR"
        elif kind == "rollback_to":
            tag = "ROLLBACK"
            self.tx.rollback_to_savepoint()
        elif kind == "set":
            tag = "SET"
            if statement.name != "transaction":
                out += self.settings.set(statement.name, statement.value)
        elif kind == "reset":
            self.settings.reset(statement.name)
        elif kind == "show":
            value = self.settings.get(statement.name)
            if value is None:
                raise StatementError(
                    "42704", f'unrecognized configuration parameter "{statement.name}"'
                )
            out.append(rows.encode_rows_slow([(value,)]))
            tag = "SHOW"
        elif kind == "discard":
            tag = "DISCARD ALL"
            self.prepared.clear()
            self.portals.clear()
            self.settings.reset("all")
        elif kind == "deallocate":
            self.prepared.pop(statement.name, None)
            if statement.name.lower() == "all":
                self.prepared.clear()
        elif kind == "empty":
            await self.send(wire.empty_query())
            return
        await self.send(*out, wire.command_complete(tag))


def _parameter_count(prepared: Prepared) -> int:
    found = [int(m) for m in re.findall(r"\$(\d+)", prepared.statement.text)]
    return max(found, default=0)


def _binary(formats: list[int], i: int) -> bool:
    """Whether value `i` is in binary format, by Bind's format codes: none means all text,
    one applies to every value, otherwise one per value."""
    code = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
    return code == 1


def _relation(
    cursor: duckdb.DuckDBPyConnection, sql: str, values: list[Any]
) -> duckdb.DuckDBPyRelation:
    """The query as a lazy relation: its columns and types are known before it runs."""
    relation = cursor.sql(sql, params=values or None)
    if relation is None:
        raise StatementError("42601", "the statement returns no rows")
    return relation


def _copy_chunk(
    batches: Iterator[pa.RecordBatch], csv: bool, delimiter: str
) -> tuple[bytes, int] | None:
    """The next batch of a COPY as text lines and its row count (None when done): reading
    and rendering in one hop to a worker thread."""
    batch = next(batches, None)
    if batch is None:
        return None
    return rows.copy_lines(batch, csv, delimiter), batch.num_rows


@dataclass
class Started:
    columns: list[tuple[str, int]]
    types: list[str]
    batches: Iterator[pa.RecordBatch] | None
    binary_oids: list[int] | None
    fallback_rows: list[tuple[Any, ...]] | None = None
    first: list[pa.RecordBatch] = field(default_factory=list)  # read ahead


def _start(
    cursor: duckdb.DuckDBPyConnection,
    sql: str,
    values: list[Any],
    formats: list[int],
    known: tuple[list[str], list[str]] | None,
) -> Started:
    """Start a query, its columns converted to what the client reads, in one trip to a
    worker thread. The conversion needs the result's names and types: bound from the query
    itself the first time (a second bind), then remembered by the session."""
    relation = None
    if known is None:
        relation = _relation(cursor, sql, values)
        known = [str(c) for c in relation.columns], [str(t) for t in relation.types]
    names, types = known
    binary = [_binary(formats, i) for i in range(len(types))]
    text = rows.text_query(sql, types, binary)
    oids = [rows.type_oid(t) for t in types]
    try:
        stream = _arrow_stream(cursor, text, values)
    except duckdb.ParserException:
        # statements that cannot be a subquery (EXPLAIN): small results, sent as str()
        relation = relation or _relation(cursor, sql, values)
        columns = [(str(c), rows.TEXT_OID) for c in relation.columns]
        return Started(columns, types, None, None, relation.fetchall())
    binary_oids = [oid if b else 0 for oid, b in zip(oids, binary, strict=True)]
    batches: Iterator[pa.RecordBatch] | None = stream
    # read ahead while in this thread: a small result is then whole, and is sent without
    # another hop to a worker thread
    first: list[pa.RecordBatch] = []
    while batches is not None and sum(b.num_rows for b in first) <= INLINE_ROWS:
        batch = next(batches, None)
        if batch is None:
            batches = None
        else:
            first.append(batch)
    return Started(list(zip(names, oids, strict=True)), types, batches, binary_oids, None, first)


def _submitter() -> Callable[..., Any] | None:
    try:
        from duckdb import _seam
    except ImportError:
        return None
    submit = getattr(_seam, "submit", None)
    return submit if callable(submit) else None


# DuckDB's relation API binds a statement to build the relation, then again to run it; the
# function it runs it with takes the statement once. It is internal to the duckdb package:
# used when this duckdb has it, else the public path (what the unit test of both checks).
_SUBMIT = _submitter()


def _arrow_stream(
    cursor: duckdb.DuckDBPyConnection, sql: str, values: list[Any]
) -> Iterator[pa.RecordBatch]:
    """The rows of a query as Arrow batches, streamed (one bind)."""
    if _SUBMIT is not None:
        return iter(_SUBMIT(cursor, sql, values or None, "stream", BATCH_ROWS).arrow_reader())
    return iter(cursor.sql(sql, params=values or None).to_arrow_reader(BATCH_ROWS))


def _take_rows(portal: Portal, limit: int | None) -> bytes | None:
    """DataRows for the portal's next batches, up to BATCH_ROWS rows or `limit` in all
    (None when the result is done). A selective query yields many small batches (one per
    row group it scanned): they are joined and encoded at once, in one hop to this thread."""
    taken_batches: list[pa.RecordBatch] = []
    taken = 0
    while taken < BATCH_ROWS and (limit is None or portal.sent < limit):
        if portal.pending:
            batch = portal.pending.pop(0)
        else:
            if portal.batches is None:
                break
            batch = next(portal.batches, None)
            if batch is None:
                portal.batches = None
                break
        if limit is not None and batch.num_rows > limit - portal.sent:
            take = limit - portal.sent
            portal.pending.insert(0, batch.slice(take))
            batch = batch.slice(0, take)
        taken_batches.append(batch)
        portal.sent += batch.num_rows
        taken += batch.num_rows
    if not taken_batches:
        return None
    if len(taken_batches) > 1:  # encoding costs per batch and column, not only per row
        joined = pa.Table.from_batches(taken_batches).combine_chunks().to_batches()
        taken_batches = joined or taken_batches[:1]
    return b"".join(rows.encode_batch(b, portal.binary_oids) for b in taken_batches)


def _has_input(reader: asyncio.StreamReader) -> bool:
    """Whether the client's next bytes are already read (asyncio keeps them in the reader's
    buffer; without that attribute, answer no: the session then flushes before every read)."""
    return bool(getattr(reader, "_buffer", None))


def _close_quietly(cursor: duckdb.DuckDBPyConnection | None) -> None:
    if cursor is not None:
        with contextlib.suppress(duckdb.Error):
            cursor.close()
