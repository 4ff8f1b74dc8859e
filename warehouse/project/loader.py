"""Discover the models of a project: SQL files in sql/, decorated functions in pipeline/."""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from warehouse.config import Settings
from warehouse.errors import DagCycleError, ModelError, UnknownTableError, WhError
from warehouse.project.audit_rules import COMPLETENESS_AUDIT
from warehouse.project.cache import FileCache
from warehouse.project.dag import DAG
from warehouse.project.model import (
    ARRIVED_SCHEMA,
    PRODUCED_SCHEMA,
    THIS,
    Model,
    ModelKind,
    check_identifier,
    header_config,
    model_name_from_path,
    parse_audits,
    sql_model,
)
from warehouse.project.python_model import PythonModelSpec, take_registered

SOURCE_SCHEMA = "source"
# sql_model, or a caching stand-in with its signature: (name, path, text, variables, config)
Parse = Callable[..., Model]


@dataclass(frozen=True)
class Project:
    settings: Settings
    models: dict[str, Model]
    dag: DAG
    cache: FileCache | None = field(default=None, compare=False, repr=False)

    @property
    def tags(self) -> dict[str, tuple[str, ...]]:
        return {name: m.tags for name, m in self.models.items()}

    def ordered(self) -> list[Model]:
        return [self.models[name] for name in self.dag.order]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelError(
            f"file is not UTF-8 (byte {exc.start})", path, hint="save the file as UTF-8"
        ) from None


def load_sql_models(
    sql_dir: Path, variables: dict[str, Any], parse: Parse = sql_model
) -> list[Model]:
    if not sql_dir.is_dir():
        return []
    return [
        parse(model_name_from_path(path, sql_dir), path, _read(path), variables)
        for path in sorted(sql_dir.rglob("*.sql"))
    ]


def _import_pipeline_file(path: Path) -> list[PythonModelSpec]:
    module_name = "wh_pipeline_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelError("cannot import Python model file", path)
    module = importlib.util.module_from_spec(spec)
    take_registered()
    try:
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except WhError:
        raise
    except Exception as exc:
        line = _line_in(exc, path)
        raise ModelError(
            f"importing failed: {type(exc).__name__}: {exc}",
            path,
            line,
            hint="fix the Python file; run it with python to see the traceback",
        ) from exc
    finally:
        sys.modules.pop(module_name, None)
    return take_registered()


def _generated_sql_model(
    spec: PythonModelSpec, path: Path, line: int, variables: dict[str, Any], parse: Parse
) -> Model:
    """Call a @sql_model function and treat what it returns like a SQL file."""
    try:
        text = spec.func(dict(variables))
    except Exception as exc:
        raise ModelError(
            f"generating SQL failed: {type(exc).__name__}: {exc}", path, _line_in(exc, path)
        ) from exc
    if not isinstance(text, str):
        raise ModelError(
            f"@sql_model function returned {type(text).__name__}, expected SQL text", path, line
        )
    header: dict[str, Any] = {
        "kind": (spec.kind, line),
        "audits": parse_audits(spec.audits, path, line),
        "assert": list(spec.asserts),
        "column": list(spec.columns),
        "description": (spec.description.strip(), line),
    }
    if spec.time_column:
        header["time_column"] = (spec.time_column, line)
    if spec.lookback:
        header["lookback"] = (str(spec.lookback), line)
    if spec.grain:
        header["grain"] = (", ".join(spec.grain), line)
    if spec.tags:
        header["tags"] = (", ".join(spec.tags), line)
    generated = parse(spec.name, path, text, variables, header_config(header, path))
    return replace(generated, func=spec.func)


def _line_in(exc: BaseException, path: Path) -> int | None:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return frames[-1].lineno if frames else getattr(exc, "lineno", None)


def _python_model(
    spec: PythonModelSpec,
    path: Path,
    source: str,
    normalized: str,
    variables: dict[str, Any],
    parse: Parse,
) -> Model:
    schema, _, table = spec.name.partition(".")
    line = spec.func.__code__.co_firstlineno
    if not table:
        raise ModelError(f"model name '{spec.name}' must be schema.table", path, line)
    check_identifier(schema, "schema name", path, line)
    check_identifier(table, "model name", path, line)
    if spec.generates_sql:
        return _generated_sql_model(spec, path, line, variables, parse)
    if spec.kind != ModelKind.FULL.value:
        raise ModelError(f"Python models support kind 'full' only, found '{spec.kind}'", path, line)
    if spec.partition_by is not None:
        check_identifier(spec.partition_by, "partition_by column", path, line)
        if len(spec.inputs) != 1:
            raise ModelError(
                f"partition_by needs a model with one input, {spec.name} has {len(spec.inputs)}",
                path,
                line,
                hint="join the inputs in a SQL model first, or drop partition_by",
            )
    return Model(
        name=spec.name,
        path=path,
        language="python",
        kind=ModelKind.FULL,
        query=source,
        normalized=normalized,
        inputs=spec.inputs,
        grain=spec.grain,
        audits=parse_audits(spec.audits, path, line),
        asserts=spec.asserts,
        description=spec.description.strip(),
        columns=spec.columns,
        tags=spec.tags,
        func=spec.func,
        partition_by=spec.partition_by,
    )


