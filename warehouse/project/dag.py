"""Dependency graph of models: order, ancestors, descendants and selection syntax."""

from __future__ import annotations

import fnmatch
import graphlib
from collections.abc import Iterable, Mapping

from warehouse.errors import DagCycleError, UsageError


class DAG:
    """Nodes and their parents; the parents of every node must be nodes too."""

    def __init__(self, parents: Mapping[str, Iterable[str]]) -> None:
        self.parents: dict[str, frozenset[str]] = {n: frozenset(p) for n, p in parents.items()}
        self.children: dict[str, set[str]] = {n: set() for n in self.parents}
        for node, ups in self.parents.items():
            for up in ups:
                self.children[up].add(node)
        self.order = self._topological_order()

    def _topological_order(self) -> list[str]:
        sorter = graphlib.TopologicalSorter(self.parents)
        try:
            # sort each ready batch so the order is the same on every run
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = list(reversed(exc.args[1]))
            raise DagCycleError(cycle) from None
        order: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            order.extend(ready)
            sorter.done(*ready)
        return order

    def ancestors(self, node: str) -> set[str]:
        return self._walk(node, self.parents)

    def descendants(self, node: str) -> set[str]:
        return self._walk(node, self.children)

    @staticmethod
    def _walk(node: str, edges: Mapping[str, Iterable[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(edges[node])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(edges[current])
        return seen


def select(dag: DAG, expressions: Iterable[str], tags: Mapping[str, Iterable[str]]) -> set[str]:
    """Resolve selection terms (union of all terms).

    `name` or `schema.name`; `+name` adds ancestors, `name+` descendants;
    `schema.*` (any glob); `tag:x` models tagged x.
    """
    chosen: set[str] = set()
    for raw in expressions:
        for term in (t.strip() for t in raw.split(",")):
            if term:
                chosen |= _select_term(dag, term, tags)
    return chosen


def _select_term(dag: DAG, term: str, tags: Mapping[str, Iterable[str]]) -> set[str]:
    up, down = term.startswith("+"), term.endswith("+")
    core = term.strip("+")
    if core.startswith("tag:"):
        tag = core[4:]
        base = {n for n in dag.order if tag in tags.get(n, ())}
    elif any(ch in core for ch in "*?["):
        base = {n for n in dag.order if fnmatch.fnmatchcase(n, core)}
    elif core in dag.parents:
        base = {core}
    else:
        base = {n for n in dag.order if n.split(".", 1)[-1] == core}
        if len(base) > 1:
            raise UsageError(
                f"'{core}' is ambiguous: {', '.join(sorted(base))}", hint="select it as schema.name"
            )
    if not base:
        raise UsageError(
            f"selection '{term}' matches no model",
            hint="list models with: wh plan; syntax: name, +name, name+, schema.*, tag:x",
        )
    result = set(base)
    for node in base:
        if up:
            result |= dag.ancestors(node)
        if down:
            result |= dag.descendants(node)
    return result
