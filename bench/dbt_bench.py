"""Orchestration overhead: wh vs dbt-duckdb on the same SQL models and sources, and the raw
floor (the same statements run in order by one DuckDB process).

The example project's SQL models are converted into a dbt project (table references become
`ref()`/`source()`, header directives become `config()`, project variables are inlined); wh
runs the same models (SQL only: dbt-duckdb has no equivalent of wh's @sql_model). Both build
into their own DuckDB files and the outputs are compared row for row before any timing counts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from bench.common import (
    CACHE,
    Result,
    example_project,
    fresh_dir,
    full_build_query,
    run_command,
    time_command,
    wh,
)
from warehouse.config import load_settings
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.project.loader import load_project
from warehouse.project.model import ModelKind
from warehouse.runtime.engine.duckdb import parquet_scan
from warehouse.runtime.segments import FIRST_DAY, LAST_DAY
from warehouse.runtime.sources import CONTRACTS, load_sources

DBT = Path(sys.executable).parent / "dbt"
LEAF = "sql/marts/product_recommendations.sql"
LEAF_SCORE = "p.support / sqrt(pa.orders * pb.orders) as score"


def leaf_edit(i: int) -> str:
    """The i-th change of the leaf's logic: each a version never built before."""
    return f"round(p.support / sqrt(pa.orders * pb.orders), {14 - i}) as score"


# the leaf's floor: a fresh Python process that opens the published warehouse and writes the
# leaf's query to Parquet (process start, `import duckdb`, the SQL and the write; no parsing,
# no fingerprints, no audits, no catalog)
LEAF_FLOOR = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True, config={"threads": %d})
con.execute("SET TimeZone = 'UTC'")
query = open(sys.argv[2]).read()
target = "'" + sys.argv[3] + "' (FORMAT parquet, COMPRESSION zstd)"
con.execute("COPY (" + query + chr(10) + ") TO " + target)
"""
SCHEMA_MACRO = """{% macro generate_schema_name(custom_schema_name, node) -%}
{{ custom_schema_name if custom_schema_name else target.schema }}
{%- endmacro %}
"""


def sources_for(spec: DemoSpec) -> Path:
    """Demo sources of this shape, generated once into the cache (truth.parquet beside)."""
    name = f"data-{spec.products}p-{spec.customers}c-{spec.days}d-{spec.seed}-{spec.start}"
    out = CACHE / name / "sources"
    if not (out / "orders.parquet").exists() and not (out / "orders").exists():
        fresh_dir(out)
        generate(out, spec)
    return out


def _wh_project(root: Path, sources: Path) -> Path:
    # SQL models only: dbt-duckdb has no equivalent of wh's Python models
    return example_project(root, sources, python=False)


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _inline(sql: str, values: dict[str, Any]) -> str:
    return re.sub(r"\$(\w+)", lambda m: _literal(values[m.group(1)]), sql)


def values_of_a_full_build(settings: Any) -> dict[str, Any]:
    """What wh binds to a model's parameters when it computes everything."""
    return {
        **settings.variables,
        "start_date": FIRST_DAY,
        "end_date": LAST_DAY,
        "incremental": False,
    }


def _dbt_project(root: Path, wh_root: Path) -> Path:
    """The wh project's SQL models as a dbt project over the same sources."""
    settings = load_settings(wh_root)
    project = load_project(settings)
    values = values_of_a_full_build(settings)
    fresh_dir(root)
    (root / "models").mkdir()
    (root / "macros").mkdir()
    (root / "macros" / "schema.sql").write_text(SCHEMA_MACRO)
    (root / "dbt_project.yml").write_text(
        "name: wh_bench\nversion: '1.0'\nprofile: wh_bench\nmodel-paths: [models]\n"
        "macro-paths: [macros]\nmodels:\n  wh_bench:\n    +materialized: table\n"
    )
    (root / "profiles.yml").write_text(
        "wh_bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {root / 'dbt.duckdb'}\n      threads: 2\n"
    )
    found = load_sources(settings.sources, CONTRACTS)
    tables = "\n".join(
        f"      - name: {name}\n        meta:\n"
        f"          external_location: {json.dumps(parquet_scan(src.files))}"
        for name, src in sorted(found.items())
        if not src.absent
    )
    (root / "models" / "sources.yml").write_text(
        f"version: 2\nsources:\n  - name: source\n    schema: main\n    tables:\n{tables}\n"
    )
    names = set(project.models)

    def reference(match: re.Match[str]) -> str:
        schema, table = match.group(1), match.group(2)
        if schema == "source":
            return f"{{{{ source('source', '{table}') }}}}"
        if f"{schema}.{table}" in names:
            return f"{{{{ ref('{schema}__{table}') }}}}"
        return match.group(0)

    for model in project.ordered():
        if model.language != "sql":
            continue
        # header directives and comments mention tables too; dbt would take them for refs
        query = full_build_query(model)
        code = "\n".join(line for line in query.splitlines() if not line.startswith("--"))
        body = re.sub(r"\b(source|[a-z_]+)\.([a-z_]\w*)\b", reference, code)
        materialized = "view" if model.kind is ModelKind.VIEW else "table"
        config = f"{{{{ config(materialized='{materialized}', schema='{model.schema}', "
        config += f"alias='{model.name.split('.', 1)[1]}') }}}}\n"
        path = root / "models" / f"{model.name.replace('.', '__')}.sql"
        path.write_text(config + _inline(body, values) + "\n")
    return root


