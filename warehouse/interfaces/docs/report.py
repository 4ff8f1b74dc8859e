"""The forecast report: backtest metrics by model and horizon, predicted vs actual with the
p10-p90 band, feature importance and propensity metrics. Charts are Plotly; plotly.min.js is
written once beside the pages, so the report works from disk without a network."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from warehouse.config import Settings
from warehouse.interfaces.docs.html import page, table
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine

PLOTLY_JS = "plotly.min.js"
TOP_PRODUCTS = 4
SAMPLE_PRODUCTS = 2


def _frame(con: engine.Connection, sql: str) -> pl.DataFrame | None:
    try:
        frame = pl.DataFrame(con.sql(sql).to_arrow_table())
    except engine.Error:
        return None  # the table is not published (no forecast run yet)
    return frame if isinstance(frame, pl.DataFrame) else None


def _chart(figure: Any) -> str:
    figure.update_layout(
        margin={"l": 40, "r": 20, "t": 40, "b": 40}, height=320, template="plotly_white"
    )
    html: str = figure.to_html(full_html=False, include_plotlyjs=False)
    return html


def _band_chart(
    title: str, band: pl.DataFrame | None, lines: list[tuple[pl.Series, pl.Series, str, str, str]]
) -> str:
    """Lines (x, y, name, colour, mode) over a shaded p10-p90 band (forecast_date rows)."""
    import plotly.graph_objects as go

    figure = go.Figure()
    if band is not None:
        x = band["forecast_date"].to_list()
        figure.add_trace(
            go.Scatter(
                x=x,
                y=band["units_p90"].to_list(),
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            )
        )
        figure.add_trace(
            go.Scatter(
                x=x,
                y=band["units_p10"].to_list(),
                fill="tonexty",
                fillcolor="rgba(11,92,173,0.15)",
                line={"width": 0},
                name="p10-p90",
            )
        )
    for x_values, y_values, name, colour, mode in lines:
        figure.add_trace(
            go.Scatter(
                x=x_values.to_list(),
                y=y_values.to_list(),
                name=name,
                mode=mode,
                line={"color": colour},
            )
        )
    figure.update_layout(title=title)
    return _chart(figure)


def _lines(frame: pl.DataFrame, by: str, x: str, y: str) -> Any:
    """A Plotly figure with one line (and markers) of `y` against `x` per value of `by`."""
    import plotly.graph_objects as go

    figure = go.Figure()
    for (name,), part in frame.group_by(by, maintain_order=True):
        figure.add_trace(
            go.Scatter(
                x=part[x].to_list(), y=part[y].to_list(), mode="lines+markers", name=str(name)
            )
        )
    return figure


def _product_chart(history: pl.DataFrame, forecast: pl.DataFrame, product: str) -> str:
    past = history.filter(pl.col("product_id") == product).sort("period").tail(90)
    ahead = forecast.filter(pl.col("product_id") == product).sort("forecast_date")
    return _band_chart(
        f"product {product}",
        ahead,
        [
            (past["period"], past["units"], "actual", "#444", "lines"),
            (ahead["forecast_date"], ahead["units_forecast"], "forecast", "#0b5cad", "lines"),
        ],
    )


def _backtest_chart(backtest: pl.DataFrame, product: str, model: str) -> str:
    rows = backtest.filter((pl.col("product_id") == product) & (pl.col("model") == model)).sort(
        "forecast_date"
    )
    band = rows if rows["units_p10"].null_count() == 0 else None
    return _band_chart(
        f"product {product}: backtest folds, predicted vs actual",
        band,
        [
            (rows["forecast_date"], rows["units_actual"], "actual", "#444", "lines+markers"),
            (
                rows["forecast_date"],
                rows["units_forecast"],
                f"{model} (backtest)",
                "#0b5cad",
                "lines+markers",
            ),
        ],
    )


# horizon steps grouped for the accuracy chart: the first step, the rest of the first season,
# the second season, and beyond (a season: 7 days, 52 weeks, 12 months)
SEASON = {"day": 7, "week": 52, "month": 12}
ACCURACY_SQL = """
SELECT run_id, cutoff_date, horizon,
       count(*) AS scored, sum(units_actual) AS actual, sum(abs_error) AS abs_error,
       sum(error) AS error, sum(mase_scale) AS scale,
       CAST(count(*) FILTER (WHERE in_interval) AS DOUBLE) AS covered,
       sum(CASE WHEN naive_abs_error IS NOT NULL THEN abs_error END) AS abs_error_vs_naive,
       sum(naive_abs_error) AS naive_abs_error
