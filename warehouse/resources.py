"""What this process may use: CPUs (affinity, cgroup CPU quota), memory (cgroup limit), and
an OpenMP runtime that yields its cores instead of spinning.

Libraries size their thread pools from the machine (`os.cpu_count()`), not from what a
container or `taskset` allows; on a shared or quota-limited machine that oversubscribes the
cores. LightGBM's OpenMP threads also spin-wait at every barrier by default, so under CPU
contention a forecast that takes seconds takes minutes (measured: 13 s quiet, > 650 s next
to two busy processes on two cores). Standard library only: `wh` calls `prepare_process()`
before DuckDB, Polars or LightGBM are imported.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# DuckDB's own default is 80 % of physical RAM; under a cgroup limit wh leaves more room for
# the Python side of a build (Polars models, Arrow buffers) than DuckDB's rule would
MEMORY_SHARE = 0.75


@dataclass(frozen=True)
class CpuLimit:
    cpus: int  # whole CPUs this process may keep busy (at least 1)
    source: str  # what set it, for doctor and the forecast summary


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int | None  # None: no cgroup limit found
    source: str


def _cgroup_paths(proc_cgroup: Path) -> dict[str, str]:
    """controller -> the process's cgroup path; '' is the unified (v2) hierarchy."""
    paths: dict[str, str] = {}
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _candidates(root: Path, mount: str, path: str, name: str) -> list[Path]:
    """The limit file in the process's own cgroup, then in the mount's root: inside a
    container the hierarchy is usually namespaced, so the mount root is the own cgroup."""
    base = root / mount if mount else root
    rel = path.lstrip("/")
    found = [base / rel / name] if rel else []
    return [*found, base / name]


def _read(paths: list[Path]) -> str | None:
    for path in paths:
        try:
            return path.read_text().strip()
        except OSError:
            continue
    return None


