"""The session's transaction state, settings and result paging, without a connection."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from warehouse.interfaces.serve import session
from warehouse.interfaces.serve.rows import encode_rows_slow
from warehouse.interfaces.serve.settings import SessionSettings
from warehouse.interfaces.serve.statements import Statement, StatementError
from warehouse.interfaces.serve.transaction import Transaction, TxStatus


def test_a_failed_block_accepts_only_its_end() -> None:
    tx = Transaction()
    tx.fail()  # outside a block an error changes nothing
    assert tx.status is TxStatus.IDLE
    assert tx.begin() and not tx.begin()  # a second BEGIN only warns
    tx.fail()
    assert tx.status is TxStatus.FAILED
    with pytest.raises(StatementError) as caught:
        tx.check("query")
    assert caught.value.code == "25P02"
    tx.check("rollback_to")
    tx.rollback_to_savepoint()
    assert tx.status is TxStatus.IN_BLOCK
    tx.fail()
    assert tx.end("commit") == "ROLLBACK"  # COMMIT of a failed block rolls back
    assert tx.status is TxStatus.IDLE
    assert tx.begin() and tx.end("commit") == "COMMIT"


def test_settings_report_what_clients_track() -> None:
    settings = SessionSettings("ana", {"application_name": "psql", "TimeZone": "Europe/Rome"})
    startup = b"".join(settings.startup_messages())
    assert b"application_name\0psql\0" in startup and b"TimeZone\0Europe/Rome\0" in startup
    assert b"session_authorization\0ana\0" in startup and b"search_path" not in startup
    assert settings.set("datestyle", "ISO, DMY") != []  # tracked: a ParameterStatus
    assert settings.set("search_path", "public") == []
    settings.reset("datestyle")
    assert settings.get("datestyle") == "ISO, MDY" and settings.get("search_path") == "public"
    settings.reset("all")
    assert settings.get("search_path") == '"$user", public'


def _portal(batches: list[pa.RecordBatch]) -> session.Portal:
    portal = session.Portal(session.Prepared(Statement("select", "query"), []), [])
    portal.batches = iter(batches)
    return portal


def test_small_batches_go_out_together_and_a_row_limit_splits_one() -> None:
    """A selective scan yields a batch per row group: they are joined before encoding, and
    a client paging with a row limit gets exactly that many, the rest on its next Execute."""
    values = [[f"r{i}-{j}" for j in range(n)] for i, n in enumerate((3, 0, 4, 2))]
    batches = [pa.RecordBatch.from_arrays([pa.array(v, pa.string())], ["a"]) for v in values]
    every = [(v,) for part in values for v in part]
    portal = _portal(batches)
    first = session._take_rows(portal, 5)
    assert first == encode_rows_slow(every[:5]) and portal.sent == 5
    rest = session._take_rows(portal, None)
    assert rest == encode_rows_slow(every[5:]) and portal.sent == len(every)
    assert session._take_rows(portal, None) is None and portal.batches is None


def test_the_public_duckdb_path_streams_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    con = duckdb.connect()
    query = "select i, i::varchar as s from range(5) t(i) where i > $1"
    fast = [b.to_pylist() for b in session._arrow_stream(con, query, [1])]
    monkeypatch.setattr(session, "_SUBMIT", None)
    public = [b.to_pylist() for b in session._arrow_stream(con, query, [1])]
    assert fast == public and sum(map(len, fast)) == 3
