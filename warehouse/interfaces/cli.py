"""The `wh` command line: a thin shell over the library; each command calls one function."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from warehouse.interfaces.commands import guarded, run_build

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="wh: versioned SQL + Python models in DuckDB, for demand forecasting.",
)
F = TypeVar("F", bound=Callable[..., Any])
_options: dict[str, Any] = {"debug": False, "project": None}

EnvOpt = Annotated[
    str | None, typer.Option("--env", "-e", help="Environment (default: prod or WH_ENV).")
]
SelectOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--select",
        "-s",
        help="Models: name, +name (ancestors), name+ (descendants), schema.*, tag:x. Repeatable.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, only errors.")]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", help="duckdb or spark (default: [engine] name in wh.toml, WH_ENGINE)."
    ),
]


def handle_errors(func: F) -> F:
    """Turn a WhError into one red line and its exit code; --debug re-raises."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        code = guarded(lambda: func(*args, **kwargs), _options["debug"])
        if code:
            raise typer.Exit(code)

    return wrapper  # type: ignore[return-value]


def settings(env: str | None = None, threads: int | None = None, **overrides: Any) -> Any:
    import warehouse

    return warehouse.settings(_options["project"], env, threads=threads, **overrides)


@app.callback()
def root(
    project: Annotated[
        Path | None,
        typer.Option("--project", "-p", help="Project folder (default: nearest with wh.toml)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
) -> None:
    _options.update(project=project, debug=debug)


@app.command("build")
@handle_errors
def build_cmd(
    env: EnvOpt = None,
    select: SelectOpt = None,
    full_refresh: Annotated[
        bool, typer.Option("--full-refresh", help="Recompute incremental models from scratch.")
    ] = False,
    threads: Annotated[int | None, typer.Option(help="Models built at once.")] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    engine: EngineOpt = None,
) -> None:
    """Build new model versions, audit them, then publish the environment atomically."""
    run_build(settings(env, threads, engine=engine), select, full_refresh, quiet, as_json)


@app.command("plan")
@handle_errors
def plan_cmd(
    env: EnvOpt = None,
    select: SelectOpt = None,
    as_json: JsonOpt = False,
    full_refresh: Annotated[bool, typer.Option("--full-refresh")] = False,
    engine: EngineOpt = None,
    sql: Annotated[
        list[str] | None,
        typer.Option("--sql", help="With --engine spark: print this model's Spark SQL."),
    ] = None,
) -> None:
    """Show what a build would compute, reuse and publish, with SQL diffs; runs nothing.
    With --engine spark: the constructs Spark cannot run, with file:line:col (exit 1)."""
    import warehouse
    from warehouse.interfaces import console

    chosen = settings(env, engine=engine)
    plan = warehouse.plan(chosen, select=select, full_refresh=full_refresh)
    report = None
    if chosen.engine.name == "spark":
        from warehouse.runtime.spark_runner import translation_report

        report = translation_report(chosen, plan)
    if as_json:
        data = plan.to_json()
        if report is not None:
            data["spark"] = console.spark_report_json(report)
        console.print_json(data)
    else:
        console.plan_summary(plan)
        if report is not None:
            console.spark_report(report, sql or [])
    if report is not None and any(problems for _, _, problems in report):
        raise typer.Exit(1)


@app.command("rollback")
@handle_errors
def rollback_cmd(
    env: EnvOpt = None,
    to: Annotated[
        int | None,
        typer.Option(help="Publish id to restore (default: the one before the current)."),
    ] = None,
) -> None:
    """Point the environment back at its previous publish, instantly (no recompute)."""
    import warehouse
    from warehouse.interfaces.console import out

    old, restored, new = warehouse.rollback(settings(env), to=to)
    out.print(
        f"env [bold]{new.env}[/]: rolled back publish #{old.id}; now serving what publish "
        f"#{restored.id} served (recorded as publish #{new.id})."
    )


@app.command("gc")
@handle_errors
def gc_cmd(
    retention_days: Annotated[
        float | None,
        typer.Option(help="Keep versions younger than this (default: gc_retention_days)."),
    ] = None,
) -> None:
    """Delete versions no environment uses, and files of failed or killed builds."""
    from warehouse.interfaces.console import out
    from warehouse.runtime.environments import gc

    result = gc(settings(), retention_days)
    out.print(
        f"dropped {result.versions_dropped} versions, {result.files_deleted} files "
        f"({result.bytes_freed / 1e6:.1f} MB), {result.catalogs_deleted} old catalogs."
    )
    if result.erased_ids:
        if result.still_holding:
            for line in result.still_holding:
                out.print(f"[red]still holds an erased customer:[/] {line}")
            raise typer.Exit(1)
        out.print(
            f"verified: no file under the warehouse holds any of the {result.erased_ids} "
            "erased customer ids."
        )


@app.command("sql")
@handle_errors
def sql_cmd(
    query: Annotated[str, typer.Argument(help="SQL to run, read-only.")],
    env: EnvOpt = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="auto (a table on a terminal, vertical when too wide, CSV when piped), "
            "table, vertical, markdown, csv, tsv or json",
        ),
    ] = "auto",
    limit: Annotated[int | None, typer.Option(help="Rows to fetch at most.")] = None,
) -> None:
    """Query a published environment (read-only)."""
    from warehouse.errors import UsageError
    from warehouse.interfaces import console
    from warehouse.runtime.query import stream_query

    if output not in console.FORMATS:
        raise UsageError(
            f"unknown format '{output}'", hint=f"use one of: {', '.join(console.FORMATS)}"
        )
    if output == "auto":
        output = "fitted" if sys.stdout.isatty() else "csv"
    with stream_query(settings(env), query, limit) as result:
        if output in ("table", "fitted"):
            # a table needs every width before its first line: it is for a person at a
            # terminal; `auto` turns it vertical when it is wider than the terminal
            rows = [row for batch in result.batches for row in batch]
            if output == "table" or console.fits(result.columns, rows, console.out.width):
                console.table(result.columns, rows)
            else:
                console.vertical(result.columns, [rows])
        elif output == "vertical":
            console.vertical(result.columns, result.batches)
        elif output == "markdown":
            console.markdown(result.columns, result.batches)
        elif output == "json":
            console.json_rows(result.columns, result.batches)
        else:  # csv, tsv: streamed, a batch at a time
            console.delimited(result.columns, result.batches, "," if output == "csv" else "\t")


