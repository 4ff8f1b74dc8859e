"""The SCRAM-SHA-256 exchange against RFC 7677's test vector, and the stored verifier."""

from __future__ import annotations

import base64

import pytest

from warehouse.interfaces.serve import auth
from warehouse.interfaces.serve.auth import AuthFailed, ScramExchange, Verifier

# RFC 7677 section 3: user "user", password "pencil"
SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
CLIENT_FIRST = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
CLIENT_FINAL = (
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SERVER_FINAL = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_exchange(monkeypatch: pytest.MonkeyPatch) -> ScramExchange:
    verifier = Verifier.from_password("pencil", SALT)
    exchange = ScramExchange(verifier)
    # the RFC's server nonce: the exchange appends its own random part to the client's
    monkeypatch.setattr(auth.secrets, "token_bytes", lambda n: b"")
    first = exchange.first(CLIENT_FIRST)
    exchange.nonce = "rOprNGfwEbeRWgbNEkqO" + SERVER_NONCE
    exchange.server_first = f"r={exchange.nonce},s={base64.b64encode(SALT).decode()},i=4096"
    assert first.startswith("r=rOprNGfwEbeRWgbNEkqO")
    return exchange


def test_the_rfc_7677_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rfc_exchange(monkeypatch).final(CLIENT_FINAL) == SERVER_FINAL


def test_a_wrong_proof_or_nonce_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AuthFailed, match="wrong password"):
        rfc_exchange(monkeypatch).final(CLIENT_FINAL[:-8] + "AAAAAAA=")
    with pytest.raises(AuthFailed, match="nonce"):
        rfc_exchange(monkeypatch).final(CLIENT_FINAL.replace("rOpr", "xOpr"))


def test_a_stored_verifier_round_trips() -> None:
    verifier = Verifier.from_password("pencil", SALT)
    assert Verifier.parse(verifier.text()) == verifier
    assert verifier.text().startswith("SCRAM-SHA-256$4096:")