def raw_floor(wh_root: Path, database: Path) -> float:
    """The models' statements in DAG order in one DuckDB process; seconds of SQL."""
    settings = load_settings(wh_root)
    project = load_project(settings)
    values = values_of_a_full_build(settings)
    database.unlink(missing_ok=True)
    con = duckdb.connect(str(database), config={"threads": settings.threads})
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    con.execute("CREATE SCHEMA source")
    for name, src in load_sources(settings.sources, CONTRACTS).items():
        select = src.empty_select() if src.absent else f"SELECT * FROM {parquet_scan(src.files)}"
        con.execute(f"CREATE VIEW source.{name} AS {select}")
    for model in project.ordered():
        if model.language != "sql":
            continue
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
        what = "VIEW" if model.kind is ModelKind.VIEW else "TABLE"
        params = {p: values[p] for p in model.parameters}
        con.execute(f"CREATE {what} {model.name} AS {full_build_query(model)}", params)
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def _differences(wh_root: Path, dbt_root: Path) -> list[str]:
    """Models whose rows differ between wh's publish and dbt's tables. Doubles are rounded to
    6 decimals, and rows left over may differ by one rounding step (parallel sums differ in
    the last bits, which can fall either side of a rounding boundary)."""
    con = duckdb.connect()
    steward = wh_root / "warehouse" / "warehouse-steward.duckdb"  # clear values, as dbt's
    con.execute(f"ATTACH '{steward}' AS w (READ_ONLY)")
    con.execute(f"ATTACH '{dbt_root / 'dbt.duckdb'}' AS d (READ_ONLY)")
    wrong = []
    for schema, table in con.execute(
        "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'w' "
        "AND NOT internal AND schema_name <> 'wh_meta'"
    ).fetchall():
        columns = con.execute(f"DESCRIBE w.{schema}.{table}").fetchall()
        doubles = [i for i, c in enumerate(columns) if c[1] in ("DOUBLE", "FLOAT")]
        select = ", ".join(
            f"round({c[0]}, 6)" if i in doubles else f'"{c[0]}"' for i, c in enumerate(columns)
        )
        left = con.execute(
            f"SELECT {select} FROM w.{schema}.{table} EXCEPT ALL "
            f"SELECT {select} FROM d.{schema}.{table}"
        ).fetchall()
        right = con.execute(
            f"SELECT {select} FROM d.{schema}.{table} EXCEPT ALL "
            f"SELECT {select} FROM w.{schema}.{table}"
        ).fetchall()
        unmatched = len(left) + len(right)
        for row in left:
            twin = next((r for r in right if _close(row, r, doubles)), None)
            if twin is not None:
                right.remove(twin)
                unmatched -= 2
        if unmatched:
            wrong.append(f"{schema}.{table} ({unmatched} rows)")
    con.close()
    return wrong


def _close(a: tuple[Any, ...], b: tuple[Any, ...], doubles: list[int]) -> bool:
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i in doubles and x is not None and y is not None:
            if abs(x - y) > 1.5e-6 * max(1.0, abs(x)):
                return False
        elif x != y:
            return False
    return True


def _dbt(root: Path, *args: str) -> list[str]:
    return [str(DBT), *args, "--project-dir", str(root), "--profiles-dir", str(root), "-q"]


def _reformat(root: Path, pattern: str) -> None:
    """Re-indent every model and add a comment: a change of layout, not of logic."""
    for path in root.glob(pattern):
        text = path.read_text()
        path.write_text(text.replace("\n    ", "\n      ") + "\n-- reformatted\n")


def _timed(args: list[str], repeat: int = 3) -> list[float]:
    return [time_command(args) for _ in range(repeat)]


