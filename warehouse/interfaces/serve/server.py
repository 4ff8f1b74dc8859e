"""`wh serve`: a read-only Postgres wire endpoint over the published catalog.

The protocol layer is wh's own (asyncio), after comparing the libraries: riffq ships only a
source distribution that needs crates from outside the registries, and buenavista 0.5 needs
patches for DuckDB 2.0 and does not answer psql's catalog queries. See README "Serving".
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import signal
import socket
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.interfaces.serve.auth import Verifier
from warehouse.interfaces.serve.session import Session
from warehouse.interfaces.serve.snapshots import Snapshots
from warehouse.interfaces.users import load_users, serve_table
from warehouse.runtime import audit_log
from warehouse.runtime.audit_log import AuditLog
from warehouse.runtime.catalog import ANALYST, ROLES

WORKER_THREADS = 64


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 5433
    user: str = "wh"
    password: str | None = None
    log_statements: bool = False
    users: dict[str, str] = field(default_factory=dict)  # [serve.users]: name -> password
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plaintext: bool = False  # a non-loopback bind without TLS, on purpose
    roles: dict[str, str] = field(default_factory=dict)  # name -> analyst | steward
    default_role: str = ANALYST  # a client let in without a password (no users)

    def passwords(self) -> dict[str, str]:
        """Every user and password (clear text or a SCRAM verifier)."""
        found = dict(self.users)
        if self.password is not None:
            found[self.user] = self.password
        return found

    def role_of(self, user: str) -> str:
        return self.roles.get(user, self.default_role)


def serve_options(
    settings: Settings, host: str | None, port: int | None, log_statements: bool = False
) -> ServeOptions:
    """Options from flags, then WH_SERVE_* variables, then wh.toml [serve]."""
    table = serve_table(settings)
    config = settings.project_dir / "wh.toml"
    users = load_users(settings)

    def path(key: str) -> Path | None:
        value = os.environ.get(f"WH_SERVE_{key.upper()}") or table.get(key)
        return (settings.project_dir / str(value)).resolve() if value else None

    options = ServeOptions(
        host=host or os.environ.get("WH_SERVE_HOST") or str(table.get("host", "127.0.0.1")),
        port=port or int(os.environ.get("WH_SERVE_PORT") or table.get("port", 5433)),
        user=os.environ.get("WH_SERVE_USER") or str(table.get("user", "wh")),
        log_statements=log_statements,
        users=users.passwords,
        roles=users.roles,
        default_role=users.default_role,
        tls_cert=path("tls_cert"),
        tls_key=path("tls_key"),
        allow_plaintext=bool(
            os.environ.get("WH_SERVE_ALLOW_PLAINTEXT") or table.get("allow_plaintext", False)
        ),
    )
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ConfigError(
            "TLS needs both tls_cert and tls_key", config,
            hint="set [serve] tls_cert and tls_key (PEM files), or neither",
        )  # fmt: skip
    for file in (options.tls_cert, options.tls_key):
        if file is not None and not file.is_file():
            raise ConfigError(f"TLS file not found: {file}", config)
    if not is_loopback(options.host):
        if not options.passwords():
            raise ConfigError(
                f"refusing to listen on {options.host} without a password",
                hint="set WH_SERVE_PASSWORD (or [serve] password or [serve.users] in wh.toml), "
                "or keep the default host 127.0.0.1",
            )
        if options.tls_cert is None and not options.allow_plaintext:
            raise ConfigError(
                f"refusing to listen on {options.host} without TLS",
                hint="set [serve] tls_cert and tls_key (or WH_SERVE_TLS_CERT/KEY); "
                "allow_plaintext = true accepts unencrypted connections on purpose",
            )
    return options


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Server:
    def __init__(self, settings: Settings, options: ServeOptions) -> None:
        self.settings = settings
        self.options = options
        self.log_statements = options.log_statements
        # SCRAM verifiers, derived once: PBKDF2's 4096 rounds are not paid per connection
        self.users = {name: Verifier.parse(pw) for name, pw in options.passwords().items()}
        self.decoy = Verifier.from_password(secrets.token_hex(16))
        self.tls: ssl.SSLContext | None = None
        if options.tls_cert is not None and options.tls_key is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(options.tls_cert, options.tls_key)
        # off loopback with TLS configured, every connection must use it
        self.require_tls = self.tls is not None and not is_loopback(options.host)
        # one set of open publishes per role: analysts read the pseudonymised catalog
        self.snapshots = {role: Snapshots(settings, role) for role in ROLES}
        self.pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="wh-serve")
        self.sessions: dict[int, Session] = {}
        self.audit = AuditLog(settings, "serve") if audit_log.enabled(settings) else None
        self._next_pid = 1000

    def log(self, peer: str, text: str) -> None:
        print(f"wh serve: {peer}: {text}", file=sys.stderr, flush=True)

    def register(self, session: Session) -> int:
        self._next_pid += 1
        self.sessions[self._next_pid] = session
        return self._next_pid

    def forget(self, session: Session) -> None:
        self.sessions.pop(session.pid, None)

    def cancel(self, pid: int, secret: int) -> None:
        session = self.sessions.get(pid)
        if session is not None and session.secret == secret:
            session.interrupt()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await Session(self, reader, writer).run()

    async def run(self, ready: asyncio.Event | None = None) -> None:
        server = await asyncio.start_server(
            self.handle, self.options.host, self.options.port, limit=2**20
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        address = server.sockets[0].getsockname()
        print(
            f"wh serve: environment '{self.settings.env}' on postgresql://{self.options.user}@"
            f"{address[0]}:{address[1]}/{self.settings.env} (read-only; Ctrl-C stops)",
            flush=True,
        )
        if ready is not None:
            ready.set()
        try:
            async with server:
                await stop.wait()
        finally:
            self.pool.shutdown(wait=False, cancel_futures=True)
            try:
                for snapshots in self.snapshots.values():
                    snapshots.close()
            finally:
                if self.audit is not None:  # what is queued is written before the exit
                    self.audit.close()


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    log_statements: bool = False,
) -> None:
    """Run the server until SIGINT/SIGTERM."""
    server = Server(settings, serve_options(settings, host, port, log_statements))
    asyncio.run(server.run())
