"""Comparing two warehouses' published tables: same rows, same column types, floats within
a relative tolerance (two engines sum floats in different orders)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

REL_TOL = 1e-9


def published(warehouse: Path) -> dict[str, list[tuple[str, str]]]:
    """Each published table of the prod catalog (the steward's: clear values, which two
    warehouses share; their analyst pseudonyms differ by key) and its columns."""
    con = duckdb.connect(str(warehouse / "warehouse-steward.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_schema || '.' || table_name, column_name, data_type "
            "FROM information_schema.columns WHERE table_schema NOT IN "
            "('wh_meta', 'information_schema', 'pg_catalog', 'main') "
            "ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, []).append((column, kind))
    return tables


def _rows(warehouse: Path, table: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(warehouse / "warehouse-steward.duckdb"), read_only=True)
    try:
        rows = con.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        con.close()
    return sorted(rows, key=lambda r: tuple((v is None, _key(v)) for v in r))


def _key(value: Any) -> Any:
    if isinstance(value, float):
        return ("0", round(value, 6) if math.isfinite(value) else str(value))
    return (type(value).__name__, str(value))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def differences(left: Path, right: Path, table: str) -> list[str]:
    """What differs between one table of two warehouses (empty: equal)."""
    a, b = _rows(left, table), _rows(right, table)
    if len(a) != len(b):
        return [f"{table}: {len(a)} rows vs {len(b)}"]
    found = []
    for row_a, row_b in zip(a, b, strict=True):
        if not _same(row_a, row_b):
            found.append(f"{table}: {row_a} vs {row_b}")
            if len(found) >= 5:
                break
    return found


def compare(left: Path, right: Path) -> dict[str, list[str]]:
    """Per table: the differences in columns (names, types) or rows; {} when all equal."""
    tables_a, tables_b = published(left), published(right)
    report: dict[str, list[str]] = {}
    for table in sorted(set(tables_a) | set(tables_b)):
        if tables_a.get(table) != tables_b.get(table):
            report[table] = [f"columns {tables_a.get(table)} vs {tables_b.get(table)}"]
            continue
        found = differences(left, right, table)
        if found:
            report[table] = found
    return report
