"""`wh forecast`: backtest every model on the same folds, refit the winner up to the cutoff,
forecast the horizon, and publish all forecast tables at once.

The run is recorded in forecast.model_runs as `running` before any work and finished as `ok`
or `failed` (with the error); a crash leaves it `running` until the next run marks it
`abandoned`. The forecast tables change only in the final publish, so a failed or killed run
leaves every published table as it was.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from warehouse import __version__, faults, resources
from warehouse.config import Settings
from warehouse.errors import UsageError, WhError
from warehouse.forecasting import optional, scenario, selection
from warehouse.forecasting import tables as contract
from warehouse.forecasting.audits import (
    ForecastAudit,
    ForecastAuditError,
    failure_message,
    published_so_far,
    run_audits,
)
from warehouse.forecasting.backtest import Backtest, fit_candidates, naive_scale, run_backtest
from warehouse.forecasting.data import UNIT, ForecastData, load, scoring_rows
from warehouse.forecasting.models import Fitted
from warehouse.forecasting.spec import ENSEMBLES, WINDOWS, ForecastSpec, is_statistical, load_spec
from warehouse.forecasting.tables import RUN_SCHEMA
from warehouse.runtime import erasure
from warehouse.runtime.lock import writer_lock
from warehouse.runtime.publish import TableWrite, new_run_id, publish_tables
from warehouse.runtime.state import State, open_state

RUNS = contract.MODEL_RUNS.name
Progress = Callable[[str], None]


class ForecastError(WhError):
    """The forecast run failed; the published forecast tables are unchanged."""


@dataclass
class ForecastResult:
    run_id: str
    spec: ForecastSpec
    winner: str
    scores: dict[str, dict[str, float]]  # model -> metric -> mean over folds
    forecast: pl.DataFrame
    seconds: float
    truth_wape: dict[str, float] | None = None  # backtest WAPE against known expected demand
    threads: int = 1
    wait_policy: str = ""  # the OpenMP wait policy and who set it
    notes: list[str] = field(default_factory=list)  # what the run changed (short history)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage/family -> seconds
    selected: dict[str, int] = field(default_factory=dict)  # model -> products published
    audits: list[ForecastAudit] = field(default_factory=list)
    forced: bool = False  # an audit failed and --force published anyway
    # how the forecast published before this run did on the periods observed since
    published_so_far: dict[str, Any] | None = None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _served(settings: Settings, state: State, name: str) -> pl.DataFrame | None:
    head = state.head(settings.env)
    version = state.get_version(head.mapping[name]) if head and name in head.mapping else None
    return pl.read_parquet(version.files) if version else None


@dataclass(frozen=True)
class RunRecord:
    """This run's row of forecast.model_runs (columns: tables.RUN_SCHEMA)."""

    run_id: str
    started_at: datetime
    params: dict[str, Any]  # the spec, the OpenMP policy, then what the run adjusted
    feature_fingerprints: dict[str, str]
    horizon: int
    freq: str
    kind: str = "demand"
    status: str = "running"  # running -> ok | failed; a killed run's is made abandoned
    finished_at: datetime | None = None
    model: str | None = None
    cutoff_date: date | None = None
    train_rows: int | None = None
    wh_version: str = __version__
    error: str | None = None

    def row(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["params"] = json.dumps(self.params, default=str)
        values["feature_fingerprints"] = json.dumps(self.feature_fingerprints)
        return {name: values[name] for name in RUN_SCHEMA}


def _previous_backtest(settings: Settings, state: State) -> pl.DataFrame | None:
    """The backtest rows of the run whose forecast is published, for the model it published
    (read with the filter pushed into the scan: the table keeps every run's rows)."""
    head = state.head(settings.env)
    names = (contract.DEMAND_FORECAST.name, RUNS, contract.DEMAND_BACKTEST.name)
    if head is None or not all(n in head.mapping for n in names):
        return None
    versions = [state.get_version(head.mapping[n]) for n in names]
    if any(v is None for v in versions):
        return None
    forecast_v, runs_v, backtest_v = versions
    assert forecast_v is not None and runs_v is not None and backtest_v is not None
    run_ids = pl.scan_parquet(forecast_v.files).select("run_id").unique().collect()
    if run_ids.height != 1:
        return None
    run_id = run_ids.item()
    models = (
        pl.scan_parquet(runs_v.files)
        .filter((pl.col("run_id") == run_id) & (pl.col("status") == "ok"))
        .select("model")
        .collect()
    )
    if models.height != 1 or models.item() is None:
        return None
    return (
        pl.scan_parquet(backtest_v.files)
        .filter((pl.col("run_id") == run_id) & (pl.col("model") == models.item()))
        .collect()
    )


def _record_run(settings: Settings, state: State, record: RunRecord) -> None:
    """Publish forecast.model_runs alone, with this run's current row."""
    table = TableWrite(_runs_table(settings, state, record))
    publish_tables(settings, state, {RUNS: table}, record.run_id, "forecast")


def _runs_table(settings: Settings, state: State, record: RunRecord) -> pl.DataFrame:
    """All runs with this one's row replaced; runs left `running` are abandoned."""
    current = pl.DataFrame([record.row()], schema=RUN_SCHEMA)
    previous = _served(settings, state, RUNS)
    if previous is None:
        return current
    previous = previous.filter(pl.col("run_id") != record.run_id).with_columns(
        status=pl.when(pl.col("status") == "running").then(pl.lit("abandoned")).otherwise("status")
    )
    return pl.concat([previous.select(list(RUN_SCHEMA)).cast(RUN_SCHEMA), current])  # type: ignore[arg-type]


def forecast(
    settings: Settings,
    horizon: int | None = None,
    models: list[str] | None = None,
    cutoff: date | None = None,
    progress: Progress = lambda _: None,
    truth: Path | None = None,
    force: bool = False,
) -> ForecastResult:
    """Backtest, refit the winner, audit, publish. `truth`: a Parquet file of (product_id,
    date, expected_units), such as the demo's truth.parquet, to score the backtest against.
    A failing forecast audit publishes nothing but the run's record, unless `force`."""
    # before LightGBM (and its OpenMP runtime) is imported: idle threads must yield the CPU
    policy = resources.prepare_openmp()
    spec = load_spec(settings, horizon, models)
    started = time.perf_counter()
    run_id = new_run_id()
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        try:
            head = state.head(settings.env)
            if head is None or "features.demand_features" not in head.mapping:
                raise UsageError(
                    f"environment '{settings.env}' has no features.demand_features to forecast",
                    hint=f"build it first: wh build --env {settings.env}",
                )
            if erasure.pending(settings, state):
                raise UsageError(
                    "erasure requests changed since the last build: the customer models "
                    "would still score erased customers",
                    hint=f"build first (it applies them): wh build --env {settings.env}",
                )
            record = RunRecord(
                run_id=run_id,
                started_at=_now(),
                params={"spec": asdict(spec), "openmp": str(policy)},
                feature_fingerprints={
                    k: v for k, v in head.mapping.items() if k.startswith("features.")
                },
                cutoff_date=cutoff,
                horizon=spec.horizon,
                freq=spec.freq,
            )
            _record_run(settings, state, record)
            faults.point("forecast_started")
            try:
                outcome = _run(settings, state, spec, run_id, cutoff, progress)
                result, tables = outcome.result, outcome.tables
                progress("auditing")
                backtest = tables.get(contract.DEMAND_BACKTEST.name)
                result.audits = run_audits(
                    spec.audits,
                    backtest.frame if backtest is not None else None,
                    outcome.model,
                    _previous_backtest(settings, state),
                    result.forecast,
                    outcome.history_max,
                )
                failed = [a for a in result.audits if a.passed is False]
                result.forced = bool(failed) and force
                record = replace(
                    record,
                    model=outcome.model,
                    cutoff_date=outcome.cutoff_date,
                    train_rows=outcome.train_rows,
                    params={
                        **record.params,
                        **outcome.params,
                        "audits": [a.to_json() for a in result.audits],
                        "forced": result.forced,
                        "published_so_far": result.published_so_far,
                    },
                )
                if failed and not force:
                    raise ForecastAuditError(
                        f"forecast run {run_id} was not published: {failure_message(failed)}",
                        hint="the published forecast tables are unchanged; the figures are in "
                        "forecast.model_runs (params.audits). Change the models or the data, "
                        "loosen [forecast.audits] in wh.toml, or publish anyway with "
                        "wh forecast --force",
                    )
                record = replace(record, status="ok", finished_at=_now())
                tables[RUNS] = TableWrite(_runs_table(settings, state, record))
                progress("publishing")
                publish_tables(settings, state, tables, run_id, "forecast")
                faults.point("forecast_published")
            except BaseException as exc:
                record = replace(
                    record,
                    status="failed",
                    finished_at=_now(),
                    error=f"{type(exc).__name__}: {exc}",
                )
                _record_run(settings, state, record)
                if isinstance(exc, WhError | KeyboardInterrupt):
                    raise
                raise ForecastError(
                    f"forecast run {run_id} failed: {type(exc).__name__}: {exc}",
                    hint="the published forecast tables are unchanged; rerun with --debug "
                    "for the traceback",
                ) from exc
            if spec.cluster:
                from warehouse.forecasting import distributed

                trained = distributed.summary(spec.cluster)
                result.notes.append(trained or f"nothing was trained on Dask ({spec.cluster})")
            result.seconds = time.perf_counter() - started
            result.threads = spec.threads
            result.wait_policy = str(policy)
            if truth is not None:
                result.truth_wape = truth_wape(
                    tables[contract.DEMAND_BACKTEST.name].frame, truth, spec.freq
                )
            return result
        finally:
            state.close()
            if spec.cluster:
                from warehouse.forecasting import distributed

                distributed.close_all()


@dataclass
class RunOutcome:
    """What a successful run computed: its result, its tables, and its record's facts."""

    result: ForecastResult
    tables: dict[str, TableWrite]
    model: str  # the winner, or `selected` when products publish different models
    history_max: pl.DataFrame  # product_id, max_units: the highest demand the run read
    cutoff_date: date  # the last period the run trained on
    train_rows: int | None
    params: dict[str, Any]  # what the run adjusted (folds used, notes)


def _run(
    settings: Settings,
    state: State,
    spec: ForecastSpec,
    run_id: str,
    cutoff: date | None,
    progress: Progress,
) -> RunOutcome:
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    progress("loading features")
    data = load(settings, None if cutoff else spec.history, spec.country)
    last = data.last_period
    if cutoff is not None:
        if cutoff > last:
            raise UsageError(f"--cutoff {cutoff} is after the last period {last}")
        data = data.until(cutoff)
        last = data.last_period
    seconds["loading"] = time.perf_counter() - started
    _check_memory(settings, spec, data, progress)
    spec, notes = fit_folds(spec, data)
    steps = optional.Steps(notes=notes, seconds=seconds)  # a failed step adds its note
    so_far = steps.value(
        "accuracy",
        lambda: published_so_far(
            _served(settings, state, contract.DEMAND_FORECAST.name), data.demand
        ),
    )
    if spec.folds == 0:
        predicted, selected = _without_backtest(data, spec, last, run_id)
        backtest = None
        winner = str(selected["model"][0]) if selected.height else "none"
        scores: dict[str, dict[str, float]] = {}
        train_rows = None
    else:
        backtest = run_backtest(data, spec, last, progress)
        seconds.update(backtest.seconds)
        winner = backtest.winner(spec.metric)
        candidates = backtest.predictions.filter(pl.col("model") != selection.SELECTED)
        # the winner is the prior and the global model, so the table's global_model and
        # global_score name what a product publishes when selection falls back to it
        chosen = selection.select(candidates, spec.metric, spec.selection_shrinkage, winner)
        selected = chosen.table
        per_series = spec.selection == "per_series"
        overall = backtest.score(spec.metric)
        evidence = selection.selection_evidence(backtest.predictions, winner, spec.metric)
        if per_series and evidence < 1.0:
            # the out-of-sample backtest of per-product choice (each fold chosen on the
            # others) is not clearly better than one model for all: publish the winner
            notes.append(
                f"per-product selection scored {overall.get(selection.SELECTED, np.nan):.3f} "
                f"{spec.metric} against {winner}'s {overall[winner]:.3f} on the backtest "
                f"({evidence:.1f} standard errors better, 1 needed): published {winner} "
                "for every product"
            )
            per_series = False
        if not per_series:
            selected = selected.with_columns(model=pl.lit(winner), score=pl.col("global_score"))
        needed = sorted(set(selected["model"].to_list()) | {winner})
        members = {m for n in needed for m in backtest.members.get(n, [])}
        to_fit = sorted((set(needed) | members) - set(ENSEMBLES))
        progress(f"refitting {len(to_fit)} models up to {last}")
        # library models are refitted only for the products that publish them (directly or
        # through an ensemble): a per-series fit is most of a refit's cost
        library = [
            m
            for m in needed
            if is_statistical(m) or any(is_statistical(x) for x in backtest.members.get(m, []))
        ]
        library_users = set(
            selected.filter(pl.col("model").is_in(library))["product_id"].cast(pl.String)
        )
        fitted = fit_candidates(
            data, spec, last, to_fit, seconds, progress, "refit", backtest.carried, library_users
        )
        future = scoring_rows(data, last, spec.horizon, spec.season)
        scales = naive_scale(data, last, spec.train_periods)
        predicted = _forecast_frame(
            future, fitted, backtest, selected, winner, scales, spec, last, run_id
        )
        train_rows = max((f.rows for f in fitted.values()), default=0) or None
        _save_models(settings, run_id, fitted, backtest)
        scores = {
            m: {k: _mean(backtest, m, k) for k in ("wape", "mase", "mae", "rmse", "bias")}
            for m in backtest.metrics["model"].unique().sort().to_list()
        }
    published_model = selection.SELECTED if selected["model"].n_unique() > 1 else winner
    tables = {
        c.name: c.write(predicted)
        for c in (contract.DEMAND_FORECAST, contract.DEMAND_FORECAST_HISTORY)
    }
    tables[contract.MODEL_SELECTION.name] = contract.MODEL_SELECTION.write(
        selected.with_columns(
            improvement=pl.when(pl.col("global_score") > 0).then(
                1 - pl.col("score") / pl.col("global_score")
            ),
            run_id=pl.lit(run_id),
        ).rename({"n": "backtest_rows"})
    )
    if backtest is not None:
        tables.update(_backtest_tables(backtest, run_id))
        tables.update(steps.run("importance", lambda: optional.importance_table(backtest, run_id)))
        if spec.hierarchy.enabled:
            progress("reconciling the hierarchy")
            tables.update(
                steps.run(
                    "hierarchy",
                    lambda: optional.hierarchy_tables(
                        settings, spec, data, backtest, selected, predicted, last, run_id, notes
                    ),
                )
            )
    planned = scenario.scenario_source(settings.sources)
    if planned is not None:  # the project's scenarios source: scored with every run
        progress(f"scenarios of {planned.name}")
        tables.update(
            steps.run(
                "scenarios",
                lambda: optional.scenario_tables(
                    data, spec, last, predicted, scenario.read_scenarios(planned), run_id
                ),
            )
        )
    tables.update(
        steps.run(
            "customers",
            lambda: optional.customer_tables(settings, state, spec, predicted, run_id, progress),
        )
    )
    result = ForecastResult(run_id, spec, winner, scores, predicted, 0.0)
    result.notes = notes
    result.published_so_far = so_far
    result.stage_seconds = seconds
    result.selected = dict(  # products with a forecast, per model that produced it
        predicted.group_by("model")
        .agg(pl.col("product_id").n_unique())
        .sort("product_id", "model", descending=[True, False])
        .iter_rows()
    )
    history_max = data.demand.group_by("product_id").agg(max_units=pl.col("units").max())
    return RunOutcome(
        result,
        tables,
        published_model,
        history_max,
        last,
        train_rows,
        {
            "folds_used": spec.folds,
            "fold_step_used": spec.step,
            "notes": notes,
            "optional_steps": steps.status,
        },
    )


def fit_folds(spec: ForecastSpec, data: ForecastData) -> tuple[ForecastSpec, list[str]]:
    """The folds the history allows: fewer folds, then a one-period fold step, and 0 folds
    (no backtest) when even one fold does not fit. Says what it changed."""
    periods = data.demand["period"].n_unique()
    # a fold needs its horizon observed and some history before its cutoff to fit on
    before = max(spec.horizon, 4)

    def fits(folds: int, step: int) -> bool:
        return periods >= spec.horizon + step * (folds - 1) + before

    for step in dict.fromkeys((spec.step, 1)):
        for folds in range(spec.folds, 0, -1):
            if fits(folds, step):
                if (folds, step) == (spec.folds, spec.step):
                    return spec, []
                note = (
                    f"{periods} {spec.freq}s of history: backtest of {folds} folds "
                    f"{step} {spec.freq}s apart instead of {spec.folds} x {spec.step}"
                )
                return replace(spec, folds=folds, fold_step=step), [note]
    note = (
        f"{periods} {spec.freq}s of history: too short for a backtest of {spec.horizon} "
        f"{spec.freq}s (needs {spec.horizon + before}); published a window mean without one"
    )
    return replace(spec, folds=0), [note]


def _without_backtest(
    data: ForecastData, spec: ForecastSpec, last: date, run_id: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Each product's mean of its last periods, with its history's p10/p90 around it: what a
    forecast can say with no backtest to choose or calibrate anything."""
    k = WINDOWS[spec.freq][0]
    name = f"mean_{k}"
    history = data.demand.filter(pl.col("period") <= last).sort("product_id", "period")
    recent = history.group_by("product_id").agg(
        point=pl.col("units").tail(k).mean().cast(pl.Float64),
        low=pl.col("units").tail(k).quantile(spec.quantiles[0]).cast(pl.Float64),
        high=pl.col("units").tail(k).quantile(spec.quantiles[2]).cast(pl.Float64),
    )
    rows = scoring_rows(data, last, spec.horizon, spec.season).join(
        recent, on="product_id", how="left"
    )
    point = rows["point"].fill_null(0.0)
    predicted = (
        rows.select("product_id", forecast_date="target_period")
        .with_columns(
            units_forecast=point,
            units_p10=pl.min_horizontal(rows["low"].fill_null(0.0), point),
            units_p50=point,
            units_p90=pl.max_horizontal(rows["high"].fill_null(0.0), point),
            cutoff_date=pl.lit(last),
            model=pl.lit(name),
            run_id=pl.lit(run_id),
        )
        .sort("product_id", "forecast_date")
    )
    selected = (
        predicted.select("product_id")
        .unique()
        .sort("product_id")
        .with_columns(
            model=pl.lit(name),
            score=pl.lit(None, pl.Float64),
            global_model=pl.lit(name),
            global_score=pl.lit(None, pl.Float64),
            n=pl.lit(0, pl.Int64),
        )
    )
    return predicted, selected


def _backtest_tables(backtest: Backtest, run_id: str) -> dict[str, TableWrite]:
    run = pl.lit(run_id).alias("run_id")
    return {
        contract.DEMAND_BACKTEST.name: contract.DEMAND_BACKTEST.write(
            backtest.predictions.with_columns(run)
        ),
        contract.FORECAST_METRICS.name: contract.FORECAST_METRICS.write(
            backtest.metrics.with_columns(run)
        ),
    }


@dataclass
class ScenarioResult:
    run_id: str
    cutoff: date
    scenarios: pl.DataFrame  # forecast.scenario_forecast's rows
    elasticity: pl.DataFrame  # forecast.price_elasticity's rows
    seconds: float


def forecast_scenarios(
    settings: Settings, path: Path, progress: Progress = lambda _: None
) -> ScenarioResult:
    """`wh forecast --scenario FILE`: move the published forecast by each scenario and
    publish forecast.scenario_forecast and forecast.price_elasticity; the published forecast
    tables are left as they are."""
    resources.prepare_openmp()
    spec = load_spec(settings)
    started = time.perf_counter()
    run_id = new_run_id()
    scenarios = scenario.read_scenarios(path)  # a bad file fails before anything is read
    with writer_lock(settings.warehouse):
        state = open_state(settings)
        try:
            baseline = _served(settings, state, contract.DEMAND_FORECAST.name)
            if baseline is None or baseline.is_empty():
                raise UsageError(
                    f"environment '{settings.env}' has no published forecast to move",
                    hint="run `wh forecast` first: a scenario moves the published forecast",
                )
            cutoff = baseline["cutoff_date"][0]
            assert isinstance(cutoff, date)
            progress("loading features")
            data = load(settings, spec.history, spec.country)
            if data.last_period < cutoff:
                raise UsageError(f"the published forecast's cutoff {cutoff} is past the data")
            data = data.until(cutoff)
            progress("fitting the price response model")
            tables = optional.scenario_tables(data, spec, cutoff, baseline, scenarios, run_id)
            record = RunRecord(
                run_id=run_id,
                started_at=_now(),
                params={"scenario_file": str(path), "baseline_run": baseline["run_id"][0]},
                feature_fingerprints={},
                horizon=spec.horizon,
                freq=spec.freq,
                kind="scenario",
                status="ok",
                finished_at=_now(),
                model="lightgbm",
                cutoff_date=cutoff,
            )
            tables[RUNS] = TableWrite(_runs_table(settings, state, record))
            progress("publishing")
            publish_tables(settings, state, tables, run_id, "forecast")
        finally:
            state.close()
    return ScenarioResult(
        run_id,
        cutoff,
        tables[contract.SCENARIO_FORECAST.name].frame,
        tables[contract.PRICE_ELASTICITY.name].frame,
        time.perf_counter() - started,
    )


def memory_needed(spec: ForecastSpec, data: ForecastData) -> int:
    """Bytes the run's peak is estimated at.

    The shape of the peak: the loaded history three times (DuckDB's sorted result and the
    Arrow buffers while it is handed to Polars, then the frame), and one fold's training
    rows three times (frame, float32 matrix, LightGBM's copy), 8 bytes a value. At M5 size:
    7.8 GiB estimated, 7.9 GiB measured (bench-full)."""
    products = data.features["product_id"].n_unique()
    origins = -(-spec.train_periods // spec.origin_step)
    train_rows = products * origins * spec.horizon
    if spec.max_train_rows:
        train_rows = min(train_rows, spec.max_train_rows)
    columns = data.features.width + 8
    return 3 * int(data.features.estimated_size()) + 3 * train_rows * columns * 8


def _check_memory(
    settings: Settings, spec: ForecastSpec, data: ForecastData, progress: Progress
) -> None:
    """Say before the backtest when the run will not fit the memory the process may use
    (a cgroup limit, else physical memory): an OOM kill mid-run tells the user nothing.
    (It runs once the history is loaded: the estimate needs its size.)"""
    limit = resources.cgroup_memory_limit()
    budget = limit.bytes or resources.physical_memory()
    need = memory_needed(spec, data)
    if budget and need > budget:
        message = (
            f"warning: this forecast needs about {need / 2**30:.1f} GiB and the process may "
            f"use {budget / 2**30:.1f} GiB ({limit.source}); lower [forecast] max_train_rows "
            f"(now {spec.max_train_rows:,}) or train_periods (now {spec.train_periods})"
        )
        print(message, file=sys.stderr, flush=True)
        progress(message)


def truth_wape(backtest: pl.DataFrame, truth: Path, freq: str) -> dict[str, float]:
    """WAPE of each model's backtest forecasts against the expected demand that generated
    the data (not the noisy realisation): how close each model gets to the signal."""
    if not truth.exists():
        raise UsageError(f"truth file not found: {truth}")
    first, last = backtest["forecast_date"].min(), backtest["forecast_date"].max()
    # only the backtest's dates: at M5 size the whole file is 59 M rows
    expected = (
        pl.scan_parquet(truth)
        .filter(pl.col("date").is_between(pl.lit(first), pl.lit(last) + pl.duration(days=31)))
        .with_columns(
            product_id=pl.col("product_id").cast(pl.String),
            forecast_date=pl.col("date").dt.truncate("1" + UNIT[freq]),
        )
        .group_by("product_id", "forecast_date")
        .agg(expected=pl.col("expected_units").sum())
        .collect()
    )
    joined = backtest.join(expected, on=["product_id", "forecast_date"], how="inner")
    scores = joined.group_by("model").agg(
        wape=(pl.col("units_forecast") - pl.col("expected")).abs().sum() / pl.col("expected").sum()
    )
    return {m: float(w) for m, w in scores.iter_rows()}


def _mean(backtest: Backtest, model: str, metric: str) -> float:
    overall = backtest.metrics.filter((pl.col("scope") == "overall") & (pl.col("model") == model))
    value = overall[metric].mean() if overall.height else None
    return float(value) if isinstance(value, int | float) else float("nan")


def _forecast_frame(
    rows: pl.DataFrame,
    fitted: dict[str, Fitted],
    backtest: Backtest,
    selected: pl.DataFrame,
    winner: str,
    scales: pl.DataFrame,
    spec: ForecastSpec,
    cutoff: date,
    run_id: str,
) -> pl.DataFrame:
    """Each product's forecast from the model selected for it; p10/p50/p90 from that model's
    quantile boosters, else from its scaled backtest residuals per step (conformal)."""
    predictions = {name: model.predict(rows) for name, model in fitted.items()}
    points = {name: p.point for name, p in predictions.items()}
    for name, members in backtest.members.items():
        if not all(m in points for m in members):
            continue  # an ensemble no product publishes: its members were not refitted
        stacked = np.column_stack([points[m] for m in members])
        points[name] = stacked.mean(axis=1) if name.endswith("mean") else np.median(stacked, 1)
    keyed = rows.select(pl.col("product_id").cast(pl.String), "horizon")
    model = keyed.join(
        selected.select(pl.col("product_id").cast(pl.String), "model"),
        on="product_id",
        how="left",
        maintain_order="left",
    )["model"].fill_null(winner)
    chosen = model.to_numpy()
    point = np.zeros(rows.height)
    q = np.zeros((rows.height, 3))
    scale = (
        keyed.join(scales, on="product_id", how="left", maintain_order="left")["scale"]
        .fill_null(1.0)
        .to_numpy()
    )
    for name in np.unique(chosen):
        mask = chosen == name
        point[mask] = points[name][mask]
        boosted = predictions[name].quantiles if name in predictions else None
        if boosted is not None:
            q[mask] = boosted[mask]
            continue
        residuals = selection.residual_quantiles(
            backtest.predictions.filter(pl.col("model") == name),
            backtest.scales if backtest.scales is not None else pl.DataFrame(),
            spec.quantiles,
        )
        by_step = keyed.join(residuals, on="horizon", how="left", maintain_order="left")
        rq = by_step.select("q_low", "q_mid", "q_high").fill_null(0.0).to_numpy()
        q[mask] = selection.conformal(point[mask], scale[mask], rq[mask])
    return (
        rows.select("product_id", forecast_date="target_period")
        .with_columns(
            units_forecast=pl.Series(point, dtype=pl.Float64),
            units_p10=pl.Series(q[:, 0], dtype=pl.Float64),
            units_p50=pl.Series(q[:, 1], dtype=pl.Float64),
            units_p90=pl.Series(q[:, 2], dtype=pl.Float64),
            cutoff_date=pl.lit(cutoff),
            model=model,
            run_id=pl.lit(run_id),
        )
        .sort("product_id", "forecast_date")
    )


def _save_models(
    settings: Settings, run_id: str, fitted: dict[str, Fitted], backtest: Backtest
) -> None:
    """LightGBM text files beside the run, so a run can be inspected and reproduced."""
    folder = settings.warehouse / "runs" / run_id
    for fit in {**backtest.last_fits, **fitted}.values():
        for key, booster in fit.boosters.items():
            folder.mkdir(parents=True, exist_ok=True)
            booster.save_model(str(folder / f"{fit.name}-{key}.txt"))
