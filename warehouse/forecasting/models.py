"""The forecasters compared in the backtest. Each fits on training rows and predicts a point
forecast (and, for LightGBM, quantiles) for scoring rows; all see only rows before the cutoff.

- naive: the units of the origin period.
- seasonal_naive: the units one season (7 days / 52 weeks / 12 months) before the target,
  the latest such period at or before the origin.
- moving_average: mean units of the last 7 days / 4 weeks / 3 months up to the origin.
- lag_linear: y = b0 + sum_k b_k y_{c-k} + promotion and price terms, least squares,
  pooled over products, one fit per horizon step.
- random_forest: LightGBM in random-forest mode on the same features as lightgbm.
- lightgbm: one global gradient-boosted model over all products and horizons, tweedie
  objective (counts, many zeros), product attributes as categoricals, early stopping on the
  latest origins of the training window; quantile models give p10/p50/p90.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from warehouse.forecasting.data import CATEGORICAL, feature_names, matrix
from warehouse.forecasting.spec import MOVING_AVERAGE, ForecastSpec


@dataclass
class Prediction:
    point: np.ndarray
    quantiles: np.ndarray | None = None  # rows x 3, monotone and non-negative
    mean: np.ndarray | None = None


@dataclass
class Fitted:
    name: str
    predict: Any  # Callable[[pl.DataFrame], Prediction]
    boosters: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    rows: int = 0  # training rows a global model saw


def _column(rows: pl.DataFrame, name: str) -> np.ndarray:
    return rows[name].cast(pl.Float64).fill_null(0.0).to_numpy()


def naive(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    return Fitted("naive", lambda rows: Prediction(_column(rows, "units_last")))


def seasonal_naive(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    def predict(rows: pl.DataFrame) -> Prediction:
        fallback = _column(rows, "units_last")
        ref = rows["seasonal_ref"].cast(pl.Float64).to_numpy()
        return Prediction(np.where(np.isnan(ref), fallback, ref))

    return Fitted("seasonal_naive", predict)


def moving_average(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    window = MOVING_AVERAGE[spec.freq]

    def predict(rows: pl.DataFrame) -> Prediction:
        recent = ["units_last", *(f"units_lag_{k}" for k in range(1, window))]
        values = rows.select(pl.col(c).cast(pl.Float64) for c in recent).to_numpy()
        counts = np.sum(~np.isnan(values), axis=1)
        return Prediction(
            np.where(counts > 0, np.nansum(values, axis=1) / np.maximum(counts, 1), 0.0)
        )

    return Fitted("moving_average", predict)


LINEAR_TERMS = ("t_on_promo", "t_promo_pct", "last_price_ratio")


def lag_linear(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    lags = [
        "units_last",
        *sorted(
            (c for c in train.columns if c.startswith("units_lag_")),
            key=lambda c: int(c.rsplit("_", 1)[1]),
        ),
    ]
    terms = [*lags, *(t for t in LINEAR_TERMS if t in train.columns)]

    def design(rows: pl.DataFrame) -> np.ndarray:
        x = rows.select(pl.col(c).cast(pl.Float64).fill_null(0.0).fill_nan(0.0) for c in terms)
        return np.column_stack([np.ones(rows.height), x.to_numpy()])

    coefficients: dict[int, np.ndarray] = {}
    for (h,), part in train.group_by("horizon"):
        beta, *_ = np.linalg.lstsq(design(part), _column(part, "y"), rcond=None)
        coefficients[int(h)] = beta

    def predict(rows: pl.DataFrame) -> Prediction:
        x = design(rows)
        out = np.zeros(rows.height)
        horizons = rows["horizon"].to_numpy()
        for h, beta in coefficients.items():
            mask = horizons == h
            out[mask] = x[mask] @ beta
        return Prediction(np.clip(out, 0, None))

    return Fitted("lag_linear", predict)


def _categories(train: pl.DataFrame) -> dict[str, list[str]]:
    return {
        c: sorted(v for v in train[c].unique().to_list() if v is not None)
        for c in CATEGORICAL
        if c in train.columns
    }


def _split_by_origin(train: pl.DataFrame, share: float = 0.15) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Time-ordered validation: the latest origins (their targets are before the cutoff)."""
    origins = train["origin"].unique().sort()
    keep = max(1, int(len(origins) * (1 - share)))
    if keep >= len(origins):
        return train, train.head(0)
    first_valid = origins[keep]
    return (
        train.filter(pl.col("origin") < first_valid),
        train.filter(pl.col("origin") >= first_valid),
    )


def _dataset(
    x: np.ndarray, y: np.ndarray, names: list[str], categorical: list[str], reference: Any = None
) -> Any:
    import lightgbm as lgb

    # binned once and reused by every booster of a fit (binning is a large share of a fit)
    return lgb.Dataset(
        x,
        y,
        feature_name=names,
        categorical_feature=categorical,
        reference=reference,
        free_raw_data=False,
    )


def _booster(
    params: dict[str, Any],
    train_set: Any,
    valid_set: Any,
    rounds: int,
    stop: int | None,
    cluster: str = "",
) -> Any:
    if cluster:  # [forecast] cluster: lightgbm.dask on the workers
        from warehouse.forecasting import distributed

        return distributed.train(cluster, params, train_set, valid_set, rounds, stop)
    import lightgbm as lgb

    # no metric on the training set: evaluating it every round was a large share of a fit
    sets: list[Any] = []
    callbacks: list[Any] = []
    if valid_set is not None and stop:
        sets.append(valid_set)
        callbacks.append(lgb.early_stopping(stop, verbose=False))
    return lgb.train(
        params, train_set, num_boost_round=rounds, valid_sets=sets, callbacks=callbacks
    )