FROM marts.forecast_accuracy GROUP BY ALL
"""


def _ratios(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        wape=pl.col("abs_error") / pl.col("actual"),
        mase=pl.col("abs_error") / pl.col("scale"),
        bias=pl.col("error") / pl.col("actual"),
        coverage=pl.col("covered") / pl.col("scored"),
        value_added=1 - pl.col("abs_error_vs_naive") / pl.col("naive_abs_error"),
    )


def _accuracy_section(con: engine.Connection, freq: str) -> str:
    """How every published run has done on the periods observed since (marts.forecast_accuracy,
    built by `wh build` as actuals arrive): a table per run and WAPE over time by horizon."""

    scored = _frame(con, ACCURACY_SQL)
    title = "<h2>Accuracy as actuals arrive</h2>"
    if scored is None:
        return ""  # a project without the model
    if scored.is_empty():
        return title + (
            "<p class='muted'>No forecast period has been observed yet: the next "
            "<code>wh build</code> after new actuals scores the published runs.</p>"
        )
    sums = ["scored", "actual", "abs_error", "error", "scale", "covered"]
    sums += ["abs_error_vs_naive", "naive_abs_error"]
    per_run = _ratios(
        scored.group_by("run_id", "cutoff_date")
        .agg(pl.col("horizon").max().alias("steps_observed"), *(pl.col(c).sum() for c in sums))
        .sort("cutoff_date", "run_id", descending=True)
    ).select(
        "run_id", "cutoff_date", "steps_observed", "wape", "mase", "bias", "coverage",
        "value_added",
    )  # fmt: skip
    season = SEASON.get(freq, 7)
    bucket = (
        pl.when(pl.col("horizon") == 1)
        .then(pl.lit("step 1"))
        .when(pl.col("horizon") <= season)
        .then(pl.lit(f"steps 2-{season}"))
        .when(pl.col("horizon") <= 2 * season)
        .then(pl.lit(f"steps {season + 1}-{2 * season}"))
        .otherwise(pl.lit(f"steps {2 * season + 1}+"))
    )
    over_time = _ratios(
        scored.with_columns(steps=bucket)
        .group_by("steps", "cutoff_date")
        .agg(pl.col(c).sum() for c in sums)
        .sort("steps", "cutoff_date")
    )
    figure = _lines(over_time, "steps", "cutoff_date", "wape")
    figure.update_layout(
        title="WAPE of published runs by cutoff, per horizon", xaxis_title="run cutoff",
        yaxis_title="WAPE",
    )  # fmt: skip
    return (
        title + "<p>Every published run scored on the periods observed since its cutoff "
        "(<code>marts.forecast_accuracy</code>); value added is against seasonal naive from "
        "the same cutoff (positive: the forecast was closer).</p>"
        + table(per_run.columns, per_run.rows())
        + _chart(figure)
    )


def _hierarchy_section(con: engine.Connection, history: pl.DataFrame) -> str:
    """The reconciled total against its history, and the backtest per level and method."""
    reconciled = _frame(con, "SELECT * FROM forecast.demand_forecast_hierarchy")
    metrics = _frame(
        con,
        "SELECT method, level, series, wape, bias, chosen FROM forecast.hierarchy_metrics "
        "WHERE run_id = (SELECT max(run_id) FROM forecast.demand_forecast_hierarchy) "
        "ORDER BY level, method",
    )
    if reconciled is None or reconciled.is_empty() or metrics is None:
        return ""
    total = reconciled.filter(pl.col("level") == "total").sort("forecast_date")
    past = history.group_by("period").agg(pl.col("units").sum()).sort("period").tail(120)
    method = str(reconciled["method"][0])
    return (
        "<h2>Hierarchy: forecasts that add up</h2>"
        f"<p>Product forecasts reconciled with category, department and total by "
        f"<b>{method}</b> (<code>forecast.demand_forecast_hierarchy</code>); the method with "
        "the lower mean WAPE over the levels on the backtest folds is chosen.</p>"
        + table(metrics.columns, metrics.rows())
        + _band_chart(
            "total demand: history and reconciled forecast",
            total,
            [
                (past["period"], past["units"], "actual", "#444", "lines"),
                (total["forecast_date"], total["units_p50"], "p50", "#0b5cad", "lines"),
            ],
        )
    )


def _scenario_section(con: engine.Connection) -> str:
    """Each scenario's expected units against the baseline's, and the price elasticities."""
    import plotly.graph_objects as go

    moved = _frame(
        con,
        "SELECT scenario, forecast_date, sum(baseline_mean) AS baseline, "
        "sum(units_mean) AS scenario_units FROM forecast.scenario_forecast GROUP BY ALL "
        "ORDER BY scenario, forecast_date",
    )
    elasticity = _frame(
        con,
        "SELECT category, method, elasticity, low, high, products FROM "
        "forecast.price_elasticity ORDER BY category, method",
    )
    if moved is None or moved.is_empty():
        return ""
    body = (
        "<h2>Scenarios: what-if against the baseline</h2><p>Expected units of the products "
        "and dates each scenario changes (<code>forecast.scenario_forecast</code>), without "
        "and with it.</p>"
    )
    for (name,), part in moved.group_by("scenario", maintain_order=True):
        figure = go.Figure()
        for column, label in (("baseline", "baseline"), ("scenario_units", str(name))):
            figure.add_trace(
                go.Scatter(
                    x=part["forecast_date"].to_list(),
                    y=part[column].to_list(),
                    mode="lines+markers",
                    name=label,
                )
            )
        gain = float(part["scenario_units"].sum()) / float(part["baseline"].sum()) - 1
        figure.update_layout(
            title=f"scenario {name}: {gain:+.1%} expected units",
            xaxis_title="forecast date",
            yaxis_title="units",
        )
        body += _chart(figure)
    if elasticity is not None and not elasticity.is_empty():
        body += "<h3>Price elasticity per category (90 % intervals)</h3>" + table(
            elasticity.columns, elasticity.rows()
        )
    return body


def _report_body(con: engine.Connection) -> str:
    import plotly.graph_objects as go

    runs = _frame(
        con,
        "SELECT * FROM forecast.model_runs WHERE status = 'ok' AND kind = 'demand' "
        "ORDER BY finished_at DESC LIMIT 1",
    )
    if runs is None or runs.is_empty():
        return (
            "<p class='muted'>No forecast has been published yet: run <code>wh forecast"
            "</code>, then <code>wh docs</code> again.</p>"
        )
    run = runs.row(0, named=True)
    run_id = run["run_id"]
    metrics = _frame(
        con,
        f"SELECT * FROM forecast.forecast_metrics WHERE run_id = {engine.quote_literal(run_id)}",
    )
    backtest = _frame(
        con, f"SELECT * FROM forecast.demand_backtest WHERE run_id = {engine.quote_literal(run_id)}"
    )
    forecast = _frame(con, "SELECT * FROM forecast.demand_forecast")
    history = _frame(con, "SELECT product_id, period, units FROM features.demand")
    assert metrics is not None and backtest is not None and forecast is not None
    assert history is not None
    body = (
        f"<p>Run <b>{run_id}</b>: {run['freq']} data up to {run['cutoff_date']}, horizon "
        f"{run['horizon']}, published model <b>{run['model']}</b>.</p>"
    )
    overall = (
        metrics.filter(pl.col("scope") == "overall")
        .group_by("model")
        .agg(pl.col(c).mean() for c in ("wape", "mase", "mae", "rmse", "bias", "p10_p90_coverage"))
        .sort("wape")
    )
    body += "<h2>Backtest by model (mean over folds)</h2>" + table(overall.columns, overall.rows())
    by_horizon = (
        metrics.filter(pl.col("scope") == "horizon")
        .group_by("model", "horizon")
        .agg(pl.col("wape").mean())
        .sort("model", "horizon")
    )
    figure = _lines(by_horizon, "model", "horizon", "wape")
    figure.update_layout(title="WAPE by horizon step", xaxis_title="horizon", yaxis_title="WAPE")
    body += "<h2>Backtest by horizon</h2>" + _chart(figure)
    body += _accuracy_section(con, str(run["freq"]))
    body += _hierarchy_section(con, history)
    body += _scenario_section(con)
    totals = (
        history.group_by("product_id").agg(pl.col("units").sum()).sort("units", descending=True)
    )
    forecasted = set(forecast["product_id"].to_list())
    ranked = [p for p in totals["product_id"].to_list() if p in forecasted]
    top = ranked[:TOP_PRODUCTS]
    rest = ranked[TOP_PRODUCTS:]
    sample = rest[:: max(1, len(rest) // SAMPLE_PRODUCTS)][:SAMPLE_PRODUCTS] if rest else []
    body += "<h2>Forecasts: top products and a sample of others</h2>"
    for product in [*top, *sample]:
        body += _product_chart(history, forecast, product)
        body += _backtest_chart(backtest, product, str(run["model"]))
    importance = _frame(
        con,
        f"SELECT feature, gain, split FROM forecast.feature_importance "
        f"WHERE run_id = {engine.quote_literal(run_id)} ORDER BY gain DESC "
        f"LIMIT 20",
    )
    if importance is not None and not importance.is_empty():
        bars = go.Figure(
            go.Bar(
                x=importance["gain"].to_list()[::-1],
                y=importance["feature"].to_list()[::-1],
                orientation="h",
            )
        )
        bars.update_layout(title="Feature importance (gain)")
        body += "<h2>Feature importance</h2>" + _chart(bars)
    propensity = _frame(
        con,
        f"SELECT * EXCLUDE (run_id) FROM forecast.propensity_metrics "
        f"WHERE run_id = {engine.quote_literal(run_id)}",
    )
    if propensity is not None and not propensity.is_empty():
        body += "<h2>Purchase propensity (validation cutoff)</h2>" + table(
            propensity.columns, propensity.rows()
        )
    return body


def write_report(settings: Settings, out: Path) -> None:
    import plotly.offline

    (out / PLOTLY_JS).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")
    con = catalog.open_published(settings, catalog.ANALYST)  # a site people share
    try:
        body = _report_body(con)
    finally:
        con.close()
    (out / "report.html").write_text(
        page("Forecast report", body, scripts=[PLOTLY_JS]), encoding="utf-8"
    )
