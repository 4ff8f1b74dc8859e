"""Environment operations beyond build: rollback and garbage collection."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import NamedTuple

from warehouse.config import Settings
from warehouse.errors import StateError, UsageError
from warehouse.runtime import catalog, erasure
from warehouse.runtime.lock import writer_lock
from warehouse.runtime.pseudonym import remove_stale_copies
from warehouse.runtime.publish import publish
from warehouse.runtime.state import Publish, open_state
from warehouse.runtime.storage import remove_orphans


class RollbackResult(NamedTuple):
    rolled_back: Publish  # what the environment served before
    restored: Publish  # the earlier publish whose versions it serves again
    new: Publish  # the publish that records the rollback (rollbacks can be rolled back)


def rollback(settings: Settings, to: int | None = None) -> RollbackResult:
    """Point the environment back at its previous publish (or publish `to`): no recompute."""
    env = settings.env
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        try:
            head = state.head(env)
            if head is None:
                raise UsageError(
                    f"environment '{env}' has never been published", hint="run wh build first"
                )
            target_id = to if to is not None else head.previous_id
            if target_id is None:
                raise UsageError(f"environment '{env}' has no earlier publish to roll back to")
            target = state.get_publish(target_id)
            if target is None or target.env != env:
                raise UsageError(
                    f"publish {target_id} is not a publish of environment '{env}'",
                    hint="list publishes with: wh runs --publishes",
                )
            missing = [m for m, fp in target.mapping.items() if state.get_version(fp) is None]
            if missing:
                raise StateError(
                    f"publish {target_id} needs versions that were garbage-collected: "
                    f"{', '.join(sorted(missing))}",
                    hint="rebuild instead (wh build), or keep versions longer "
                    "(gc_retention_days in wh.toml)",
                )
            new = publish(
                settings, state, env, target.mapping, "rollback", None, target.previous_id
            )
            # requests not yet applied by a build: the versions rolled back to are purged now
            erased = erasure.apply(settings, state)
            if erased is not None:
                erasure.republish(settings, state, None, erased)
                new = state.head(env) or new
            return RollbackResult(head, target, new)
        finally:
            state.close()


@dataclass(frozen=True)
class GcResult:
    versions_dropped: int
    files_deleted: int
    bytes_freed: int
    catalogs_deleted: int
    erased_ids: int = 0  # erasure requests checked after collecting
    still_holding: tuple[str, ...] = ()  # files that still hold an erased id (should be none)


def gc(settings: Settings, retention_days: float | None = None) -> GcResult:
    """Drop versions no environment serves and no publish inside the retention window needs.

    Files under versions/ that no remaining version lists (partial writes of killed or failed
    builds) go too, as do catalog files no environment points at.
    """
    days = settings.gc_retention_days if retention_days is None else retention_days
    cutoff = time.time() - days * 86400
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        try:
            catalog.repair(settings, state)
            keep: set[str] = set()
            for head in state.heads().values():
                keep |= set(head.mapping.values())
            for published in state.publishes():
                if published.created_at >= cutoff:
                    keep |= set(published.mapping.values())
            drop = [
                v.fingerprint
                for v in state.versions()
                if v.fingerprint not in keep and v.created_at < cutoff
            ]
            state.delete_versions(drop)
            files, bytes_freed = remove_orphans(settings, state)
            live = {
                catalog.current_target(settings, env, role)
                for env in state.heads()
                for role in catalog.ROLES
            }
            catalogs = 0
            for path in (settings.warehouse / "catalogs").glob("*.duckdb"):
                if path.resolve() not in live:
                    path.unlink()
                    catalogs += 1
            shown = {
                folder
                for env in state.heads()
                if (target := catalog.current_target(settings, env)) is not None and target.exists()
                for folder in catalog.readable_folders(target)
            }
            files += remove_stale_copies(settings, state, shown) + erasure.remove_partials(settings)
            (settings.warehouse / "tmp").mkdir(exist_ok=True)
            for leftover in (settings.warehouse / "tmp").iterdir():
                if leftover.is_file():
                    os.unlink(leftover)
            count, holding = erasure.scan(settings, state)
            return GcResult(
                len(drop),
                files,
                bytes_freed,
                catalogs,
                count,
                tuple(f"{f.path}: {f.detail}" for f in holding),
            )
        finally:
            state.close()
