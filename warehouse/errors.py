"""One error hierarchy for everything wh tells a user.

    WhError                      exit code 1 unless a subclass says otherwise
    ├── UsageError               bad command-line input (exit 2)
    ├── ConfigError(path, line)  wh.toml or WH_* variables (exit 2)
    ├── ModelError(path, line, column)
    │   ├── DagCycleError(cycle)
    │   └── UnknownTableError(table)
    ├── SourceError(path, column)
    ├── BuildError(model)        a model failed to compute
    │   └── AuditError(model, audit, count, sql)
    ├── StateError               the warehouse's own catalog is missing or inconsistent
    └── BusyError(pid)           another wh process holds the warehouse

Every message says what went wrong, where, and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class WhError(Exception):
    """Root of every error wh raises at a user."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(WhError):
    """The command line asked for something that cannot be done."""

    exit_code = 2


class ConfigError(WhError):
    """wh.toml or a WH_* environment variable is invalid."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        path: Path | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        where = f"{path}:{line}: " if path and line else f"{path}: " if path else ""
        super().__init__(f"{where}{message}", hint)


class ModelError(WhError):
    """A model file is invalid: bad header, SQL that does not parse, bad references."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f":{line}"
                if column is not None:
                    where += f":{column}"
            where += ": "
        super().__init__(f"{where}{message}", hint)


class DagCycleError(ModelError):
    """Models depend on each other in a loop."""

    def __init__(
        self,
        cycle: list[str],
        path: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.cycle = cycle
        super().__init__(
            "dependency cycle: " + " -> ".join(cycle),
            path,
            line,
            column,
            hint="a model cannot read its own descendants; move the shared logic into a new "
            "upstream model and have both read it",
        )


class UnknownTableError(ModelError):
    """A model reads a table that is neither a model nor a source."""

    def __init__(
        self, table: str, path: Path | str, line: int | None, column: int | None, hint: str
    ) -> None:
        self.table = table
        super().__init__(f"unknown table '{table}'", path, line, column, hint)


class SourceError(WhError):
    """A source file is missing, unreadable or breaks the source contract."""

    def __init__(
        self,
        message: str,
        path: Path | str | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = path
        self.column = column
        where = f"{path}: " if path else ""
        col = f"column '{column}': " if column else ""
        super().__init__(f"{where}{col}{message}", hint)


class BuildError(WhError):
    """A model failed while computing; nothing was published."""

    def __init__(self, message: str, model: str, hint: str | None = None) -> None:
        self.model = model
        super().__init__(f"{model}: {message}", hint)


class AuditError(BuildError):
    """A new model version failed an audit; nothing was published."""

    def __init__(self, model: str, audit: str, count: int, sql: str) -> None:
        self.audit = audit
        self.count = count
        self.sql = sql
        super().__init__(
            f"audit {audit} failed: {count} offending row(s)",
            model,
            hint=f'inspect them with: wh sql "{sql}" after fixing the model or its inputs; '
            "the published tables were left unchanged",
        )


class StateError(WhError):
    """The warehouse's own catalog is missing or inconsistent."""


class BusyError(WhError):
    """Another wh process is writing to this warehouse."""

    def __init__(self, pid: int | None, path: Path) -> None:
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"warehouse is busy ({who} holds {path})",
            hint="wait for that build to finish; a lock left by a killed process is released "
            "automatically",
        )
