"""What a client is told when a statement fails: SQLSTATE, message and hint."""

from __future__ import annotations

import duckdb

from warehouse.interfaces.serve.snapshots import NotPublishedError
from warehouse.interfaces.serve.statements import StatementError

SQLSTATES: list[tuple[type[BaseException], str]] = [
    (duckdb.InterruptException, "57014"),
    (duckdb.PermissionException, "42501"),
    (duckdb.ParserException, "42601"),
    (duckdb.CatalogException, "42P01"),
    (duckdb.BinderException, "42703"),
    (duckdb.ConversionException, "22P02"),
    (duckdb.InvalidInputException, "22023"),
    (duckdb.OutOfMemoryException, "53200"),
]


def error_fields(exc: BaseException) -> tuple[str, str, str | None]:
    """SQLSTATE, message and hint for an error a client should see."""
    if isinstance(exc, StatementError):
        return exc.code, exc.message, exc.hint
    if isinstance(exc, NotPublishedError):
        return "3D000", str(exc), "run wh build, then query again"
    message = str(exc).split("\n", 1)[0].strip()
    if isinstance(exc, duckdb.InvalidInputException) and "Division by zero" in message:
        return "22012", "division by zero", None
    for kind, code in SQLSTATES:
        if isinstance(exc, kind):
            if code == "42501":
                return code, message, "wh serve reads only the published tables"
            if code == "57014":
                return code, "canceling statement due to user request", None
            return code, message, None
    return "XX000", message, None
