"""Purchase propensity: will a customer order (non-cancelled) in the next N days?

Features are the published `features.customer_profile` query itself, run as of several
cutoffs (so training uses exactly the logic analysts see), labels the orders after each
cutoff. Time split: the latest cutoff whose window is fully observed validates; earlier
cutoffs, N days apart, train. Nothing a cutoff's row uses lies after it. Compared: a
LightGBM classifier, a logistic regression (Newton's method, L2) and a recency/frequency
baseline (the training purchase rate of each RFM recency x frequency cell). The best by log
loss scores every customer as of the last order date; expected orders come from a Poisson
LightGBM on the same features.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from warehouse.runtime.engine import duckdb as engine

CATEGORICAL = ("country", "channel", "customer_segment", "favourite_category")
NUMERIC = (
    "orders",
    "units",
    "revenue",
    "avg_order_value",
    "recency_days",
    "tenure_days",
    "mean_days_between_orders",
    "cancel_rate",
    "return_rate",
    "recency_score",
    "frequency_score",
    "monetary_score",
)
TRAIN_CUTOFFS = 4


@dataclass
class PropensityResult:
    scores: pl.DataFrame  # customer_id, as_of_date, p_purchase, expected_orders, model
    metrics: pl.DataFrame  # model, auc, accuracy, precision, recall, f1, log_loss, base_rate
    winner: str


def profiles(con: engine.Connection, query: str, as_of: date, window_days: int) -> pl.DataFrame:
    """Profile features as of `as_of` and the non-cancelled orders in the next window."""
    features = pl.DataFrame(con.sql(query, params={"as_of_date": as_of}).to_arrow_table())
    labels = pl.DataFrame(
        con.sql(
            "SELECT customer_id, count(*) AS future_orders FROM staging.orders WHERE status <> "
            "'cancelled' AND customer_id IS NOT NULL AND order_date > $start AND order_date <= "
            "$end GROUP BY 1",
            params={"start": as_of, "end": as_of + timedelta(days=window_days)},
        ).to_arrow_table()
    )
    return features.join(labels, on="customer_id", how="left").with_columns(
        future_orders=pl.col("future_orders").fill_null(0),
        cutoff=pl.lit(as_of),
    )


def _matrix(frame: pl.DataFrame, categories: dict[str, list[str]]) -> np.ndarray:
    columns = [frame[c].cast(pl.Float64).to_numpy() for c in NUMERIC]
    for name, values in categories.items():
        lookup = {v: i for i, v in enumerate(values)}
        columns.append(np.array([lookup.get(v, np.nan) for v in frame[name].to_list()], float))
    return np.column_stack(columns)


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0) -> Any:
    """Logistic regression by Newton's method on standardised, null-filled numeric features."""
    numeric = x[:, : len(NUMERIC)]
    median = np.nanmedian(numeric, axis=0)
    median = np.where(np.isnan(median), 0.0, median)
    filled = np.where(np.isnan(numeric), median, numeric)
    mean, std = filled.mean(axis=0), filled.std(axis=0) + 1e-9
    design = np.column_stack([np.ones(len(y)), (filled - mean) / std])
    beta = np.zeros(design.shape[1])
    for _ in range(25):
        p = 1 / (1 + np.exp(-design @ beta))
        gradient = design.T @ (p - y) + l2 * np.r_[0, beta[1:]]
        hessian = (design.T * (p * (1 - p))) @ design + l2 * np.diag(
            np.r_[0, np.ones(len(beta) - 1)]
        )
        beta -= np.linalg.solve(hessian, gradient)

    def predict(xs: np.ndarray) -> np.ndarray:
        num = xs[:, : len(NUMERIC)]
        num = (np.where(np.isnan(num), median, num) - mean) / std
        return 1 / (1 + np.exp(-np.column_stack([np.ones(len(xs)), num]) @ beta))

    return predict


def _rfm_baseline(train: pl.DataFrame) -> Any:
    cells = train.group_by("recency_score", "frequency_score").agg(
        rate=(pl.col("future_orders") > 0).mean()
    )
    purchased = (train["future_orders"] > 0).cast(pl.Float64).mean()
    base = float(purchased) if isinstance(purchased, float) else 0.0

    def predict(frame: pl.DataFrame) -> np.ndarray:
        joined = frame.join(
            cells, on=["recency_score", "frequency_score"], how="left", nulls_equal=True
        )
        return joined["rate"].fill_null(base).to_numpy()

    return predict


