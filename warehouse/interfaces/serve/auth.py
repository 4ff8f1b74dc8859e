"""Password authentication: SCRAM-SHA-256 (RFC 5802 / 7677, Postgres' default), so the
password never crosses the network, not even hashed the same way twice.

Passwords come from wh.toml or the environment in clear text, or as a Postgres SCRAM
verifier (`SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, what `pg_authid` stores),
so wh.toml need not hold the password itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

ITERATIONS = 4096
MECHANISM = "SCRAM-SHA-256"


class AuthFailed(Exception):
    """The client's proof does not match, or its messages are not SCRAM."""


@dataclass(frozen=True)
class Verifier:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes

    @classmethod
    def from_password(cls, password: str, salt: bytes | None = None) -> Verifier:
        salt = salt or secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, ITERATIONS)
        client_key = _hmac(salted, b"Client Key")
        return cls(
            salt, ITERATIONS, hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")
        )

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """A clear-text password, or a stored SCRAM verifier."""
        if not text.startswith(f"{MECHANISM}$"):
            return cls.from_password(text)
        try:
            _, rest = text.split("$", 1)
            head, keys = rest.split("$", 1)
            iterations, salt = head.split(":", 1)
            stored, server = keys.split(":", 1)
            return cls(
                base64.b64decode(salt),
                int(iterations),
                base64.b64decode(stored),
                base64.b64decode(server),
            )
        except ValueError as exc:
            raise ValueError(f"not a SCRAM-SHA-256 verifier: {exc}") from None

    def matches(self, password: str) -> bool:
        """Whether a clear-text password is this verifier's (HTTP Basic in `wh api`)."""
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), self.salt, self.iterations)
        stored = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        return hmac.compare_digest(stored, self.stored_key)

    def text(self) -> str:
        b64 = base64.b64encode
        return (
            f"{MECHANISM}${self.iterations}:{b64(self.salt).decode()}$"
            f"{b64(self.stored_key).decode()}:{b64(self.server_key).decode()}"
        )


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _fields(message: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in message.split(",") if "=" in part)


class ScramExchange:
    """The server's side of one SCRAM-SHA-256 exchange."""

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""

    def first(self, client_first: str) -> str:
        """client-first-message -> server-first-message."""
        header, _, bare = client_first.partition(",,")
        if not bare or header[:1] not in ("n", "y"):  # no channel binding offered by us
            raise AuthFailed("unsupported SCRAM header (channel binding is not offered)")
        client_nonce = _fields(bare).get("r")
        if not client_nonce:
            raise AuthFailed("SCRAM client-first-message without a nonce")
        self.client_first_bare = bare
        self.nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode()
        salt = base64.b64encode(self.verifier.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={self.verifier.iterations}"
        return self.server_first

    def final(self, client_final: str) -> str:
        """client-final-message -> server-final-message; AuthFailed if the proof is wrong."""
        without_proof, _, proof_field = client_final.rpartition(",p=")
        fields = _fields(without_proof)
        if fields.get("r") != self.nonce or not proof_field:
            raise AuthFailed("SCRAM nonce mismatch")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        signature = _hmac(self.verifier.stored_key, auth_message)
        proof = base64.b64decode(proof_field)
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != len(signature) or not hmac.compare_digest(
            hashlib.sha256(client_key).digest(), self.verifier.stored_key
        ):
            raise AuthFailed("wrong password")
        server_signature = _hmac(self.verifier.server_key, auth_message)
        return "v=" + base64.b64encode(server_signature).decode()
