"""Price and promotion what-if scenarios, and price elasticity per category.

A scenario is a small table: `scenario` (a name), `product_id` or `category`, `start_date`,
`end_date`, and `price_change` (a fraction of the list price: -0.1 is 10 % off) and/or
`promo_depth` (a planned promotion's discount, 0-100). The published forecast is the
baseline; a *response model* moves it: a LightGBM with the forecast's features and objective
whose response to the target period's price ratio and planned promotion is monotone (never
less demand at a lower price or a deeper promotion). The scenario's p50/p10/p90 are the
baseline's times the response model's ratio of scenario to baseline demand for the same row,
so the uplift comes from the price-aware model and the level from the published one.

Elasticity per category, two ways: the response model's (each product's demand over the
horizon at 10 % below its price, as a log ratio over log 0.9; the category's median with a
bootstrap interval), and a log-log regression on history (log mean units against log price
ratio within product and calendar month, weighted, with a heteroskedasticity-robust interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from warehouse.errors import UsageError
from warehouse.forecasting.backtest import spec_training_rows
from warehouse.forecasting.data import ForecastData, scoring_rows, target_price_ratio
from warehouse.forecasting.models import Fitted, lightgbm
from warehouse.forecasting.spec import ForecastSpec

# the file a project may keep beside its sources: every `wh forecast` run then scores it
SOURCE_NAMES = ("scenarios.parquet", "scenarios.csv")
PRICE_STEP = -0.10  # the price change the response model's elasticity is measured at
BOOTSTRAP = 400
PROMO_FEATURES = ("t_promo_pct", "t_on_promo")
LOW, HIGH = 0.05, 0.95  # a 90 % interval
# below this baseline response the ratio is unstable: the scenario adds the difference
RATIO_FLOOR = 0.05


class ScenarioError(UsageError):
    """A scenario file that cannot be read as scenarios; nothing was published."""


def scenario_source(sources: Path) -> Path | None:
    """The project's `scenarios` source file, if it has one."""
    return next((sources / n for n in SOURCE_NAMES if (sources / n).is_file()), None)


def read_scenarios(path: Path) -> pl.DataFrame:
    """scenario, product_id (text) or category, start_date, end_date, price_change,
    promo_depth; every problem names the file, the row and the column."""
    if not path.is_file():
        raise ScenarioError(f"scenario file {path} does not exist")
    try:
        if path.suffix == ".parquet":
            raw = pl.read_parquet(path)
        elif path.suffix == ".csv":
            raw = pl.read_csv(path, infer_schema_length=0)  # all text: checked below
        else:
            raise ScenarioError(
                f"{path}: a scenario file is .parquet or .csv", hint="convert it to either"
            )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise ScenarioError(f"{path}: cannot be read: {exc}") from None
    columns = set(raw.columns)
    missing = [c for c in ("scenario", "start_date", "end_date") if c not in columns]
    if missing or not ({"product_id", "category"} & columns):
        needed = missing or ["product_id or category"]
        raise ScenarioError(
            f"{path}: missing column {needed[0]}",
            hint="columns: scenario, product_id or category, start_date, end_date, "
            "price_change (-0.1 = 10 % off) and/or promo_depth (0-100)",
        )
    if not ({"price_change", "promo_depth"} & columns):
        raise ScenarioError(
            f"{path}: a scenario changes price_change or promo_depth; neither column is there"
        )
    frame = raw.with_row_index("row", offset=2 if path.suffix == ".csv" else 1)
    text = {c: pl.col(c).cast(pl.String) for c in ("product_id", "category") if c in columns}
    cleaned = frame.select(
        "row",
        pl.col("scenario").cast(pl.String),
        *(e.alias(c) for c, e in text.items()),
        *(
            pl.col(c).cast(pl.String).str.to_date(strict=False).alias(c)
            if raw.schema[c] == pl.String
            else pl.col(c).cast(pl.Date, strict=False)
            for c in ("start_date", "end_date")
        ),
        *(
            pl.col(c).cast(pl.Float64, strict=False).alias(c)
            for c in ("price_change", "promo_depth")
            if c in columns
        ),
        # what was written, to tell a number that is not one from an empty cell
        *(pl.col(c).is_not_null().alias(f"_{c}_given") for c in ("price_change", "promo_depth")
          if c in columns),
    )  # fmt: skip
    for name in ("product_id", "category"):
        if name not in cleaned.columns:
            cleaned = cleaned.with_columns(pl.lit(None, pl.String).alias(name))
    for name in ("price_change", "promo_depth"):
        if name not in cleaned.columns:
            cleaned = cleaned.with_columns(pl.lit(None, pl.Float64).alias(name))
    numbers = [
        (pl.col(f"_{c}_given") & pl.col(c).is_null(), c, "a number")
        for c in ("price_change", "promo_depth")
        if c in columns
    ]
    checks = [
        *numbers,
        (pl.col("scenario").is_null() | (pl.col("scenario") == ""), "scenario", "a name"),
        (pl.col("product_id").is_null() & pl.col("category").is_null(), "product_id",
         "a product_id or a category"),
        (pl.col("start_date").is_null(), "start_date", "a date like 2024-06-30"),
        (pl.col("end_date").is_null(), "end_date", "a date like 2024-06-30"),
        (pl.col("end_date") < pl.col("start_date"), "end_date", "on or after start_date"),
        (pl.col("price_change").is_null() & pl.col("promo_depth").is_null(), "price_change",
         "a price_change or a promo_depth"),
        (pl.col("price_change") <= -1, "price_change", "a fraction above -1 (-0.1 = 10 % off)"),
        (~pl.col("promo_depth").is_between(0, 100) & pl.col("promo_depth").is_not_null(),
         "promo_depth", "a discount between 0 and 100"),
    ]  # fmt: skip
    for condition, column, expected in checks:
        bad = cleaned.filter(condition)
        if bad.height:
            row = bad.row(0, named=True)
            raw_value = raw.row(int(row["row"]) - (2 if path.suffix == ".csv" else 1), named=True)
            raise ScenarioError(
                f"{path}: row {row['row']}, column {column}: expected {expected}, found "
                f"{raw_value.get(column)!r}",
                hint=f"{bad.height} row(s) like it; fix them and run again",
            )
    return cleaned.drop("row", *(c for c in cleaned.columns if c.endswith("_given")))


