"""Model values, header directives and the inputs of a model's fingerprint.

A SQL model's header is its leading block of `--` comment lines. A line `-- key: value` is a
directive; `-- column name: text` documents a column; any other comment line is free text.
This module does no I/O: project.py finds the files and passes their text here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.config import TIME_PARAMETERS
from warehouse.errors import ModelError
from warehouse.project.audit_rules import check_audit

if TYPE_CHECKING:  # sqlglot loads only when a model is parsed (see warehouse.project.cache)
    from sqlglot import exp

DIALECT = "duckdb"
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")
# Schemas wh or DuckDB own; a model folder may not use them.
RESERVED_SCHEMAS = {
    "source", "arrived", "forecast", "main", "wh_meta", "information_schema", "pg_catalog",
    "temp",
}  # fmt: skip
# `wh forecast` publishes into this schema; a model may read those tables (the version the
# environment serves when the build plans), e.g. forecast.demand_forecast_history
PRODUCED_SCHEMA = "forecast"
# What an incremental_by_time model may read besides models and sources: `arrived.<source>`,
# the source's files added since the version the run extends (all files in a full build),
# and `this`, that version's rows (no rows in a full build).
ARRIVED_SCHEMA = "arrived"
THIS = "this"


class ModelKind(StrEnum):
    FULL = "full"
    VIEW = "view"
    INCREMENTAL_BY_TIME = "incremental_by_time"


DIRECTIVES = {
    "kind",
    "time_column",
    "lookback",
    "grain",
    "audits",
    "assert",
    "description",
    "tags",
    "column",
    "pii",
}
# `-- pii: <column> direct|quasi|none[: reason]`: a column's personal-data tag; `none` (which
# stops a tag inherited through lineage) needs its reason
PII_LEVELS = ("direct", "quasi", "none")
PII_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z]+)\s*(?::\s*(.*))?$")


@dataclass(frozen=True)
class AuditSpec:
    """One audit call from a header, e.g. `accepted_values(status, 'a', 'b')`."""

    name: str
    args: tuple[str, ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    # (line, column) of the call in its file, for errors found after parsing (not compared)
    at: tuple[int | None, int | None] = field(default=(None, None), compare=False)

    @property
    def label(self) -> str:
        parts = [*self.args, *(f"{k}={v}" for k, v in self.options)]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class TableRef:
    """A table a query reads, with where it appears in the file."""

    schema: str
    name: str
    line: int | None
    column: int | None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    language: str  # "sql" | "python"
    kind: ModelKind = ModelKind.FULL
    query: str = ""
    normalized: str = ""
    refs: tuple[TableRef, ...] = ()
    parameters: frozenset[str] = frozenset()
    variables: tuple[tuple[str, str], ...] = ()  # project variables the query uses, and values
    depends_on: frozenset[str] = frozenset()
    sources: frozenset[str] = frozenset()
    inputs: tuple[str, ...] = ()
    time_column: str | None = None
    lookback: int = 0
    grain: tuple[str, ...] = ()
    audits: tuple[AuditSpec, ...] = ()
    asserts: tuple[str, ...] = ()
    description: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    # (column, direct|quasi|none, reason): personal-data tags the model declares (metadata:
    # not part of the fingerprint); tags of its inputs propagate through lineage (runtime/pii)
    pii: tuple[tuple[str, str, str], ...] = ()
    func: Callable[..., Any] | None = field(default=None, compare=False, repr=False)
    arrived: frozenset[str] = frozenset()  # sources read as arrived.<name>
    produced: frozenset[str] = frozenset()  # tables `wh forecast` publishes that it reads
    reads_this: bool = False  # reads `this`, the version an incremental run extends
    output_names: tuple[str, ...] = ()  # the query's column names (known when reads_this)
    # a Python model's group column: where it runs on Spark, not what it computes (so it is
    # not part of the fingerprint)
    partition_by: str | None = None

    @property
    def schema(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def table(self) -> str:
        return self.name.split(".", 1)[1]

    @property
    def parents(self) -> frozenset[str]:
        return self.depends_on

    def data_hash(self) -> str:
        """Hash of everything that changes the model's data. Metadata (description, column
        docs, audits, tags) is left out on purpose: editing it never rebuilds a table."""
        values = [
            self.language,
            self.kind.value,
            self.normalized,
            self.time_column,
            self.lookback,
            list(self.grain),
            list(self.inputs),
            [list(v) for v in self.variables],
        ]
        return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def check_identifier(value: str, what: str, path: Path | str, line: int | None = None) -> str:
    if not IDENTIFIER.match(value):
        raise ModelError(
            f"invalid {what} '{value}'",
            path,
            line,
            hint="use lower-case letters, digits and underscores, starting with a letter",
        )
    return value


def model_name_from_path(path: Path, sql_dir: Path) -> str:
    """sql/staging/orders.sql -> staging.orders (the first folder is the schema)."""
    rel = path.relative_to(sql_dir)
    if len(rel.parts) < 2:
        raise ModelError(
            "SQL model is not inside a schema folder",
            path,
            hint="put it in sql/<schema>/<name>.sql; the folder names the schema",
        )
    schema, table = rel.parts[0], rel.stem
    check_identifier(schema, "schema name", path)
    check_identifier(table, "model name", path)
    if schema in RESERVED_SCHEMAS:
        raise ModelError(
            f"schema '{schema}' is reserved",
            path,
            hint=f"rename the folder; reserved: {', '.join(sorted(RESERVED_SCHEMAS))}",
        )
    return f"{schema}.{table}"


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split on `sep` outside parentheses and quotes."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


AUDIT_CALL = re.compile(r"^([a-z_][a-z0-9_]*)\s*(?:\((.*)\))?$", re.DOTALL)


def parse_audits(
    text: str, path: Path | str, line: int, column: int | None = None
) -> tuple[AuditSpec, ...]:
    """Parse and check `not_null(a, b), accepted_values(status, 'x', 'y'), row_count(min=1)`.
    `column` is where `text` starts on its line (1-based), when known."""
    specs = []
    searched = 0
    for call in split_top_level(text):
        offset = text.find(call, searched)
        searched = offset + len(call)
        at = column + offset if column is not None and offset >= 0 else None
        found = AUDIT_CALL.match(call)
        if not found:
            raise ModelError(
                f"cannot read audit '{call}'",
                path,
                line,
                at,
                hint="write audits as name(arg, ...), e.g. not_null(order_id)",
            )
        args: list[str] = []
        options: list[tuple[str, str]] = []
        for arg in split_top_level(found.group(2) or ""):
            key, eq, value = arg.partition("=")
            if eq and IDENTIFIER.match(key.strip()):
                options.append((key.strip(), _unquote(value.strip())))
            else:
                args.append(_unquote(arg))
        check_audit(found.group(1), tuple(args), tuple(options), path, line, at)
        specs.append(AuditSpec(found.group(1), tuple(args), tuple(options), (line, at)))
    return tuple(specs)


DIRECTIVE_LINE = re.compile(r"^--\s*([A-Za-z_]+)\s*:\s*(.*)$")
COLUMN_LINE = re.compile(r"^--\s*column\s+([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*)$")


def parse_header(text: str, path: Path | str) -> dict[str, Any]:
    """Read the directives of the leading `--` comment block."""
    found: dict[str, Any] = {"assert": [], "column": [], "pii": []}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("--"):
            break
        column = COLUMN_LINE.match(line)
        if column:
            found["column"].append((column.group(1).lower(), column.group(2).strip()))
            continue
        directive = DIRECTIVE_LINE.match(line)
        if not directive:
            continue
        key, value = directive.group(1).lower(), directive.group(2).strip()
        if key not in DIRECTIVES:
            close = difflib.get_close_matches(key, DIRECTIVES, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else f"known directives: {', '.join(sorted(DIRECTIVES))}"
            )
            raise ModelError(f"unknown directive '{key}'", path, number, hint=hint)
        if key == "assert":
            found["assert"].append(value)
        elif key == "pii":
            found["pii"].append(parse_pii(value, path, number))
        elif key == "audits":  # repeatable, like assert: long lists read better one per line
            start = raw.find(value, raw.find(":")) + 1 if value else None
            found[key] = found.get(key, ()) + parse_audits(value, path, number, start)
        elif key in found:
            raise ModelError(f"directive '{key}' given twice", path, number)
        else:
            found[key] = (value, number)
    return found


def parse_pii(value: str, path: Path | str, line: int | None) -> tuple[str, str, str]:
    """`customer_id direct`, `country quasi`, `orders none: a count, not a person`."""
    found = PII_LINE.match(value)
    level = found.group(2).lower() if found else ""
    if not found or level not in PII_LEVELS:
        raise ModelError(
            f"cannot read the pii tag '{value}'",
            path,
            line,
            hint="write '-- pii: <column> direct', '-- pii: <column> quasi' or "
            "'-- pii: <column> none: <why it is not personal data>'",
        )
    reason = (found.group(3) or "").strip()
    if level == "none" and not reason:
        raise ModelError(
            f"'-- pii: {found.group(1)} none' needs a reason",
            path,
            line,
            hint=f"e.g. '-- pii: {found.group(1)} none: a count over customers, not a person'",
        )
    return found.group(1).lower(), level, reason


def header_config(header: dict[str, Any], path: Path | str) -> dict[str, Any]:
    """Turn raw header values into Model fields, checking each."""
    config: dict[str, Any] = {
        "audits": header.get("audits", ()),
        "asserts": tuple(header["assert"]),
        "columns": tuple(header["column"]),
        "pii": tuple(header.get("pii", ())),
    }
    if "kind" in header:
        value, line = header["kind"]
        try:
            config["kind"] = ModelKind(value.lower())
        except ValueError:
            raise ModelError(
                f"unknown kind '{value}'",
                path,
                line,
                hint=f"use one of: {', '.join(k.value for k in ModelKind)}",
            ) from None
    kind = config.get("kind", ModelKind.FULL)
    if "time_column" in header:
        value, line = header["time_column"]
        config["time_column"] = check_identifier(value.lower(), "time_column", path, line)
    if "lookback" in header:
        value, line = header["lookback"]
        number = re.match(r"^(\d+)\s*(days?)?$", value)
        if not number:
            raise ModelError(
                f"lookback must be a whole number of days, found '{value}'", path, line
            )
        config["lookback"] = int(number.group(1))
    if kind is ModelKind.INCREMENTAL_BY_TIME and "time_column" not in config:
        raise ModelError(
            "kind incremental_by_time needs a time_column directive",
            path,
            header["kind"][1],
            hint="add '-- time_column: <date column>'",
        )
    if kind is not ModelKind.INCREMENTAL_BY_TIME and (
        "time_column" in config or "lookback" in config
    ):
        raise ModelError(
            "time_column and lookback apply only to kind incremental_by_time",
            path,
            (header.get("time_column") or header["lookback"])[1],
        )
    if "grain" in header:
        value, line = header["grain"]
        config["grain"] = tuple(
            check_identifier(c.strip().lower(), "grain column", path, line)
            for c in value.split(",")
        )
    if "description" in header:
        config["description"] = header["description"][0]
    if "tags" in header:
        config["tags"] = tuple(t.strip() for t in header["tags"][0].split(",") if t.strip())
    return config


def _position(sql: str, node: exp.Expression) -> tuple[int | None, int | None]:
    start = node.meta.get("start")
    if start is None:
        return node.meta.get("line"), None
    line_start = sql.rfind("\n", 0, start) + 1
    return sql.count("\n", 0, start) + 1, start - line_start + 1


MISSING_PART = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]*\.(\w+)'>")


def _parse_message(description: str) -> str:
    """sqlglot's wording, made readable for people who never saw its class names."""
    missing = MISSING_PART.search(description)
    return f"incomplete {missing.group(1).upper()} clause" if missing else description


