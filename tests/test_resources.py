"""What the process may use: CPUs from affinity and cgroup quota, memory from the cgroup
limit, the OpenMP wait policy; what `wh forecast` and `wh doctor` get from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_project, rows

from warehouse import resources
from warehouse.forecasting.run import forecast
from warehouse.runtime.build import build

ONE_CPU = {min(os.sched_getaffinity(0))}


def _cgroup(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "proc").write_text(proc)
    return root, tmp_path / "proc"


def test_cgroup_v2_quota_and_memory(tmp_path: Path) -> None:
    root, proc = _cgroup(
        tmp_path,
        "0::/pod/app\n",
        {"pod/app/cpu.max": "150000 100000\n", "pod/app/memory.max": "2147483648\n"},
    )
    assert resources.cgroup_cpu_quota(root, proc) == (1.5, "cgroup v2 cpu.max")
    limit = resources.cgroup_memory_limit(root, proc)
    assert limit.bytes == 2**31 and "memory.max" in limit.source
    assert resources.default_memory_limit(limit) == "1536MiB"  # DuckDB reads MB as 10^6 bytes
    # a quota of 1.5 CPUs keeps 2 busy at most; the affinity mask (≥ 1 CPU) may lower it
    cpus = resources.available_cpus(root, proc)
    assert cpus.cpus == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v1_and_no_limit(tmp_path: Path) -> None:
    root, proc = _cgroup(
        tmp_path,
        "4:memory:/job\n1:cpu:/job\n0::/\n",
        {
            "cpu/job/cpu.cfs_quota_us": "50000\n",
            "cpu/job/cpu.cfs_period_us": "100000\n",
            "memory/job/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
            "cpu.max": "max 100000\n",
        },
    )
    assert resources.cgroup_cpu_quota(root, proc) == (0.5, "cgroup v1 cpu.cfs_quota_us")
    assert resources.available_cpus(root, proc).cpus == 1
    assert resources.cgroup_memory_limit(root, proc).bytes is None
    empty, none = _cgroup(tmp_path / "x", "0::/\n", {"cpu.max": "max 100000\n"})
    assert resources.cgroup_cpu_quota(empty, none) is None


def test_configured_threads_cap_what_the_process_may_use() -> None:
    two = resources.CpuLimit(2, "test")
    assert resources.effective_threads(None, two) == 2
    assert resources.effective_threads(1, two) == 1
    assert resources.effective_threads(8, two) == 2


def _python(code: str, env: dict[str, str] | None = None) -> str:
    """Run `code` in a fresh interpreter restricted to one CPU (a real affinity mask)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    clean.pop(resources.MARK, None)
    clean.pop("POLARS_MAX_THREADS", None)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, ONE_CPU),
        cwd=REPO,
        check=True,
    )
    return done.stdout.strip()


def test_process_setup_follows_affinity_and_leaves_user_settings() -> None:
    code = (
        "import os; from warehouse.resources import prepare_process; prepare_process(); "
        "import polars as pl; print(os.environ.get('GOMP_SPINCOUNT'), "
        "os.environ.get('OMP_WAIT_POLICY'), pl.thread_pool_size())"
    )
    assert _python(code) == "1000 None 1"
    assert _python(code, {"OMP_WAIT_POLICY": "active", "POLARS_MAX_THREADS": "2"}) == (
        "None active 2"
    )


def test_forecast_process_gets_threads_and_wait_policy(
    tmp_path: Path, forecast_sources: Path
) -> None:
    from conftest import FORECAST_TOML

    # the hierarchy step (its own fits, seconds) says nothing about threads: off
    toml = (
        FORECAST_TOML.format(horizon=7, train=90, step=5)
        + "[forecast.hierarchy]\nenabled = false\n"
    )
    settings = copy_project(tmp_path / "p", forecast_sources, "", toml)
    # no threads in wh.toml: what the process may use decides
    config = settings.project_dir / "wh.toml"
    config.write_text(config.read_text().replace("threads = 2\n", ""))
    build(settings)

    def run(env: dict[str, str]) -> tuple[dict[str, object], str]:
        code = (
            "import sys; from warehouse.interfaces.entry import main; "
            f"sys.argv = ['wh', '--project', {str(settings.project_dir)!r}, 'forecast', "
            "'--models', 'naive,lightgbm', '--json']; main()"
        )
        result = json.loads(_python(code, env))
        params = rows(
            settings,
            f"SELECT params FROM forecast.model_runs WHERE run_id = '{result['run_id']}'",
        )[0][0]
        booster = settings.warehouse / "runs" / str(result["run_id"]) / "lightgbm-q50.txt"
        return json.loads(str(params)), booster.read_text()

    params, booster = run({})
    assert params["spec"]["threads"] == 1  # type: ignore[index]
    assert params["openmp"] == "GOMP_SPINCOUNT=1000 (set by wh)"
    assert "[num_threads: 1]" in booster
    params, _ = run({"OMP_WAIT_POLICY": "ACTIVE", "WH_THREADS": "1"})
    assert params["openmp"] == "OMP_WAIT_POLICY=ACTIVE (set by user)"


