"""Rolling-origin backtest: the same folds for every candidate, metrics per fold, product and
horizon step, ensembles and per-product selection scored out of sample, and the overall
ranking by the spec's metric (lower is better)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from warehouse.errors import UsageError
from warehouse.forecasting import selection
from warehouse.forecasting.data import ForecastData, offset, scoring_rows, training_rows
from warehouse.forecasting.metrics import METRIC_COLUMNS, METRIC_KEYS
from warehouse.forecasting.models import FORECASTERS, GLOBAL_FAMILY, Fitted
from warehouse.forecasting.spec import ENSEMBLES, ForecastSpec, is_statistical
from warehouse.forecasting.statistical import backtest_library, fit_statistical

Progress = Callable[[str], None]


# forecast.forecast_metrics: what a row is about, then the metrics
@dataclass
class Backtest:
    predictions: pl.DataFrame  # one row per model, fold, product, target period
    metrics: pl.DataFrame
    last_fits: dict[str, Fitted]
    members: dict[str, list[str]] = field(default_factory=dict)  # ensemble -> refit members
    seconds: dict[str, float] = field(default_factory=dict)  # candidate family -> fit time
    scales: pl.DataFrame | None = None  # fold, product_id, scale (the MASE denominator)
    # library forecasts from the last period on, carried forward from the folds' one fit
    carried: pl.DataFrame | None = None

    def score(self, metric: str) -> dict[str, float]:
        overall = self.metrics.filter(pl.col("scope") == "overall")
        means = overall.group_by("model").agg(pl.col(metric).mean())
        return {m: (v if v is not None else float("inf")) for m, v in means.iter_rows()}

    def winner(self, metric: str) -> str:
        """The best single rule over every product (per-product selection excluded)."""
        scores = {m: s for m, s in self.score(metric).items() if m != selection.SELECTED}
        return min(scores, key=lambda m: (scores[m], m))


def fold_cutoffs(data: ForecastData, spec: ForecastSpec, last: date) -> list[date]:
    """Cutoffs whose whole horizon is observed, `step` periods apart, oldest first."""
    backs = [spec.horizon + spec.step * (spec.folds - 1 - i) for i in range(spec.folds)]
    return [data.demand.select(offset(pl.lit(last), pl.lit(-b), data.freq)).item() for b in backs]


def naive_scale(data: ForecastData, cutoff: date, train_periods: int) -> pl.DataFrame:
    """Per product: mean |y_t - y_{t-1}| over the training window (the MASE denominator)."""
    start = data.demand.select(offset(pl.lit(cutoff), pl.lit(-train_periods), data.freq)).item()
    window = data.demand.filter(pl.col("period").is_between(start, cutoff))
    diffs = window.with_columns(
        d=(pl.col("units") - pl.col("units").shift(1).over("product_id")).abs()
    )
    scales = diffs.group_by("product_id").agg(scale=pl.col("d").mean().cast(pl.Float64))
    return scales.filter(pl.col("scale") > 0)


def spec_training_rows(data: ForecastData, spec: ForecastSpec, cutoff: date) -> pl.DataFrame:
    """The rows a fit up to `cutoff` trains on, as the spec samples them."""
    return training_rows(
        data,
        cutoff,
        spec.horizon,
        spec.season,
        spec.train_periods,
        spec.origin_step,
        spec.max_train_rows,
        spec.seed,
    )


def family(name: str) -> str:
    """What the progress and the summary's timings group a candidate under."""
    if is_statistical(name):
        return "statistical (statsforecast, windows)"
    return GLOBAL_FAMILY.get(name, "baselines")


