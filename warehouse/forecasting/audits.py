"""Forecast audits: what a run must show before its forecast replaces the published one.

Model audits gate a build; these gate a `wh forecast` publish. Each looks at the published
model's backtest (the model every product publishes: `selected`, the out-of-sample
per-product choice, or the winner) and holds it to a threshold from `[forecast.audits]`:

- `beat_naive` (default true): backtest WAPE no higher than seasonal naive's, on the same
  rows (a tie passes: seasonal naive may be the model that wins);
- `max_worse_than_previous` (default 0.10): WAPE at most 10 % above the previous published
  run's, on the folds both backtested (same cutoff dates), else on the dates both scored;
- `coverage = [low, high]` (default off): the share of actuals inside p10-p90;
- `max_over_history` (default off): no product's forecast above K times its highest
  demand in the history the run read.

A failing audit leaves every forecast table as it was and records the run `failed` with the
figures; `wh forecast --force` publishes anyway and records that it did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.config import strict_table
from warehouse.errors import ConfigError, WhError

NAIVE = "seasonal_naive"
KEYS = {"beat_naive", "max_worse_than_previous", "coverage", "max_over_history"}


class ForecastAuditError(WhError):
    """A forecast audit failed: nothing was published but the run's record."""


@dataclass(frozen=True)
class AuditSettings:
    beat_naive: bool = True
    max_worse_than_previous: float | None = 0.10  # a fraction: 0.10 = 10 % worse at most
    coverage: tuple[float, float] | None = None
    max_over_history: float | None = None


@dataclass(frozen=True)
class ForecastAudit:
    name: str
    passed: bool | None  # None: it could not be computed (`detail` says why)
    figure: float | None  # what the run showed
    threshold: float | str | None  # what it was held to
    detail: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_audit_settings(raw: object, where: Path) -> AuditSettings:
    """`[forecast.audits]`: `false` switches an audit off."""
    raw = strict_table(raw, "forecast.audits", KEYS, where)
    values = asdict(AuditSettings())
    if "beat_naive" in raw:
        if not isinstance(raw["beat_naive"], bool):
            raise ConfigError("[forecast.audits] beat_naive must be true or false", where)
        values["beat_naive"] = raw["beat_naive"]
    for key in ("max_worse_than_previous", "max_over_history"):
        if key in raw:
            value = raw[key]
            if value is False:
                values[key] = None
            elif isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                values[key] = float(value)
            else:
                raise ConfigError(
                    f"[forecast.audits] {key} must be a number of 0 or more, or false", where
                )
    if "coverage" in raw:
        value = raw["coverage"]
        if value is False:
            values["coverage"] = None
        elif (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
            and 0 <= value[0] <= value[1] <= 1
        ):
            values["coverage"] = (float(value[0]), float(value[1]))
        else:
            raise ConfigError(
                "[forecast.audits] coverage must be [low, high] between 0 and 1, or false",
                where,
                hint="e.g. coverage = [0.6, 0.95]: between 60 % and 95 % of actuals inside "
                "p10-p90 on the backtest",
            )
    return AuditSettings(**values)


def wape(rows: pl.DataFrame) -> float | None:
    actual = float(rows["units_actual"].sum() or 0.0)
    if rows.height == 0 or actual <= 0:
        return None
    error = float((rows["units_forecast"] - rows["units_actual"]).abs().sum() or 0.0)
    return error / actual


def run_audits(
    settings: AuditSettings,
    backtest: pl.DataFrame | None,
    published: str,
    previous: pl.DataFrame | None,
    forecast: pl.DataFrame,
    history_max: pl.DataFrame,
) -> list[ForecastAudit]:
    """Every audit the settings switch on. `backtest`: this run's backtest rows (all
    models); `previous`: the published run's backtest rows of the model it published (None
    when nothing was published); `history_max`: product_id, max_units."""
    audits: list[ForecastAudit] = []
    mine = backtest.filter(pl.col("model") == published) if backtest is not None else None
    no_backtest = "the run had no backtest (too little history for one fold)"
    if settings.beat_naive:
        audits.append(_beat_naive(backtest, mine, published, no_backtest))
    if settings.max_worse_than_previous is not None:
        audits.append(_against_previous(mine, previous, settings.max_worse_than_previous))
    if settings.coverage is not None:
        audits.append(_coverage(mine, settings.coverage, no_backtest))
    if settings.max_over_history is not None:
        audits.append(_over_history(forecast, history_max, settings.max_over_history))
    return audits


def _beat_naive(
    backtest: pl.DataFrame | None, mine: pl.DataFrame | None, published: str, no_backtest: str
) -> ForecastAudit:
    name = "beat_naive"
    if backtest is None or mine is None or mine.height == 0:
        return ForecastAudit(name, None, None, None, no_backtest)
    naive = backtest.filter(pl.col("model") == NAIVE)
    if naive.height == 0:
        return ForecastAudit(name, None, None, None, f"{NAIVE} is not among the [forecast] models")
    keys = ["fold", "product_id", "forecast_date"]
    both = mine.join(naive.select(*keys, naive=pl.col("units_forecast")), on=keys)
    ours, theirs = wape(both), wape(both.with_columns(units_forecast=pl.col("naive")))
    if ours is None or theirs is None:
        return ForecastAudit(name, None, ours, theirs, "no demand on the backtest's dates")
    return ForecastAudit(
        name,
        # a tie passes: when seasonal naive wins the tournament, it is what gets published
        ours <= theirs + 1e-12,
        ours,
        theirs,
        f"backtest WAPE of {published} {ours:.4f} vs {NAIVE} {theirs:.4f} on the same "
        f"{both.height:,} rows",
    )


