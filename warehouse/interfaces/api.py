"""A small read-only HTTP API over the published catalog, for applications (not BI tools).

Every request opens the environment's current catalog read-only, so a new publish is served
from the next request on, and a request never sees half a publish. Only GET routes exist;
values reach SQL as parameters, never as text.

Users and roles are `wh serve`'s (`[serve.users]`, HTTP Basic): an analyst reads the
pseudonymised catalog, a steward the clear one; without users every request is served with
`[serve] role` (default analyst). With `[serve] audit_log = true` each request is logged.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.forecasting.tables import CUSTOMER_PROPENSITY, DEMAND_FORECAST
from warehouse.interfaces.serve.auth import Verifier
from warehouse.interfaces.users import Users, load_users
from warehouse.runtime import audit_log, catalog
from warehouse.runtime.engine import duckdb as engine

# a product's forecast rows: the contract's columns less the product the URL names
FORECAST_FIELDS = DEMAND_FORECAST.sql_columns(
    *(c for c in DEMAND_FORECAST.columns if c != "product_id")
)
TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
MAX_ROWS = 10_000  # per page; `offset` reads further, so no row is out of reach


class Reader:
    """The user a request is served for, and the catalog that user's role reads."""

    def __init__(self, settings: Settings, user: str, role: str, log: Any, client: str) -> None:
        self.settings, self.user, self.role, self.log = settings, user, role, log
        self.session = log.session(user, role, client) if log is not None else ""

    def rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            found = _rows(self.settings, self.role, sql, params)
        except HTTPException as exc:
            self._log(sql, params, None, str(exc.detail), started)
            raise
        self._log(sql, params, len(found), None, started)
        return found

    def _log(self, sql: str, params: list[Any], rows: int | None, error: str | None,
             started: float) -> None:  # fmt: skip
        if self.log is not None:
            text = f"{sql} -- parameters: {params!r}" if params else sql
            self.log.query(self.session, self.user, self.role, text, rows, error,
                           time.perf_counter() - started)  # fmt: skip


def _rows(settings: Settings, role: str, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        con = catalog.open_published(settings, role)
    except UsageError as exc:
        raise HTTPException(503, exc.message) from None
    try:
        cursor = con.execute(sql, params)
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except engine.Error as exc:
        raise HTTPException(
            503,
            f"not published yet: {engine.short_message(str(exc))}",
        ) from None
    finally:
        con.close()


@dataclass(frozen=True)
class Access:
    """Who may read, for the app: its users' verifiers and roles, and the audit log."""

    settings: Settings
    users: Users
    verifiers: dict[str, Verifier]
    decoy: Verifier
    log: audit_log.AuditLog | None


def _reader(
    request: Request,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(HTTPBasic(auto_error=False))],
) -> Reader:
    access: Access = request.app.state.access
    client = f"{request.client.host}:{request.client.port}" if request.client else ""
    if not access.verifiers:
        return Reader(access.settings, "anonymous", access.users.default_role, access.log, client)
    denied = HTTPException(
        401, "a user name and password are needed", {"WWW-Authenticate": "Basic"}
    )
    if credentials is None:
        raise denied
    # an unknown user costs the same check as a known one
    name = credentials.username
    if not access.verifiers.get(name, access.decoy).matches(credentials.password):
        raise denied
    if name not in access.verifiers:
        raise denied
    return Reader(access.settings, name, access.users.role_of(name), access.log, client)


As = Annotated[Reader, Depends(_reader)]


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="wh", description=f"Read-only API over environment '{settings.env}'.")
    users = load_users(settings)
    log = audit_log.AuditLog(settings, "api") if audit_log.enabled(settings) else None
    app.state.access = Access(
        settings,
        users,
        {name: Verifier.parse(pw) for name, pw in users.passwords.items()},
        Verifier.from_password(secrets.token_hex(16)),
        log,
    )

    @app.get("/health")
    def health(who: As) -> dict[str, Any]:
        rows = who.rows("SELECT max(publish_id) AS publish_id FROM wh_meta.models", [])
        return {
            "status": "ok",
            "env": settings.env,
            "publish_id": rows[0]["publish_id"],
            "user": who.user,
            "role": who.role,
        }

    @app.get("/forecast/{product_id}")
    def product_forecast(product_id: str, who: As) -> dict[str, Any]:
        rows = who.rows(
            f"SELECT {FORECAST_FIELDS} FROM {DEMAND_FORECAST.name} "
            "WHERE product_id = ? ORDER BY forecast_date",
            [product_id],
        )
        if not rows:
            raise HTTPException(404, f"no forecast for product {product_id}")
        return {"product_id": product_id, "forecast": rows}

    @app.get("/customers/{customer_id}/propensity")
    def customer_propensity(customer_id: str, who: As) -> dict[str, Any]:
        rows = who.rows(
            f"SELECT {CUSTOMER_PROPENSITY.sql_columns()} FROM {CUSTOMER_PROPENSITY.name} "
            "WHERE CAST(customer_id AS VARCHAR) = ?",
            [customer_id],
        )
        if not rows:
            raise HTTPException(404, f"no propensity for customer {customer_id}")
        return rows[0]

    @app.get("/recommendations/{product_id}")
    def recommendations(
        product_id: str, who: As, limit: int = Query(10, ge=1, le=100)
    ) -> dict[str, Any]:
        rows = who.rows(
            "SELECT recommended_product_id, rank, score, support FROM "
            "marts.product_recommendations WHERE product_id = ? ORDER BY rank "
            "LIMIT ?",
            [product_id, limit],
        )
        return {"product_id": product_id, "recommendations": rows}

    @app.get("/tables/{table}")
    def table_rows(
        table: str,
        request: Request,
        who: As,
        limit: int = Query(100, ge=1, le=MAX_ROWS),
        offset: int = Query(0, ge=0),
    ) -> dict[str, Any]:
        """Rows of a published table; other query parameters are equality filters on
        columns (`?customer_id=...`), compared as text."""
        if not TABLE_NAME.match(table) or table.startswith("wh_meta."):
            raise HTTPException(404, f"no published table {table!r}: name it as schema.table")
        columns = _rows(
            settings,
            who.role,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            table.split(".", 1),
        )
        known = [c["column_name"] for c in columns]
        if not known:
            raise HTTPException(404, f"no published table {table!r}")
        filters = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset")}
        unknown = sorted(set(filters) - set(known))
        if unknown:
            raise HTTPException(
                400, f"{table} has no column {unknown[0]!r} (columns: {', '.join(known)})"
            )
        where = " AND ".join(
            f"CAST({engine.quote_ident(c)} AS VARCHAR) = ?" for c in sorted(filters)
        )
        rows = who.rows(
            f"SELECT * FROM {engine.qualified(table)}"
            + (f" WHERE {where}" if where else "")
            + " LIMIT ? OFFSET ?",
            [*(filters[c] for c in sorted(filters)), limit + 1, offset],
        )
        return {
            "table": table,
            "rows": rows[:limit],
            "offset": offset,
            "more": len(rows) > limit,  # ask again with offset + limit
        }

    if log is not None:
        app.router.on_shutdown.append(log.close)
    return app