def fit_candidates(
    data: ForecastData,
    spec: ForecastSpec,
    cutoff: date,
    names: list[str],
    seconds: dict[str, float],
    progress: Progress,
    label: str,
    known: pl.DataFrame | None = None,
    only: set[str] | None = None,
) -> dict[str, Fitted]:
    """Every named candidate fitted on what was known at `cutoff` (`known`: library
    forecasts at this cutoff made already, see statistical.backtest_library)."""
    fitted: dict[str, Fitted] = {}
    statistical = [n for n in names if is_statistical(n)]
    if statistical:
        progress(f"{label}: {family(statistical[0])}, {len(statistical)} models")
        started = time.perf_counter()
        fitted.update(fit_statistical(data, cutoff, spec, statistical, known, only))
        _add(seconds, family(statistical[0]), started)
    rows = [n for n in names if n not in fitted and n not in ENSEMBLES]
    train = None
    for name in rows:
        progress(f"{label}: {name}")
        started = time.perf_counter()
        if train is None and name in GLOBAL_FAMILY:
            train = spec_training_rows(data, spec, cutoff)
            _add(seconds, "training rows", started)
            started = time.perf_counter()
        fitted[name] = FORECASTERS[name](train if train is not None else pl.DataFrame(), spec)
        _add(seconds, family(name), started)
    return fitted


def _add(seconds: dict[str, float], key: str, started: float) -> None:
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started


def run_backtest(
    data: ForecastData, spec: ForecastSpec, last: date, progress: Progress = lambda _: None
) -> Backtest:
    frames, scale_frames = [], []
    fits: dict[str, Fitted] = {}
    seconds: dict[str, float] = {}
    candidates = [m for m in spec.models if m not in ENSEMBLES]
    cutoffs = fold_cutoffs(data, spec, last)
    progress("statistical models: one fit per series, carried through the folds")
    # each carried model's time under its own name: AutoARIMA's cost shows beside AutoETS's
    known = backtest_library(
        data.demand_until(last), spec, cutoffs, candidates, final=True, seconds=seconds
    )
    for fold, cutoff in enumerate(cutoffs, start=1):
        label = f"fold {fold}/{spec.folds} (cutoff {cutoff})"
        actual = data.demand.rename({"period": "target_period", "units": "actual"})
        test = scoring_rows(data, cutoff, spec.horizon, spec.season).join(
            actual, on=["product_id", "target_period"], how="inner"
        )
        if test.is_empty():
            continue
        scale_frames.append(
            naive_scale(data, cutoff, spec.train_periods).with_columns(fold=pl.lit(fold))
        )
        fitted = fit_candidates(
            data, spec, cutoff, candidates, seconds, progress, label, known.get(cutoff)
        )
        fits.update(fitted)
        for name, model in fitted.items():
            prediction = model.predict(test)
            q = prediction.quantiles
            frames.append(
                test.select("product_id", "target_period", "horizon", "actual").with_columns(
                    model=pl.lit(name),
                    fold=pl.lit(fold),
                    cutoff_date=pl.lit(cutoff),
                    units_forecast=pl.Series(prediction.point, dtype=pl.Float64),
                    units_p10=pl.Series(q[:, 0]) if q is not None else pl.lit(None, pl.Float64),
                    units_p90=pl.Series(q[:, 2]) if q is not None else pl.lit(None, pl.Float64),
                )
            )
    if not frames:
        periods = data.demand["period"].n_unique()
        needed = spec.horizon * 2 + spec.step * (spec.folds - 1)
        raise UsageError(
            f"not enough history to backtest: {periods} {data.freq}s of demand, a backtest of "
            f"{spec.folds} folds x {spec.horizon} {data.freq}s needs more than {needed}",
            hint="pass a shorter --horizon, or lower horizon/folds in the [forecast] table "
            "of wh.toml",
        )
    predictions = pl.concat(frames).rename(
        {"target_period": "forecast_date", "actual": "units_actual"}
    )
    scales = pl.concat(scale_frames)
    progress("ensembles and per-product selection")
    started = time.perf_counter()
    predictions, members = selection.add_ensembles(predictions, spec)
    predictions = pl.concat(
        [
            predictions,
            selection.selected_backtest(predictions, spec.metric, spec.selection_shrinkage),
        ],
        how="diagonal_relaxed",
    )
    predictions = _fill_intervals(predictions, scales, spec)
    _add(seconds, "selection", started)
    return Backtest(
        predictions,
        metrics(predictions, scales),
        fits,
        members,
        seconds,
        scales,
        known.get(last),
    )


