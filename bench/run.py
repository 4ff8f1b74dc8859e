"""`python -m bench.run [--full] [--only NAME,...]`: run the benchmarks, print one table, write
bench/results.json. The quick set takes about 8 minutes here; --full well over an hour."""

from __future__ import annotations

import argparse
import importlib
import time
import traceback

from bench.common import Result, print_table, save

# in the quick set unless named with --only: takes ~10 min even on the quick data
FULL_ONLY = {"forecast"}
# not in .venv-bench (no pyspark, dask): run only when named (just bench-spark)
NAMED_ONLY = {"spark"}
BENCHMARKS = {
    "accuracy": "bench.accuracy_bench",
    "dbt": "bench.dbt_bench",
    "scale": "bench.scale_bench",
    "forecast": "bench.forecast_bench",
    "serve": "bench.serve_bench",
    "contention": "bench.contention_bench",
    "realdata": "bench.realdata_bench",
    # needs pyspark and dask (the dev environment): `just bench-spark`
    "spark": "bench.spark_bench",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="the large set (M5-sized data)")
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = [b for b in args.only.split(",") if b] or [
        b for b in BENCHMARKS if (args.full or b not in FULL_ONLY) and b not in NAMED_ONLY
    ]
    results: list[Result] = []
    timings: dict[str, float] = {}
    failed: list[str] = []
    for name in chosen:
        started = time.perf_counter()
        print(f"== {name} ...", flush=True)
        try:
            results += importlib.import_module(BENCHMARKS[name]).run(args.full)
        except Exception:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"   {name} took {timings[name]:.0f} s", flush=True)
    print()
    print_table(results)
    save(results, {"full": args.full, "seconds": timings, "failed": failed})
    if failed:
        raise SystemExit(f"benchmarks that failed to run: {', '.join(failed)}")


if __name__ == "__main__":
    main()
