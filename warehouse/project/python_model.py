"""The `@model` decorator that registers a Polars Python model.

    from warehouse.python_model import model

    @model("features.product_stats", inputs=["features.demand"], grain=["product_id"])
    def product_stats(demand: pl.LazyFrame) -> pl.LazyFrame:
        return demand.group_by("product_id").agg(pl.col("units").mean())

Each input arrives as a Polars LazyFrame (scanned from the input's Parquet files, or read
through Arrow for views), in the order of `inputs`. Sources are `source.<name>`.

`@sql_model` registers a function that *writes SQL* from the project variables (freq, ...):
for queries whose shape depends on configuration, such as one lag column per lag. The SQL it
returns is a model like any file in sql/: parsed for dependencies, fingerprinted, incremental.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class PythonModelSpec:
    name: str
    inputs: tuple[str, ...]
    func: Callable[..., Any]
    kind: str
    grain: tuple[str, ...]
    audits: str
    asserts: tuple[str, ...]
    description: str
    columns: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]
    generates_sql: bool = False
    time_column: str | None = None
    lookback: int = 0
    # a column every input has: on Spark the function runs once per value of it, on the
    # workers (the function must not mix rows of different values); DuckDB builds ignore it
    partition_by: str | None = None


_registry: list[PythonModelSpec] = []


def model(
    name: str,
    *,
    inputs: Iterable[str] = (),
    kind: str = "full",
    grain: Iterable[str] = (),
    audits: str = "",
    asserts: Iterable[str] = (),
    description: str = "",
    columns: dict[str, str] | None = None,
    tags: Iterable[str] = (),
    partition_by: str | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the model `name` (schema.table).

    `audits` uses the SQL header syntax, e.g. "not_null(product_id), row_count(min=1)".
    `partition_by`: on Spark, run the function once per value of this column of its input,
    on the cluster (README "Scaling out"); without it a Spark build runs it on the driver.
    """

    return _registrar(
        name,
        tuple(inputs),
        kind,
        grain,
        audits,
        asserts,
        description,
        columns,
        tags,
        partition_by=partition_by,
    )


def sql_model(
    name: str,
    *,
    kind: str = "full",
    time_column: str | None = None,
    lookback: int = 0,
    grain: Iterable[str] = (),
    audits: str = "",
    asserts: Iterable[str] = (),
    description: str = "",
    columns: dict[str, str] | None = None,
    tags: Iterable[str] = (),
) -> Callable[[F], F]:
    """Register the decorated `f(variables: dict) -> str` as the SQL model `name`."""

    return _registrar(
        name,
        (),
        kind,
        grain,
        audits,
        asserts,
        description,
        columns,
        tags,
        generates_sql=True,
        time_column=time_column,
        lookback=lookback,
    )


def _registrar(
    name: str,
    inputs: tuple[str, ...],
    kind: str,
    grain: Iterable[str],
    audits: str,
    asserts: Iterable[str],
    description: str,
    columns: dict[str, str] | None,
    tags: Iterable[str],
    **extra: Any,
) -> Callable[[F], F]:
    def register(func: F) -> F:
        _registry.append(
            PythonModelSpec(
                name=name,
                inputs=inputs,
                func=func,
                kind=kind,
                grain=tuple(grain),
                audits=audits,
                asserts=tuple(asserts),
                description=description or (func.__doc__ or ""),
                columns=tuple((columns or {}).items()),
                tags=tuple(tags),
                **extra,
            )
        )
        return func

    return register


def take_registered() -> list[PythonModelSpec]:
    """Return and forget what the imported pipeline modules registered."""
    found = list(_registry)
    _registry.clear()
    return found
