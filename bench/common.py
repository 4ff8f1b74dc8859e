"""Shared by the benchmarks: timing, peak memory of child processes, the results table."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = BENCH / ".cache"
RESULTS = BENCH / "results.json"


@dataclass
class Result:
    """One row of the table: wh's figure, the peer's, and the target it is held to."""

    benchmark: str
    wh: float
    peer: float | None
    unit: str
    target: str
    passed: bool | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer in (None, 0) or self.wh == 0:
            return None
        return self.wh / self.peer


def median_seconds(run: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    """Median wall time of `repeat` calls, and every time (the spread matters on shared boxes)."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


@dataclass
class Run:
    seconds: float
    peak_rss_mb: float
    stdout: str


def run_command(args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Run:
    """Run a command to completion; wall time and the peak RSS of its largest process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BENCH / "peak.py"), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak_kb = int(done.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return Run(seconds, peak_kb / 1024, done.stdout)


def wh(*args: str) -> list[str]:
    """The `wh` executable of the environment running the benchmarks (its entry module)."""
    return [sys.executable, "-m", "warehouse", *args]


def time_command(args: list[str], cwd: Path | None = None) -> float:
    """Wall seconds of a command, process start included, nothing wrapped around it."""
    started = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def print_table(results: list[Result]) -> None:
    header = ("benchmark", "wh", "peer", "ratio", "target", "pass")
    lines = [header]
    for r in results:
        lines.append(
            (
                r.benchmark,
                f"{r.wh:,.3g} {r.unit}",
                "" if r.peer is None else f"{r.peer:,.3g} {r.unit}",
                "" if r.ratio is None else f"{r.ratio:.2f}",
                r.target,
                {True: "PASS", False: "FAIL", None: "-"}[r.passed],
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in results:
        if r.note:
            print(f"  {r.benchmark}: {r.note}")


def save(results: list[Result], extra: dict[str, Any]) -> None:
    """Write this run's rows into bench/results.json, keeping the rows of benchmarks this run
    did not run (each row says when it was measured): the file is the current table."""
    now = time.strftime("%Y-%m-%d %H:%M")
    rows = {r["benchmark"]: r for r in _saved().get("results", [])}
    for r in results:
        rows[r.benchmark] = {**asdict(r), "ratio": r.ratio, "measured": now, **extra}
    payload = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "results": list(rows.values()),
    }
    RESULTS.write_text(json.dumps(payload, indent=2, default=str))


def _saved() -> dict[str, Any]:
    try:
        loaded = json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def example_project(root: Path, sources: Path, more_toml: str = "", python: bool = True) -> Path:
    """A fresh copy of the repo's example project over `sources`, building into root."""
    fresh_dir(root)
    shutil.copytree(REPO / "sql", root / "sql")
    if python:
        shutil.copytree(REPO / "pipeline", root / "pipeline")
    (root / "wh.toml").write_text(
        f'[project]\nsources = "{sources}"\nwarehouse = "warehouse"\nthreads = 2\n'
        + more_toml
        + "[vars]\nrecommendation_min_support = 3\nrecommendation_top_k = 10\n"
    )
    return root


def full_build_query(model: Any) -> str:
    """A model's query as a full build runs it, for peers that know neither `arrived.<source>`
    (every file in a full build: the source itself) nor `this` (no rows in a full build)."""
    import re

    from warehouse.runtime.engine.duckdb import empty_with_columns

    query = re.sub(r"\barrived\.(\w+)", r"source.\1", model.query)
    if model.reads_this:
        empty = f"({empty_with_columns(model.output_names)}) AS this"
        query = re.sub(r"\b(from|join)\s+this\b", rf"\1 {empty}", query, flags=re.IGNORECASE)
    return str(query)
