"""Table lineage from the DAG and column lineage from sqlglot, across models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from warehouse.errors import UsageError
from warehouse.project.loader import SOURCE_SCHEMA, Project
from warehouse.project.model import DIALECT
from warehouse.runtime.sources import find_source
from warehouse.runtime.state import State

Schema = dict[str, dict[str, dict[str, str]]]


@dataclass
class ColumnNode:
    """A column and the columns it is computed from (empty for a source column)."""

    table: str
    column: str
    inputs: list[ColumnNode] = field(default_factory=list)
    note: str = ""

    def render(self, indent: int = 0) -> list[str]:
        note = f"  ({self.note})" if self.note else ""
        lines = ["  " * indent + f"{self.table}.{self.column}{note}"]
        for child in self.inputs:
            lines += child.render(indent + 1)
        return lines


def table_lineage(project: Project, table: str) -> tuple[list[str], list[str]]:
    """(upstream, downstream) models of `table`, each in DAG order."""
    if table not in project.models:
        raise UsageError(f"unknown model '{table}'", hint="name it as schema.table")
    up, down = project.dag.ancestors(table), project.dag.descendants(table)
    order = project.dag.order
    return [n for n in order if n in up], [n for n in order if n in down]


def lineage_schema(project: Project, state: State, env: str) -> Schema:
    """Column types of the environment's models and of the sources the project reads."""
    head = state.head(env)
    return schema_of(project, state, head.mapping if head else {})


def schema_of(project: Project, state: State, mapping: dict[str, str]) -> Schema:
    """Column types of the versions in `mapping` and of the sources the project reads."""
    from warehouse.runtime.engine import duckdb as engine
    from warehouse.runtime.sources import CONTRACTS, SQL_TYPES

    schema: Schema = {}
    for model, fingerprint in mapping.items():
        version = state.get_version(fingerprint)
        if version:
            name, table = model.split(".", 1)
            schema.setdefault(name, {})[table] = dict(version.columns)
    con = engine.connect_plain()  # the first file's footer: what sqlglot needs to qualify
    try:
        for source in sorted({s for m in project.models.values() for s in m.sources}):
            files = find_source(project.settings.sources, source).files
            if files:
                columns = dict(engine.describe(con, engine.parquet_scan(files[:1])))
            else:  # an optional source that is absent reads as its contract's columns
                contract = CONTRACTS.get(source)
                columns = {c.name: SQL_TYPES[c.kind] for c in contract.columns} if contract else {}
            schema.setdefault(SOURCE_SCHEMA, {})[source] = columns
    finally:
        con.close()
    return schema


def column_lineage(project: Project, table: str, column: str, schema: Schema) -> ColumnNode:
    """Trace `table.column` back through SQL models to source or Python-model columns.

    `schema` maps schema -> table -> column -> type for the tables the models read, so
    sqlglot can resolve unqualified and star columns.
    """
    from sqlglot.lineage import lineage

    model = project.models.get(table)
    if model is None:
        return ColumnNode(table, column, note="source")
    if model.language != "sql":
        return ColumnNode(table, column, note="python model")
    try:
        root = lineage(column, model.query, schema=schema, dialect=DIALECT)
    except Exception as exc:  # sqlglot raises plain errors for unknown columns
        raise UsageError(
            f"cannot trace {table}.{column}: {exc}",
            hint=f'check the column exists: wh sql "describe {table}"',
        ) from None
    node = ColumnNode(table, column)
    for parent, parent_column in dict.fromkeys(read_columns(root)):  # first seen, once each
        node.inputs.append(column_lineage(project, parent, parent_column, schema))
    return node


def read_columns(root: Any) -> list[tuple[str, str]]:
    """The (table, column)s a sqlglot lineage node reads directly: its leaves on tables."""
    from sqlglot import exp

    found: list[tuple[str, str]] = []
    for leaf in root.walk():
        if not isinstance(leaf.source, exp.Table) or leaf.downstream:
            continue
        table = f"{leaf.source.db}.{leaf.source.name}" if leaf.source.db else leaf.source.name
        found.append((table, leaf.name.split(".")[-1]))
    return found
