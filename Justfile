# Daily verbs. `just` comes with the dev dependencies: python -m uv run just <recipe>
set shell := ["bash", "-cu"]

uv := "python -m uv run"

# list the recipes
default:
    @just --list

# generate demo sources, build every model, show a summary
demo:
    {{uv}} wh demo

# build new model versions and publish (pass flags: just build --env dev)
build *ARGS:
    {{uv}} wh build {{ARGS}}

# what a build would do, with SQL diffs
plan *ARGS:
    {{uv}} wh plan {{ARGS}}

# the test suite (the same line CI runs)
test *ARGS:
    {{uv}} pytest {{ARGS}}

# ruff and mypy --strict
lint:
    {{uv}} ruff check warehouse pipeline tests
    {{uv}} ruff format --check warehouse pipeline tests
    {{uv}} mypy

# drop versions no environment uses
gc *ARGS:
    {{uv}} wh gc {{ARGS}}

# backtest, refit and publish demand forecasts (pass flags: just forecast --horizon 14)
forecast *ARGS:
    {{uv}} wh forecast {{ARGS}}

# the Postgres-wire endpoint arrives with issue 6 (wh serve)
serve:
    @echo "wh serve is not built yet (issue 6)"; exit 1

# the HTML docs arrive with issue 6 (wh docs)
docs:
    @echo "wh docs is not built yet (issue 6)"; exit 1

# benchmarks arrive with issue 7 (bench/)
bench:
    @echo "benchmarks are not built yet (issue 7)"; exit 1
