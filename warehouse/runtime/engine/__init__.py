"""Execution engines. DuckDB is the default; the interface stays narrow so that another
engine (Spark through sqlglot transpile) is one more module, not a rewrite."""
