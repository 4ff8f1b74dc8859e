"""Command bodies shared by the Typer CLI and the `wh` entry point's fast path for builds
(which skips importing Typer and pydantic: a quarter second of every build)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from warehouse.errors import WhError


def _stderr() -> tuple[Any, Callable[[str], str]]:
    """The Rich console on stderr and its markup escape, imported when there is something to
    print: a quiet build that succeeds never loads Rich."""
    from rich.markup import escape

    from warehouse.interfaces.console import err

    return err, escape


def guarded(command: Callable[[], object], debug: bool = False) -> int:
    """Run a command; a WhError becomes one red line, its hint and its exit code."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                command()
            finally:
                for warning in caught:
                    err, escape = _stderr()
                    err.print(f"[yellow]Warning:[/] {escape(str(warning.message))}")
    except WhError as exc:
        if debug:
            raise
        # user text (paths, SQL, "[forecast]") is printed as is, never read as Rich markup
        err, escape = _stderr()
        err.print(f"[bold red]Error:[/] {escape(exc.message)}", markup=True, highlight=False)
        if exc.hint:
            err.print(f"  [dim]hint:[/] {escape(exc.hint)}")
        return exc.exit_code
    except KeyboardInterrupt:
        _stderr()[0].print("[red]Interrupted[/]: nothing was published by the interrupted step.")
        return 130
    return 0


def run_build(
    cfg: Any, select: list[str] | None, full_refresh: bool, quiet: bool, as_json: bool
) -> None:
    import warehouse

    if quiet and not as_json:  # nothing to draw: no Rich
        warehouse.build(cfg, select=select, full_refresh=full_refresh)
        return
    from warehouse.interfaces import console

    with console.build_progress(quiet or as_json) as rep:
        result = warehouse.build(cfg, select=select, full_refresh=full_refresh, reporter=rep)
    if as_json:
        console.print_json(console.build_json(result))
    elif not quiet:
        console.build_summary(result)
        if any(r.plan.model.name.startswith("checks.") for r in result.results):
            from warehouse.runtime.rejects import reject_report

            report = reject_report(cfg)
            if report is not None:
                console.reject_summary(report)
