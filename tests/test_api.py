"""The HTTP API, started as a real server on a loopback port and called with httpx."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import forecast_project, free_port, rows, running

from warehouse.config import Settings
from warehouse.forecasting.run import forecast
from warehouse.runtime.build import build


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path
) -> Iterator[tuple[Settings, str]]:
    settings = forecast_project(tmp_path_factory.mktemp("api"), forecast_sources)
    build(settings)
    forecast(settings, models=["naive", "lightgbm"])
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    with running(settings, "api", "--port", str(port), ready=ready):
        yield settings, url


def test_forecast_propensity_and_recommendations(served: tuple[Settings, str]) -> None:
    settings, url = served
    product = rows(settings, "SELECT product_id FROM forecast.demand_forecast LIMIT 1")[0][0]
    body = httpx.get(f"{url}/forecast/{product}").json()
    assert body["product_id"] == product and len(body["forecast"]) == 7
    first = body["forecast"][0]
    assert first["units_p10"] <= first["units_p50"] <= first["units_p90"]
    # without users the API serves the analyst role: customers are named by their pseudonym
    customer = rows(
        settings, "SELECT customer_id FROM forecast.customer_propensity LIMIT 1", "analyst"
    )[0][0]
    propensity = httpx.get(f"{url}/customers/{customer}/propensity").json()
    assert 0 <= propensity["p_purchase"] <= 1
    clear = rows(settings, "SELECT customer_id FROM forecast.customer_propensity LIMIT 1")[0][0]
    assert httpx.get(f"{url}/customers/{clear}/propensity").status_code == 404
    recs = httpx.get(f"{url}/recommendations/{product}", params={"limit": 3}).json()
    assert len(recs["recommendations"]) <= 3


def test_unknown_ids_and_writes_are_refused(served: tuple[Settings, str]) -> None:
    _, url = served
    assert httpx.get(f"{url}/forecast/no-such-product").status_code == 404
    assert httpx.get(f"{url}/forecast/1' OR '1'='1").status_code == 404  # a value, not SQL
    assert httpx.post(f"{url}/forecast/1").status_code == 405
    assert httpx.get(f"{url}/recommendations/1", params={"limit": 0}).status_code == 422


def test_a_new_publish_is_served_without_restart(served: tuple[Settings, str]) -> None:
    settings, url = served
    before = httpx.get(f"{url}/health").json()["publish_id"]
    result = forecast(settings, models=["naive"], force=True)  # weaker: it fails its audit
    product = rows(settings, "SELECT product_id FROM forecast.demand_forecast LIMIT 1")[0][0]
    body = httpx.get(f"{url}/forecast/{product}").json()
    assert {r["run_id"] for r in body["forecast"]} == {result.run_id}
    assert httpx.get(f"{url}/health").json()["publish_id"] > before