@app.command("runs")
@handle_errors
def runs_cmd(
    limit: Annotated[int, typer.Option(help="Most recent N.")] = 20,
    as_json: JsonOpt = False,
    publishes: Annotated[
        bool, typer.Option("--publishes", help="List publishes (rollback targets) instead.")
    ] = False,
) -> None:
    """List builds with status and duration (or publishes)."""
    from warehouse.interfaces import console
    from warehouse.runtime.state import open_state

    state = open_state(settings())
    try:
        records = state.recent_publishes(limit) if publishes else state.recent_builds(limit)
    finally:
        state.close()
    for record in records:
        for key in ("started_at", "created_at"):
            if key in record:
                record[key] = console.when(record[key])
    if as_json:
        console.print_json(records)
    else:
        console.table(
            list(records[0]) if records else ["(no runs yet)"], [list(r.values()) for r in records]
        )


@app.command("audit")
@handle_errors
def audit_cmd(
    limit: Annotated[int, typer.Option(help="Most recent N statements.")] = 50,
    user: Annotated[str | None, typer.Option(help="Only this user's statements.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Who read what through wh serve and wh api ([serve] audit_log = true)."""
    from warehouse.interfaces import console
    from warehouse.runtime import audit_log

    cfg = settings()
    records = audit_log.read(cfg, limit, user)
    if not records and not audit_log.enabled(cfg):
        console.err.print("the audit log is off: set [serve] audit_log = true in wh.toml")
    for record in records:
        record["at"] = console.when(record["at"])
    if as_json:
        console.print_json(records)
    else:
        columns = ["at", "interface", "user", "role", "rows", "status", "statement"]
        console.table(
            columns if records else ["(nothing logged yet)"],
            [[r[c] for c in columns] for r in records],
        )


@app.command("forecast")
@handle_errors
def forecast_cmd(
    env: EnvOpt = None,
    horizon: Annotated[int | None, typer.Option(help="Periods ahead (default per freq).")] = None,
    models: Annotated[str | None, typer.Option(help="Comma-separated models to compare.")] = None,
    cutoff: Annotated[
        str | None,
        typer.Option(help="Forecast as of this date (YYYY-MM-DD): later data is ignored."),
    ] = None,
    against_truth: Annotated[
        Path | None,
        typer.Option(
            "--against-truth",
            help="Also score the backtest against known expected demand "
            "(a Parquet of product_id, date, expected_units, like the demo's truth.parquet).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Publish even when a [forecast.audits] audit fails (recorded)."
        ),
    ] = False,
    scenario: Annotated[
        Path | None,
        typer.Option(
            "--scenario",
            help="Price/promotion what-if (Parquet or CSV: scenario, product_id or category, "
            "start_date, end_date, price_change, promo_depth): writes "
            "forecast.scenario_forecast; the published forecast is unchanged.",
        ),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Backtest the models, refit the winner, audit, publish forecasts and metrics as tables."""
    from datetime import date

    import warehouse
    from warehouse.errors import UsageError
    from warehouse.interfaces import console

    if scenario is not None:
        if horizon or models or cutoff or against_truth or force:
            raise UsageError(
                "--scenario moves the published forecast: it takes no --horizon, --models, "
                "--cutoff, --against-truth or --force"
            )
        with console.stage_progress(quiet or as_json) as progress:
            moved = warehouse.scenario(scenario, settings(env), progress=progress)
        if as_json:
            console.print_json(console.scenario_json(moved))
        elif not quiet:
            console.scenario_summary(moved)
        return

    try:
        as_of = date.fromisoformat(cutoff) if cutoff else None
    except ValueError:
        raise UsageError(f"--cutoff must be a date like 2024-06-30, found '{cutoff}'") from None
    chosen = [m.strip() for m in models.split(",") if m.strip()] if models else None
    with console.stage_progress(quiet or as_json) as progress:
        result = warehouse.forecast(
            settings(env),
            horizon=horizon,
            models=chosen,
            cutoff=as_of,
            truth=against_truth,
            progress=progress,
            force=force,
        )
    if as_json:
        console.print_json(
            {
                "run_id": result.run_id,
                "winner": result.winner,
                "scores": result.scores,
                "audits": [a.to_json() for a in result.audits],
                "forced": result.forced,
                "published_so_far": result.published_so_far,
                "truth_wape": result.truth_wape,
                "seconds": round(result.seconds, 2),
                "forecast_rows": result.forecast.height,
            }
        )
    elif not quiet:
        console.forecast_summary(result)


@app.command("docs")
@handle_errors
def docs_cmd(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the site (default: site/ in the project)."),
    ] = None,
    env: EnvOpt = None,
) -> None:
    """Write a static HTML site: models, columns, audits, lineage and the forecast report."""
    from warehouse.interfaces.console import out as console_out
    from warehouse.interfaces.docs.site import build_site

    cfg = settings(env)
    result = build_site(cfg, (out or cfg.project_dir / "site").resolve())
    console_out.print(
        f"wrote {result.pages} pages to {result.out}; open "
        f"{result.out / 'index.html'} in a browser."
    )


@app.command("api")
@handle_errors
def api_cmd(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    env: EnvOpt = None,
) -> None:
    """Serve the read-only HTTP API: /forecast/{product}, /customers/{id}/propensity, ..."""
    import uvicorn

    from warehouse.interfaces.api import create_app

    uvicorn.run(create_app(settings(env)), host=host, port=port, log_level="warning")


@app.command("serve")
@handle_errors
def serve_cmd(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 5433).")] = None,
    env: EnvOpt = None,
    log_statements: Annotated[
        bool, typer.Option("--log-statements", help="Print each statement (as run) to stderr.")
    ] = False,
) -> None:
    """Serve the published tables over the Postgres wire protocol (read-only), for BI tools."""
    from warehouse.interfaces.serve.server import serve

    serve(settings(env), host, port, log_statements)


@app.command("doctor")
@handle_errors
def doctor_cmd(env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Check config, sources and warehouse integrity (read-only); print what to fix."""
    from dataclasses import asdict

    from warehouse.interfaces import console
    from warehouse.interfaces.doctor import diagnose

    findings = diagnose(settings(env))
    if as_json:
        console.print_json([asdict(f) for f in findings])
    else:
        console.doctor_report(findings)
    if any(f.level == "error" for f in findings):
        raise typer.Exit(1)


sources_app = typer.Typer(help="Source files: check them against the contract.")
app.add_typer(sources_app, name="sources")


@sources_app.command("check")
@handle_errors
def sources_check_cmd(as_json: JsonOpt = False) -> None:
    """Check the source files against the contract and summarise each (runs no model)."""
    from dataclasses import asdict

    from warehouse.interfaces import console
    from warehouse.runtime.sources import summarize

    cfg = settings()
    summaries = summarize(cfg)
    if as_json:
        console.print_json([asdict(s) for s in summaries])
        return
    console.table(
        ["source", "files", "rows", "first date", "last date", "nulls"],
        [
            (
                s.name,
                s.files or "absent (optional)",
                f"{s.rows:,}",
                s.first_date,
                s.last_date,
                ", ".join(f"{k}={v:,}" for k, v in s.nulls.items()),
            )
            for s in summaries
        ],
        title=f"sources in {cfg.sources}: all files match the contract",
    )


@app.command("lineage")
@handle_errors
def lineage_cmd(
    target: Annotated[
        str | None, typer.Argument(help="schema.table or schema.table.column")
    ] = None,
    pii: Annotated[
        bool,
        typer.Option("--pii", help="List every column tagged as personal data, and why."),
    ] = False,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Upstream and downstream models of a table, or the source columns of a column."""
    from warehouse.errors import UsageError
    from warehouse.interfaces.console import out
    from warehouse.project.loader import load_project
    from warehouse.runtime.lineage import column_lineage, lineage_schema, table_lineage
    from warehouse.runtime.state import open_state

    cfg = settings(env)
    project = load_project(cfg)
    if pii:
        from warehouse.interfaces import console
        from warehouse.runtime.pii import pii_report

        state = open_state(cfg)
        try:
            report = pii_report(project, lineage_schema(project, state, cfg.env))
        finally:
            state.close()
        tags = [t for t in report.ordered() if target is None or t.table.startswith(target)]
        listed = [
            {"table": t.table, "column": t.column, "pii": t.level, "from": list(t.origins),
             "declared": t.declared, "note": t.note}
            for t in tags
        ]  # fmt: skip
        if as_json:
            cleared = sorted(report.cleared.items())
            console.print_json({"pii": listed, "cleared": [
                {"table": t, "column": c, "reason": r} for (t, c), r in cleared
            ]})  # fmt: skip
            return
        console.table(
            ["column", "pii", "from", "note"],
            [
                [f"{t.table}.{t.column}", t.level, ", ".join(t.origins),
                 t.note or ("declared" if t.declared else "")]
                for t in tags
            ],
            f"personal data in env {cfg.env}: {len(tags)} columns, "
            f"{len(report.cleared)} declared none",
        )  # fmt: skip
        return
    if target is None:
        raise UsageError("name a table or column, or pass --pii", hint="wh lineage staging.orders")
    parts = target.split(".")
    table = ".".join(parts[:2])
    if len(parts) == 2:
        up, down = table_lineage(project, table)
        out.print(
            f"[bold]{table}[/]\n  upstream:   {', '.join(up) or '-'}\n"
            f"  downstream: {', '.join(down) or '-'}"
        )
        return
    state = open_state(cfg)
    try:
        schema = lineage_schema(project, state, cfg.env)
    finally:
        state.close()
    table_lineage(project, table)
    out.print("\n".join(column_lineage(project, table, parts[2], schema).render()))


@app.command("demo")
@handle_errors
def demo_cmd(
    products: Annotated[int, typer.Option(help="Products to generate.")] = 100,
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 1000,
    days: Annotated[int, typer.Option(help="Days of order history.")] = 730,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    quiet: QuietOpt = False,
) -> None:
    """Generate demo sources (seeded, once), build every model, forecast, and summarise."""
    from warehouse.interfaces import console
    from warehouse.interfaces.demo import DemoSpec, write_demo_sources

    cfg = settings()
    spec = DemoSpec.ending_in_the_past(days, products=products, customers=customers, seed=seed)
    counts = write_demo_sources(cfg.sources, spec)
    console.err.print(
        f"demo sources in {cfg.sources}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
    )
    run_build(cfg, None, False, quiet, False)
    import warehouse

    truth = cfg.sources.parent / "truth.parquet"
    with console.stage_progress(quiet) as progress:
        result = warehouse.forecast(cfg, progress=progress, truth=truth if truth.exists() else None)
    console.demo_summary(cfg)
    console.forecast_summary(result)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
