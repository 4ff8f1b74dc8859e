"""What cleaning rejected, per source and reason, in rows and units, and which sources lost
more than `[checks] warn_reject_share` of their rows or (order lines) units.

Every build that recomputed a cleaning model prints this, so a rule that eats real data
(a limit below what a real series sells) is seen at once, not found later in
`staging.rejects`.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.config import Settings
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine

SOURCES = ("customers", "products", "orders", "order_items", "promotions")


@dataclass(frozen=True)
class RejectRow:
    source: str
    reason: str
    rows: int
    units: int | None  # order lines: the quantity they carried


@dataclass(frozen=True)
class RejectReport:
    rows: list[RejectRow]
    warnings: list[str]


def reject_report(settings: Settings) -> RejectReport | None:
    """None when the environment has no cleaning models to read."""
    con = catalog.open_published(settings)
    try:
        try:
            found = con.execute(
                "SELECT source, reason, count(*), "
                "sum(greatest(TRY_CAST(json_extract_string(row, '$.quantity') AS HUGEINT), 0)) "
                "FROM staging.rejects GROUP BY ALL ORDER BY 1, 3 DESC"
            ).fetchall()
            totals = {
                s: int(engine.scalar(con, f"SELECT count(*) FROM checks.{s}") or 0) for s in SOURCES
            }
            units = engine.scalar(
                con, "SELECT coalesce(sum(quantity::HUGEINT), 0) FROM checks.order_items"
            )
        except engine.Error:
            return None
    finally:
        con.close()
    rows = [
        RejectRow(str(s), str(r), int(n), int(u) if u is not None and s == "order_items" else None)
        for s, r, n, u in found
    ]
    share = float(settings.checks["warn_reject_share"])
    warnings = []
    for source in SOURCES:
        lost = sum(r.rows for r in rows if r.source == source)
        if totals[source] and lost > share * totals[source]:
            warnings.append(
                f"{source}: cleaning rejected {lost:,} of {totals[source]:,} rows "
                f"({lost / totals[source]:.1%}, above [checks] warn_reject_share = {share:g})"
            )
    lost_units = sum(r.units or 0 for r in rows if r.reason != "duplicate_line")
    total_units = int(units or 0)
    if total_units > 0 and lost_units > share * total_units:
        warnings.append(
            f"order_items: rejected lines carried {lost_units:,} of {total_units:,} units "
            f"({lost_units / total_units:.1%}); see staging.rejects, and [checks] in wh.toml "
            "if a limit is below what your products really sell"
        )
    return RejectReport(rows, warnings)
