"""Tables `wh forecast` publishes, as inputs of models (`forecast.<table>` in a query).

A model that reads one reads the version the environment serves when the build plans; that
version's fingerprint is part of the model's, so a new forecast run rebuilds it. Before the
first run publishes a table, a model still builds: it reads no rows with the table's contract
columns (product ids typed NULL, which compare with any key type; the query casts what it
outputs). The forecast contracts (forecasting/tables.py) take their column names from here,
so the names are written once.
"""

from __future__ import annotations

from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.state import Segment

FORECAST_COLUMNS = (
    "product_id",
    "forecast_date",
    "units_forecast",
    "units_p10",
    "units_p50",
    "units_p90",
    "cutoff_date",
    "model",
    "run_id",
)
_FORECAST_TYPES: dict[str, str | None] = {
    "product_id": None,  # the project's key type: whatever features.demand has
    "forecast_date": "DATE",
    "units_forecast": "DOUBLE",
    "units_p10": "DOUBLE",
    "units_p50": "DOUBLE",
    "units_p90": "DOUBLE",
    "cutoff_date": "DATE",
    "model": "VARCHAR",
    "run_id": "VARCHAR",
}
# what a model may read before any `wh forecast` run has published it
READABLE_BEFORE_PUBLISH: dict[str, dict[str, str | None]] = {
    "forecast.demand_forecast": _FORECAST_TYPES,
    "forecast.demand_forecast_history": _FORECAST_TYPES,
}


def empty_select(name: str) -> str | None:
    """The no-rows query standing in for an unpublished table (None: none is known)."""
    columns = READABLE_BEFORE_PUBLISH.get(name)
    return None if columns is None else engine.empty_typed(list(columns.items()))


def file_record(name: str, segment: Segment) -> str:
    """How a version records one segment of a produced table it read, beside its source
    files: an incremental model extends its version only while these were only added to."""
    return f"{name}|{segment.file}|{segment.rows}"


# personal data in the tables `wh forecast` publishes (runtime/pii.py lists them)
PII: dict[str, dict[str, str]] = {"forecast.customer_propensity": {"customer_id": "direct"}}