def parse_query(sql: str, path: Path | str) -> exp.Query:
    """Parse exactly one SELECT, with errors that point at file:line:column."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        raise ModelError(
            f"SQL does not parse: {_parse_message(first.get('description', ''))}",
            path,
            first.get("line"),
            first.get("col"),
            hint="fix the SQL at that position",
        ) from None
    if len(statements) != 1:
        raise ModelError(
            f"a model holds exactly one SELECT, found {len(statements)} statements",
            path,
            hint="split it into one file per model",
        )
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise ModelError(
            f"a model must be a SELECT, found {query.key.upper()}",
            path,
            hint="models are read-only queries; wh writes the results",
        )
    return query


def table_refs(query: exp.Query, sql: str) -> tuple[TableRef, ...]:
    """Tables the query reads, without CTE names and table functions (from sqlglot scopes)."""
    from sqlglot import exp
    from sqlglot.optimizer.scope import build_scope

    refs: dict[tuple[str, str], TableRef] = {}
    root = build_scope(query)
    if root is None:
        return ()
    for scope in root.traverse():
        for source in scope.sources.values():
            if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
                continue
            if source.args.get("catalog"):
                continue  # an attached database; not ours to track
            key = (source.db.lower(), source.name.lower())
            if key not in refs:
                line, column = _position(sql, source.args.get("db") or source.this)
                refs[key] = TableRef(key[0], key[1], line, column)
    return tuple(sorted(refs.values(), key=lambda r: (r.line or 0, r.column or 0)))


def normalize_sql(query: exp.Query) -> str:
    """Canonical text: formatting, comments and keyword case do not change it."""
    return query.sql(dialect=DIALECT, normalize=True, comments=False)


def _parameter_position(text: str, name: str) -> tuple[int | None, int | None]:
    """Line and column of the first `$name` in the file (comments may hold one too; the
    parser found it in the query, so the first outside a comment line is the one)."""
    pattern = re.compile(r"\$" + re.escape(name) + r"\b", re.IGNORECASE)
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith("--"):
            continue
        found = pattern.search(line)
        if found:
            return number, found.start() + 1
    return None, None


def parameters(query: exp.Query) -> set[str]:
    from sqlglot import exp

    return {p.name.lower() for p in query.find_all(exp.Placeholder) if p.name}


def sql_model(
    name: str,
    path: Path,
    text: str,
    variables: Mapping[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Model:
    """Build a Model from SQL text (without resolving its references).

    `variables` are the project variables a query may use as `$name` parameters; their
    values join the fingerprint. `config` replaces the header (for SQL generated in Python).
    """
    config = header_config(parse_header(text, path), path) if config is None else config
    query = parse_query(text, path)
    used = parameters(query)
    known = dict(variables or {})
    kind = config.get("kind", ModelKind.FULL)
    unknown = used - TIME_PARAMETERS - set(known)
    if unknown:
        first = sorted(unknown)[0]
        close = difflib.get_close_matches(first, [*known, *TIME_PARAMETERS], n=1)
        available = ", ".join(f"${v}" for v in sorted(known)) or "none"
        raise ModelError(
            f"unknown parameter ${first}",
            path,
            *_parameter_position(text, first),
            hint=(f"did you mean ${close[0]}? " if close else "")
            + f"project variables: {available} ([vars] in wh.toml); $start_date, "
            "$end_date and $incremental in incremental_by_time models",
        )
    if used & TIME_PARAMETERS and kind is not ModelKind.INCREMENTAL_BY_TIME:
        time_parameter = sorted(used & TIME_PARAMETERS)[0]
        raise ModelError(
            f"${time_parameter} is only set for kind incremental_by_time",
            path,
            *_parameter_position(text, time_parameter),
            hint="add '-- kind: incremental_by_time' and '-- time_column: <column>' to the "
            "header, or use a project variable",
        )
    if used and kind is ModelKind.VIEW:
        raise ModelError(
            f"a view cannot take parameters (${sorted(used)[0]})",
            path,
            hint="make it kind full, or compute the value in SQL",
        )
    values = tuple((v, json.dumps(known[v], default=str)) for v in sorted(used - TIME_PARAMETERS))
    refs = table_refs(query, text)
    reads_this, output_names = _incremental_inputs(query, refs, kind, path)
    return Model(
        name=name,
        path=path,
        language="sql",
        query=text.rstrip().rstrip(";"),
        normalized=normalize_sql(query),
        refs=refs,
        parameters=frozenset(used),
        variables=values,
        reads_this=reads_this,
        output_names=output_names,
        **config,
    )


def _incremental_inputs(
    query: exp.Query, refs: tuple[TableRef, ...], kind: ModelKind, path: Path
) -> tuple[bool, tuple[str, ...]]:
    """Whether the query reads `this`, and its column names when it does; `this` and
    `arrived.<source>` are refused outside incremental_by_time models."""
    special = [r for r in refs if r.schema == ARRIVED_SCHEMA or (not r.schema and r.name == THIS)]
    if not special:
        return False, ()
    if kind is not ModelKind.INCREMENTAL_BY_TIME:
        first = special[0]
        raise ModelError(
            f"'{first.qualified}' is only set in incremental_by_time models",
            path,
            first.line,
            first.column,
            hint="it names what an incremental run adds (arrived.<source>) or extends (this); "
            "read source.<name> or the model's own inputs instead",
        )
    this = next((r for r in special if not r.schema), None)
    if this is None:
        return False, ()
    names = tuple(query.named_selects)
    if not names or any(not n or n == "*" for n in names):
        raise ModelError(
            "a model that reads `this` names every column it returns (no select *)",
            path,
            this.line,
            this.column,
            hint="list the columns in the final select: in a full build `this` is empty, "
            "with those columns",
        )
    return True, names
