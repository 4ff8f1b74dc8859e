"""The `wh` executable: runs `wh build` before importing the CLI.

Importing Typer, DuckDB, sqlglot and Polars costs seconds; a no-op build should not, and a
build should not pay for Typer and pydantic. Anything this does not recognise (other
commands, --help, --debug) goes to the full CLI unchanged.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any


def _build_args(argv: list[str]) -> dict[str, Any] | None:
    """`wh [--project P] build [options]` with the options this path knows, else None."""
    found: dict[str, Any] = {
        "project": None,
        "env": None,
        "threads": None,
        "select": [],
        "full_refresh": False,
        "quiet": False,
        "as_json": False,
    }
    args = list(argv)
    while args and args[0] in ("--project", "-p"):
        if len(args) < 2:
            return None
        found["project"], args = args[1], args[2:]
    if not args or args[0] != "build":
        return None
    rest = args[1:]
    flags = {
        "--quiet": "quiet",
        "-q": "quiet",
        "--full-refresh": "full_refresh",
        "--json": "as_json",
    }
    while rest:
        flag = rest.pop(0)
        if flag in flags:
            found[flags[flag]] = True
        elif flag in ("--env", "-e") and rest:
            found["env"] = rest.pop(0)
        elif flag in ("--select", "-s") and rest:
            found["select"].append(rest.pop(0))
        elif flag == "--threads" and rest and rest[0].isdigit():
            found["threads"] = int(rest.pop(0))
        else:
            return None  # --help, --debug, a typo: Typer answers those
    return found


def _fast_build(argv: list[str]) -> int | None:
    """Run `wh build` without Typer; when nothing changed, without DuckDB or sqlglot too.
    Returns the exit code, or None to leave the command to the full CLI."""
    started = time.perf_counter()
    args = _build_args(argv)
    if args is None:
        return None
    from pathlib import Path

    from warehouse.config import find_project_dir, load_settings
    from warehouse.errors import WhError
    from warehouse.runtime import uptodate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            root = Path(args["project"]) if args["project"] else find_project_dir()
            settings = load_settings(root).with_overrides(env=args["env"], threads=args["threads"])
        found = None
        if not (args["select"] or args["full_refresh"] or args["as_json"]):
            found = uptodate.check(settings)
    except (WhError, Warning, OSError, ValueError):
        return None  # the full CLI reports it properly
    if found is not None:
        if not args["quiet"]:
            print(
                f"Nothing to do: env {found.env} is up to date "
                f"({found.models} models, {time.perf_counter() - started:.2f}s)."
            )
        return 0
    from warehouse.interfaces.commands import guarded, run_build

    return guarded(
        lambda: run_build(
            settings, args["select"] or None, args["full_refresh"], args["quiet"], args["as_json"]
        )
    )


def main(exit_at_once: bool = False) -> None:
    """`wh`. With `exit_at_once` (the program itself, not a caller in-process), a build ends
    without the interpreter's teardown: freeing every sqlglot and DuckDB object on the way
    out costs ~45 ms of a half-second build, and nothing is left to clean (connections,
    files and the lock are closed by then; the output is flushed here)."""
    from warehouse.resources import prepare_process

    # before anything imports Polars or LightGBM: thread pools and OpenMP are set up once
    prepare_process()
    code = _fast_build(sys.argv[1:])
    if code is not None:
        if exit_at_once:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        sys.exit(code)
    from warehouse.interfaces.cli import main as cli_main

    cli_main()


def program() -> None:
    """The `wh` executable and `python -m warehouse`."""
    main(exit_at_once=True)


if __name__ == "__main__":
    main()