@dataclass(frozen=True)
class Response:
    """The response model and its baseline over the horizon: the scoring rows after the
    cutoff and the expected demand it predicts for them (scenarios and elasticity both move
    from there, so the rows are built and predicted once)."""

    model: Fitted
    rows: pl.DataFrame
    expected: np.ndarray


def response_model(data: ForecastData, spec: ForecastSpec, last: date) -> Response:
    """The forecast's LightGBM as a mean model (the spec's objective) with the monotone price
    and promotion constraints, trained on the rows a refit up to `last` trains on."""
    mean_spec = replace(spec, metric="rmse", quantile_method="conformal", cluster="")
    train = spec_training_rows(data, mean_spec, last)
    # the planned promotion enters through the price ratio alone: with its depth as a
    # feature too, the trees split the price effect between the two and a list price
    # change (which moves only the ratio) gets a fraction of its response
    model = lightgbm(train.drop(PROMO_FEATURES, strict=False), mean_spec)
    rows = scoring_rows(data, last, spec.horizon, spec.season)
    return Response(model, rows, model.predict(rows).point)


def _apply(rows: pl.DataFrame, change: pl.DataFrame) -> pl.DataFrame:
    """The scoring rows with one scenario applied where it matches (product or category,
    target period within the dates); `in_scenario` marks them."""
    keyed = rows.with_columns(
        pl.col("product_id").cast(pl.String).alias("_product"),
        pl.col("category").cast(pl.String).alias("_category")
        if "category" in rows.columns
        else pl.lit(None, pl.String).alias("_category"),
        pl.int_range(pl.len()).alias("_row"),
    )
    hits = []
    for spec_row in change.iter_rows(named=True):
        match = pl.col("target_period").is_between(spec_row["start_date"], spec_row["end_date"])
        if spec_row["product_id"] is not None:
            match &= pl.col("_product") == spec_row["product_id"]
        else:
            match &= pl.col("_category") == spec_row["category"]
        hits.append(
            keyed.filter(match).select(
                "_row",
                price_change=pl.lit(spec_row["price_change"], pl.Float64),
                promo_depth=pl.lit(spec_row["promo_depth"], pl.Float64),
            )
        )
    # a later row of the same scenario overrides an earlier one for the same product-date
    changes = pl.concat(hits).unique("_row", keep="last") if hits else None
    if changes is None or changes.is_empty():
        return keyed.with_columns(in_scenario=pl.lit(False))
    moved = keyed.join(changes, on="_row", how="left", maintain_order="left").with_columns(
        in_scenario=pl.col("_row").is_in(changes["_row"].implode())
    )
    promo = pl.coalesce(pl.col("promo_depth"), pl.col("t_promo_pct"))
    return moved.with_columns(
        t_promo_pct=promo.cast(pl.Float32),
        t_on_promo=pl.when(pl.col("promo_depth").is_not_null())
        .then((pl.col("promo_depth") > 0).cast(pl.Float32))
        .otherwise(pl.col("t_on_promo")),
        t_price_ratio=target_price_ratio(
            moved.columns, promo, pl.col("price_change").fill_null(0.0)
        ),
    ).drop("price_change", "promo_depth")