def _lgb_params(spec: ForecastSpec, **extra: Any) -> dict[str, Any]:
    params = {
        k: v
        for k, v in spec.lightgbm.items()
        if k not in ("num_boost_round", "early_stopping_rounds")
    }
    return {
        "verbosity": -1,
        "num_threads": spec.threads,
        "seed": spec.seed,
        "deterministic": True,
        **params,
        **extra,
    }


# demand responds to price one way: never less demand at a lower target price or a deeper
# planned promotion (what price and promotion scenarios move: forecasting/scenario.py).
# LightGBM refuses monotone constraints with the quantile objective: only the mean booster
# and the scenario response model carry them
MONOTONE = {"t_price_ratio": -1, "t_promo_pct": 1, "t_on_promo": 1}
FOREST_TREES = 100
QUANTILE_ROUNDS = 80
QUANTILE_LEARNING_RATE = 0.15


def lightgbm(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    names = feature_names(train)
    categories = _categories(train)
    categorical = list(categories)
    monotone = [MONOTONE.get(name, 0) for name in names]
    fit, valid = _split_by_origin(train)
    train_set = _dataset(matrix(fit, names, categories), _column(fit, "y"), names, categorical)
    valid_set = None
    if valid.height:
        valid_set = _dataset(
            matrix(valid, names, categories),
            _column(valid, "y"),
            names,
            categorical,
            reference=train_set,
        )
    rounds = int(spec.lightgbm["num_boost_round"])
    stop = int(spec.lightgbm["early_stopping_rounds"])
    if spec.quantile_method == "conformal" and spec.metric in ("wape", "mae", "mase"):
        # the published point is the median and p10/p90 come from backtest residuals: one
        # booster, early-stopped on its own (quantile) loss
        median = _booster(
            _lgb_params(spec, objective="quantile", alpha=spec.quantiles[1]),
            train_set,
            valid_set,
            rounds,
            stop,
            spec.cluster,
        )
        stopped = median.best_iteration or rounds

        def predict_median(rows: pl.DataFrame) -> Prediction:
            xs = matrix(rows, names, categories)
            return Prediction(np.clip(median.predict(xs, num_iteration=stopped), 0, None))

        key = f"q{int(spec.quantiles[1] * 100)}"
        return Fitted("lightgbm", predict_median, {key: median}, names, train.height)
    mean_model = _booster(
        _lgb_params(spec, monotone_constraints=monotone),
        train_set,
        valid_set,
        rounds,
        stop,
        spec.cluster,
    )
    best = mean_model.best_iteration or rounds
    # the outer quantile models are most of a fit's cost: fewer, larger steps; the middle one
    # is the published point for WAPE/MAE/MASE, so it trains like the mean model
    quantile_rounds = max(20, min(best, QUANTILE_ROUNDS))
    # conformal (for rmse: the mean is the point): p10/p90 from backtest residuals
    boosted = spec.quantiles if spec.quantile_method == "boosters" else ()
    quantile_models = [
        _booster(
            _lgb_params(spec, objective="quantile", alpha=q)
            if middle
            else _lgb_params(
                spec, objective="quantile", alpha=q, learning_rate=QUANTILE_LEARNING_RATE
            ),
            train_set,
            None,
            best if middle else quantile_rounds,
            None,
            spec.cluster,
        )
        for q in boosted
        for middle in [q == spec.quantiles[1]]
    ]

    def predict(rows: pl.DataFrame) -> Prediction:
        xs = matrix(rows, names, categories)
        mean = np.clip(mean_model.predict(xs, num_iteration=best), 0, None)
        if not quantile_models:  # conformal for rmse: the mean is the point
            return Prediction(mean, None, mean)
        q = np.column_stack([m.predict(xs) for m in quantile_models])
        q = np.maximum.accumulate(np.clip(q, 0, None), axis=1)  # p10 <= p50 <= p90, >= 0
        point = q[:, 1] if spec.metric in ("wape", "mae", "mase") else mean
        return Prediction(point, q, mean)

    boosters = {
        "mean": mean_model,
        **{f"q{int(q * 100)}": m for q, m in zip(boosted, quantile_models, strict=True)},
    }
    return Fitted("lightgbm", predict, boosters, names, train.height)


def random_forest(train: pl.DataFrame, spec: ForecastSpec) -> Fitted:
    names = feature_names(train)
    categories = _categories(train)
    params = _lgb_params(
        spec,
        boosting="rf",
        objective="regression",
        bagging_fraction=0.632,
        bagging_freq=1,
        feature_fraction=0.7,
    )
    data = _dataset(matrix(train, names, categories), _column(train, "y"), names, list(categories))
    forest = _booster(params, data, None, FOREST_TREES, None, spec.cluster)

    def predict(rows: pl.DataFrame) -> Prediction:
        return Prediction(np.clip(forest.predict(matrix(rows, names, categories)), 0, None))

    return Fitted("random_forest", predict, {"forest": forest}, names)


# the global models (one fit over every product's training rows) and their family name in
# progress and timings
GLOBAL_FAMILY = {"lag_linear": "lag_linear", "random_forest": "lightgbm", "lightgbm": "lightgbm"}

FORECASTERS = {
    "naive": naive,
    "seasonal_naive": seasonal_naive,
    "moving_average": moving_average,
    "lag_linear": lag_linear,
    "random_forest": random_forest,
    "lightgbm": lightgbm,
}