def _fill_intervals(
    predictions: pl.DataFrame, scales: pl.DataFrame, spec: ForecastSpec
) -> pl.DataFrame:
    """p10/p90 for rows of models without quantile models: scaled residual quantiles of the
    same model and step on the other folds (conformal, out of sample)."""
    folds = sorted(predictions["fold"].unique().to_list())
    missing = predictions.filter(pl.col("units_p10").is_null())
    if missing.is_empty():
        return predictions
    done = [predictions.filter(pl.col("units_p10").is_not_null())]
    for fold in folds:
        others = missing.filter(pl.col("fold") != fold) if len(folds) > 1 else missing
        q = selection.residual_quantiles(others, scales, spec.quantiles)
        this = (
            missing.filter(pl.col("fold") == fold)
            .join(scales, on=["fold", "product_id"], how="left")
            .join(q, on=["model", "horizon"], how="left")
            .with_columns(s=pl.col("scale").fill_null(1.0))
        )
        done.append(
            this.with_columns(
                units_p10=(pl.col("units_forecast") + pl.col("s") * pl.col("q_low"))
                .clip(0)
                .fill_null(pl.col("units_forecast")),
                units_p90=(pl.col("units_forecast") + pl.col("s") * pl.col("q_high"))
                .clip(0)
                .fill_null(pl.col("units_forecast")),
            )
            .with_columns(
                units_p10=pl.min_horizontal("units_p10", "units_forecast"),
                units_p90=pl.max_horizontal("units_p90", "units_forecast"),
            )
            .select(predictions.columns)
        )
    return pl.concat(done, how="vertical_relaxed")


def metrics(predictions: pl.DataFrame, scales: pl.DataFrame) -> pl.DataFrame:
    """Per model and fold: overall, per product and per horizon step (WAPE = sum|e| / sum y;
    MASE = MAE / the mean naive scale of the group's products; bias = sum(f - y) / sum y)."""
    rows = predictions.join(scales, on=["fold", "product_id"], how="left").with_columns(
        e=pl.col("units_forecast") - pl.col("units_actual"),
        covered=(pl.col("units_actual") >= pl.col("units_p10"))
        & (pl.col("units_actual") <= pl.col("units_p90")),
    )
    total = pl.col("units_actual").sum()
    spread = ((pl.col("units_actual") - pl.col("units_actual").mean()) ** 2).sum()
    product_scale = pl.col("scale").filter(pl.col("product_id").is_first_distinct()).mean()
    values = [
        pl.col("e").abs().mean().alias("mae"),
        (pl.col("e") ** 2).mean().sqrt().alias("rmse"),
        pl.when(total > 0).then(pl.col("e").abs().sum() / total).alias("wape"),
        (pl.col("e").abs().mean() / product_scale).alias("mase"),
        pl.when(total > 0).then(pl.col("e").sum() / total).alias("bias"),
        pl.when(spread > 0).then(1 - (pl.col("e") ** 2).sum() / spread).alias("r2"),
        pl.when(pl.col("units_p10").null_count() == 0)
        .then(pl.col("covered").mean())
        .alias("p10_p90_coverage"),
        pl.len().cast(pl.Int64).alias("n"),
    ]
    overall = (
        rows.group_by("model", "fold")
        .agg(values)
        .with_columns(
            scope=pl.lit("overall"),
            product_id=pl.lit(None, pl.String),
            horizon=pl.lit(None, pl.Int32),
        )
    )
    product = (
        rows.group_by("model", "fold", "product_id")
        .agg(values)
        .with_columns(scope=pl.lit("product"), horizon=pl.lit(None, pl.Int32))
    )
    horizon = (
        rows.group_by("model", "fold", "horizon")
        .agg(values)
        .with_columns(scope=pl.lit("horizon"), product_id=pl.lit(None, pl.String))
    )
    columns = list(METRIC_KEYS) + list(METRIC_COLUMNS)
    return pl.concat(
        [
            f.with_columns(
                pl.col("product_id").cast(pl.String), pl.col("horizon").cast(pl.Int32)
            ).select(columns)
            for f in (overall, product, horizon)
        ]
    ).sort("model", "fold", "scope", "product_id", "horizon", nulls_last=False)
