"""`just compat`'s Superset part: a small forecast project, a real `wh serve` on it, and
probe.py in Superset's own environment (.venv-superset) against that server."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import accepting, forecast_project, free_port, running  # noqa: E402

from warehouse.forecasting.run import forecast  # noqa: E402
from warehouse.interfaces.demo import DemoSpec, generate  # noqa: E402
from warehouse.runtime.build import build  # noqa: E402


def main() -> int:
    superset_python = REPO / ".venv-superset" / "bin" / "python"
    if not superset_python.exists():
        print("no .venv-superset: run `just compat`, which creates it", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        generate(root / "sources", DemoSpec(products=16, customers=60, days=160, seed=4))
        settings = forecast_project(root, root / "sources")
        build(settings)
        forecast(settings, models=["naive"])
        port = free_port()
        with running(settings, "serve", "--port", str(port), ready=lambda: accepting(port)):
            done = subprocess.run(
                [str(superset_python), str(HERE / "probe.py"), str(port), str(root / "superset")],
                capture_output=True,
                text=True,
                timeout=900,
            )
    steps = [line for line in done.stdout.splitlines() if line.startswith("{")]
    print("\n".join(steps))
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
