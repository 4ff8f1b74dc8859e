"""Plan a build: fingerprint every model and compare with what the environment serves."""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.project.dag import select
from warehouse.project.loader import Project, load_project
from warehouse.project.model import PRODUCED_SCHEMA, Model, ModelKind
from warehouse.runtime import produced as produced_tables
from warehouse.runtime.sources import ERASURE_ENTRY, Source, load_sources
from warehouse.runtime.state import Publish, State, Version, open_state

# the kind of versions that commands other than build write (forecast tables)
PRODUCED = "produced"


class Change(StrEnum):
    NEW = "new"
    CHANGED = "changed"  # the model's own SQL/code/config changed
    INDIRECT = "indirect"  # an upstream model or source data changed
    UNCHANGED = "unchanged"


class Action(StrEnum):
    FULL = "full"  # compute the whole table
    INCREMENTAL = "incremental"  # compute only new periods, reuse the rest
    VIEW = "view"  # create the view, nothing to compute
    REUSE = "reuse"  # the version exists already: publish it, compute nothing
    KEEP = "keep"  # not selected: keep what the environment serves


@dataclass(frozen=True)
class ModelPlan:
    model: Model
    fingerprint: str
    logic_fp: str
    change: Change
    action: Action
    current: Version | None = None
    previous: Version | None = None  # the version an incremental build extends
    diff: str = ""
    source_files: tuple[str, ...] = ()  # every source file upstream (Source.file_stats)
    reason: str = ""  # why an incremental model is computed in full
    # the earliest time in rows of a produced table (forecast.*) added since the version an
    # incremental run extends: the run's window starts there if that is before its lookback
    window_from: date | None = None

    @property
    def computes(self) -> bool:
        return self.action in (Action.FULL, Action.INCREMENTAL, Action.VIEW)


@dataclass(frozen=True)
class Plan:
    env: str
    models: list[ModelPlan]
    sources: dict[str, Source]
    head: Publish | None
    removed: list[str] = field(default_factory=list)
    # tables written by other commands (wh forecast), served on beside the models
    produced: dict[str, str] = field(default_factory=dict)

    @property
    def mapping(self) -> dict[str, str]:
        return {**self.produced, **{p.model.name: p.fingerprint for p in self.models}}

    @property
    def to_compute(self) -> list[ModelPlan]:
        return [p for p in self.models if p.computes]

    @property
    def publishes_something(self) -> bool:
        return self.head is None or self.head.mapping != self.mapping

    def to_json(self) -> dict[str, object]:
        return {
            "env": self.env,
            "models": [
                {
                    "model": p.model.name,
                    "change": p.change.value,
                    "action": p.action.value,
                    "fingerprint": p.fingerprint,
                    "current": p.current.fingerprint if p.current else None,
                    "diff": p.diff,
                    "reason": p.reason,
                    # files read as arrived.<source> (every file when computed in full)
                    "arrived": {
                        source: list(files)
                        for source, files in arrived_files(p, self.sources).items()
                    }
                    if p.action in (Action.FULL, Action.INCREMENTAL)
                    else {},
                }
                for p in self.models
            ],
            "removed": self.removed,
            "compute": [p.model.name for p in self.to_compute],
            "publish": self.publishes_something,
        }


def arrived_files(item: ModelPlan, sources: Mapping[str, Source]) -> dict[str, tuple[str, ...]]:
    """For each source the model reads as arrived.<name>: the files added since the version an
    incremental run extends, or every file when the model is computed in full. Exact because
    a version is only extended when its source files were only added to (`_full_because`)."""
    seen = None
    if item.action is Action.INCREMENTAL and item.previous is not None:
        seen = set(item.previous.source_files or ())
    found: dict[str, tuple[str, ...]] = {}
    for name in sorted(item.model.arrived):
        source = sources[name]
        found[name] = tuple(
            str(path)
            for path, stat in zip(source.files, source.file_stats(), strict=True)
            if seen is None or stat not in seen
        )
    return found


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _diff(old: str, new: str, path: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(), new.splitlines(), f"published/{path}", path, lineterm=""
    )
    return "\n".join(lines)


def _full_because(
    current: Version | None, logic_fp: str, source_files: tuple[str, ...], full_refresh: bool
) -> str:
    """Why an incremental model cannot extend the version served now ("" when it can).

    Extending reuses every period before the lookback window, which is only right when the
    rows behind those periods are as they were: same logic, and source files only added.
    """
    if full_refresh:
        return "--full-refresh"
    if current is None:
        return "no version to extend"
    if current.logic_fp != logic_fp:
        return "its logic or an upstream model's changed"
    if current.time_max is None:
        return "the served version has no rows"
    if current.source_files is None:
        return "the served version does not record its source files"
    if {f for f in current.source_files if f.startswith(ERASURE_ENTRY)} != {
        f for f in source_files if f.startswith(ERASURE_ENTRY)
    }:
        return "erasure requests changed (the version is computed again without those customers)"
    changed = set(current.source_files) - set(source_files)
    if changed:
        path = sorted(changed)[0].split("|", 1)[0]
        if path.startswith(f"{PRODUCED_SCHEMA}."):
            return f"{path} was replaced, not appended to (only added rows extend a version)"
        return f"source file {path} was changed or removed (only added files extend a version)"
    return ""


