"""The bad-input catalog: each case breaks one thing on purpose and states the exact outcome:
the exit code, the message (what, where, what to do), and that what analysts query is
unchanged. Data problems the cleaning layer owns are not errors: the build succeeds and the
rows land in staging.rejects with their reason."""

from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import copy_project, published, rows

from warehouse.config import Settings, load_settings
from warehouse.runtime.build import build


def _rewrite(settings: Settings, name: str, change: Callable[[pa.Table], pa.Table]) -> None:
    path = settings.sources / f"{name}.parquet"
    pq.write_table(change(pq.read_table(path)), path)


def _set(column: str, values: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        return table.set_column(table.schema.get_field_index(column), column, values(table))

    return change


def _first_rows(
    column: str, value: object, kind: pa.DataType, n: int = 3
) -> Callable[[pa.Table], pa.Table]:
    """`column` = `value` in the first n rows."""

    def values(table: pa.Table) -> pa.Array:
        old = table.column(column).to_pylist()
        return pa.array([value] * n + old[n:], kind)

    return _set(column, values)


def _write(relative: str, text: str) -> Callable[[Settings], None]:
    def setup(settings: Settings) -> None:
        path = settings.project_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return setup


def _edit(relative: str, old: str, new: str) -> Callable[[Settings], None]:
    def setup(settings: Settings) -> None:
        path = settings.project_dir / relative
        text = path.read_text()
        assert old in text, (relative, old)
        path.write_text(text.replace(old, new, 1))

    return setup


def _truncate(settings: Settings) -> None:
    path = settings.sources / "orders.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt(settings: Settings) -> None:
    path = settings.sources / "order_items.parquet"
    data = bytearray(path.read_bytes())
    data[8:2000] = os.urandom(1992)
    path.write_bytes(bytes(data))


def _drop_column(name: str, column: str) -> Callable[[Settings], None]:
    return lambda s: _rewrite(s, name, lambda t: t.drop_columns([column]))


def _cast(name: str, column: str, kind: pa.DataType) -> Callable[[Settings], None]:
    return lambda s: _rewrite(s, name, _set(column, lambda t: pc.cast(t.column(column), kind)))


def _rows(name: str, column: str, value: object, kind: pa.DataType) -> Callable[[Settings], None]:
    return lambda s: _rewrite(s, name, _first_rows(column, value, kind))


def _duplicate_first_product(settings: Settings) -> None:
    _rewrite(settings, "products", lambda t: pa.concat_tables([t, t.slice(0, 1)]))


def _tz_aware(settings: Settings) -> None:
    _rewrite(
        settings,
        "orders",
        _set("order_ts", lambda t: pc.assume_timezone(t.column("order_ts"), "Europe/Berlin")),
    )


def _non_utf8(settings: Settings) -> None:
    def change(table: pa.Table) -> pa.Table:
        names = [b"\xff\xfe bad"] + [v.encode() for v in table.column("name").to_pylist()[1:]]
        return table.set_column(
            table.schema.get_field_index("name"), "name", pa.array(names, pa.binary())
        )

    _rewrite(settings, "products", change)


def _huge_quantities(settings: Settings) -> None:
    _cast("order_items", "quantity", pa.int64())(settings)
    _rows("order_items", "quantity", 10**12, pa.int64())(settings)


PYTHON_MODEL = """
import polars as pl
from warehouse.python_model import model

@model("marts.bad", inputs=["staging.products"])
def bad(products: pl.LazyFrame):
{body}
"""
SQL_MODEL = "-- kind: full\n{body}\n"


@dataclass
class Case:
    name: str
    setup: Callable[[Settings], None]
    code: int
    expect: str  # in the output, whitespace ignored
    args: tuple[str, ...] = ("build",)
    env: dict[str, str] = field(default_factory=dict)
    reject: str | None = None  # for cleaned data: the reason staging.rejects must show


# fmt: off
CASES = [
    # --- source files --------------------------------------------------------------------
    Case("truncated parquet", _truncate, 1, "orders.parquet: unreadable Parquet file"),
    Case("corrupt parquet", _corrupt, 1, "order_items.parquet: damaged data"),
    Case("empty file", lambda s: (s.sources / "products.parquet").write_bytes(b""), 1, "products.parquet"),
    Case("missing required file", lambda s: (s.sources / "orders.parquet").unlink(), 1, "source 'orders'"),
    Case("missing required column", _drop_column("orders", "order_ts"), 1, "column 'order_ts'"),
    Case("string quantities", _cast("order_items", "quantity", pa.string()), 1, "column 'quantity'"),
    Case("integer dates", _cast("products", "launch_date", pa.int32()), 1, "column 'launch_date'"),
    Case("float ids", _cast("orders", "order_id", pa.float64()), 1, "column 'order_id'"),
    Case("empty required table", lambda s: _rewrite(s, "orders", lambda t: t.slice(0, 0)), 1, "orders"),
    Case("non-UTF-8 text", _non_utf8, 1, "column 'name'"),
    Case(
        "sources folder missing", lambda s: None, 2, "/nonexistent/wh-sources (from WH_SOURCES) does not exist",
        env={"WH_SOURCES": "/nonexistent/wh-sources"},
    ),
    # --- data the cleaning layer rejects (exit 0) -----------------------------------------
    Case("duplicate product ids", _duplicate_first_product, 0, "", reject="duplicate_product_id"),
    Case("future-dated orders", _rows("orders", "order_ts", pa.scalar(4102444800_000000, pa.timestamp("us")).as_py(), pa.timestamp("us")), 0, "", reject="future_order_ts"),
    Case("negative prices", _rows("order_items", "unit_price", -1.0, pa.float64()), 0, "", reject="negative_price"),
    Case("NaN prices", _rows("order_items", "unit_price", float("nan"), pa.float64()), 0, "", reject="non_finite_price"),
    Case("infinite prices", _rows("order_items", "unit_price", float("inf"), pa.float64()), 0, "", reject="non_finite_price"),
    Case("zero quantities", _rows("order_items", "quantity", 0, pa.int32()), 0, "", reject="non_positive_quantity"),
    Case("huge quantities", _huge_quantities, 0, "", reject="implausible_quantity"),
    Case("unknown status", _rows("orders", "status", "teleported", pa.large_string()), 0, "", reject="unknown_status"),
    Case("promotion ends before it starts", _rows("promotions", "end_date", pa.scalar(0, pa.date32()).as_py(), pa.date32()), 0, "", reject="end_before_start"),
    Case("timezone-aware timestamps", _tz_aware, 0, ""),
    # --- models ------------------------------------------------------------------------------
    Case("SQL syntax error", _write("sql/marts/bad.sql", SQL_MODEL.format(body="select product_id\nfrom staging.products\nwhere where")), 1, "bad.sql:4"),
    Case("unknown table", _write("sql/marts/bad.sql", SQL_MODEL.format(body="select * from staging.no_such_table")), 1, "staging.no_such_table"),
    Case("dependency cycle", lambda s: (_write("sql/marts/a.sql", SQL_MODEL.format(body="select * from marts.b"))(s), _write("sql/marts/b.sql", SQL_MODEL.format(body="select * from marts.a"))(s)), 1, "cycle"),
    Case("two models with one name", _write("pipeline/dupe.py", PYTHON_MODEL.replace("marts.bad", "staging.orders").format(body="    return products")), 1, "staging.orders"),
    Case("Python model raises", _write("pipeline/bad.py", PYTHON_MODEL.format(body="    raise ValueError('boom')")), 1, "boom"),
    Case("Python model returns the wrong type", _write("pipeline/bad.py", PYTHON_MODEL.format(body="    return 42")), 1, "marts.bad"),
    Case("Python model with a syntax error", _write("pipeline/bad.py", "def broken(:\n"), 1, "bad.py:1"),
    Case("unknown header directive", _write("sql/marts/bad.sql", "-- knd: full\nselect 1 as x\n"), 1, "knd"),
    Case("unsafe model name", _write("sql/marts/bad-name.sql", SQL_MODEL.format(body="select 1 as x")), 1, "bad-name"),
    Case("unknown variable", _write("sql/marts/bad.sql", SQL_MODEL.format(body="select $no_such_var as x")), 1, "no_such_var"),
    Case("audit requires rows, model has none", _write("sql/marts/bad.sql", "-- kind: full\n-- audits: row_count(min=1)\nselect 1 as x where false\n"), 1, "row_count"),
    Case("grain violated", _write("sql/marts/bad.sql", "-- kind: full\n-- grain: category\nselect category from staging.products\n"), 1, "marts.bad"),
    # --- configuration -------------------------------------------------------------------------
    Case("invalid wh.toml", lambda s: (s.project_dir / "wh.toml").write_text("[project\nthreads = 2\n"), 2, "wh.toml:1"),
    Case("unknown config key", _edit("wh.toml", "threads = 2", "threads = 2\nthreds = 4"), 0, "threds"),
    Case("invalid freq", _edit("wh.toml", "threads = 2", 'threads = 2\nfreq = "hourly"'), 2, "freq"),
    Case("invalid as_of_date", _edit("wh.toml", "threads = 2", 'threads = 2\nas_of_date = "yesterday"'), 2, "as_of_date"),
    Case("zero threads", _edit("wh.toml", "threads = 2", "threads = 0"), 2, "threads"),
    Case("invalid environment name", lambda s: None, 2, "env", args=("build", "--env", "../prod")),
]
# fmt: on


@pytest.fixture(scope="module")
def base(
    tmp_path_factory: pytest.TempPathFactory, tiny_sources: Path
) -> tuple[Settings, dict[str, str]]:
    settings = copy_project(tmp_path_factory.mktemp("bad") / "project", tiny_sources)
    build(settings)
    return settings, published(settings)


def _copy(base: Settings, root: Path) -> Settings:
    shutil.copytree(base.project_dir, root, symlinks=True)
    return load_settings(root)


def _wh(
    settings: Settings, args: tuple[str, ...], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir), *args],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "COLUMNS": "1000", **env},
    )  # fmt: skip


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_catalog_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, base: tuple[Settings, dict[str, str]], tmp_path: Path) -> None:
    settings = _copy(base[0], tmp_path / "project")
    case.setup(settings)
    done = _wh(settings, case.args, case.env)
    output = done.stdout + done.stderr
    assert done.returncode == case.code, output
    assert _squash(case.expect) in _squash(output), output
    if case.code != 0:
        assert "Traceback" not in output
        assert _squash("hint:") in _squash(output) or case.code == 2, output
        assert published(settings) == base[1]
    if case.reject:
        found = rows(
            settings, f"SELECT count(*) FROM staging.rejects WHERE reason = '{case.reject}'"
        )
        assert found[0][0] >= 1


