"""Publishing: pointing an environment at a new set of versions, in the order crash safety
needs (state first, then the catalog file readers open), and publishing the tables that
commands other than `wh build` compute (forecasts, metrics).

Those tables become versions like any model's (immutable Parquet, kind `produced`), published
into the environment with write-audit-publish: readers see all of a run's tables at once or
none. Later builds serve them on unchanged. An appended table shares its earlier segments.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from warehouse import faults
from warehouse.config import Settings
from warehouse.runtime import catalog, produced
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.plan import PRODUCED
from warehouse.runtime.state import Publish, Segment, State, Version
from warehouse.runtime.storage import versions_finished, versions_root, writing_versions


def new_run_id() -> str:
    """An id for a build or a forecast run: its start time (so ids sort by time) and a
    random suffix (two runs in one second differ)."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def publish(
    settings: Settings,
    state: State,
    env: str,
    mapping: dict[str, str],
    action: str,
    build_id: str | None,
    previous_id: int | None,
) -> Publish:
    """Make `mapping` ({model: fingerprint}) what `env` serves. The state commits first; a
    crash before the catalog is swapped is repaired by the next build (catalog.repair)."""
    published = state.publish(env, mapping, action, build_id, previous_id)
    faults.point("state_published")
    catalog.publish_catalog(settings, state, published)
    faults.point("pointer_swapped")
    return published


@dataclass(frozen=True)
class TableWrite:
    frame: Any  # polars.DataFrame
    append: bool = False  # keep the rows the environment serves and add these


def publish_tables(
    settings: Settings, state: State, tables: dict[str, TableWrite], run_id: str, action: str
) -> Publish:
    """Write each table as a new version and publish them together. Call under the lock."""
    head = state.head(settings.env)
    served = dict(head.mapping) if head else {}
    writing_versions(settings)
    con = engine.connect(settings)
    try:
        for name, write in sorted(tables.items()):
            fingerprint = hashlib.sha256(f"{run_id}|{name}|{uuid.uuid4()}".encode()).hexdigest()[
                :20
            ]
            schema, table = name.split(".", 1)
            path = versions_root(settings) / schema / table / fingerprint / "part.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            write.frame.write_parquet(path, compression="zstd")
            segments = [Segment(str(path), write.frame.height)]
            previous = state.get_version(served[name]) if name in served else None
            if write.append and previous is not None:
                segments = [*previous.segments, *segments]
            columns = engine.describe(con, engine.parquet_scan([s.file for s in segments]))
            state.add_version(
                Version(
                    fingerprint=fingerprint,
                    model=name,
                    kind=PRODUCED,
                    data_hash=fingerprint,
                    logic_fp=fingerprint,
                    query=f"-- written by {action} run {run_id}",
                    segments=tuple(segments),
                    columns=tuple(columns),
                    row_count=sum(s.rows for s in segments),
                    created_at=time.time(),
                    build_id=run_id,
                )
            )
            state.set_pii({fingerprint: dict(produced.PII.get(name, {}))})
            served[name] = fingerprint
            faults.point("forecast_table")
    finally:
        con.close()
    published = publish(
        settings, state, settings.env, served, action, run_id, head.id if head else None
    )
    versions_finished(settings)
    return published
