"""Rendering results for people (rich tables) and scripts (JSON); no logic lives here."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from warehouse.runtime.build import BuildResult, Reporter
    from warehouse.runtime.plan import Plan

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@contextmanager
def build_progress(quiet: bool) -> Iterator[Reporter]:
    """A progress line on stderr while models compute; silent with --quiet."""
    if quiet:
        yield lambda event, model, detail: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} models done"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    task = progress.add_task("planning", total=None)
    running: set[str] = set()

    def report(event: str, model: str, detail: str) -> None:
        if event == "start":
            running.add(model)
        else:
            running.discard(model)
            progress.advance(task)
            if event == "failed":
                err.print(f"[red]✗[/] {model}: {detail.splitlines()[0]}")
        progress.update(task, description=", ".join(sorted(running)) or "publishing")

    with progress:
        yield report


@contextmanager
def stage_progress(quiet: bool) -> Iterator[Any]:
    """A spinner line on stderr naming the current stage of a long run."""
    if quiet:
        yield lambda stage: None
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), TimeElapsedColumn(), console=err, transient=True
    )
    task = progress.add_task("starting", total=None)
    with progress:
        yield lambda stage: progress.update(task, description=stage)


def scenario_json(result: Any) -> dict[str, Any]:
    import polars as pl

    per = result.scenarios.group_by("scenario").agg(
        rows=pl.len(),
        baseline=pl.col("baseline_mean").sum(),
        moved=pl.col("units_mean").sum(),
        products_up=pl.col("product_id").filter(pl.col("uplift") > 0).n_unique(),
        products=pl.col("product_id").n_unique(),
    )
    return {
        "run_id": result.run_id,
        "cutoff_date": result.cutoff,
        "scenarios": per.sort("scenario").to_dicts(),
        "elasticity": result.elasticity.to_dicts(),
        "seconds": round(result.seconds, 2),
    }


def scenario_summary(result: Any) -> None:
    summary = scenario_json(result)
    view = Table(
        title=f"wh forecast --scenario {result.run_id}: the published forecast (cutoff "
        f"{result.cutoff}) moved by each scenario",
        title_justify="left",
    )
    columns = ("scenario", "rows", "products up", "baseline units", "scenario units", "uplift")
    for column in columns:
        view.add_column(column, justify="left" if column == "scenario" else "right")
    for row in summary["scenarios"]:
        uplift = row["moved"] / row["baseline"] - 1 if row["baseline"] else float("nan")
        view.add_row(
            escape(str(row["scenario"])),
            f"{row['rows']:,}",
            f"{row['products_up']} of {row['products']}",
            f"{row['baseline']:,.1f}",
            f"{row['moved']:,.1f}",
            f"{uplift:+.1%}",
        )
    out.print(view)
    for row in result.elasticity.iter_rows(named=True):
        if row["category"] != "all":
            continue
        out.print(
            f"price elasticity ({row['method']}): {row['elasticity']:.2f} "
            f"[{row['low']:.2f}, {row['high']:.2f}]"
        )
    out.print(
        f"Published forecast.scenario_forecast and forecast.price_elasticity in "
        f"{result.seconds:.1f}s; forecast.demand_forecast is unchanged."
    )


def forecast_summary(result: Any) -> None:
    metric = result.spec.metric
    ordered = sorted(result.scores.items(), key=lambda kv: (kv[1][metric], kv[0]))
    view = Table(
        title=f"wh forecast {result.run_id}: backtest, {result.spec.folds} folds x "
        f"{result.spec.horizon} {result.spec.freq}s (mean over folds)",
        title_justify="left",
    )
    truth = result.truth_wape or {}
    columns = ["model", "wape", "mase", "mae", "rmse", "bias"]
    if truth:
        columns.append("wape vs truth")
    for column in [*columns, ""]:
        view.add_column(column, justify="left" if column in ("model", "") else "right")
    for model, s in ordered:
        cells = [f"{s[k]:.3f}" for k in ("wape", "mase", "mae", "rmse", "bias")]
        if truth:
            cells.append(f"{truth[model]:.3f}" if model in truth else "")
        view.add_row(model, *cells, "[bold green]winner[/]" if model == result.winner else "")
    out.print(view)
    products = result.forecast["product_id"].n_unique()
    for note in result.notes:
        out.print(f"[yellow]note:[/] {escape(note)}")
    if result.stage_seconds:
        out.print(
            "time: " + ", ".join(f"{escape(k)} {v:.1f}s" for k, v in result.stage_seconds.items())
        )
    so_far = result.published_so_far
    if so_far is not None:
        line = (
            f"the forecast published before (run {so_far['run_id']}, cutoff "
            f"{so_far['cutoff_date']}): {so_far['periods_observed']} of {so_far['periods']} "
            "periods observed"
        )
        if "wape" in so_far:
            line += (
                f", WAPE {so_far['wape']:.3f}, bias {so_far['bias']:+.3f}, "
                f"p10-p90 coverage {so_far['coverage']:.0%}"
            )
        out.print(escape(line))
    for audit in result.audits:
        mark = {True: "[green]passed[/]", False: "[red]FAILED[/]", None: "[dim]skipped[/]"}
        out.print(f"audit {audit.name}: {mark[audit.passed]} ({escape(audit.detail)})")
    if result.forced:
        out.print("[yellow]published with --force although an audit failed (recorded)[/]")
    published = ", ".join(f"{escape(m)} {n:,}" for m, n in result.selected.items())
    out.print(f"published per product ({result.spec.selection}): {published}")
    out.print(
        f"Published {result.forecast.height:,} forecasts for {products:,} products "
        f"(p10/p50/p90) in {result.seconds:.1f}s "
        f"({result.threads} threads, OpenMP wait policy {result.wait_policy}).\n"
        'Next: wh sql "select * from forecast.demand_forecast limit 10", '
        "\"select * from forecast.forecast_metrics where scope = 'overall'\""
    )


def _rows(value: int) -> str:
    return "-" if value < 0 else f"{value:,}"


def build_summary(result: BuildResult) -> None:
    if result.status == "noop":
        out.print(
            f"Nothing to do: env [bold]{result.env}[/] is up to date "
            f"({len(result.plan.models)} models, {result.seconds:.2f}s)."
        )
        return
    table = Table(title=f"wh build → {result.env} ({result.build_id})", title_justify="left")
    for column in ("model", "action", "rows processed", "rows", "seconds", "audits"):
        table.add_column(
            column, justify="right" if column in ("rows processed", "rows", "seconds") else "left"
        )
    computed = {r.plan.model.name: r for r in result.results}
    for item in result.plan.models:
        r = computed.get(item.model.name)
        if r is None:
            table.add_row(item.model.name, item.action.value, "", "", "", "")
            continue
        passed = sum(1 for a in r.audits if a.failing == 0)
        action = r.plan.action.value  # an incremental model may have had to run in full
        if r.plan.action is not item.action:
            action += f" [dim]({r.plan.reason})[/]"
        table.add_row(
            item.model.name,
            action,
            _rows(r.rows_processed),
            _rows(r.version.row_count),
            f"{r.seconds:.2f}",
            f"{passed}/{len(r.audits)} passed" if r.audits else "",
        )
    out.print(table)
    published = f"published #{result.published.id}" if result.published else "nothing to publish"
    out.print(
        f"{len(result.results)} computed, {len(result.reused)} reused, "
        f"{published} in {result.seconds:.2f}s."
    )
    if result.erasure is not None:
        out.print(f"Erasure: {result.erasure.summary()}.")


def build_json(result: BuildResult) -> dict[str, Any]:
    return {
        "build_id": result.build_id,
        "env": result.env,
        "status": result.status,
        "seconds": round(result.seconds, 3),
        "published": result.published.id if result.published else None,
        "erasure": None
        if result.erasure is None
        else {
            "requests": result.erasure.requests,
            "files_rewritten": result.erasure.files_rewritten,
            "rows_removed": result.erasure.rows_removed,
            "messages_scrubbed": result.erasure.messages_scrubbed,
        },
        "models": [
            {
                "model": r.plan.model.name,
                "action": r.plan.action.value,
                "reason": r.plan.reason,
                "fingerprint": r.version.fingerprint,
                "rows_processed": r.rows_processed,
                "rows": r.version.row_count,
                "seconds": round(r.seconds, 3),
                "audits": [{"audit": a.label, "failing_rows": a.failing} for a in r.audits],
            }
            for r in result.results
        ],
        "reused": result.reused,
    }


CHANGE_STYLE = {"new": "green", "changed": "yellow", "indirect": "cyan", "unchanged": "dim"}


def plan_summary(plan: Plan) -> None:
    from warehouse.runtime.plan import Action, arrived_files

    table = Table(title=f"wh plan → {plan.env}", title_justify="left")
    for column in ("model", "change", "action", "fingerprint"):
        table.add_column(column)
    for item in plan.models:
        style = CHANGE_STYLE.get(item.change.value, "")
        action = item.action.value
        if item.reason and item.current:  # an incremental model that cannot extend its version
            action += f" [dim]({item.reason})[/]"
        if item.action is Action.INCREMENTAL and item.model.arrived:
            found = arrived_files(item, plan.sources)
            read = ", ".join(f"{len(files)} of {name}" for name, files in found.items())
            action += f" [dim](new files: {read})[/]"
        table.add_row(item.model.name, f"[{style}]{item.change.value}[/]", action, item.fingerprint)
    for name in plan.removed:
        table.add_row(name, "[red]removed[/]", "drop from env", "")
    out.print(table)
    for item in plan.models:
        if item.diff:
            from rich.syntax import Syntax  # Pygments: only when there is a diff to show

            out.print(Syntax(item.diff, "diff", theme="ansi_dark", background_color="default"))
    compute = plan.to_compute
    input_rows = sum(
        p.current.row_count
        for p in plan.models
        if p.current
        and any(p.model.name in c.model.depends_on for c in compute)
        and p.current.row_count > 0
    )
    verdict = "will publish" if plan.publishes_something else "nothing to publish"
    out.print(
        f"{len(compute)} to compute, "
        f"{sum(1 for p in plan.models if p.action.value == 'reuse')} to reuse, "
        f"{verdict}; known input rows: {input_rows:,}."
    )


def spark_report(report: Any, show_sql: list[str]) -> None:
    """`wh plan --engine spark`: what cannot run on Spark, where; the SQL asked for."""
    refused = [(item, p) for item, _, problems in report for p in problems]
    for item, problem in refused:
        where = f"{item.model.path}"
        if problem.line is not None:
            where += f":{problem.line}" + (f":{problem.column}" if problem.column else "")
        out.print(f"[red]spark[/] {where}: {problem.construct}: {problem.reason}")
    for item, sql, _ in report:
        if item.model.name in show_sql:
            out.print(f"-- {item.model.name} on Spark\n{sql or '(cannot be translated)'}")
    missing = set(show_sql) - {item.model.name for item, _, _ in report}
    for name in sorted(missing):
        out.print(f"[yellow]--sql {name}[/]: not a SQL model this build computes")
    models = len(report)
    if refused:
        out.print(f"spark: {len(refused)} construct(s) in {models} SQL models cannot run on Spark.")
    else:
        out.print(f"spark: all {models} SQL models to compute translate.")


def spark_report_json(report: Any) -> list[dict[str, Any]]:
    return [
        {
            "model": item.model.name,
            "sql": sql,
            "problems": [
                {
                    "construct": p.construct,
                    "reason": p.reason,
                    "file": str(item.model.path),
                    "line": p.line,
                    "column": p.column,
                }
                for p in problems
            ],
        }
        for item, sql, problems in report
    ]


def reject_summary(report: Any) -> None:
    """Rows and units cleaning rejected per source and reason; warnings in yellow."""
    if report.rows:
        table(
            ["source", "reason", "rows", "units"],
            [
                (r.source, r.reason, f"{r.rows:,}", "" if r.units is None else f"{r.units:,}")
                for r in report.rows
            ],
            title="Rejected by cleaning (staging.rejects)",
        )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}")


def demo_summary(settings: Any) -> None:
    """What the demo made, where it is, and what to try next."""
    from warehouse.runtime.query import run_query

    tables = run_query(settings, "SELECT model, kind, row_count FROM wh_meta.models ORDER BY 1")
    table(
        ["table", "kind", "rows"],
        [(m, k, "-" if n < 0 else f"{n:,}") for m, k, n in tables.rows],
        title="Tables in the prod environment",
    )
    out.print(
        f"Warehouse: {settings.warehouse / 'warehouse.duckdb'} (open it read-only with DuckDB)\n"
        "Next:\n"
        '  python -m uv run wh sql "select * from features.demand_features limit 5"\n'
        "  python -m uv run wh lineage features.demand.units\n"
        "  python -m uv run wh plan            # after editing a model in sql/\n"
        "  python -m uv run wh sources check"
    )


def table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> None:
    view = Table(title=title or None, title_justify="left")
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if v is None else str(v) for v in row))
    out.print(view)


def when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch else ""


def doctor_report(findings: list[Any]) -> None:
    marks = {"ok": "[green]ok[/]", "warning": "[yellow]warning[/]", "error": "[bold red]error[/]"}
    for f in findings:
        out.print(f"{marks[f.level]}  [bold]{f.area}[/]: {f.message}", highlight=False)
        if f.fix:
            out.print(f"      fix: {f.fix}", highlight=False)
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warning" for f in findings)
    out.print(f"{errors} error(s), {warnings} warning(s).")


# --- query results: for people (table, vertical, markdown) and programs (csv, tsv, json) ---
FORMATS = ("auto", "table", "vertical", "markdown", "csv", "tsv", "json")


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def fits(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int) -> bool:
    """Whether a table of these rows is no wider than `width` (3 characters a border)."""
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(_cell(v))) for w, v in zip(widths, row, strict=True)]
    return sum(widths) + 3 * len(widths) + 1 <= width


def vertical(columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> None:
    """One block per row, a line per column (psql's \\x): wide rows stay readable."""
    label = max((len(c) for c in columns), default=0)
    number = 0
    for rows in batches:
        for row in rows:
            number += 1
            lines = [f"-[ RECORD {number} ]" + "-" * max(label - 8, 4)]
            lines += [f"{c.ljust(label)} | {_cell(v)}" for c, v in zip(columns, row, strict=True)]
            sys.stdout.write("\n".join(lines) + "\n")
    if number == 0:
        sys.stdout.write("(0 rows)\n")


def markdown(columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> None:
    def escape(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    sys.stdout.write("| " + " | ".join(escape(c) for c in columns) + " |\n")
    sys.stdout.write("|" + "---|" * len(columns) + "\n")
    for rows in batches:
        sys.stdout.writelines(
            "| " + " | ".join(escape(_cell(v)) for v in row) + " |\n" for row in rows
        )


def delimited(
    columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]], delimiter: str
) -> None:
    writer = csv.writer(sys.stdout, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for rows in batches:
        writer.writerows(rows)


def json_rows(columns: Sequence[str], batches: Iterable[Sequence[Sequence[Any]]]) -> None:
    """A JSON array of objects, written as the rows arrive."""
    first = True
    sys.stdout.write("[")
    for rows in batches:
        for row in rows:
            record = dict(zip(columns, row, strict=True))
            sys.stdout.write(("\n  " if first else ",\n  ") + json.dumps(record, default=str))
            first = False
    sys.stdout.write("\n]\n" if not first else "]\n")