def test_disk_full_mid_build_leaves_published_tables_unchanged(
    base: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings = _copy(base[0], tmp_path / "project")
    (settings.sql_dir / "staging" / "orders.sql").write_text(
        (settings.sql_dir / "staging" / "orders.sql").read_text() + "\n-- x\n"
    )
    _write(
        "sql/marts/big.sql",
        # random text does not compress: tens of MB of Parquet
        "-- kind: full\nselect range as i, md5(range::VARCHAR) as pad from range(2000000)\n",
    )(settings)

    # every file this process writes is capped at 4 MB: far above what state.db grows to in
    # one build (at 256 KB the state file sometimes hit the cap before marts.big did)
    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 * 2**20, 4 * 2**20))

    done = subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(settings.project_dir), "build"],
        capture_output=True, text=True, timeout=300, preexec_fn=small_files,
        env={**os.environ, "COLUMNS": "1000"},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "marts.big" in output or "big.sql" in output, output
    assert "Traceback" not in output
    assert published(settings) == base[1]
    (settings.sql_dir / "marts" / "big.sql").unlink()
    assert _wh(settings, ("build", "--quiet"), {}).returncode == 0


def test_read_only_warehouse_is_reported(
    base: tuple[Settings, dict[str, str]], tmp_path: Path
) -> None:
    settings = _copy(base[0], tmp_path / "project")
    _edit("sql/staging/orders.sql", "    o.status,\n", "    o.status,\n    1 as changed,\n")(
        settings
    )
    if os.geteuid() == 0:
        # root ignores permission bits; the immutable attribute binds root too
        if (
            shutil.which("chattr") is None
            or subprocess.run(
                ["chattr", "+i", str(settings.warehouse)], capture_output=True
            ).returncode
            != 0
        ):
            pytest.skip("running as root without chattr +i support: cannot make a read-only folder")
    else:
        settings.warehouse.chmod(0o555)
    try:
        done = _wh(settings, ("build",), {})
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(settings.warehouse)], check=False)
        else:
            settings.warehouse.chmod(0o755)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    assert "read-only" in output or "ermission" in output or "not permitted" in output, output
    assert published(settings) == base[1]
