"""The forecast spec: the [forecast] table of wh.toml, defaults per freq, CLI overrides."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from warehouse.config import Settings, strict_table
from warehouse.errors import ConfigError
from warehouse.forecasting.audits import AuditSettings, load_audit_settings
from warehouse.forecasting.hierarchy import HierarchySettings, load_hierarchy_settings

GLOBAL_MODELS = ("lag_linear", "random_forest", "lightgbm")  # one fit over every product
# statsforecast: AutoETS, DynamicOptimizedTheta, AutoARIMA, AutoCES, the intermittent family
LIBRARY_MODELS = ("ets", "theta", "arima", "ces", "croston", "imapa", "tsb", "adida")
WINDOW = re.compile(r"^(mean|median)_(\d+)$")  # mean / median of the last k periods
SEASONAL_WINDOW = "seasonal_window_average"
# the statistical ensemble (Nixtla's and the M4 benchmarks' combination): the plain mean or
# median of these, always the same members, whatever the backtest ranks
STATISTICAL_ENSEMBLE = ("ets", "theta", "arima", "ces")
COMBINATIONS = {"stat_mean": STATISTICAL_ENSEMBLE, "stat_median": STATISTICAL_ENSEMBLE}
# ensemble_*: of the best ENSEMBLE_SIZE candidates (chosen on other folds); stat_*: fixed
ENSEMBLES = ("ensemble_mean", "ensemble_median", *COMBINATIONS)
BASELINES = ("naive", "seasonal_naive", "moving_average")
# robust levels: about a quarter, half a year and a year of periods (day: a week to a quarter)
WINDOWS = {"day": (7, 28, 91), "week": (4, 13, 26), "month": (3, 6, 12)}


def is_statistical(name: str) -> bool:
    """Fitted per series at a cutoff (statsforecast, window baselines), not on rows."""
    return name in LIBRARY_MODELS or name == SEASONAL_WINDOW or bool(WINDOW.match(name))


def known_model(name: str) -> bool:
    return name in BASELINES or name in GLOBAL_MODELS or name in ENSEMBLES or is_statistical(name)


def default_models(freq: str) -> tuple[str, ...]:
    windows = [f"{kind}_{k}" for k in WINDOWS[freq] for kind in ("median", "mean")]
    return (
        *BASELINES,
        *windows,
        SEASONAL_WINDOW,
        *LIBRARY_MODELS,
        "lag_linear",
        "lightgbm",
        *ENSEMBLES,
    )


MODELS = default_models("day")
METRICS = ("wape", "mae", "rmse", "mase")
HORIZON = {"day": 28, "week": 8, "month": 6}
SEASON = {"day": 7, "week": 52, "month": 12}
MOVING_AVERAGE = {"day": 7, "week": 4, "month": 3}
TRAIN_PERIODS = {"day": 365, "week": 104, "month": 36}
# origins sampled for training; day 14 measured on the demo: half the fit time of 7,
# backtest WAPE 0.557 vs 0.554
ORIGIN_STEP = {"day": 14, "week": 1, "month": 1}
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "objective": "tweedie",
    "tweedie_variance_power": 1.2,
    "learning_rate": 0.08,
    "num_leaves": 31,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "num_boost_round": 300,
    "early_stopping_rounds": 30,
}


@dataclass(frozen=True)
class ForecastSpec:
    freq: str
    horizon: int
    folds: int = 3
    fold_step: int = 0  # periods between fold cutoffs; 0 = the horizon
    quantiles: tuple[float, float, float] = (0.1, 0.5, 0.9)
    models: tuple[str, ...] = MODELS
    metric: str = "wape"
    train_periods: int = 365  # history each fit sees, counted back from its cutoff
    origin_step: int = 7  # forecast origins sampled for training, every N periods
    # beyond this many training rows, (product, origin) pairs are sampled: fit time grows
    # with rows, and at M5 size (30k products) a year of origins is ~22 M rows; 0 = all
    max_train_rows: int = 2_000_000
    seed: int = 7
    lightgbm: dict[str, Any] = field(default_factory=lambda: dict(LIGHTGBM_DEFAULTS))
    customers: bool = True  # also fit purchase propensity
    propensity_days: int = 30  # the window a customer may purchase in
    default_lead_time_days: int = 7  # for products without an inventory row
    threads: int = 1  # [project] threads as wh resolved it (not a [forecast] key)
    # per_series: each product publishes the candidate with its lowest shrunk backtest error;
    # global: every product publishes the overall winner
    selection: str = "per_series"
    # backtest periods of weight the overall ranking has in a product's choice
    selection_shrinkage: float = 8.0
    # conformal: p10/p90 from scaled backtest residuals, and LightGBM one booster a fit (the
    # median; the mean for rmse); boosters: LightGBM's mean and three quantile boosters
    quantile_method: str = "conformal"
    # ISO country code: its public holidays per target period become a feature ("" = none)
    country: str = ""
    # [forecast.audits]: what the published model's backtest must show before a publish
    audits: AuditSettings = field(default_factory=AuditSettings)
    # where the global LightGBM trains: "" here; local:N a LocalCluster of N workers;
    # dask://host:port a running Dask scheduler (forecasting/distributed.py)
    cluster: str = ""
    # what moves the published forecast in a price/promotion scenario (forecasting/scenario.py):
    # "elasticity" (the category's log-log regression) or "model" (the response LightGBM)
    scenario_response: str = "elasticity"
    # [forecast.hierarchy]: coherent forecasts per level (forecasting/hierarchy.py)
    hierarchy: HierarchySettings = field(default_factory=HierarchySettings)

    @property
    def season(self) -> int:
        return SEASON[self.freq]

    @property
    def step(self) -> int:
        return self.fold_step or self.horizon

    @property
    def history(self) -> int:
        """Periods before the last one that any fit, score or baseline reads: the folds, a
        training window before the oldest, two seasons of seasonal references, a margin."""
        return self.horizon + self.step * (self.folds - 1) + self.train_periods + 3 * self.season


KEYS = {
    "horizon",
    "folds",
    "fold_step",
    "quantiles",
    "models",
    "metric",
    "train_periods",
    "origin_step",
    "max_train_rows",
    "seed",
    "lightgbm",
    "customers",
    "propensity_days",
    "default_lead_time_days",
    "selection",
    "selection_shrinkage",
    "quantile_method",
    "country",
    "audits",
    "cluster",
    "hierarchy",
    "scenario_response",
}


def load_spec(
    settings: Settings, horizon: int | None = None, models: list[str] | None = None
) -> ForecastSpec:
    raw = strict_table(
        settings.extra.get("forecast"), "forecast", KEYS, settings.project_dir / "wh.toml"
    )
    freq = settings.freq
    lightgbm = {**LIGHTGBM_DEFAULTS, **raw.pop("lightgbm", {})}
    raw["audits"] = load_audit_settings(raw.pop("audits", None), settings.project_dir / "wh.toml")
    raw["hierarchy"] = load_hierarchy_settings(
        raw.pop("hierarchy", None), settings.project_dir / "wh.toml"
    )
    spec = ForecastSpec(
        freq=freq,
        horizon=HORIZON[freq],
        train_periods=TRAIN_PERIODS[freq],
        origin_step=ORIGIN_STEP[freq],
        lightgbm=lightgbm,
        threads=settings.threads,
        models=default_models(freq),
    )
    if "quantiles" in raw:
        raw["quantiles"] = tuple(sorted(float(q) for q in raw["quantiles"]))
    if "models" in raw:
        raw["models"] = tuple(raw["models"])
    spec = replace(spec, **raw)
    if horizon is not None:
        spec = replace(spec, horizon=horizon)
    if models:
        spec = replace(spec, models=tuple(models))
    _check(spec, settings)
    return spec


def _check(spec: ForecastSpec, settings: Settings) -> None:
    where = settings.project_dir / "wh.toml"
    from warehouse.forecasting.distributed import check

    check(spec.cluster)
    bad = [m for m in spec.models if not known_model(m)]
    if bad:
        raise ConfigError(
            f"unknown forecast model '{bad[0]}'",
            where,
            hint=f"models: {', '.join(BASELINES + GLOBAL_MODELS + LIBRARY_MODELS)}, "
            f"{SEASONAL_WINDOW}, median_<k>, mean_<k>, {', '.join(ENSEMBLES)}",
        )
    if spec.metric not in METRICS:
        raise ConfigError(
            f"unknown metric '{spec.metric}'", where, hint=f"metrics: {', '.join(METRICS)}"
        )
    if spec.horizon < 1 or spec.folds < 1 or spec.train_periods < 2 or spec.origin_step < 1:
        raise ConfigError(
            "horizon, folds and origin_step must be at least 1, train_periods 2", where
        )
    if spec.selection not in ("per_series", "global"):
        raise ConfigError("selection must be 'per_series' or 'global'", where)
    if spec.quantile_method not in ("conformal", "boosters"):
        raise ConfigError("quantile_method must be 'conformal' or 'boosters'", where)
    if spec.selection_shrinkage < 0:
        raise ConfigError("selection_shrinkage must be 0 or more", where)
    if spec.scenario_response not in ("elasticity", "model"):
        raise ConfigError("scenario_response must be 'elasticity' or 'model'", where)
    if spec.max_train_rows < 0:
        raise ConfigError("max_train_rows must be 0 (no limit) or more", where)
    if len(spec.quantiles) != 3 or not all(0 < q < 1 for q in spec.quantiles):
        raise ConfigError("quantiles must be three numbers between 0 and 1", where)
