"""DAG order, cycles and selection syntax, from literal dicts."""

from __future__ import annotations

import pytest

from warehouse.errors import DagCycleError, UsageError
from warehouse.project.dag import DAG, select

GRAPH = {
    "staging.orders": [],
    "staging.items": [],
    "features.demand": ["staging.orders", "staging.items"],
    "features.stats": ["features.demand"],
    "marts.report": ["features.stats", "staging.orders"],
}
TAGS = {"features.demand": ("daily",), "marts.report": ("daily", "bi")}


def test_parents_come_before_children_and_order_is_stable() -> None:
    dag = DAG(GRAPH)
    position = {n: i for i, n in enumerate(dag.order)}
    for node, parents in GRAPH.items():
        assert all(position[p] < position[node] for p in parents)
    assert dag.order == DAG(dict(reversed(list(GRAPH.items())))).order


def test_cycle_error_prints_the_cycle() -> None:
    with pytest.raises(DagCycleError) as failure:
        DAG({"a.x": ["a.z"], "a.y": ["a.x"], "a.z": ["a.y"], "a.w": []})
    cycle = failure.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a.x", "a.y", "a.z"}
    assert " -> ".join(cycle) in str(failure.value)


def test_self_reference_is_a_cycle() -> None:
    with pytest.raises(DagCycleError, match=r"a\.x -> a\.x"):
        DAG({"a.x": ["a.x"]})


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        (["features.demand"], {"features.demand"}),
        (["demand"], {"features.demand"}),
        (
            ["+features.stats"],
            {"features.stats", "features.demand", "staging.orders", "staging.items"},
        ),
        (
            ["staging.items+"],
            {"staging.items", "features.demand", "features.stats", "marts.report"},
        ),
        (["staging.*"], {"staging.orders", "staging.items"}),
        (["tag:bi"], {"marts.report"}),
        (["tag:daily", "staging.items"], {"features.demand", "marts.report", "staging.items"}),
        (["staging.orders,marts.report"], {"staging.orders", "marts.report"}),
    ],
)
def test_selection_syntax(terms: list[str], expected: set[str]) -> None:
    assert select(DAG(GRAPH), terms, TAGS) == expected


def test_selection_that_matches_nothing_is_an_error() -> None:
    with pytest.raises(UsageError, match="matches no model"):
        select(DAG(GRAPH), ["nothing"], TAGS)


def test_ambiguous_short_name_is_an_error() -> None:
    with pytest.raises(UsageError, match="ambiguous"):
        select(DAG({"a.x": [], "b.x": []}), ["x"], {})
