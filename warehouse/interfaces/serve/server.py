"""`wh serve`: a read-only Postgres wire endpoint over the published catalog.

The protocol layer is wh's own (asyncio), after comparing the libraries: riffq ships only a
source distribution that needs crates from outside the registries, and buenavista 0.5 needs
patches for DuckDB 2.0 and does not answer psql's catalog queries. See README "Serving".
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from warehouse.config import Settings
from warehouse.errors import ConfigError
from warehouse.interfaces.serve.session import Session
from warehouse.interfaces.serve.snapshots import Snapshots

WORKER_THREADS = 64


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 5433
    user: str = "wh"
    password: str | None = None
    log_statements: bool = False


def serve_options(
    settings: Settings, host: str | None, port: int | None, log_statements: bool = False
) -> ServeOptions:
    """Options from flags, then WH_SERVE_* variables, then wh.toml [serve]."""
    table = settings.extra.get("serve", {})
    if not isinstance(table, dict):
        raise ConfigError("[serve] must be a table", settings.project_dir / "wh.toml")
    options = ServeOptions(
        host=host or os.environ.get("WH_SERVE_HOST") or str(table.get("host", "127.0.0.1")),
        port=port or int(os.environ.get("WH_SERVE_PORT") or table.get("port", 5433)),
        user=os.environ.get("WH_SERVE_USER") or str(table.get("user", "wh")),
        password=os.environ.get("WH_SERVE_PASSWORD") or table.get("password"),
        log_statements=log_statements,
    )
    if options.password is None and not is_loopback(options.host):
        raise ConfigError(
            f"refusing to listen on {options.host} without a password",
            hint="set WH_SERVE_PASSWORD (or [serve] password in wh.toml), or keep the "
            "default host 127.0.0.1",
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
        self.user = options.user
        self.password = options.password
        self.log_statements = options.log_statements
        self.snapshots = Snapshots(settings)
        self.pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="wh-serve")
        self.sessions: dict[int, Session] = {}
        self._next_pid = 1000

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
            f"wh serve: environment '{self.settings.env}' on postgresql://{self.user}@"
            f"{address[0]}:{address[1]}/{self.settings.env} (read-only; Ctrl-C stops)",
            flush=True,
        )
        if ready is not None:
            ready.set()
        async with server:
            await stop.wait()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.snapshots.close()


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    log_statements: bool = False,
) -> None:
    """Run the server until SIGINT/SIGTERM."""
    server = Server(settings, serve_options(settings, host, port, log_statements))
    asyncio.run(server.run())
