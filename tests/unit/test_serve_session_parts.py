"""The session's transaction state and settings, without a connection."""

from __future__ import annotations

import pytest

from warehouse.interfaces.serve.settings import SessionSettings
from warehouse.interfaces.serve.statements import StatementError
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
