"""Personal-data tags: declared on source contract columns and in model headers
(`-- pii: <column> direct|quasi|none: reason`), propagated through column lineage.

A model column computed from a tagged column carries the strongest tag of what it is
computed from (direct > quasi), unless the model declares the column `none` with a reason
(an aggregate that no longer describes a person) or a tag of its own. SQL models are traced
one step at a time with sqlglot's column lineage (so a `none` in the middle stops the tag);
a Python model's column carries the tag of a same-named column of its inputs (its code is not
traced). A column whose SQL cannot be traced is treated like a Python model's, and says so.
A declared tag (`direct`, `quasi`) stands over an inherited one: the model's author says
what the column is (a per-customer score is quasi, not the id it was computed with).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warehouse.project.loader import SOURCE_SCHEMA, Project
from warehouse.project.model import DIALECT, Model
from warehouse.runtime import produced
from warehouse.runtime.lineage import read_columns
from warehouse.runtime.sources import CONTRACTS

RANK = {"quasi": 1, "direct": 2}
Schema = dict[str, dict[str, dict[str, str]]]


@dataclass(frozen=True)
class Tag:
    """A column's personal-data tag and where it comes from."""

    table: str
    column: str
    level: str  # direct | quasi
    origins: tuple[str, ...]  # the tagged columns it is computed from (source or declared)
    declared: bool = False  # the model (or the source contract) says so itself
    note: str = ""


@dataclass
class PiiReport:
    tags: dict[tuple[str, str], Tag] = field(default_factory=dict)
    # columns a model declared `none` although computed from tagged columns, with the reason
    cleared: dict[tuple[str, str], str] = field(default_factory=dict)

    def of(self, table: str, column: str) -> Tag | None:
        return self.tags.get((table, column))

    def ordered(self) -> list[Tag]:
        return [self.tags[k] for k in sorted(self.tags)]


def source_tags() -> dict[tuple[str, str], str]:
    """(source.<name>, column) -> level, from the source contract."""
    return {
        (f"{SOURCE_SCHEMA}.{name}", c.name): c.pii
        for name, contract in CONTRACTS.items()
        for c in contract.columns
        if c.pii
    }


STAR = re.compile(r"(select|distinct|,)\s*(\w+\.)?\*", re.IGNORECASE)


def _may_read(query: str, columns: set[str]) -> bool:
    """Whether a query can compute anything from these columns: it names one of them, or
    selects `*` (sqlglot's lineage costs ~20 ms a column; most models name none)."""
    if not columns or STAR.search(query):
        return bool(columns)
    words = set(re.findall(r"[a-z_][a-z0-9_]*", query.lower()))
    return any(c.lower() in words for c in columns)


def _traced(model: Model, schema: dict[str, Any]) -> tuple[Any, Any] | None:
    """The model's query qualified once, and its scope: lineage per column reuses them."""
    import sqlglot
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import build_scope

    try:
        expression = qualify(
            sqlglot.parse_one(model.query, dialect=DIALECT),
            schema=schema,
            dialect=DIALECT,
            validate_qualify_columns=False,
            identify=False,
        )
        return expression, build_scope(expression)
    except Exception:  # sqlglot raises plain errors on what it cannot qualify
        return None


def _sql_parents(
    traced: tuple[Any, Any], column: str, schema: dict[str, Any]
) -> list[tuple[str, str]] | None:
    """The (table, column)s one step up that `column` is computed from (None: untraceable)."""
    from sqlglot.lineage import lineage

    expression, scope = traced
    try:
        root = lineage(column, expression, schema=schema, dialect=DIALECT, scope=scope, copy=False)
    except Exception:
        return None
    return read_columns(root)


def pii_report(project: Project, schema: Schema) -> PiiReport:
    """Every tagged column of the project's models (and of the sources they read), given the
    columns of what the environment publishes (`lineage.lineage_schema`)."""
    report = PiiReport()
    declared = dict(source_tags())
    for table, tagged in produced.PII.items():  # forecast tables the environment serves
        schema_name, table_name = table.split(".", 1)
        if table_name in schema.get(schema_name, {}):
            declared.update({(table, c): level for c, level in tagged.items()})
    for (table, column), level in declared.items():
        report.tags[(table, column)] = Tag(table, column, level, (f"{table}.{column}",), True)
    for model in project.ordered():
        schema_name, table_name = model.name.split(".", 1)
        columns = list(schema.get(schema_name, {}).get(table_name, {}))
        own = {c: (level, reason) for c, level, reason in model.pii}
        inputs = sorted(model.depends_on | {f"{SOURCE_SCHEMA}.{s}" for s in model.sources})
        tagged_inputs = {(t, c) for (t, c) in report.tags if t in inputs or t in model.produced}
        if model.language == "sql" and not _may_read(model.query, {c for _, c in tagged_inputs}):
            tagged_inputs = set()  # no tagged column is named or starred: nothing to trace
        traced = _traced(model, schema) if model.language == "sql" and tagged_inputs else None
        for column in columns:
            parents: list[tuple[str, str]] = []
            note = ""
            if tagged_inputs:
                traced_parents = _sql_parents(traced, column, schema) if traced else None
                if traced_parents is None:  # Python code, or SQL sqlglot cannot trace
                    parents = [(t, c) for (t, c) in tagged_inputs if c == column]
                    note = "same-named input column" if parents else ""
                else:
                    parents = traced_parents
            tags = [report.tags[p] for p in parents if p in report.tags]
            level, reason = own.get(column, ("", ""))
            if level == "none":
                if tags:
                    report.cleared[(model.name, column)] = reason
                continue
            origins = tuple(sorted({o for t in tags for o in t.origins}))
            inherited = max((t.level for t in tags), key=RANK.__getitem__, default="")
            if level:  # the model's own word stands (e.g. quasi for a score of a person)
                report.tags[(model.name, column)] = Tag(
                    model.name, column, level, origins or (f"{model.name}.{column}",), True, reason
                )
            elif inherited:
                report.tags[(model.name, column)] = Tag(
                    model.name, column, inherited, origins, False, note
                )
    return report


