"""Rolling-origin backtest: the same folds for every model, metrics per fold, product and
horizon, and the winner by the spec's metric (mean over folds, lower is better)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import polars as pl

from warehouse.errors import UsageError
from warehouse.forecast.data import ForecastData, offset, scoring_rows, training_rows
from warehouse.forecast.metrics import accuracy
from warehouse.forecast.models import FORECASTERS, Fitted
from warehouse.forecast.spec import ForecastSpec

Progress = Callable[[str], None]


@dataclass
class Backtest:
    predictions: pl.DataFrame  # one row per model, fold, product, target period
    metrics: pl.DataFrame
    last_fits: dict[str, Fitted]

    def score(self, metric: str) -> dict[str, float]:
        overall = self.metrics.filter(pl.col("scope") == "overall")
        means = overall.group_by("model").agg(pl.col(metric).mean())
        return {m: (v if v is not None else float("inf")) for m, v in means.iter_rows()}

    def winner(self, metric: str) -> str:
        scores = self.score(metric)
        return min(scores, key=lambda m: (scores[m], m))


def fold_cutoffs(data: ForecastData, spec: ForecastSpec, last: date) -> list[date]:
    """Cutoffs whose whole horizon is observed, `step` periods apart, oldest first."""
    backs = [spec.horizon + spec.step * (spec.folds - 1 - i) for i in range(spec.folds)]
    return [data.demand.select(offset(pl.lit(last), pl.lit(-b), data.freq)).item() for b in backs]


def naive_scale(data: ForecastData, cutoff: date, train_periods: int) -> dict[str, float]:
    """Per product: mean |y_t - y_{t-1}| over the training window (the MASE denominator)."""
    start = data.demand.select(offset(pl.lit(cutoff), pl.lit(-train_periods), data.freq)).item()
    window = data.demand.filter(pl.col("period").is_between(start, cutoff))
    diffs = window.with_columns(
        d=(pl.col("units") - pl.col("units").shift(1).over("product_id")).abs()
    )
    scales = diffs.group_by("product_id").agg(pl.col("d").mean())
    return {p: s for p, s in scales.iter_rows() if s}


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


def run_backtest(
    data: ForecastData, spec: ForecastSpec, last: date, progress: Progress = lambda _: None
) -> Backtest:
    frames, metric_rows = [], []
    fits: dict[str, Fitted] = {}
    for fold, cutoff in enumerate(fold_cutoffs(data, spec, last), start=1):
        progress(f"fold {fold}/{spec.folds} (cutoff {cutoff}): training rows")
        train = spec_training_rows(data, spec, cutoff)
        actual = data.demand.rename({"period": "target_period", "units": "actual"})
        test = scoring_rows(data, cutoff, spec.horizon, spec.season).join(
            actual, on=["product_id", "target_period"], how="inner"
        )
        if train.is_empty() or test.is_empty():
            continue
        scales = naive_scale(data, cutoff, spec.train_periods)
        for name in spec.models:
            progress(f"fold {fold}/{spec.folds} (cutoff {cutoff}): {name}")
            fitted = FORECASTERS[name](train, spec)
            fits[name] = fitted
            prediction = fitted.predict(test)
            q = prediction.quantiles
            frame = test.select("product_id", "target_period", "horizon", "actual").with_columns(
                model=pl.lit(name),
                fold=pl.lit(fold),
                cutoff_date=pl.lit(cutoff),
                units_forecast=pl.Series(prediction.point),
                units_p10=pl.Series(q[:, 0]) if q is not None else pl.lit(None, pl.Float64),
                units_p90=pl.Series(q[:, 2]) if q is not None else pl.lit(None, pl.Float64),
            )
            frames.append(frame)
            metric_rows += _metric_rows(frame, name, fold, scales)
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
    return Backtest(predictions, pl.DataFrame(metric_rows, infer_schema_length=None), fits)


def _metric_rows(
    frame: pl.DataFrame, model: str, fold: int, scales: dict[str, float]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(scope: str, part: pl.DataFrame, product: str | None, horizon: int | None) -> None:
        products = part["product_id"].unique().to_list()
        known = [scales[p] for p in products if p in scales]
        scale = float(np.mean(known)) if known else None
        has_q = part["units_p10"].null_count() == 0
        values = accuracy(
            part["actual"].to_numpy(),
            part["units_forecast"].to_numpy(),
            part["units_p10"].to_numpy() if has_q else None,
            part["units_p90"].to_numpy() if has_q else None,
            scale,
        )
        rows.append(
            {
                "model": model,
                "fold": fold,
                "scope": scope,
                "product_id": product,
                "horizon": horizon,
                **values,
            }
        )

    add("overall", frame, None, None)
    for (product,), part in frame.group_by("product_id"):
        add("product", part, str(product), None)
    for (horizon,), part in frame.group_by("horizon"):
        add("horizon", part, None, int(horizon))
    return rows
