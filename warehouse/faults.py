"""Deterministic crash points for the fault suite: `WH_FAULT=after:<point>[#n]` kills the
process with SIGKILL the n-th time (default first) execution passes `<point>`.

A no-op unless the variable is set. The points sit where a crash is most likely to leave a
half-done state: after a model's data is written, after its audits, between the state commit
and the catalog swap, mid-write of forecast tables, mid-gc.
"""

from __future__ import annotations

import os
import signal
import threading

POINTS = (
    "compute",  # a model's data written, not yet audited
    "audit",  # a model audited, its version not yet recorded
    "state_published",  # the new head committed in state.db, catalog not yet written
    "catalog_written",  # the new catalog file written, pointer not yet swapped
    "pointer_swapped",  # the pointer moved, the build not yet marked finished
    "forecast_started",  # model_runs says running, nothing computed
    "forecast_table",  # one forecast table written as a version, others not yet
    "forecast_published",  # forecast tables published, the run not yet marked ok
    "gc_delete",  # gc removed one file, others remain
)
_hits: dict[str, int] = {}
_lock = threading.Lock()


def point(name: str) -> None:
    spec = os.environ.get("WH_FAULT")
    if not spec:
        return
    target, _, nth = spec.removeprefix("after:").partition("#")
    if target != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


# optional forecast steps a test may make fail on purpose (forecasting/optional.py)
STEPS = ("accuracy", "importance", "hierarchy", "scenarios", "customers")


class InjectedFailure(RuntimeError):
    """An optional step failed because WH_FAIL_STEP asked it to."""


def step(name: str) -> None:
    """`WH_FAIL_STEP=hierarchy,customers`: those optional forecast steps raise at their
    start, to show that the forecast is published without them. A no-op unless set."""
    wanted = os.environ.get("WH_FAIL_STEP", "")
    if name in {s.strip() for s in wanted.split(",")}:
        raise InjectedFailure(f"WH_FAIL_STEP={wanted}: the {name} step failed on purpose")
