"""Model pages: SQL, columns, audits and their last results, lineage, rows, freshness."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from pathlib import Path

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.interfaces.docs.html import lineage_svg, model_link, page, table
from warehouse.interfaces.docs.report import write_report
from warehouse.project.loader import Project, load_project
from warehouse.project.model import Model
from warehouse.runtime.lineage import lineage_schema
from warehouse.runtime.pii import PiiReport, pii_report
from warehouse.runtime.state import State, Version, open_state


@dataclass(frozen=True)
class SiteResult:
    out: Path
    pages: int


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _model_page(
    project: Project, model: Model, version: Version | None, state: State, pii: PiiReport
) -> str:
    up, down = project.dag.ancestors(model.name), project.dag.descendants(model.name)
    docs = dict(model.columns)
    facts = [
        ("kind", model.kind.value),
        ("defined in", str(model.path.relative_to(project.settings.project_dir))),
    ]
    if model.grain:
        facts.append(("grain", ", ".join(model.grain)))
    if model.tags:
        facts.append(("tags", ", ".join(model.tags)))
    body = f"<p>{escape(model.description)}</p>" if model.description else ""
    if version is None:
        body += "<p class='failed'>Not published in this environment yet.</p>"
    else:
        facts += [
            ("rows", "-" if version.row_count < 0 else f"{version.row_count:,}"),
            ("built", _when(version.created_at)),
            ("version", version.fingerprint),
        ]
        if version.time_max:
            facts.append((f"latest {version.time_column}", version.time_max))
    body += table(["", ""], facts)
    if version is not None:
        body += "<h2>Columns</h2>" + table(
            ["column", "type", "personal data", "description"],
            [
                (name, kind, _pii_cell(pii, model.name, name), docs.get(name, ""))
                for name, kind in version.columns
            ],
        )
        audits = state.audit_results(version.fingerprint)
        if audits:
            cells = [
                (
                    escape(audit),
                    "<span class='ok'>passed</span>"
                    if passed
                    else f"<span class='failed'>failed ({failing:,} rows)</span>",
                )
                for audit, passed, failing in audits
            ]
            body += "<h2>Audits (when this version was built)</h2>" + table(
                ["audit", "result"], cells, raw=True
            )
    graph = lineage_svg(model.name, project.dag, up, down)
    body += f"<h2>Lineage</h2><div style='overflow-x:auto'>{graph}</div>"
    body += (
        "<p>upstream: "
        + (", ".join(model_link(n) for n in sorted(up)) or "-")
        + "<br>downstream: "
        + (", ".join(model_link(n) for n in sorted(down)) or "-")
        + (f"<br>sources: {escape(', '.join(sorted(model.sources)))}" if model.sources else "")
        + "</p>"
    )
    language = "SQL" if model.language == "sql" else "Python"
    body += f"<h2>{language}</h2><pre>{escape(model.query)}</pre>"
    return page(model.name, body, depth=1)


def _pii_cell(pii: PiiReport, table: str, column: str) -> str:
    """`pii:direct` / `pii:quasi` and what it comes from; `none` with the model's reason."""
    tag = pii.of(table, column)
    if tag is not None:
        origin = ", ".join(o for o in tag.origins if o != f"{table}.{column}")
        return f"pii:{tag.level}" + (f" (from {origin})" if origin else "")
    reason = pii.cleared.get((table, column))
    return f"none: {reason}" if reason else ""


def _index(project: Project, versions: dict[str, Version]) -> str:
    body = (
        "<p>Models of environment <b>" + escape(project.settings.env) + "</b>. "
        "Open the warehouse read-only with DuckDB to query them.</p>"
    )
    by_schema: dict[str, list[Model]] = {}
    for model in project.ordered():
        by_schema.setdefault(model.schema, []).append(model)
    for schema in sorted(by_schema):
        rows = []
        for model in sorted(by_schema[schema], key=lambda m: m.name):
            version = versions.get(model.name)
            count = "" if version is None or version.row_count < 0 else f"{version.row_count:,}"
            rows.append(
                (
                    model_link(model.name, depth=0),
                    escape(model.kind.value),
                    count,
                    escape(model.description[:140]),
                )
            )
        body += f"<h2>{escape(schema)}</h2>" + table(
            ["model", "kind", "rows", "description"], rows, raw=True
        )
    return page(f"{project.settings.name} — warehouse docs", body)


def build_site(settings: Settings, out: Path) -> SiteResult:
    """Write the site into `out` (created); it links only to files inside it."""
    project = load_project(settings)
    state = open_state(settings)
    try:
        head = state.head(settings.env)
        if head is None:
            raise UsageError(
                f"environment '{settings.env}' has not been published yet",
                hint=f"run: wh build --env {settings.env}",
            )
        versions = {
            name: v for name, fp in head.mapping.items() if (v := state.get_version(fp)) is not None
        }
        (out / "models").mkdir(parents=True, exist_ok=True)
        pii = pii_report(project, lineage_schema(project, state, settings.env))
        for model in project.ordered():
            html = _model_page(project, model, versions.get(model.name), state, pii)
            (out / "models" / f"{model.name}.html").write_text(html, encoding="utf-8")
        (out / "index.html").write_text(_index(project, versions), encoding="utf-8")
    finally:
        state.close()
    write_report(settings, out)
    return SiteResult(out, len(project.models) + 2)
