"""Readers and roles, the audit trail and erasure requests (issue 17, parts 2-4), with the
real clients: psql and httpx against `wh serve` and `wh api` processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import polars as pl
import psycopg
import pytest
from conftest import (
    accepting,
    append_last_day,
    copy_project,
    edit,
    forecast_project,
    free_port,
    rounded,
    rows,
    running,
    split_last_day,
    wh_command,
)

from warehouse.config import Settings, load_settings
from warehouse.errors import UsageError, WhError
from warehouse.forecasting.run import forecast
from warehouse.runtime.build import build
from warehouse.runtime.catalog import STEWARD, pointer_path
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.environments import rollback
from warehouse.runtime.pseudonym import load_key
from warehouse.runtime.sources import load_sources
from warehouse.runtime.state import open_state

PSQL = shutil.which("psql")
USERS = """[serve]
audit_log = true
[serve.users]
ana = { password = "ana-secret", role = "analyst" }
stew = { password = "stew-secret", role = "steward" }
"""
ERASED = ["cust-00003", "cust-00007", "cust-00011"]


def _project(root: Path, sources: Path) -> Settings:
    """The example project, set up to forecast in seconds, with two users and the audit log."""
    settings = forecast_project(root, _distinct_ids(sources, root / "sources"))
    with (settings.project_dir / "wh.toml").open("a") as toml:
        toml.write(USERS)
    return load_settings(settings.project_dir)


def _distinct_ids(sources: Path, target: Path) -> Path:
    """A copy of the demo sources whose customer ids are text no other column holds
    ("cust-00007"), so a scan for an id finds that customer and nothing else."""
    shutil.copytree(sources, target)
    for name in ("customers", "orders"):
        path = target / f"{name}.parquet"
        frame = pl.read_parquet(path)
        frame = frame.with_columns(
            pl.when(pl.col("customer_id").is_null())
            .then(None)
            .otherwise(pl.format("cust-{}", pl.col("customer_id").cast(pl.Utf8).str.zfill(5)))
            .alias("customer_id")
        )
        frame.write_parquet(path)
    return target


@pytest.fixture(scope="module")
def warehouse(
    tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path
) -> Iterator[Settings]:
    settings = _project(tmp_path_factory.mktemp("privacy"), forecast_sources)
    build(settings)
    forecast(settings, models=["naive"])
    yield settings


def _run_psql(port: int, user: str, password: str, sql: str) -> subprocess.CompletedProcess[str]:
    assert PSQL is not None
    return subprocess.run(
        [PSQL, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "prod",
         "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PGPASSWORD": password},
    )  # fmt: skip


def _psql(port: int, user: str, password: str, sql: str) -> list[str]:
    done = _run_psql(port, user, password, sql)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _psql_error(port: int, user: str, password: str, sql: str) -> str:
    done = _run_psql(port, user, password, sql)
    assert done.returncode != 0, done.stdout
    return done.stderr


@contextlib.contextmanager
def _api(settings: Settings) -> Iterator[str]:
    """`wh api` as a real server process; its URL."""
    url = f"http://127.0.0.1:{(port := free_port())}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code in (200, 401)
        except httpx.TransportError:
            return False

    with running(settings, "api", "--port", str(port), ready=ready):
        yield url


PREPARED = "select customer_id from staging.customers order by 1 limit %s"
JOIN = (
    "select count(*) from features.customer_profile c "
    "join forecast.customer_propensity p on p.customer_id = c.customer_id "
    "join staging.orders o on o.customer_id = c.customer_id"
)


def test_roles_over_psql_and_http(warehouse: Settings) -> None:
    if PSQL is None:
        if os.environ.get("CI"):
            pytest.fail("psql is missing in CI: .ci/run installs postgresql-client")
        pytest.skip("psql is not installed (Debian package 'postgresql-client')")
    port = free_port()
    clear_ids = {r[0] for r in rows(warehouse, "select customer_id from staging.customers")}
    expected_join = rows(warehouse, JOIN)[0][0]
    assert expected_join > 0
    with running(warehouse, "serve", "--port", str(port), ready=lambda: accepting(port)) as serve:
        analyst = _psql(port, "ana", "ana-secret", "select customer_id from staging.customers")
        steward = _psql(port, "stew", "stew-secret", "select customer_id from staging.customers")
        assert set(steward) == clear_ids
        assert len(set(analyst)) == len(clear_ids) and not set(analyst) & clear_ids
        # keyed HMAC-SHA256 (DuckDB's, in SQL) equals Python's hmac with the warehouse's key
        state = open_state(warehouse)
        try:
            key = load_key(warehouse, state.warehouse_id())
        finally:
            state.close()
        assert set(analyst) == {str(key.number(c)) for c in clear_ids}
        # pseudonyms join across tables exactly as the clear ids do
        assert _psql(port, "ana", "ana-secret", JOIN) == [str(expected_join)]
        # the analyst cannot read the clear files by path (the steward catalog names them)
        files = duckdb.connect(str(pointer_path(warehouse, "prod", STEWARD)), read_only=True)
        (sql,) = files.execute(
            "select sql from duckdb_views() where view_name = 'customers' "
            "and schema_name = 'checks'"
        ).fetchone() or ("",)
        files.close()
        assert "versions/checks/customers" in sql
        clear_file = re.findall(r"'([^']*versions/checks/customers/[^']*\.parquet)'", sql)[0]
        error = _psql_error(
            port, "ana", "ana-secret", f"select count(*) from read_parquet('{clear_file}')"
        )
        # a statement prepared once and run three times (what drivers do) is logged each time
        with psycopg.connect(
            f"host=127.0.0.1 port={port} user=ana password=ana-secret dbname=prod"
        ) as con:
            for limit in (1, 2, 3):
                con.execute(PREPARED, (limit,), prepare=True).fetchall()
        assert "Permission Error" in error or "not allowed" in error or "refused" in error, error
    with _api(warehouse) as url:
        assert httpx.get(f"{url}/health").status_code == 401
        assert httpx.get(f"{url}/health", auth=("ana", "wrong")).status_code == 401
        ana, stew = ("ana", "ana-secret"), ("stew", "stew-secret")
        assert httpx.get(f"{url}/health", auth=ana).json()["role"] == "analyst"
        profile = httpx.get(
            f"{url}/tables/features.customer_profile", params={"limit": 5}, auth=ana
        ).json()["rows"]
        pseudonyms = [r["customer_id"] for r in profile]
        assert pseudonyms and not set(pseudonyms) & clear_ids
        assert set(pseudonyms) <= set(analyst)
        # a pseudonym from one table finds the same customer in another
        for pseudonym in pseudonyms:
            found = httpx.get(f"{url}/customers/{pseudonym}/propensity", auth=ana)
            assert found.status_code == 200 and found.json()["customer_id"] == pseudonym
        clear = httpx.get(
            f"{url}/tables/features.customer_profile", params={"limit": 5}, auth=stew
        ).json()["rows"]
        assert {r["customer_id"] for r in clear} <= clear_ids
        assert (
            httpx.get(f"{url}/customers/{pseudonyms[0]}/propensity", auth=stew).status_code == 404
        )
    # the audit trail: sessions and statements, by user and role, outside every catalog
    logged = subprocess.run(
        wh_command(warehouse, "audit", "--json", "--limit", "500"),
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    records = json.loads(logged)
    assert os.stat(warehouse.warehouse / "audit" / "audit.db").st_mode & 0o777 == 0o600
    by_role = {(r["user"], r["role"], r["interface"]) for r in records}
    assert {("ana", "analyst", "serve"), ("stew", "steward", "serve")} <= by_role, serve.log
    assert {("ana", "analyst", "api"), ("stew", "steward", "api")} <= by_role
    prepared = sorted(r["rows"] for r in records if r["statement"] == PREPARED.replace("%s", "$1"))
    assert prepared == [1, 2, 3], [r["statement"] for r in records]
    join = [r for r in records if r["statement"] == JOIN]
    assert join and join[0]["rows"] == 1 and join[0]["status"] == "ok"
    assert any(r["status"] == "error" and "read_parquet" in r["statement"] for r in records)
    for role in ("analyst", "steward"):
        tables = rows(warehouse, "select table_schema || '.' || table_name "
                      "from information_schema.tables", role)  # fmt: skip
        assert not [t for (t,) in tables if "audit" in t]


def test_the_key_is_in_no_file_under_the_warehouse(warehouse: Settings) -> None:
    keys = list(Path(os.environ["XDG_CONFIG_HOME"], "wh", "keys").glob("*.key"))
    state = open_state(warehouse)
    try:
        key_file = Path(os.environ["XDG_CONFIG_HOME"], "wh", "keys", f"{state.warehouse_id()}.key")
    finally:
        state.close()
    assert key_file in keys
    secret = key_file.read_text().strip()
    assert len(secret) >= 32 and warehouse.warehouse not in key_file.parents
    for path in warehouse.warehouse.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and bytes.fromhex(secret) not in data, path


def test_clear_files_are_for_wh_s_user_only(warehouse: Settings) -> None:
    state = open_state(warehouse)
    try:
        head = state.head("prod")
        assert head is not None
        tagged = state.get_version(head.mapping["checks.customers"])
        untagged = state.get_version(head.mapping["features.demand"])
    finally:
        state.close()
    assert tagged is not None and untagged is not None
    mode = lambda path: os.stat(path).st_mode & 0o777  # noqa: E731
    assert {mode(f) for f in tagged.files} == {0o600}
    assert all(mode(f) & 0o044 for f in untagged.files)  # the umask's: readable by others
    assert mode(pointer_path(warehouse, "prod", STEWARD).resolve()) == 0o600
    assert mode(pointer_path(warehouse, "prod").resolve()) & 0o044


def _scan(warehouse: Path, ids: list[str]) -> list[str]:
    """Every Parquet file's every value (as text), and the bytes of every other file under
    the warehouse, checked for each id: what a grep would find, and more."""
    found = []
    con = duckdb.connect()
    for path in sorted(p for p in warehouse.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            columns = [c for (c,) in con.execute(
                f"select name from parquet_schema('{path}') where num_children is null"
            ).fetchall()]  # fmt: skip
            texts = " || '|' || ".join(f"coalesce(cast(\"{c}\" as varchar), '')" for c in columns)
            hits = con.execute(
                f"select count(*) from read_parquet('{path}') "
                f"where list_has_any(regexp_extract_all({texts}, 'cust-[0-9]+'), ?)",
                [ids],
            ).fetchone()
            if hits and hits[0]:
                found.append(f"{path}: {hits[0]} rows")
        data = path.read_bytes()
        found += [f"{path}: bytes {i}" for i in ids if i.encode() in data]
    con.close()
    return found


def test_erasure_reaches_every_version_and_survives_rollback(
    tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path
) -> None:
    settings = _project(tmp_path_factory.mktemp("erasure"), forecast_sources)
    build(settings)
    forecast(settings, models=["naive"])
    before = {
        table: rows(settings, f"select * from {table}")
        for table in ("staging.customers", "staging.orders", "features.demand",
                      "forecast.customer_propensity")
    }  # fmt: skip
    assert {r[0] for r in before["staging.customers"]} >= set(ERASED)
    erased_orders = [r for r in before["staging.orders"] if r[1] in ERASED]
    assert erased_orders
    state = open_state(settings)
    try:
        publish_before = state.head("prod")
    finally:
        state.close()
    assert publish_before is not None
    # a steward looked one of them up: the audit log quotes the id
    with _api(settings) as url:
        looked_up = httpx.get(
            f"{url}/customers/{ERASED[0]}/propensity", auth=("stew", "stew-secret")
        )
        assert looked_up.status_code == 200
    found = _scan(settings.warehouse, ERASED)  # the scan finds them before the request
    assert any("audit.db: bytes" in f for f in found), found
    pl.DataFrame(
        {"customer_id": ERASED, "requested_at": ["2024-01-01", "2024-01-02", "2024-01-02"]}
    ).with_columns(pl.col("requested_at").str.to_date()).write_parquet(
        settings.sources / "erasures.parquet"
    )
    with pytest.raises(UsageError, match="erasure requests changed"):
        forecast(settings, models=["naive"])  # would score erased customers again
    result = build(settings)
    assert result.erasure is not None and result.erasure.requests == 3
    assert result.erasure.rows_removed > 0  # propensity history, old versions
    assert _scan(settings.warehouse, ERASED) == []
    after = {table: rows(settings, f"select * from {table}") for table in before}
    # every row of anyone else is unchanged; an erased customer's orders stay as guest orders
    assert sorted(after["staging.customers"], key=repr) == sorted(
        (r for r in before["staging.customers"] if r[0] not in ERASED), key=repr
    )
    kept = [r for r in before["staging.orders"] if r[1] not in ERASED]
    guests = [r for r in after["staging.orders"] if r[0] in {o[0] for o in erased_orders}]
    assert sorted(r for r in after["staging.orders"] if r not in guests) == sorted(kept)
    assert all(r[1] is None and r[6] for r in guests) and len(guests) == len(erased_orders)
    # demand is the same (sums may add in another order: floats to 9 places)
    assert sorted(rounded(after["features.demand"])) == sorted(rounded(before["features.demand"]))
    # the published propensity run was not recomputed: its stored rows lost the erased only
    assert sorted(after["forecast.customer_propensity"], key=repr) == sorted(
        (r for r in before["forecast.customer_propensity"] if r[0] not in ERASED), key=repr
    )
    # doctor and gc verify; the erasure log holds counts, not ids
    doctor = subprocess.run(wh_command(settings, "doctor"), capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert "no file under the warehouse holds one" in doctor.stdout, doctor.stdout
    gc = subprocess.run(wh_command(settings, "gc"), capture_output=True, text=True, timeout=120)
    assert gc.returncode == 0 and "verified" in gc.stdout, gc.stdout + gc.stderr
    state = open_state(settings)
    try:
        (log,) = state.erasures()
    finally:
        state.close()
    assert log["requests"] == 3 and log["first_requested"] == "2024-01-01"
    assert not [v for v in log.values() if isinstance(v, str) and "cust-" in v]
    # a rollback to the publish before the request serves old versions, without the erased
    rollback(settings, publish_before.id)
    back = rows(settings, "select customer_id from checks.customers")
    assert back and not {r[0] for r in back} & set(ERASED)
    assert not rows(
        settings, "select * from forecast.customer_propensity where customer_id in "
        f"({', '.join(repr(e) for e in ERASED)})",
    )  # fmt: skip
    assert _scan(settings.warehouse, ERASED) == []


def test_doctor_finds_a_file_that_holds_an_erased_id(
    tmp_path_factory: pytest.TempPathFactory, tiny_sources: Path
) -> None:
    root = tmp_path_factory.mktemp("planted")
    sources = _distinct_ids(tiny_sources, root / "sources")
    settings = copy_project(root / "project", sources)
    build(settings)
    # a failed build's message quotes a customer id (DuckDB names the value it cannot cast)
    original = (settings.project_dir / "sql/staging/customers.sql").read_text()
    as_int = "select cast(customer_id as int) as customer_id,"
    edit(
        settings,
        "sql/staging/customers.sql",
        lambda sql: sql.replace("select customer_id,", as_int),
    )
    with pytest.raises(WhError) as failed:
        build(settings)
    (customer,) = re.findall(r"cust-[0-9]+", str(failed.value))[:1]
    (settings.project_dir / "sql/staging/customers.sql").write_text(original)
    assert customer.encode() in (settings.warehouse / "state.db").read_bytes()
    state = open_state(settings)
    try:
        head = state.head("prod")
        assert head is not None
        version = state.get_version(head.mapping["checks.customers"])
    finally:
        state.close()
    assert version is not None
    pl.DataFrame({"customer_id": [customer], "requested_at": [None]}).with_columns(
        pl.col("requested_at").cast(pl.Date)
    ).write_parquet(settings.sources / "erasures.parquet")
    build(settings)
    doctor = subprocess.run(wh_command(settings, "doctor"), capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert "no file under the warehouse holds one" in doctor.stdout, doctor.stdout
    assert _scan(settings.warehouse, [customer]) == []  # the state's message was scrubbed
    # a copy of the customer's row left where the purge did not look (made by hand, say)
    target = Path(version.files[0]).parent.parent / "planted" / "x.parquet"
    target.parent.mkdir()
    pl.DataFrame({"customer_id": [customer], "country": ["NL"]}).write_parquet(target)
    doctor = subprocess.run(wh_command(settings, "doctor"), capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert doctor.returncode != 0 and "still holds an erased customer" in doctor.stdout
    assert "planted/x.parquet" in doctor.stdout


def test_a_rotated_key_republishes_new_pseudonyms(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(tmp_path / "project", tiny_sources)
    build(settings)
    query = "select customer_id from staging.customers order by all"
    first = rows(settings, query, "analyst")
    clear = rows(settings, query)
    state = open_state(settings)
    try:
        key_file = Path(os.environ["XDG_CONFIG_HOME"], "wh", "keys", f"{state.warehouse_id()}.key")
    finally:
        state.close()
    key_file.write_text("another key, at least sixteen characters\n")
    # a gc before the next publish keeps the copies the shown catalog reads
    subprocess.run(wh_command(settings, "gc"), check=True, capture_output=True, timeout=120)
    assert rows(settings, query, "analyst") == first
    result = build(settings)  # nothing to compute: the analyst catalog is published again
    assert result.published is not None and result.published.action == "tags"
    second = rows(settings, query, "analyst")
    assert len(second) == len(first) and not set(second) & set(first)
    assert not set(second) & set(clear)
    copies = settings.warehouse / "pseudonymised"
    assert len(list(copies.iterdir())) == 2
    subprocess.run(wh_command(settings, "gc"), check=True, capture_output=True, timeout=120)
    assert len(list(copies.iterdir())) == 1  # the old key's copies are gone
    assert rows(settings, query, "analyst") == second


def test_an_erased_customer_arriving_in_new_orders_is_a_guest(
    tmp_path: Path, tiny_sources: Path
) -> None:
    """Incremental runs after an erasure read the new files through the same filter (the
    `arrived.orders` view), and extend the version computed without the erased customers."""
    settings = copy_project(tmp_path / "project", tiny_sources)
    split_last_day(settings.sources)
    late = pl.read_parquet(settings.sources / ".held-orders.parquet")
    customer = late.filter(pl.col("customer_id").is_not_null())["customer_id"].cast(pl.Utf8)[0]
    build(settings)
    pl.DataFrame({"customer_id": [customer], "requested_at": [None]}).with_columns(
        pl.col("requested_at").cast(pl.Date)
    ).write_parquet(settings.sources / "erasures.parquet")
    first = build(settings)
    assert first.erasure is not None
    actions = {r.plan.model.name: r.plan.action.value for r in first.results}
    assert actions["checks.orders"] == "full"  # never extended over the erased rows
    append_last_day(settings.sources)
    second = build(settings)
    actions = {r.plan.model.name: r.plan.action.value for r in second.results}
    assert actions["checks.orders"] == "incremental"
    assert second.erasure is None  # the same requests: nothing more to purge
    ids = {str(r[0]) for r in rows(settings, "select customer_id from checks.orders")}
    assert customer not in ids
    late_ids = [str(i) for i in late["order_id"].to_list()]
    theirs = late.filter(pl.col("customer_id").cast(pl.Utf8) == customer)["order_id"]
    guests = rows(
        settings,
        "select order_id, customer_id, is_guest from staging.orders where order_id in "
        f"({', '.join(repr(str(i)) for i in theirs.to_list())})",
    )
    assert len(guests) == theirs.len() and all(g[1] is None and g[2] for g in guests)
    assert len(rows(settings, "select 1 from staging.orders where order_id in "
                    f"({', '.join(repr(i) for i in late_ids)})")) > len(guests)  # fmt: skip


def test_python_models_and_arrived_views_read_sources_through_the_same_filter(
    tiny_sources: Path, tmp_path: Path
) -> None:
    """Source.erased_frame (Polars, for Python models) and `arrived.<source>` keep and empty
    what select_sql (the `source.<name>` view) does."""
    shutil.copytree(tiny_sources, tmp_path / "sources")
    customers = pl.read_parquet(tmp_path / "sources" / "customers.parquet")
    erased = customers["customer_id"].cast(pl.Utf8).head(3).to_list()
    pl.DataFrame({"customer_id": erased, "requested_at": [None] * 3}).with_columns(
        pl.col("requested_at").cast(pl.Date)
    ).write_parquet(tmp_path / "sources" / "erasures.parquet")
    sources = load_sources(tmp_path / "sources", ["customers", "orders"])
    con = duckdb.connect()
    for name in ("customers", "orders"):
        source = sources[name]
        assert source.erasures
        by_sql = con.sql(source.select_sql()).pl()
        by_polars = source.erased_frame(pl.scan_parquet(source.files)).collect()
        assert by_sql.sort(by_sql.columns).equals(by_polars.sort(by_polars.columns)), name
        # an incremental model's `arrived.<source>` (the files added since its version)
        engine.view_over_arrived(con, name, source.files, source.select_sql)
        engine.point_arrived(con, name, source.files, source.files)
        by_arrived = con.sql(f"select * from arrived.{name}").pl()
        assert by_sql.sort(by_sql.columns).equals(by_arrived.sort(by_arrived.columns)), name
        raw = pl.read_parquet(source.files)
        hit = raw["customer_id"].cast(pl.Utf8).is_in(erased)
        if name == "customers":
            assert by_sql.height == raw.height - hit.sum()
        else:
            assert by_sql.height == raw.height and by_sql["customer_id"].null_count() == (
                raw["customer_id"].null_count() + hit.sum()
            )


def test_a_rollback_before_the_next_build_applies_new_requests(
    tmp_path: Path, tiny_sources: Path
) -> None:
    sources = _distinct_ids(tiny_sources, tmp_path / "sources")
    settings = copy_project(tmp_path / "project", sources)
    build(settings)
    edit(settings, "sql/staging/customers.sql", lambda sql: sql + "\n-- a second publish\n")
    edit(
        settings,
        "sql/checks/customers.sql",
        lambda sql: sql.replace("segment,", "segment, 1 as s,", 1),
    )
    build(settings)
    (customer,) = rows(settings, "select customer_id from staging.customers order by 1 limit 1")[0]
    pl.DataFrame({"customer_id": [customer], "requested_at": [None]}).with_columns(
        pl.col("requested_at").cast(pl.Date)
    ).write_parquet(settings.sources / "erasures.parquet")
    rollback(settings)  # to the first publish, whose versions hold the customer
    assert rows(
        settings, f"select count(*) from checks.customers where customer_id = '{customer}'"
    ) == [(0,)]
    assert _scan(settings.warehouse, [customer]) == []
    assert build(settings).erasure is None  # applied already; the build computes the models again
    assert rows(
        settings, f"select count(*) from staging.customers where customer_id = '{customer}'"
    ) == [(0,)]
