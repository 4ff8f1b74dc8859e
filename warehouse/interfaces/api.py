"""A small read-only HTTP API over the published catalog, for applications (not BI tools).

Every request opens the environment's current catalog read-only, so a new publish is served
from the next request on, and a request never sees half a publish. Only GET routes exist;
values reach SQL as parameters, never as text.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Query

from warehouse.config import Settings
from warehouse.errors import UsageError
from warehouse.forecasting.tables import CUSTOMER_PROPENSITY, DEMAND_FORECAST
from warehouse.runtime import catalog
from warehouse.runtime.engine import duckdb as engine

# a product's forecast rows: the contract's columns less the product the URL names
FORECAST_FIELDS = DEMAND_FORECAST.sql_columns(
    *(c for c in DEMAND_FORECAST.columns if c != "product_id")
)


def _rows(settings: Settings, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    try:
        con = catalog.open_published(settings)
    except UsageError as exc:
        raise HTTPException(503, exc.message) from None
    try:
        cursor = con.execute(sql, params)
        columns = [d[0] for d in cursor.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except engine.Error as exc:
        raise HTTPException(
            503,
            f"not published yet: {engine.short_message(str(exc))}",
        ) from None
    finally:
        con.close()


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="wh", description=f"Read-only API over environment '{settings.env}'.")

    @app.get("/health")
    def health() -> dict[str, Any]:
        rows = _rows(settings, "SELECT max(publish_id) AS publish_id FROM wh_meta.models", [])
        return {"status": "ok", "env": settings.env, "publish_id": rows[0]["publish_id"]}

    @app.get("/forecast/{product_id}")
    def product_forecast(product_id: str) -> dict[str, Any]:
        rows = _rows(
            settings,
            f"SELECT {FORECAST_FIELDS} FROM {DEMAND_FORECAST.name} "
            "WHERE product_id = ? ORDER BY forecast_date",
            [product_id],
        )
        if not rows:
            raise HTTPException(404, f"no forecast for product {product_id}")
        return {"product_id": product_id, "forecast": rows}

    @app.get("/customers/{customer_id}/propensity")
    def customer_propensity(customer_id: str) -> dict[str, Any]:
        rows = _rows(
            settings,
            f"SELECT {CUSTOMER_PROPENSITY.sql_columns()} FROM {CUSTOMER_PROPENSITY.name} "
            "WHERE customer_id = ?",
            [customer_id],
        )
        if not rows:
            raise HTTPException(404, f"no propensity for customer {customer_id}")
        return rows[0]

    @app.get("/recommendations/{product_id}")
    def recommendations(product_id: str, limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
        rows = _rows(
            settings,
            "SELECT recommended_product_id, rank, score, support FROM "
            "marts.product_recommendations WHERE product_id = ? ORDER BY rank "
            "LIMIT ?",
            [product_id, limit],
        )
        return {"product_id": product_id, "recommendations": rows}

    return app
