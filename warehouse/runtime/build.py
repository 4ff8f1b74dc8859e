"""Build: plan -> compute new versions (in parallel where the DAG allows) -> audit -> publish.

Write-audit-publish: new versions are written beside the old ones and audited; the
environment's views move to them in one publish only when every model and audit passed.
A failure publishes nothing, so analysts keep querying exactly what they had.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from warehouse.config import Settings
from warehouse.errors import AuditError, BuildError, StateError, WhError
from warehouse.project.loader import load_project
from warehouse.runtime import catalog, erasure, pii, uptodate
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.erasure import ErasureResult
from warehouse.runtime.lock import writer_lock
from warehouse.runtime.plan import Action, ModelPlan, Plan, make_plan
from warehouse.runtime.publish import new_run_id, publish
from warehouse.runtime.runner import ModelResult, ModelRunner
from warehouse.runtime.sql_errors import check_sql
from warehouse.runtime.state import Publish, State, open_state
from warehouse.runtime.storage import sweep_if_unfinished, versions_finished, writing_versions

Reporter = Callable[[str, str, str], None]  # (event, model, detail)


@dataclass
class BuildResult:
    build_id: str
    env: str
    status: str  # ok | noop
    plan: Plan
    results: list[ModelResult]
    published: Publish | None
    seconds: float
    erasure: ErasureResult | None = None  # erasure requests applied by this build

    @property
    def reused(self) -> list[str]:
        return [p.model.name for p in self.plan.models if p.action is Action.REUSE]


def _execute(
    plan: Plan, settings: Settings, state: State, build_id: str, reporter: Reporter
) -> list[ModelResult]:
    todo = {p.model.name: p for p in plan.to_compute}
    read = _read_by(todo, plan)
    if settings.engine.name == "spark":
        return _execute_on_spark(plan, todo, read, settings, state, build_id, reporter)
    con = engine.connect(settings)
    try:
        check_sql(plan.to_compute, con)  # DuckDB's parser sees every query before any runs
        for name, source in plan.sources.items():
            if name not in read.sources:
                continue
            if source.absent:
                engine.create_view(con, f"source.{name}", source.empty_select())
            else:
                engine.create_view(con, f"source.{name}", source.select_sql())
            if name not in read.arrived:
                continue
            if source.absent:
                engine.create_view(con, f"arrived.{name}", source.empty_select())
            else:
                engine.view_over_arrived(con, name, source.files, source.select_sql)
        runner = ModelRunner(settings, con, plan.sources, {}, build_id)
        _register_inputs(runner, plan, todo, read, state)
        return _schedule(todo, runner, settings.threads, state, build_id, reporter)
    finally:
        con.close()


def _execute_on_spark(
    plan: Plan,
    todo: dict[str, ModelPlan],
    read: _Inputs,
    settings: Settings,
    state: State,
    build_id: str,
    reporter: Reporter,
) -> list[ModelResult]:
    """The same plan on Spark (README "Scaling out"): models one at a time, each query
    parallel across the cluster."""
    from warehouse.runtime.engine.spark import Spark, session
    from warehouse.runtime.spark_runner import SparkModelRunner, check_translatable

    check_translatable(settings, plan, todo)  # a refusal before anything runs
    spark = Spark(session(settings.engine, settings.threads))
    runner = SparkModelRunner(settings, spark, plan.sources, {}, build_id)
    try:
        for name in sorted(read.sources):
            runner.register_source(name)
        _register_inputs(runner, plan, todo, read, state)
        return _schedule(todo, runner, 1, state, build_id, reporter)
    finally:
        runner.con.close()


@dataclass(frozen=True)
class _Inputs:
    models: frozenset[str]
    sources: frozenset[str]
    arrived: frozenset[str]  # sources read as arrived.<name> by a model to compute
    produced: frozenset[str] = frozenset()  # forecast.* tables read by those models


def _read_by(todo: dict[str, ModelPlan], plan: Plan) -> _Inputs:
    """The models and sources the models to compute read, directly or through others: only
    those get a view in the build's connection (a one-model build creates a few, not all)."""
    by_name = {p.model.name: p.model for p in plan.models}
    models: set[str] = set()
    sources: set[str] = set()
    produced: set[str] = set()
    stack = list(todo)
    while stack:
        model = by_name[stack.pop()]
        sources |= model.sources
        produced |= model.produced
        for parent in model.depends_on - models:
            models.add(parent)
            stack.append(parent)
    arrived = frozenset().union(*(item.model.arrived for item in todo.values()))
    return _Inputs(frozenset(models), frozenset(sources), arrived, frozenset(produced))


def _register_inputs(
    runner: ModelRunner, plan: Plan, todo: dict[str, ModelPlan], read: _Inputs, state: State
) -> None:
    """The forecast tables and kept models the models to compute read, in the runner."""
    served = plan.head.mapping if plan.head else {}
    for name in sorted(read.produced):
        runner.register_produced(name, state.get_version(served[name]) if name in served else None)
    for item in plan.models:  # DAG order
        if item.model.name in read.models and item.model.name not in todo:
            existing = state.get_version(item.fingerprint)
            assert existing is not None
            runner.register(item.model.name, existing, item.model.depends_on)


def _blockers(parents: frozenset[str], todo: dict[str, ModelPlan], runner: ModelRunner) -> set[str]:
    """Models still to compute that `parents` need, looking through views kept unbuilt."""
    found: set[str] = set()
    for parent in parents:
        if parent in todo:
            found.add(parent)
        elif parent in runner.pending_views:
            found |= _blockers(runner.pending_views[parent][0], todo, runner)
    return found


