"""Forecast accuracy metrics. WAPE = sum|e| / sum y; MASE scales MAE by the in-sample MAE
of the one-step naive forecast over the fit's training window; bias = sum(f - y) / sum y."""

from __future__ import annotations

import math

import numpy as np

METRIC_KEYS = ("model", "fold", "scope", "product_id", "horizon")  # what a metric row is of
METRIC_COLUMNS = ("mae", "rmse", "wape", "mase", "bias", "r2", "p10_p90_coverage", "n")


def accuracy(
    actual: np.ndarray,
    forecast: np.ndarray,
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
    scale: float | None = None,
) -> dict[str, float | None]:
    y = np.asarray(actual, dtype=float)
    f = np.asarray(forecast, dtype=float)
    n = len(y)
    if n == 0:
        return {c: None for c in METRIC_COLUMNS} | {"n": 0}
    error = f - y
    mae = float(np.mean(np.abs(error)))
    total = float(np.sum(y))
    spread = float(np.sum((y - y.mean()) ** 2))
    coverage = None
    if low is not None and high is not None:
        coverage = float(np.mean((y >= low) & (y <= high)))
    return {
        "mae": mae,
        "rmse": math.sqrt(float(np.mean(error**2))),
        "wape": float(np.sum(np.abs(error)) / total) if total > 0 else None,
        "mase": mae / scale if scale else None,
        "bias": float(np.sum(error) / total) if total > 0 else None,
        "r2": 1 - float(np.sum(error**2)) / spread if spread > 0 else None,
        "p10_p90_coverage": coverage,
        "n": n,
    }