def _against_previous(
    mine: pl.DataFrame | None, previous: pl.DataFrame | None, allowed: float
) -> ForecastAudit:
    name = "max_worse_than_previous"
    if previous is None or previous.height == 0:
        return ForecastAudit(name, None, None, allowed, "no earlier published run to compare")
    if mine is None or mine.height == 0:
        return ForecastAudit(name, None, None, allowed, "the run had no backtest")
    shared = set(mine["cutoff_date"].unique().to_list()) & set(
        previous["cutoff_date"].unique().to_list()
    )
    if shared:  # the same folds
        keys = ["cutoff_date", "product_id", "forecast_date"]
        ours = mine.filter(pl.col("cutoff_date").is_in(list(shared)))
        theirs = previous.filter(pl.col("cutoff_date").is_in(list(shared)))
        where = f"the {len(shared)} folds both runs backtested"
    else:  # new data moved the cutoffs: the dates both runs scored
        keys = ["product_id", "forecast_date"]
        ours, theirs = mine, previous
        where = "the dates both runs backtested (no fold in common)"
    both = ours.join(theirs.select(*keys, previous=pl.col("units_forecast")), on=keys)
    now, before = wape(both), wape(both.with_columns(units_forecast=pl.col("previous")))
    if now is None or before is None:
        return ForecastAudit(name, None, now, allowed, f"no demand on {where}")
    worse = now / before - 1 if before > 0 else 0.0
    return ForecastAudit(
        name,
        worse <= allowed + 1e-9,  # at the limit passes, whatever the last bits of the ratio
        worse,
        allowed,
        f"backtest WAPE {now:.4f} vs the published run's {before:.4f} on {where} "
        f"({worse:+.1%}; at most {allowed:+.0%})",
    )


def _coverage(
    mine: pl.DataFrame | None, band: tuple[float, float], no_backtest: str
) -> ForecastAudit:
    name = "coverage"
    rows = mine.drop_nulls(["units_p10", "units_p90"]) if mine is not None else None
    if rows is None or rows.height == 0:
        return ForecastAudit(name, None, None, str(list(band)), no_backtest)
    inside = rows.filter(
        (pl.col("units_actual") >= pl.col("units_p10"))
        & (pl.col("units_actual") <= pl.col("units_p90"))
    ).height
    share = inside / rows.height
    low, high = band
    return ForecastAudit(
        name,
        low <= share <= high,
        share,
        str(list(band)),
        f"{share:.1%} of backtest actuals inside p10-p90 (band {low:.0%}-{high:.0%})",
    )


def _over_history(forecast: pl.DataFrame, history_max: pl.DataFrame, times: float) -> ForecastAudit:
    name = "max_over_history"
    peaks = forecast.group_by(pl.col("product_id").cast(pl.String)).agg(
        peak=pl.col("units_forecast").max()
    )
    highest = history_max.with_columns(pl.col("product_id").cast(pl.String))
    joined = peaks.join(highest, on="product_id", how="left").with_columns(
        ratio=pl.when(pl.col("max_units") > 0)
        .then(pl.col("peak") / pl.col("max_units"))
        .when(pl.col("peak") > 0)
        .then(float("inf"))
        .otherwise(0.0)
    )
    over = joined.filter(pl.col("ratio") > times).sort("ratio", descending=True)
    worst = float(joined.select(pl.col("ratio").max().fill_null(0.0)).item() or 0.0)
    detail = f"highest forecast / historic maximum {worst:.2f} (at most {times:g})"
    if over.height:
        first = over.row(0, named=True)
        detail += (
            f"; {over.height} product(s) above, e.g. {first['product_id']}: "
            f"{first['peak']:.1f} vs {first['max_units'] or 0:.1f}"
        )
    return ForecastAudit(name, over.height == 0, worst, times, detail)


def failure_message(failed: list[ForecastAudit]) -> str:
    return "; ".join(f"audit {a.name} failed: {a.detail}" for a in failed)


def published_so_far(previous: pl.DataFrame | None, demand: pl.DataFrame) -> dict[str, Any] | None:
    """How the published forecast (`forecast.demand_forecast` before this run) has done on
    the periods observed since its cutoff: what a planner asks before trusting the next one.
    `demand`: product_id, period, units (the actuals the run read)."""
    if previous is None or previous.height == 0:
        return None
    actual = demand.select(
        pl.col("product_id").cast(pl.String), forecast_date=pl.col("period"), units_actual="units"
    )
    seen = previous.with_columns(pl.col("product_id").cast(pl.String)).join(
        actual, on=["product_id", "forecast_date"]
    )
    periods = previous["forecast_date"].n_unique()
    observed = seen["forecast_date"].n_unique()
    found: dict[str, Any] = {
        "run_id": str(previous["run_id"][0]),
        "cutoff_date": previous["cutoff_date"][0],
        "periods_observed": observed,
        "periods": periods,
    }
    score = wape(seen)
    if observed == 0 or score is None:
        return found
    inside = seen.filter(
        (pl.col("units_actual") >= pl.col("units_p10"))
        & (pl.col("units_actual") <= pl.col("units_p90"))
    ).height
    total = float(seen["units_actual"].sum())
    found.update(
        wape=score,
        bias=float((seen["units_forecast"] - seen["units_actual"]).sum()) / total,
        coverage=inside / seen.height,
    )
    return found