def _schedule(
    todo: dict[str, ModelPlan],
    runner: ModelRunner,
    threads: int,
    state: State,
    build_id: str,
    reporter: Reporter,
) -> list[ModelResult]:
    waiting = {name: _blockers(item.model.depends_on, todo, runner) for name, item in todo.items()}
    results: list[ModelResult] = []
    failure: tuple[str, Exception] | None = None
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wh-model") as pool:
        running: dict[Future[ModelResult], str] = {}

        def submit_ready() -> None:
            for name in sorted(n for n, deps in waiting.items() if not deps):
                del waiting[name]
                reporter("start", name, todo[name].action.value)
                running[pool.submit(runner.run, todo[name])] = name

        submit_ready()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                item = todo[name]
                try:
                    result = future.result()
                except Exception as exc:
                    state.record_model(
                        build_id,
                        name,
                        item.fingerprint,
                        item.action.value,
                        "failed",
                        None,
                        0.0,
                        str(exc),
                    )
                    reporter("failed", name, str(exc))
                    failure = failure or (name, exc)
                    continue
                failed_audit = _record(state, build_id, result)
                if failed_audit:
                    reporter("failed", name, f"audit {failed_audit.audit}")
                    failure = failure or (name, failed_audit)
                    continue
                results.append(result)
                reporter("done", name, f"{result.rows_processed} rows")
                runner.register(name, result.version)
                for deps in waiting.values():
                    deps.discard(name)
            if failure is None:
                submit_ready()
    if failure is not None:
        failed_model, error = failure
        if isinstance(error, WhError):
            raise error
        raise BuildError(
            f"{type(error).__name__}: {error}",
            failed_model,
            hint="nothing was published; rerun with --debug for the traceback",
        )
    return results


def _record(state: State, build_id: str, result: ModelResult) -> AuditError | None:
    item, version = result.plan, result.version
    for audit in result.audits:
        state.record_audit(
            build_id, item.model.name, item.fingerprint, audit.label, audit.failing, audit.sql
        )
    failed = result.failed_audit
    status = "failed" if failed else "ok"
    state.record_model(
        build_id,
        item.model.name,
        item.fingerprint,
        item.action.value,
        status,
        result.rows_processed,
        result.seconds,
        f"audit {failed.label} failed" if failed else None,
    )
    if failed:
        return AuditError(item.model.name, failed.label, failed.failing, failed.sql)
    state.add_version(version)
    return None


def _quiet(event: str, model: str, detail: str) -> None:
    return None


def build(
    settings: Settings,
    selection: list[str] | None = None,
    full_refresh: bool = False,
    reporter: Reporter = _quiet,
    command: str = "build",
) -> BuildResult:
    """Bring the environment `settings.env` up to date with the project."""
    started = time.perf_counter()
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        everything = not selection and not full_refresh
        # taken before anything is read: a file changed during the build changes the digest
        digest = uptodate.inputs_digest(settings) if everything else None
        try:
            state.abandon_running_builds()
            catalog.repair(settings, state)
            sweep_if_unfinished(settings, state)
            project = load_project(settings)
            plan = make_plan(project, state, settings.env, selection, full_refresh)
            build_id = new_run_id()
            state.start_build(
                build_id,
                command,
                settings.env,
                ",".join(selection) if selection else None,
                os.getpid(),
            )
            # a changed `-- pii:` line alone republishes (the analyst catalog changes)
            retag = not plan.to_compute and not plan.publishes_something
            if (
                retag
                and not pii.record_tags(project, state, plan.mapping)
                and not catalog.key_changed(settings, state)
            ):
                state.finish_build(build_id, "noop")
                state.remember_uptodate(settings.env, digest, len(plan.models))
                return BuildResult(
                    build_id, settings.env, "noop", plan, [], None, time.perf_counter() - started
                )
            try:
                writing_versions(settings)
                results = _execute(plan, settings, state, build_id, reporter)
                head = plan.head
                published = None
                if plan.publishes_something or retag:
                    if not retag:
                        pii.record_tags(project, state, plan.mapping)
                    published = publish(
                        settings,
                        state,
                        settings.env,
                        plan.mapping,
                        "tags" if retag else "build",
                        build_id,
                        # a republish of the same versions stands in for the head: a
                        # rollback goes past it
                        (head.previous_id if retag else head.id) if head else None,
                    )
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    state.finish_build(build_id, "failed", error=str(exc) or type(exc).__name__)
                raise
            rows = sum(r.rows_processed for r in results)
            state.finish_build(build_id, "ok", len(results), len(plan.models) - len(results), rows)
            versions_finished(settings)
            erased = erasure.apply(settings, state)
            if erased is not None:
                erasure.republish(settings, state, build_id, erased)
            state.remember_uptodate(settings.env, digest, len(plan.models))
            return BuildResult(
                build_id,
                settings.env,
                "ok",
                plan,
                results,
                published,
                time.perf_counter() - started,
                erased,
            )
        except sqlite3.Error as exc:
            raise StateError(
                f"could not write the warehouse state ({exc})",
                hint=f"is the disk holding {settings.warehouse} full or read-only? free space "
                "and build again; what readers see was not changed",
            ) from None
        finally:
            state.close()
