"""The import path user projects' `pipeline/` files use: `from warehouse.python_model import
model, sql_model`. It is part of the public API and stays put; the decorators live in
`warehouse.project.python_model`."""

from __future__ import annotations

from warehouse.project.python_model import model, sql_model

__all__ = ["model", "sql_model"]
