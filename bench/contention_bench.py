"""`wh forecast` on a shared machine: the demo's forecast quiet, beside as many busy processes
as the machine has cores, and inside a cgroup CPU quota of one core. Ratios against the
quiet time of the same run; medians of runs.

The quota case writes a cgroup (v2 `cpu.max` where the v2 hierarchy has the cpu controller,
else v1 `cpu.cfs_quota_us`); where neither can be written it is skipped with a message.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.common import CACHE, Result, example_project, run_command, wh
from bench.dbt_bench import sources_for
from warehouse.interfaces.demo import DemoSpec

REPEAT = 3
ROOT = Path("/sys/fs/cgroup")


def _forecast(root: Path, prefix: list[str] | None = None) -> float:
    args = wh("--project", str(root), "forecast", "--quiet")
    return run_command([*(prefix or []), *args]).seconds


@contextmanager
def _busy(count: int) -> Iterator[None]:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def _quota_cgroup() -> tuple[Path, str] | None:
    """A new cgroup limited to one CPU: (its folder, the file that takes a pid)."""
    name = f"wh-bench-{uuid.uuid4().hex[:8]}"
    v2 = ROOT / "unified" if (ROOT / "unified" / "cgroup.controllers").exists() else ROOT
    try:
        if "cpu" in (v2 / "cgroup.controllers").read_text().split():
            folder = v2 / name
            folder.mkdir()
            (folder / "cpu.max").write_text("100000 100000")
            return folder, "cgroup.procs"
    except OSError:
        pass
    v1 = ROOT / "cpu"
    try:
        folder = v1 / name
        folder.mkdir()
        (folder / "cpu.cfs_period_us").write_text("100000")
        (folder / "cpu.cfs_quota_us").write_text("100000")
        return folder, "cgroup.procs"
    except OSError:
        return None


def run(full: bool) -> list[Result]:
    spec = DemoSpec(products=100, customers=1000, days=730, seed=7)
    sources = sources_for(spec)
    root = example_project(CACHE / "contention" / "project", sources)
    # the example's threads = 2 would hide what wh derives from affinity and quota
    config = root / "wh.toml"
    config.write_text(config.read_text().replace("threads = 2\n", ""))
    run_command(wh("--project", str(root), "build", "--quiet"))
    _forecast(root)  # warm the file cache and the page cache
    cores = len(os.sched_getaffinity(0))
    quiet = [_forecast(root) for _ in range(REPEAT)]
    with _busy(cores):
        busy = [_forecast(root) for _ in range(REPEAT)]
    quiet_s, busy_s = statistics.median(quiet), statistics.median(busy)
    results = [
        Result(
            "contention: wh forecast quiet (demo, 100 products, 3 folds x 28 days)",
            quiet_s,
            None,
            "s",
            "(reference)",
            None,
            note="runs " + ", ".join(f"{t:.1f}" for t in quiet),
        ),
        Result(
            f"contention: wh forecast beside {cores} busy processes vs quiet",
            busy_s,
            quiet_s,
            "s",
            "<= 3.5x quiet",
            busy_s <= 3.5 * quiet_s,
            note="runs " + ", ".join(f"{t:.1f}" for t in busy),
        ),
    ]
    cgroup = _quota_cgroup()
    if cgroup is None:
        print("   contention: no cgroup can be written here; the one-core quota case is skipped")
        return results
    folder, procs = cgroup
    enter = ["sh", "-c", f'echo $$ > {folder / procs} && exec "$@"', "sh"]
    try:
        quota = [_forecast(root, enter) for _ in range(REPEAT)]
    finally:
        folder.rmdir()
    quota_s = statistics.median(quota)
    results.append(
        Result(
            "contention: wh forecast in a one-CPU cgroup quota vs quiet",
            quota_s,
            quiet_s,
            "s",
            "<= 2.5x quiet",
            quota_s <= 2.5 * quiet_s,
            note=f"{folder.parent.name}/{folder.name}; runs "
            + ", ".join(f"{t:.1f}" for t in quota),
        )
    )
    return results