def run(full: bool) -> list[Result]:
    spec = DemoSpec(products=480, customers=5000, days=730, seed=11)
    sources = sources_for(spec)
    lines = duckdb.sql(f"SELECT count(*) FROM '{sources}/order_items*.parquet'").fetchall()[0][0]
    base = CACHE / "dbt"
    wh_root = _wh_project(base / "wh", sources)
    dbt_root = _dbt_project(base / "dbt", wh_root)
    wh_build = wh("--project", str(wh_root), "build", "--quiet")
    repeat = 5 if full else 3

    # full builds, from nothing each time
    wh_full, dbt_full, floors = [], [], []
    for _ in range(repeat):
        shutil.rmtree(wh_root / "warehouse", ignore_errors=True)
        wh_full.append(run_command(wh_build).seconds)
        (dbt_root / "dbt.duckdb").unlink(missing_ok=True)
        dbt_full.append(run_command(_dbt(dbt_root, "run")).seconds)
        floors.append(raw_floor(wh_root, base / "floor.duckdb"))
    wrong = _differences(wh_root, dbt_root)
    if wrong:
        raise RuntimeError(f"wh and dbt disagree on: {', '.join(wrong)}")

    # no-op: wh has nothing to do; dbt has no such notion and reruns every model
    wh_noop = _timed(wh_build, repeat=repeat)
    dbt_rerun = _timed(_dbt(dbt_root, "run"), repeat=repeat)

    # one leaf changed: wh rebuilds it; dbt with state:modified against the last run
    state = fresh_dir(base / "dbt-state")
    shutil.copy(dbt_root / "target" / "manifest.json", state / "manifest.json")
    wh_leaf, dbt_leaf, leaf_floor = [], [], []
    dbt_leaf_file = dbt_root / "models" / "marts__product_recommendations.sql"
    settings = load_settings(wh_root)
    floor_script = base / "leaf_floor.py"
    floor_script.write_text(LEAF_FLOOR % settings.threads)
    previous = LEAF_SCORE
    for i in range(repeat):
        edit = leaf_edit(i)
        for path in (wh_root / LEAF, dbt_leaf_file):
            path.write_text(path.read_text().replace(previous, edit))
        previous = edit
        wh_leaf.append(run_command(wh_build).seconds)
        dbt_leaf.append(
            run_command(
                _dbt(dbt_root, "run", "-s", "state:modified", "--state", str(state))
            ).seconds
        )
        shutil.copy(dbt_root / "target" / "manifest.json", state / "manifest.json")
        leaf_sql = base / "leaf.sql"
        leaf = load_project(settings).models["marts.product_recommendations"]
        values = values_of_a_full_build(settings)
        leaf_sql.write_text(_inline(leaf.query, {p: values[p] for p in leaf.parameters}))
        leaf_floor.append(
            run_command(
                [
                    sys.executable,
                    str(floor_script),
                    str(settings.warehouse / "warehouse-steward.duckdb"),
                    str(leaf_sql),
                    str(base / "leaf-floor.parquet"),
                ]
            ).seconds
        )

    # every model reformatted: wh sees the same logic; dbt's state:modified sees new files
    _reformat(wh_root, "sql/*/*.sql")
    _reformat(dbt_root, "models/*.sql")
    wh_reformat = run_command(wh_build).seconds
    dbt_reformat = run_command(
        _dbt(dbt_root, "run", "-s", "state:modified", "--state", str(state))
    ).seconds

    med = _median
    models = len(list((dbt_root / "models").glob("*.sql")))
    where = f"{models} SQL models, {lines / 1e3:.0f}k order lines; median of {repeat}"
    return [
        Result(
            "dbt: full build vs raw DuckDB floor",
            med(wh_full),
            med(floors),
            "s",
            "<= 1.2x floor",
            med(wh_full) <= 1.2 * med(floors),
            note=f"{where}; wh includes process start, audits and Parquet writes; floor = "
            f"the statements in one warm DuckDB process; dbt full run {med(dbt_full):.2f} s",
        ),
        Result(
            "dbt: full build, wh vs dbt run",
            med(wh_full),
            med(dbt_full),
            "s",
            "(reference)",
            None,
        ),
        Result(
            "dbt: no-op rebuild, wh vs dbt rerun",
            med(wh_noop),
            med(dbt_rerun),
            "s",
            "<= 0.25 s and 15x faster",
            med(wh_noop) <= 0.25 and med(wh_noop) * 15 <= med(dbt_rerun),
            note="wall time of the process; wh's no-op path loads no engine",
        ),
        Result(
            "dbt: one leaf changed, wh vs its floor (a process running the leaf's SQL)",
            med(wh_leaf),
            med(leaf_floor),
            "s",
            "<= 0.5 s, or <= floor + 0.2 s",
            med(wh_leaf) <= 0.5 or med(wh_leaf) <= med(leaf_floor) + 0.2,
            note="each change a version never built; the floor opens the published "
            "warehouse, imports DuckDB and writes the leaf's query to Parquet",
        ),
        Result(
            "dbt: one leaf changed, wh vs dbt state:modified",
            med(wh_leaf),
            med(dbt_leaf),
            "s",
            "(reference)",
            None,
        ),
        Result(
            "dbt: every model reformatted, wh vs dbt state:modified",
            wh_reformat,
            dbt_reformat,
            "s",
            "(reference)",
            None,
            note="wh normalises SQL (nothing rebuilt); dbt compares file checksums",
        ),
    ]


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


if __name__ == "__main__":
    subprocess.run([sys.executable, "-m", "bench.run", "--only", "dbt"], check=True)