def make_plan(
    project: Project,
    state: State,
    env: str,
    selection: list[str] | None = None,
    full_refresh: bool = False,
) -> Plan:
    """Decide, for each model in DAG order, which version the environment should serve."""
    head = state.head(env)
    served = head.mapping if head else {}
    chosen = select(project.dag, selection, project.tags) if selection else set(project.dag.order)
    sources = load_sources(
        project.settings.sources,
        (name for m in project.models.values() for name in m.sources),
        project.cache,
    )
    # erasure requests are an input of the sources they filter (kept out when there are none:
    # existing fingerprints stand)
    signatures = {name: s.signature() + "".join(s.erasure_stats()) for name, s in sources.items()}
    stats = {name: s.file_stats() + s.erasure_stats() for name, s in sources.items()}
    fingerprints: dict[str, str] = {}
    logic: dict[str, str] = {}
    upstream: dict[str, frozenset[str]] = {}  # model -> every source it reads, transitively
    reads_produced: dict[str, frozenset[str]] = {}  # model -> forecast.* tables, transitively
    produced_files = _produced_inputs(project, state, served)
    plans: list[ModelPlan] = []
    for model in project.ordered():
        parents = sorted(model.depends_on)
        upstream[model.name] = frozenset(model.sources).union(*(upstream[p] for p in parents))
        reads_produced[model.name] = frozenset(model.produced).union(
            *(reads_produced[p] for p in parents)
        )
        source_files = tuple(
            f for name in sorted(upstream[model.name]) for f in stats[name]
        ) + tuple(f for name in sorted(reads_produced[model.name]) for f in produced_files[name])
        logic[model.name] = _hash(model.data_hash(), [logic[p] for p in parents])
        inputs: list[object] = [(s, signatures[s]) for s in sorted(model.sources)]
        if model.produced:  # kept out of the hash when empty: existing fingerprints stand
            inputs.append([(t, served.get(t)) for t in sorted(model.produced)])
        computed = _hash(model.data_hash(), [(p, fingerprints[p]) for p in parents], *inputs)[:20]
        current = state.get_version(served[model.name]) if model.name in served else None
        if model.name not in chosen:
            if current is None:
                raise UsageError(
                    f"{model.name} is not selected and env '{env}' has no version of it",
                    hint=f"select it too, e.g. --select +{model.name}",
                )
            fingerprints[model.name] = current.fingerprint
            plans.append(
                ModelPlan(
                    model,
                    current.fingerprint,
                    logic[model.name],
                    Change.UNCHANGED,
                    Action.KEEP,
                    current,
                )
            )
            continue
        fingerprints[model.name] = computed
        if current is None:
            change = Change.NEW
        elif current.data_hash != model.data_hash():
            change = Change.CHANGED
        elif current.fingerprint != computed:
            change = Change.INDIRECT
        else:
            change = Change.UNCHANGED
        diff = (
            _diff(current.query, model.query, str(model.path))
            if change is Change.CHANGED and current
            else ""
        )
        previous, reason = None, ""
        if change is Change.UNCHANGED:
            action = Action.KEEP
        elif state.get_version(computed) is not None:
            action = Action.REUSE
        elif model.kind is ModelKind.VIEW:
            action = Action.VIEW
        elif model.kind is ModelKind.INCREMENTAL_BY_TIME:
            reason = _full_because(current, logic[model.name], source_files, full_refresh)
            if reason:
                action = Action.FULL
            else:
                action, previous = Action.INCREMENTAL, current
        else:
            action = Action.FULL
        plans.append(
            ModelPlan(
                model,
                computed,
                logic[model.name],
                change,
                action,
                current,
                previous,
                diff,
                source_files,
                reason,
            )
        )
    produced = {
        name: fp
        for name, fp in served.items()
        if name not in project.models and (v := state.get_version(fp)) and v.kind == PRODUCED
    }
    removed = sorted(set(served) - set(project.models) - set(produced))
    return Plan(
        env=env, models=plans, sources=sources, head=head, removed=removed, produced=produced
    )


def _produced_inputs(
    project: Project, state: State, served: Mapping[str, str]
) -> dict[str, tuple[str, ...]]:
    """Per forecast.* table a model reads: the records of the served version's segments
    (none before a run publishes it; a table wh does not know then is an error)."""
    found: dict[str, tuple[str, ...]] = {}
    for model in project.ordered():
        for name in sorted(model.produced - set(found)):
            version = state.get_version(served[name]) if name in served else None
            if version is not None:
                found[name] = tuple(produced_tables.file_record(name, s) for s in version.segments)
            elif produced_tables.empty_select(name) is not None:
                found[name] = ()
            else:
                known = sorted(produced_tables.READABLE_BEFORE_PUBLISH)
                raise UsageError(
                    f"{model.name} reads {name}, which this environment does not serve",
                    hint=f"run `wh forecast` first, or read one of {', '.join(known)} "
                    "(a model may read those before any run)",
                )
    return found


def plan_build(settings: Settings, selection: list[str] | None, full_refresh: bool) -> Plan:
    """The plan `wh build` would follow now, for `wh plan` (no lock: it reads only)."""
    project = load_project(settings)
    state = open_state(settings)
    try:
        return make_plan(project, state, settings.env, selection, full_refresh)
    finally:
        state.close()
