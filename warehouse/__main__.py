"""`python -m warehouse ...` is `wh ...` (the same entry point, fast path included)."""

from warehouse.interfaces.entry import program

program()