def test_forecast_in_process_reports_threads(tmp_path: Path, forecast_sources: Path) -> None:
    from conftest import forecast_project

    settings = forecast_project(tmp_path, forecast_sources).with_overrides(threads=1)
    build(settings)
    result = forecast(settings, models=["naive"])
    assert result.threads == 1 and result.wait_policy


def test_doctor_prints_what_it_found(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(tmp_path / "p", tiny_sources)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "warehouse.interfaces.entry",
            "--project",
            str(settings.project_dir),
            "doctor",
        ],
        capture_output=True,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, ONE_CPU),
    )
    assert "CPUs: 1 from affinity" in done.stdout, done.stdout + done.stderr
    assert "threads: 1" in done.stdout
    assert "OpenMP wait policy: GOMP_SPINCOUNT=1000 (set by wh)" in done.stdout


@pytest.mark.parametrize(
    ("text", "expected"), [("4GB", 4 * 10**9), ("512MiB", 512 * 2**20), ("x", None)]
)
def test_memory_settings_read_as_duckdb_does(text: str, expected: int | None) -> None:
    from warehouse.interfaces.doctor import _bytes

    assert _bytes(text) == expected


def _memory_cgroup(limit: int) -> Path | None:
    """A real cgroup with a memory limit (v1 here; v2 where that is the hierarchy)."""
    import uuid

    name = f"wh-test-{uuid.uuid4().hex[:8]}"
    for folder, file in (
        (Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"),
        (Path("/sys/fs/cgroup") / name, "memory.max"),
    ):
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            (folder / file).write_text(str(limit))
            return folder
        except OSError:
            folder.rmdir()
    return None


def test_doctor_in_a_memory_limited_cgroup(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(tmp_path / "p", tiny_sources)  # no memory_limit in its wh.toml
    folder = _memory_cgroup(1024 * 2**20)
    if folder is None:
        pytest.skip("no cgroup can be written here (needs root and a cgroup mount)")
    try:
        done = subprocess.run(
            [
                "sh",
                "-c",
                f'echo $$ > {folder / "cgroup.procs"} && exec "$@"',
                "sh",
                sys.executable,
                "-m",
                "warehouse.interfaces.entry",
                "--project",
                str(settings.project_dir),
                "doctor",
            ],
            capture_output=True,
            text=True,
        )
    finally:
        folder.rmdir()
    assert "memory: 1.0 GiB from cgroup" in done.stdout, done.stdout + done.stderr
    assert "memory_limit: 768MiB" in done.stdout  # 75 % of the limit, for DuckDB


def test_forecast_says_before_the_backtest_when_it_will_not_fit(
    tmp_path: Path,
    forecast_sources: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from conftest import forecast_project

    from warehouse.forecasting.data import load
    from warehouse.forecasting.run import memory_needed
    from warehouse.forecasting.spec import load_spec

    settings = forecast_project(tmp_path, forecast_sources)
    build(settings)
    spec = load_spec(settings)
    need = memory_needed(spec, load(settings))
    assert need > 3 * load(settings).features.estimated_size()
    # a cgroup limit below the estimate (a real cgroup that small would kill the test first)
    small = resources.MemoryLimit(need // 2, "cgroup v2 memory.max")
    monkeypatch.setattr(resources, "cgroup_memory_limit", lambda *a: small)
    stages: list[str] = []
    forecast(settings, models=["naive"], progress=stages.append)
    warning = capsys.readouterr().err
    assert "this forecast needs about" in warning and "cgroup v2 memory.max" in warning
    assert any("max_train_rows" in s for s in stages)