def _lightgbm(
    x: np.ndarray, y: np.ndarray, objective: str, categorical: list[int], seed: int, threads: int
) -> Any:
    import lightgbm as lgb

    params = {
        "objective": objective,
        "learning_rate": 0.05,
        "num_leaves": 15,
        "min_data_in_leaf": 20,
        "verbosity": -1,
        "num_threads": threads,
        "seed": seed,
        "deterministic": True,
    }
    data = lgb.Dataset(x, y, categorical_feature=categorical)
    return lgb.train(params, data, num_boost_round=150)


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """AUC (rank based, ties averaged), log loss, and threshold-0.5 counts."""
    y = y.astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    auc = None
    if positives and negatives:
        ranks = pl.Series(p).rank("average").to_numpy()
        auc = float((ranks[y].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    predicted = p >= 0.5
    tp = int((predicted & y).sum())
    precision = tp / int(predicted.sum()) if predicted.any() else None
    recall = tp / positives if positives else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision and recall
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {
        "auc": auc,
        "accuracy": float((predicted == y).mean()) if len(y) else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "log_loss": float(-np.mean(y * np.log(clipped) + (~y) * np.log(1 - clipped))),
        "base_rate": float(y.mean()) if len(y) else None,
    }


def run_propensity(
    con: engine.Connection,
    query: str,
    last_day: date,
    window_days: int,
    seed: int = 7,
    threads: int = 1,
) -> PropensityResult | None:
    """None when there are no customers or too little history for a time split."""
    validate_at = last_day - timedelta(days=window_days)
    cutoffs = [validate_at - timedelta(days=window_days * k) for k in range(1, TRAIN_CUTOFFS + 1)]
    first_order = engine.first_row(con, "SELECT min(order_date) FROM staging.orders")
    if first_order is None or first_order[0] is None:
        return None
    cutoffs = [c for c in cutoffs if c > first_order[0]]
    if not cutoffs:
        return None
    train = pl.concat([profiles(con, query, c, window_days) for c in cutoffs])
    valid = profiles(con, query, validate_at, window_days)
    if train.is_empty() or valid.is_empty() or train["future_orders"].gt(0).n_unique() < 2:
        return None
    categories = {
        c: sorted(v for v in pl.concat([train[c], valid[c]]).unique().to_list() if v is not None)
        for c in CATEGORICAL
    }
    categorical = list(range(len(NUMERIC), len(NUMERIC) + len(CATEGORICAL)))
    x, y = _matrix(train, categories), (train["future_orders"] > 0).to_numpy().astype(float)
    yv = (valid["future_orders"] > 0).to_numpy()
    candidates = {
        "lightgbm": lambda f, m: m.predict(_matrix(f, categories)),
        "logistic_regression": lambda f, m: m(_matrix(f, categories)),
        "recency_frequency": lambda f, m: m(f),
    }
    fitted = {
        "lightgbm": _lightgbm(x, y, "binary", categorical, seed, threads),
        "logistic_regression": _logistic(x, y),
        "recency_frequency": _rfm_baseline(train),
    }
    rows = [
        {"model": name, **classification_metrics(yv, candidates[name](valid, model))}
        for name, model in fitted.items()
    ]
    metrics = pl.DataFrame(rows)
    winner = str(min(rows, key=lambda r: float(r["log_loss"] or 0.0))["model"])
    # refit the winner on every fully observed cutoff, the validation one included
    everything = pl.concat([train, valid])
    xa = _matrix(everything, categories)
    ya = (everything["future_orders"] > 0).to_numpy().astype(float)
    final = {
        "lightgbm": lambda: _lightgbm(xa, ya, "binary", categorical, seed, threads),
        "logistic_regression": lambda: _logistic(xa, ya),
        "recency_frequency": lambda: _rfm_baseline(everything),
    }[winner]()
    now = profiles(con, query, last_day, window_days)
    counts = _lightgbm(
        xa,
        everything["future_orders"].to_numpy().astype(float),
        "poisson",
        categorical,
        seed,
        threads,
    )
    p = np.clip(candidates[winner](now, final), 0, 1)
    expected = np.maximum(counts.predict(_matrix(now, categories)), p)
    scores = now.select("customer_id").with_columns(
        as_of_date=pl.lit(last_day),
        p_purchase=pl.Series(p, dtype=pl.Float64),
        expected_orders=pl.Series(expected, dtype=pl.Float64),
        model=pl.lit(winner),
    )
    return PropensityResult(scores, metrics, winner)
