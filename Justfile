# Daily verbs. `just` comes with the dev dependencies; run it through uv so the project's
# environment is on PATH: python -m uv run just <recipe>
set shell := ["bash", "-cu"]

# list the recipes
default:
    @just --list

# generate demo sources, build every model, show a summary
demo:
    wh demo

# build new model versions and publish (pass flags: just build --env dev)
build *ARGS:
    wh build {{ARGS}}

# what a build would do, with SQL diffs
plan *ARGS:
    wh plan {{ARGS}}

# the test suite (the same line CI runs)
test *ARGS:
    pytest {{ARGS}}

# the long suite: builds killed at every model and at random moments, 16 wh serve clients
# through 2 minutes of rebuilds (~7 min)
faults *ARGS:
    pytest -m faults {{ARGS}}

# the scale-out suite (tests/scale): the example project on Spark local[2] against DuckDB for
# each freq, incremental on Spark, audits on Spark, each DuckDB/Spark difference; Dask
# training on a LocalCluster (~3 min; needs Java 17+)
scale *ARGS:
    "${UV:-uv}" sync -q --group scale
    pytest -m scale {{ARGS}}

# scale-out figures (~15 min; Java 17+): the example project on Spark local[1], local[2] and
# DuckDB at 3,000 products; LightGBM on Dask 1 vs 2 workers. In the dev environment (pyspark)
bench-spark:
    "${UV:-uv}" sync -q --group scale
    python -m bench.run --only spark

# the client suite (tests/compat: psql, pgcli, pgjdbc, psycopg, SQLAlchemy, pandas,
# harlequin), then Apache Superset 6.1 in its own environment against a real `wh serve`:
# add the database, schemas, tables, a dataset, SQL Lab, chart data with a time range.
# Superset's wheel leaves out rich and cachetools and breaks on flask-caching 2.4+.
compat:
    pytest tests/compat -n 0
    [ -x .venv-superset/bin/python ] || "${UV:-uv}" venv -q .venv-superset -p 3.11
    "${UV:-uv}" pip install -q --python .venv-superset/bin/python "apache-superset==6.1.0" psycopg2-binary rich cachetools "flask-caching==2.3.1"
    python tests/compat/superset/run.py

# ruff and mypy --strict
lint:
    ruff check warehouse pipeline tests
    ruff format --check warehouse pipeline tests
    mypy

# drop versions no environment uses
gc *ARGS:
    wh gc {{ARGS}}

# backtest, refit and publish demand forecasts (pass flags: just forecast --horizon 14)
forecast *ARGS:
    wh forecast {{ARGS}}

# read-only Postgres endpoint for BI tools: psql -h 127.0.0.1 -p 5433 -U wh prod
serve *args:
    wh serve {{args}}

# the static HTML site: models, lineage, audits, forecast report (site/index.html)
docs *ARGS:
    wh docs {{ARGS}}

# quick benchmarks vs dbt-duckdb, DuckDB and peers (~10 min): one table + bench/results.json
# (their own environment, .venv-bench: dbt pins clash with the dev tools)
bench *ARGS:
    unset VIRTUAL_ENV; UV_PROJECT_ENVIRONMENT=.venv-bench "${UV:-uv}" sync -q --no-default-groups --group bench --compile-bytecode
    unset VIRTUAL_ENV; UV_PROJECT_ENVIRONMENT=.venv-bench "${UV:-uv}" run --no-sync python -m bench.run {{ARGS}}

# the large set: M5-sized data (30,490 products x 1,941 days) and wh forecast on it, ~55 min here
bench-full *ARGS:
    unset VIRTUAL_ENV; UV_PROJECT_ENVIRONMENT=.venv-bench "${UV:-uv}" sync -q --no-default-groups --group bench --compile-bytecode
    unset VIRTUAL_ENV; UV_PROJECT_ENVIRONMENT=.venv-bench "${UV:-uv}" run --no-sync python -m bench.run --full {{ARGS}}