# tags by key, for this process: keys are content hashes, so a process that builds several
# warehouses of one project (tests, notebooks) traces its lineage once
_SEEN: dict[str, dict[str, str]] = {}


def _shared_cache() -> Path:
    """Tags by key for every warehouse of this user (`~/.cache/wh/pii-tags.json`): a new
    warehouse or environment of a project traced elsewhere needs no lineage (~0.4 s). It
    holds column names and levels only, never data."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "wh" / "pii-tags.json"


def _read_shared(keys: list[str]) -> dict[str, dict[str, str]]:
    try:
        known = json.loads(_shared_cache().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: dict(known[k]) for k in keys if isinstance(known.get(k), dict)}


def _write_shared(tags: dict[str, dict[str, str]]) -> None:
    path = _shared_cache()
    try:
        known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if not isinstance(known, dict) or len(known) > 10_000:
            known = {}  # unreadable or grown large: start again
        known.update(tags)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps(known), encoding="utf-8")
        os.replace(partial, path)  # concurrent writers: the last one wins, both are right
    except (OSError, ValueError):
        pass  # a cache: a read-only home only costs the lineage next time


def _tag_keys(project: Project, state: Any, mapping: dict[str, str]) -> dict[str, str]:
    """Per published model, what its tags depend on: its logic (logic_fp: the query and every
    upstream query), its columns, its and its ancestors' `-- pii:` lines, the produced tables
    it reads and the source contract's tags. New data alone keeps every key."""
    import hashlib
    import json

    sources = json.dumps(sorted(source_tags().items()))
    keys: dict[str, str] = {}
    for model in project.ordered():
        version = state.get_version(mapping[model.name]) if model.name in mapping else None
        if version is None:
            continue
        parts = [
            sources,
            version.logic_fp,
            json.dumps(version.columns),
            json.dumps(sorted(model.pii)),
            json.dumps(sorted(model.produced)),
            *(keys.get(parent, parent) for parent in sorted(model.depends_on)),
        ]
        keys[model.name] = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]
    return keys


def record_tags(project: Project, state: Any, mapping: dict[str, str]) -> bool:
    """Tag the versions `mapping` publishes (state.version_pii), for the catalogs to
    pseudonymise; whether any version's tags changed. Run at every publish that a build
    makes: a `-- pii:` line is not part of a fingerprint, and the latest word on what is
    personal data applies to every version still published. Lineage is traced (sqlglot)
    only when some model's tag key is new: new data alone reuses the recorded tags."""
    keys = _tag_keys(project, state, mapping)
    cached = {k: _SEEN[k] for k in keys.values() if k in _SEEN}
    if len(cached) < len(keys):
        cached = state.cached_tags(list(keys.values()))
    if len(cached) < len(keys):
        cached = _read_shared(list(keys.values()))
        if len(cached) == len(keys):
            state.cache_tags(cached)
    if len(cached) < len(keys):
        from warehouse.runtime.lineage import schema_of

        report = pii_report(project, schema_of(project, state, mapping))
        computed: dict[str, dict[str, str]] = {name: {} for name in keys}
        for (table, column), tag in report.tags.items():
            if table in computed:
                computed[table][column] = tag.level
        cached = {keys[name]: columns for name, columns in computed.items()}
        state.cache_tags(cached)
        _write_shared(cached)
    _SEEN.update(cached)
    tags: dict[str, dict[str, str]] = {fp: {} for fp in mapping.values()}
    for name, key in keys.items():
        tags[mapping[name]] = dict(cached[key])
    for table, columns in produced.PII.items():  # forecast tables the environment serves
        if table in mapping:
            tags[mapping[table]] = dict(columns)
    changed: bool = state.set_pii(tags)
    return changed