def cgroup_cpu_quota(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> tuple[float, str] | None:
    """CPUs allowed by a cgroup quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), or None."""
    paths = _cgroup_paths(proc_cgroup)
    if "" in paths:
        for mount in ("", "unified"):
            text = _read(_candidates(root, mount, paths[""], "cpu.max"))
            if text:
                quota, _, period = text.partition(" ")
                if quota != "max" and period:
                    return int(quota) / int(period), "cgroup v2 cpu.max"
    for key in ("cpu", "cpu,cpuacct"):
        if key in paths:
            mount = "cpu" if (root / "cpu").exists() else "cpu,cpuacct"
            quota_text = _read(_candidates(root, mount, paths[key], "cpu.cfs_quota_us"))
            period_text = _read(_candidates(root, mount, paths[key], "cpu.cfs_period_us"))
            if quota_text and period_text and int(quota_text) > 0:
                return int(quota_text) / int(period_text), "cgroup v1 cpu.cfs_quota_us"
    return None


def cgroup_memory_limit(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> MemoryLimit:
    """The cgroup memory limit (v2 `memory.max`, v1 `memory.limit_in_bytes`), if any
    below the machine's physical memory."""
    paths = _cgroup_paths(proc_cgroup)
    physical = physical_memory()
    found: list[tuple[str | None, str]] = []
    if "" in paths:
        for mount in ("", "unified"):
            found.append(
                (_read(_candidates(root, mount, paths[""], "memory.max")), "cgroup v2 memory.max")
            )
    if "memory" in paths:
        found.append(
            (
                _read(_candidates(root, "memory", paths["memory"], "memory.limit_in_bytes")),
                "cgroup v1 memory.limit_in_bytes",
            )
        )
    for text, source in found:
        if text and text.isdigit():
            value = int(text)
            # v1 writes "no limit" as a huge page-aligned number
            if physical is None or value < physical:
                return MemoryLimit(value, source)
    return MemoryLimit(None, "no cgroup limit")


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> CpuLimit:
    """CPUs this process may use: its affinity mask, lowered by a cgroup CPU quota."""
    try:
        affinity = len(os.sched_getaffinity(0))
        cpus, source = affinity, f"affinity ({affinity} of {os.cpu_count()} CPUs)"
    except (AttributeError, OSError):
        cpus, source = os.cpu_count() or 1, "cpu_count"
    quota = cgroup_cpu_quota(root, proc_cgroup)
    if quota is not None and math.ceil(quota[0]) < cpus:
        cpus, source = max(1, math.ceil(quota[0])), f"{quota[1]} ({quota[0]:g} CPUs)"
    return CpuLimit(max(1, cpus), source)


def effective_threads(configured: int | None, limit: CpuLimit | None = None) -> int:
    """`[project] threads` (or WH_THREADS, --threads) caps the CPUs the process may use."""
    cpus = (limit or available_cpus()).cpus
    return min(configured, cpus) if configured else cpus


def default_memory_limit(limit: MemoryLimit | None = None) -> str | None:
    """DuckDB's memory_limit when the project sets none: a share of the cgroup limit (DuckDB
    would take 80 % of physical RAM and get the process OOM-killed instead of spilling)."""
    found = limit or cgroup_memory_limit()
    if found.bytes is None:
        return None
    # MiB: DuckDB reads "MB" as 10^6 bytes
    return f"{max(64, int(found.bytes * MEMORY_SHARE / 2**20))}MiB"


def openmp_loaded() -> bool:
    """An OpenMP runtime is already in this process (too late to change how it waits)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "lightgbm" in sys.modules
    return any(name in maps for name in ("libgomp", "libomp", "libiomp"))


@dataclass(frozen=True)
class WaitPolicy:
    value: str  # what the OpenMP runtime was told, e.g. GOMP_SPINCOUNT=1000
    source: str  # "user", "wh", or why wh could not set it

    def __str__(self) -> str:
        return f"{self.value} (set by {self.source})" if self.source in WHO else self.value


WHO = ("user", "wh")
# Set by wh beside the OpenMP variable it sets, so a later look (the forecast, a child
# process) can tell wh's choice from the user's.
MARK = "WH_OPENMP_SET_BY_WH"
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def prepare_openmp() -> WaitPolicy:
    """Bound how long idle OpenMP threads spin before they sleep, unless the user set a
    policy; must run before OpenMP loads (LightGBM's import), so callers do it first.

    Measured with `wh forecast` on the demo, 2 cores (README "Performance"): libgomp's
    default spins 300,000 times at each barrier, 11 s quiet and > 650 s beside two busy
    processes; OMP_WAIT_POLICY=PASSIVE (no spin) 22 s quiet, 27 s busy: a futex sleep at
    every barrier doubles LightGBM's many small parallel regions. GOMP_SPINCOUNT=1000 costs
    nothing quiet (11 s) and 34 s busy."""
    current = current_wait_policy()
    if current.source != "OpenMP default":
        return current
    if openmp_loaded():
        return WaitPolicy("OpenMP default", "OpenMP was loaded before wh could set a policy")
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    os.environ[MARK] = "1"
    return current_wait_policy()


SPIN_COUNT = "1000"


def current_wait_policy() -> WaitPolicy:
    given = [f"{k}={os.environ[k]}" for k in OPENMP_VARIABLES if os.environ.get(k)]
    if not given:
        return WaitPolicy("OpenMP default", "OpenMP default")
    return WaitPolicy(", ".join(given), "wh" if os.environ.get(MARK) else "user")


def prepare_process() -> None:
    """First thing in `wh`: how OpenMP threads wait, and Polars' pool sized from what the
    process may use (Polars reads POLARS_MAX_THREADS once, at import). A user's own
    setting of either is left alone."""
    prepare_openmp()
    if "POLARS_MAX_THREADS" not in os.environ and "polars" not in sys.modules:
        cap = os.environ.get("WH_THREADS", "")
        threads = effective_threads(int(cap) if cap.isdigit() and int(cap) > 0 else None)
        os.environ["POLARS_MAX_THREADS"] = str(threads)


def describe(threads: int, memory_limit: str | None) -> list[tuple[str, str]]:
    """What wh found and uses, for `wh doctor`."""
    cpus = available_cpus()
    memory = cgroup_memory_limit()
    policy = current_wait_policy()
    physical = physical_memory()
    return [
        ("CPUs", f"{cpus.cpus} from {cpus.source}"),
        ("threads", f"{threads} (DuckDB, Polars, LightGBM, statistical models)"),
        (
            "memory",
            f"{memory.bytes / 2**30:.1f} GiB from {memory.source}"
            if memory.bytes
            else f"{(physical or 0) / 2**30:.1f} GiB physical, {memory.source}",
        ),
        ("memory_limit", memory_limit or "DuckDB's default (80 % of physical memory)"),
        ("OpenMP wait policy", str(policy)),
    ]