def load_python_models(
    pipeline_dir: Path, variables: dict[str, Any], parse: Parse = sql_model
) -> list[Model]:
    if not pipeline_dir.is_dir():
        return []
    found = []
    for path in sorted(pipeline_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = _read(path)
        try:
            # the whole module: helpers it calls change the data too; comments do not
            normalized = ast.dump(ast.parse(source))
        except SyntaxError as exc:
            raise ModelError(
                f"Python syntax error: {exc.msg}",
                path,
                exc.lineno,
                exc.offset,
                hint="fix the file; nothing was built",
            ) from None
        found += [
            _python_model(spec, path, source, normalized, variables, parse)
            for spec in _import_pipeline_file(path)
        ]
    return found


def _resolve(model: Model, names: set[str]) -> Model:
    """Split a model's table references into model parents and sources."""
    refs: list[tuple[str, int | None, int | None]]
    if model.language == "python":
        refs = [(name, None, None) for name in model.inputs]
    else:
        refs = [(ref.qualified, ref.line, ref.column) for ref in model.refs]
    parents, sources, arrived, produced = set(), set(), set(), set()
    for table, line, column in refs:
        schema, _, name = table.rpartition(".")
        if model.language == "python" and (schema == ARRIVED_SCHEMA or table == THIS):
            raise ModelError(
                f"a Python model cannot read '{table}'",
                model.path,
                hint="arrived.<source> and this are for SQL incremental_by_time models; "
                "read source.<name> and filter on the time column instead",
            )
        if schema == SOURCE_SCHEMA:
            sources.add(name)
        elif schema == ARRIVED_SCHEMA:  # part of the source's files: the source is an input
            sources.add(name)
            arrived.add(name)
        elif schema == PRODUCED_SCHEMA:  # written by `wh forecast`: not a model, not a source
            produced.add(table)
        elif not schema and name == THIS and model.reads_this:
            continue  # the model's own previous version, not a parent
        elif table in names:
            parents.add(table)
        else:
            close = [n for n in names if n.split(".")[1] == table] or difflib.get_close_matches(
                table, names, n=1
            )
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "reference models as schema.table and sources as source.<name>"
            )
            raise UnknownTableError(table, model.path, line, column, hint)
    return replace(
        model,
        depends_on=frozenset(parents),
        sources=frozenset(sources),
        arrived=frozenset(arrived),
        produced=frozenset(produced),
    )


def load_project(settings: Settings) -> Project:
    variables = settings.variables
    cache = FileCache(settings.warehouse)

    def parse(
        name: str,
        path: Path,
        text: str,
        variables: dict[str, Any],
        config: dict[str, Any] | None = None,
    ) -> Model:
        inputs = ("model", name, str(path), text, sorted(variables.items()), repr(config))
        return cache.get(inputs, lambda: sql_model(name, path, text, variables, config))

    models = load_sql_models(settings.sql_dir, variables, parse) + load_python_models(
        settings.pipeline_dir, variables, parse
    )
    by_name: dict[str, Model] = {}
    for model in models:
        if model.name in by_name:
            raise ModelError(
                f"two models are named {model.name}",
                model.path,
                hint=f"the other is {by_name[model.name].path}; rename one",
            )
        by_name[model.name] = model
    if not by_name:
        raise ModelError(
            "no models found",
            settings.project_dir,
            hint="add sql/<schema>/<name>.sql files or @model functions in pipeline/*.py",
        )
    names = set(by_name)
    resolved = {name: _resolve(m, names) for name, m in by_name.items()}
    for model in resolved.values():
        _check_compared_table(model)
    try:
        dag = DAG({name: m.depends_on for name, m in resolved.items()})
    except DagCycleError as exc:
        raise _locate_cycle(exc.cycle, resolved) from None
    return Project(settings=settings, models=resolved, dag=dag, cache=cache)


def _check_compared_table(model: Model) -> None:
    """same_row_count(t) compares with a table the model reads: known once refs resolve."""
    inputs = model.depends_on | {f"source.{s}" for s in model.sources}
    for spec in model.audits:
        if spec.name == COMPLETENESS_AUDIT and spec.args[0] not in inputs:
            raise ModelError(
                f"audit {spec.label}: {spec.args[0]} is not read by the model",
                model.path,
                *spec.at,
                hint=f"compare with a table the query reads: {', '.join(sorted(inputs))}",
            )


def _locate_cycle(cycle: list[str], models: dict[str, Model]) -> DagCycleError:
    """Point the cycle error at the reference that closes the loop in the first model."""
    first, second = models[cycle[0]], cycle[1]
    ref = next((r for r in first.refs if r.qualified == second), None)
    return DagCycleError(cycle, first.path, ref.line if ref else None, ref.column if ref else None)
