"""The `wh` executable: answers an up-to-date `wh build` before importing the CLI.

Importing Typer, DuckDB, sqlglot and Polars costs seconds; a no-op build should not. Anything
this does not recognise goes to the full CLI unchanged.
"""

from __future__ import annotations

import sys
import time
import warnings


def _fast_build(argv: list[str]) -> bool:
    """Handle `wh [--project P] build [--env E] [--quiet] [--threads N]` when up to date."""
    started = time.perf_counter()
    project: str | None = None
    env: str | None = None
    quiet = False
    args = list(argv)
    while args and args[0] in ("--project", "-p"):
        if len(args) < 2:
            return False
        project, args = args[1], args[2:]
    if not args or args[0] != "build":
        return False
    rest = args[1:]
    while rest:
        flag = rest.pop(0)
        if flag in ("--quiet", "-q"):
            quiet = True
        elif flag in ("--env", "-e", "--threads") and rest:
            value = rest.pop(0)
            if flag != "--threads":
                env = value
        else:
            return False
    from pathlib import Path

    from warehouse import uptodate
    from warehouse.config import find_project_dir, load_settings
    from warehouse.errors import WhError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            root = Path(project) if project else find_project_dir()
            settings = load_settings(root)
            if env:
                settings = settings.with_overrides(env=env)
        found = uptodate.check(settings)
    except (WhError, Warning, OSError, ValueError):
        return False  # the full CLI reports it properly
    if found is None:
        return False
    if not quiet:
        print(
            f"Nothing to do: env {found.env} is up to date "
            f"({found.models} models, {time.perf_counter() - started:.2f}s)."
        )
    return True


def main() -> None:
    if _fast_build(sys.argv[1:]):
        return
    from warehouse.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
