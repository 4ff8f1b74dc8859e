"""`wh serve` on a network: TLS, SCRAM-SHA-256, databases that are environments, and a log
of what it refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import accepting, copy_project, free_port, need, running

from warehouse.config import Settings
from warehouse.interfaces.serve.auth import Verifier
from warehouse.runtime.build import build


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "server.crt", folder / "server.key"
    subprocess.run(
        [need("openssl", "openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-subj", "/CN=localhost", "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def dsn(port: int, password: str, sslmode: str, database: str = "prod") -> str:
    return (
        f"host=127.0.0.1 port={port} user=wh dbname={database} password={password} "
        f"sslmode={sslmode} connect_timeout=5"
    )


@pytest.fixture(scope="module")
def secure_project(tmp_path_factory: pytest.TempPathFactory, tiny_sources: Path) -> Settings:
    settings = copy_project(tmp_path_factory.mktemp("secure") / "project", tiny_sources)
    build(settings)
    return settings


def test_tls_and_scram_on_a_network_address(
    secure_project: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    # the password as Postgres stores it: wh.toml need not hold the password itself
    monkeypatch.setenv("WH_SERVE_PASSWORD", Verifier.from_password("s3cret").text())
    monkeypatch.setenv("WH_SERVE_TLS_CERT", str(cert))
    monkeypatch.setenv("WH_SERVE_TLS_KEY", str(key))
    port = free_port()
    with running(secure_project, "serve", "--host", "0.0.0.0", "--port", str(port),
                 ready=lambda: accepting(port)):  # fmt: skip
        with psycopg.connect(dsn(port, "s3cret", "require")) as con:
            assert con.pgconn.ssl_in_use
            assert con.execute("select count(*) from staging.products").fetchone() == (12,)
        with pytest.raises(psycopg.OperationalError, match="only TLS"):
            psycopg.connect(dsn(port, "s3cret", "disable"))
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(dsn(port, "wrong", "require"))
        with pytest.raises(psycopg.OperationalError, match='database "dev" does not exist'):
            psycopg.connect(dsn(port, "s3cret", "require", database="dev"))
        done = subprocess.run(
            [need("psql", "postgresql-client"), "-X", "-c", "select current_database()",
             f"host=127.0.0.1 port={port} user=wh dbname=prod sslmode=require"],
            capture_output=True, text=True, timeout=60, env={"PGPASSWORD": "s3cret"},
        )  # fmt: skip
        assert done.returncode == 0 and "prod" in done.stdout, done.stderr


def test_a_network_address_needs_tls_or_an_explicit_opt_out(
    secure_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WH_SERVE_PASSWORD", "s3cret")
    refused = subprocess.run(
        [sys.executable, "-m", "warehouse", "--project", str(secure_project.project_dir),
         "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2 and "without TLS" in refused.stderr


def test_refusals_and_failed_logins_are_logged_with_the_client_address(
    secure_project: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WH_SERVE_PASSWORD", "s3cret")
    port = free_port()
    with running(
        secure_project, "serve", "--port", str(port), ready=lambda: accepting(port)
    ) as served:
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn(port, "wrong", "disable"))
        with (
            psycopg.connect(dsn(port, "s3cret", "disable"), autocommit=True) as con,
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        ):
            con.execute("delete from staging.products")
    err = served.log
    assert 'password authentication failed for user "wh"' in err and "127.0.0.1:" in err
    assert "refused statement" in err and "delete from staging.products" in err
