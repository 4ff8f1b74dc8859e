"""Audits: queries that count offending rows of a new version before it is published.

Each audit is a function (model, spec, relation) -> SQL returning one count; 0 passes.
`grain` adds not_null and unique on the grain columns; `-- assert: <condition>` lines count
the rows where the condition is not true.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from warehouse.errors import ModelError
from warehouse.project.audit_rules import AUDIT_RULES, COMPLETENESS_AUDIT
from warehouse.project.model import AuditSpec, Model
from warehouse.runtime.engine.duckdb import first_row, qualified, quote_ident, quote_literal

AuditSql = Callable[[AuditSpec, str], str]


def _columns(spec: AuditSpec) -> list[str]:
    if not spec.args:
        raise ValueError("needs at least one column")
    return [quote_ident(c) for c in spec.args]


def not_null_condition(spec: AuditSpec) -> str:
    return " OR ".join(f"{c} IS NULL" for c in _columns(spec))


def not_null(spec: AuditSpec, relation: str) -> str:
    return f"SELECT count(*) FROM {relation} WHERE {not_null_condition(spec)}"


def unique(spec: AuditSpec, relation: str) -> str:
    cols = ", ".join(_columns(spec))
    return (
        f"SELECT count(*) FROM (SELECT {cols} FROM {relation} GROUP BY {cols} HAVING count(*) > 1)"
    )


def accepted_values_condition(spec: AuditSpec) -> str:
    if len(spec.args) < 2:
        raise ValueError("needs a column and at least one accepted value")
    column = quote_ident(spec.args[0])
    values = ", ".join(quote_literal(v) for v in spec.args[1:])
    return f"{column} IS NOT NULL AND CAST({column} AS VARCHAR) NOT IN ({values})"


def accepted_values(spec: AuditSpec, relation: str) -> str:
    return f"SELECT count(*) FROM {relation} WHERE {accepted_values_condition(spec)}"


def _int_option(spec: AuditSpec, key: str) -> int | None:
    value = dict(spec.options).get(key)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{key} must be a whole number, found '{value}'") from None


def row_count(spec: AuditSpec, relation: str) -> str:
    low, high = _int_option(spec, "min"), _int_option(spec, "max")
    if low is None and high is None:
        low = 1
    checks = []
    if low is not None:
        checks.append(f"count(*) < {low}")
    if high is not None:
        checks.append(f"count(*) > {high}")
    return f"SELECT CASE WHEN {' OR '.join(checks)} THEN 1 ELSE 0 END FROM {relation}"


def freshness(spec: AuditSpec, relation: str) -> str:
    if len(spec.args) != 1:
        raise ValueError("needs one date/timestamp column")
    days = _int_option(spec, "max_age_days") or 1
    column = quote_ident(spec.args[0])
    return (
        f"SELECT CASE WHEN max({column}) IS NULL OR max({column}) < current_date - "
        f"INTERVAL {days} DAY THEN 1 ELSE 0 END FROM {relation}"
    )


def same_row_count(spec: AuditSpec, relation: str) -> str:
    """One row per row of another table (a cleaning model that keeps every source row)."""
    if len(spec.args) != 1:
        raise ValueError("needs one table, e.g. same_row_count(source.orders)")
    other = qualified(spec.args[0])
    return f"SELECT abs((SELECT count(*) FROM {relation}) - (SELECT count(*) FROM {other}))"


AUDITS: dict[str, AuditSql] = {
    "not_null": not_null,
    "unique": unique,
    "accepted_values": accepted_values,
    "row_count": row_count,
    "freshness": freshness,
    COMPLETENESS_AUDIT: same_row_count,
}
# the project layer checks calls against AUDIT_RULES when it loads: the two must name the same
assert set(AUDITS) == set(AUDIT_RULES), set(AUDITS) ^ set(AUDIT_RULES)


# audits that count rows meeting a condition: a build counts all of a model's in one scan
ROW_CONDITIONS: dict[str, Callable[[AuditSpec], str]] = {
    "not_null": not_null_condition,
    "accepted_values": accepted_values_condition,
}


@dataclass(frozen=True)
class AuditQuery:
    label: str
    sql: str  # counts the offending rows on its own (stored, and shown when it fails)
    rows: str = ""  # for a row audit: the relation it scans ...
    condition: str = ""  # ... and what makes a row offend
    name: str = "assert"  # the audit (AUDIT_RULES), or "assert" for an -- assert: line


@dataclass(frozen=True)
class AuditResult:
    name: str  # the audit, e.g. not_null; "assert" for an -- assert: line
    label: str  # the call as written, e.g. not_null(order_id)
    failing: int  # offending rows; 0 passes
    sql: str  # the query that counts them, to rerun by hand


def run_audits(
    cursor: Any,
    queries: list[AuditQuery],
    fetch: Callable[[str], tuple[Any, ...] | None] | None = None,
) -> list[AuditResult]:
    """Each audit's result: row audits on one relation share one scan. The queries run on
    the DuckDB `cursor`, or through `fetch` (another engine's first row of a DuckDB query)."""
    first = fetch or (lambda sql: first_row(cursor, sql))
    counts: dict[int, int] = {}
    shared: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        if query.condition:
            shared.setdefault(query.rows, []).append(i)
        else:
            counts[i] = int((first(query.sql) or (0,))[0] or 0)
    for rows, group in shared.items():
        tallies = ", ".join(f"count_if(coalesce(({queries[i].condition}), false))" for i in group)
        found = first(f"SELECT {tallies} FROM {rows}") or (0,) * len(group)
        counts.update({i: int(n or 0) for i, n in zip(group, found, strict=True)})
    return [AuditResult(q.name, q.label, counts[i], q.sql) for i, q in enumerate(queries)]


# audits that look at the whole version even on an incremental run (they are cheap: counts)
WHOLE_VERSION = {"row_count", "freshness", COMPLETENESS_AUDIT}


def audit_queries(model: Model, relation: str, computed: str | None = None) -> list[AuditQuery]:
    """Every audit of the model, checked before anything runs.

    `computed` is the part of the version this run wrote (an incremental run): row audits
    look only at it, as the rest passed them when it was built. Any audit takes a
    `where="<condition>"` option to look at some rows only.
    """
    specs = list(model.audits)
    if model.grain:
        specs = [AuditSpec("not_null", model.grain), AuditSpec("unique", model.grain), *specs]
    queries = []
    for spec in specs:  # names, arguments and options were checked when the project loaded
        builder = AUDITS[spec.name]
        whole = relation if computed is None or spec.name in WHOLE_VERSION else computed
        where = dict(spec.options).get("where")
        rows = f"(SELECT * FROM {whole} WHERE {where}) AS wh_audited" if where else whole
        try:
            sql = builder(spec, rows)
            condition = ROW_CONDITIONS[spec.name](spec) if spec.name in ROW_CONDITIONS else ""
        except ValueError as exc:
            raise ModelError(f"audit {spec.label}: {exc}", model.path, *spec.at) from None
        if condition and where:
            condition = f"({where}) AND ({condition})"
        queries.append(
            AuditQuery(spec.label, sql, whole if condition else "", condition, spec.name)
        )
    rows = computed or relation
    for condition in model.asserts:
        offends = f"NOT coalesce(({condition}), false)"
        queries.append(
            AuditQuery(
                f"assert({condition})",
                f"SELECT count(*) FROM {rows} WHERE {offends}",
                rows,
                offends,
            )
        )
    return queries
