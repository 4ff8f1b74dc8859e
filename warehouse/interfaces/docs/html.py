"""Page skeleton, escaping and the lineage graph (inline SVG, so pages work offline)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from warehouse.project.dag import DAG

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
a{color:#0b5cad;text-decoration:none} a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} td,th{border:1px solid #ddd;
padding:.3rem .6rem;text-align:left;font-size:.9rem} th{background:#f4f6f8}
pre{background:#f6f8fa;padding:1rem;overflow:auto;font-size:.85rem}
.ok{color:#1a7f37}.failed{color:#cf222e}.muted{color:#777} nav{margin-bottom:1rem}
"""


def page(title: str, body: str, depth: int = 0, scripts: Sequence[str] = ()) -> str:
    up = "../" * depth
    tags = "".join(f'<script src="{up}{escape(s)}"></script>' for s in scripts)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style>{tags}</head><body><nav><a href='{up}index.html'>models"
        f"</a> · <a href='{up}report.html'>forecast report</a></nav>"
        f"<h1>{escape(title)}</h1>{body}</body></html>"
    )


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (for cells that are already HTML)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell if raw else escape(fmt(cell))}</td>" for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def model_link(name: str, depth: int = 1) -> str:
    return f"<a href='{'../' * depth}models/{escape(name)}.html'>{escape(name)}</a>"


def lineage_svg(center: str, dag: DAG, upstream: set[str], downstream: set[str]) -> str:
    """Columns of models by distance from `center` (ancestors left, descendants right)."""
    level: dict[str, int] = {center: 0}
    for node in dag.order:  # longest path from the center
        if node in downstream:
            level[node] = max(level[p] + 1 for p in dag.parents[node] if p in level)
    for node in reversed(dag.order):  # longest path to the center
        if node in upstream:
            level[node] = min(
                level[c] - 1
                for c in dag.children[node]
                if c in level and (c in upstream or c == center)
            )
    columns: dict[int, list[str]] = {}
    for node, lvl in sorted(level.items(), key=lambda kv: kv[0]):
        columns.setdefault(lvl, []).append(node)
    width, height, gap_x, gap_y = 210, 28, 60, 14
    left = min(columns)
    position = {
        node: ((lvl - left) * (width + gap_x) + 10, i * (height + gap_y) + 10)
        for lvl, nodes in columns.items()
        for i, node in enumerate(nodes)
    }
    edges = []
    for node, ups in dag.parents.items():
        for up in ups:
            if node in position and up in position:
                (x1, y1), (x2, y2) = position[up], position[node]
                edges.append(
                    f"<line x1='{x1 + width}' y1='{y1 + height / 2}' x2='{x2}' "
                    f"y2='{y2 + height / 2}' stroke='#999'/>"
                )
    boxes = []
    for node, (x, y) in position.items():
        fill = "#dbeafe" if node == center else "#f4f6f8"
        label = f"<text x='{x + 8}' y='{y + 18}' font-size='12'>{escape(node)}</text>"
        box = (
            f"<rect x='{x}' y='{y}' width='{width}' height='{height}' rx='4' fill='{fill}' "
            f"stroke='#888'/>{label}"
        )
        boxes.append(box if node == center else f"<a href='{escape(node)}.html'>{box}</a>")
    total_w = (max(columns) - left + 1) * (width + gap_x) + 20
    total_h = max(len(n) for n in columns.values()) * (height + gap_y) + 20
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{total_w}' height='{total_h}' "
        f"class='lineage'>{''.join(edges)}{''.join(boxes)}</svg>"
    )