def scenario_forecast(
    response: Response,
    spec: ForecastSpec,
    baseline: pl.DataFrame,
    scenarios: pl.DataFrame,
    elasticity: pl.DataFrame,
) -> pl.DataFrame:
    """The rows each scenario changes: scenario, product_id, forecast_date, the published
    baseline_p50, the moved units_p10/p50/p90, the expected units without and with the
    scenario (baseline_mean, units_mean: the response model's mean demand, moved) and
    uplift = units_mean - baseline_mean. A median forecast of intermittent demand is often
    0 and stays 0 under any multiplier; the expected units show the response.

    `spec.scenario_response` says what moves them: "elasticity" (default) multiplies by
    (scenario price / baseline price) ** the category's regression elasticity (the overall
    one where the category has none, or a positive one); "model" by the response model's
    ratio of scenario to baseline demand (its difference where it expects almost nothing)."""
    rows, model = response.rows, response.model
    by_model = spec.scenario_response == "model"
    expected = pl.Series("_base", response.expected, dtype=pl.Float64)
    published = baseline.select(
        pl.col("product_id").cast(pl.String).alias("_product"),
        pl.col("forecast_date").alias("target_period"),
        "units_p10",
        "units_p50",
        "units_p90",
    )
    slopes = _category_slopes(elasticity)
    found = []
    for (name,), change in scenarios.group_by("scenario", maintain_order=True):
        moved = _apply(rows, change).with_columns(expected, _price=rows["t_price_ratio"])
        if by_model:
            moved = moved.with_columns(
                _scenario=pl.Series(model.predict(moved).point, dtype=pl.Float64)
            ).with_columns(
                _factor=pl.when(pl.col("_base") >= RATIO_FLOOR)
                .then(pl.col("_scenario") / pl.col("_base"))
                .otherwise(1.0)
            )
        else:
            moved = (
                moved.join(slopes, on="_category", how="left", maintain_order="left")
                .with_columns(pl.col("_slope").fill_null(_overall(slopes)))
                .with_columns(
                    _factor=(pl.col("t_price_ratio") / pl.col("_price")).pow(pl.col("_slope"))
                )
                .with_columns(_scenario=pl.col("_base") * pl.col("_factor"))
            )
        scored = moved.filter(pl.col("in_scenario")).join(
            published, on=["_product", "target_period"]
        )
        found.append(
            scored.select(
                pl.lit(str(name)).alias("scenario"),
                pl.col("product_id"),
                forecast_date=pl.col("target_period"),
                baseline_p50=pl.col("units_p50"),
                **{
                    f"units_{q}": (pl.col(f"units_{q}") * pl.col("_factor")).clip(lower_bound=0.0)
                    for q in ("p10", "p50", "p90")
                },
                baseline_mean=pl.col("_base"),
                units_mean=pl.col("_scenario").clip(lower_bound=0.0),
                price_ratio=pl.col("t_price_ratio").cast(pl.Float64),
                promo_depth=pl.col("t_promo_pct").cast(pl.Float64),
            ).with_columns(uplift=pl.col("units_mean") - pl.col("baseline_mean"))
        )
    if not found:
        return pl.DataFrame()
    return pl.concat(found).sort("scenario", "product_id", "forecast_date")


def _overall(slopes: pl.DataFrame) -> float:
    found = slopes.filter(pl.col("_category") == "all")["_slope"]
    return float(found[0]) if found.len() else 0.0


def _category_slopes(elasticity: pl.DataFrame) -> pl.DataFrame:
    """_category, _slope: the regression's elasticity per category, where it is negative
    (demand falls as price rises); the overall one stands in for the others."""
    if elasticity.is_empty():
        return pl.DataFrame(schema={"_category": pl.String, "_slope": pl.Float64})
    return elasticity.filter(
        (pl.col("method") == "log_log_regression") & (pl.col("elasticity") < 0)
    ).select(_category="category", _slope="elasticity")


