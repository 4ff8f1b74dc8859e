"""The session's transaction block state, as Postgres reports it in ReadyForQuery."""

from __future__ import annotations

from enum import StrEnum

from warehouse.interfaces.serve.statements import StatementError


class TxStatus(StrEnum):
    IDLE = "I"  # no transaction block: each statement sees the current publish
    IN_BLOCK = "T"  # BEGIN ... : the block keeps the publish it started on
    FAILED = "E"  # an error inside the block: only COMMIT/ROLLBACK are accepted


# what a failed block still accepts
ENDS_A_BLOCK = frozenset({"commit", "rollback", "rollback_to"})


class Transaction:
    def __init__(self) -> None:
        self.status = TxStatus.IDLE

    @property
    def in_block(self) -> bool:
        return self.status is not TxStatus.IDLE

    def check(self, kind: str) -> None:
        """Refuse a statement of `kind` in a failed block, as Postgres does."""
        if self.status is TxStatus.FAILED and kind not in ENDS_A_BLOCK:
            raise StatementError(
                "25P02",
                "current transaction is aborted, commands ignored until end of transaction block",
            )

    def begin(self) -> bool:
        """Start a block; False if one is open already (Postgres only warns)."""
        if self.status is not TxStatus.IDLE:
            return False
        self.status = TxStatus.IN_BLOCK
        return True

    def end(self, kind: str) -> str:
        """COMMIT or ROLLBACK; the command tag to send (a failed block only rolls back)."""
        tag = "ROLLBACK" if kind == "rollback" or self.status is TxStatus.FAILED else "COMMIT"
        self.status = TxStatus.IDLE
        return tag

    def rollback_to_savepoint(self) -> None:
        if self.status is TxStatus.FAILED:
            self.status = TxStatus.IN_BLOCK

    def fail(self) -> None:
        """An error: a block is now failed; outside a block nothing changes."""
        if self.status is TxStatus.IN_BLOCK:
            self.status = TxStatus.FAILED