def model_elasticity(response: Response) -> pl.DataFrame:
    """product_id, category, elasticity: each product's demand over the horizon with its price
    10 % lower, from the response model (log ratio over log 0.9)."""
    rows = response.rows
    lower = rows.with_columns(
        t_price_ratio=target_price_ratio(rows.columns, pl.col("t_promo_pct"), PRICE_STEP)
    )
    frame = rows.select("product_id", "category").with_columns(
        base=pl.Series(response.expected, dtype=pl.Float64),
        lower=pl.Series(response.model.predict(lower).point, dtype=pl.Float64),
    )
    per_product = frame.group_by("product_id", "category").agg(
        pl.col("base").sum(), pl.col("lower").sum()
    )
    return per_product.filter(pl.col("base") > 0).select(
        "product_id",
        "category",
        elasticity=(pl.col("lower") / pl.col("base")).log() / math.log(1 + PRICE_STEP),
    )


def _bootstrap_median(values: np.ndarray, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), (BOOTSTRAP, len(values)))
    medians = np.median(values[picks], axis=1)
    return float(np.quantile(medians, LOW)), float(np.quantile(medians, HIGH))


def regression_elasticity(data: ForecastData) -> pl.DataFrame:
    """category, elasticity, low, high, rows: log mean units against log price ratio (the list
    price before the period times the planned promotion's 1 - discount), within product and
    calendar month, weighted by periods; zeros count in the means."""
    needed = {"last_list_price_ratio", "promo_price_ratio", "category"}
    if not needed <= set(data.features.columns):
        return pl.DataFrame()
    cells = (
        data.features.select(
            "product_id",
            "category",
            "units",
            month=pl.col("period").dt.truncate("1mo"),
            price=(
                pl.col("last_list_price_ratio").fill_null(1.0) * pl.col("promo_price_ratio")
            ).round(3),
        )
        .filter(pl.col("price") > 0)
        .group_by("product_id", "category", "month", "price")
        .agg(units=pl.col("units").cast(pl.Float64).mean(), w=pl.len().cast(pl.Float64))
        .filter(pl.col("units") > 0)
        .with_columns(x=pl.col("price").log(), y=pl.col("units").log())
    )
    group = ["product_id", "month"]
    within = cells.with_columns(
        x=pl.col("x")
        - (pl.col("x") * pl.col("w")).sum().over(group) / pl.col("w").sum().over(group),
        y=pl.col("y")
        - (pl.col("y") * pl.col("w")).sum().over(group) / pl.col("w").sum().over(group),
    ).filter(pl.col("x").abs() > 1e-9)
    out = []
    for (category,), part in within.group_by("category", maintain_order=True):
        out.append(_wls(part, str(category)))
    out.append(_wls(within, "all"))
    return pl.DataFrame([r for r in out if r is not None])


def _wls(part: pl.DataFrame, category: str) -> dict[str, Any] | None:
    """Slope through the origin of demeaned y on x, weighted, with an HC1 90 % interval."""
    if part.height < 3:
        return None
    x, y, w = (part[c].to_numpy() for c in ("x", "y", "w"))
    sxx = float(np.sum(w * x * x))
    slope = float(np.sum(w * x * y)) / sxx
    residual = y - slope * x
    n = len(x)
    variance = n / (n - 1) * float(np.sum((w * x * residual) ** 2)) / sxx**2
    half = 1.645 * math.sqrt(variance)
    return {
        "category": category,
        "elasticity": slope,
        "low": slope - half,
        "high": slope + half,
        "rows": n,
    }


def elasticity_table(data: ForecastData, spec: ForecastSpec, response: Response) -> pl.DataFrame:
    """forecast.price_elasticity's rows: per category (and 'all'), from the response model
    and from the regression on history."""
    per_product = model_elasticity(response)
    rows: list[dict[str, Any]] = []
    groups = [
        (str(c), part["elasticity"].to_numpy())
        for (c,), part in per_product.group_by("category", maintain_order=True)
    ]
    groups.append(("all", per_product["elasticity"].to_numpy()))
    for category, values in groups:
        if len(values) == 0:
            continue
        low, high = _bootstrap_median(values, spec.seed)
        rows.append(
            {
                "category": category,
                "method": "model_response",
                "elasticity": float(np.median(values)),
                "low": low,
                "high": high,
                "products": len(values),
                "rows": len(values),
            }
        )
    regression = regression_elasticity(data)
    products = per_product.group_by("category").agg(n=pl.len())
    counts = dict(products.iter_rows())
    for row in regression.iter_rows(named=True) if regression.height else []:
        rows.append(
            {
                **row,
                "method": "log_log_regression",
                "products": counts.get(row["category"], per_product.height)
                if row["category"] != "all"
                else per_product.height,
            }
        )
    return pl.DataFrame(rows).sort("category", "method") if rows else pl.DataFrame()
