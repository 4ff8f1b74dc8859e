"""wh docs: the static site, checked as files and rendered by a real headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import forecast_project, rows

from warehouse import scenario
from warehouse.config import Settings
from warehouse.forecasting.run import forecast
from warehouse.interfaces.docs.site import build_site
from warehouse.runtime.build import build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(page: Path, profile: Path) -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run installs it from Debian packages")
        pytest.skip("chromium is not installed (Debian package 'chromium'); .ci/run installs it")
    result = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def _last_day(settings: Settings) -> date:
    found = rows(settings, "SELECT max(period) FROM features.demand")[0][0]
    assert isinstance(found, date)
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, forecast_sources: Path) -> Path:
    settings = forecast_project(tmp_path_factory.mktemp("docs"), forecast_sources, hierarchy=True)
    build(settings)
    # a run a week back, scored by the next build (the report's accuracy section), then today's
    forecast(settings, models=["seasonal_naive"], cutoff=_last_day(settings) - timedelta(days=7))
    forecast(settings, models=["seasonal_naive", "lightgbm"], force=True)
    build(settings)
    plan = settings.project_dir / "plan.csv"
    first = _last_day(settings) + timedelta(days=1)
    plan.write_text(
        "scenario,category,start_date,end_date,price_change\n"
        f"cut,{rows(settings, 'SELECT min(category) FROM staging.products')[0][0]},"
        f"{first},{first + timedelta(days=5)},-0.1\n"
    )
    scenario(plan, settings)
    out = settings.project_dir / "site"
    build_site(settings, out)
    return out


def test_site_has_a_page_per_model_and_links_resolve(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert (site / "index.html") in pages and (site / "report.html") in pages
    assert (site / "models" / "features.demand.html").exists()
    for page in pages:
        html = page.read_text()
        assert not re.search(r"""(src|href)=['"]https?://""", html), page  # offline
        for link in re.findall(r"""href='([^'#]+\.html)'""", html):
            assert (page.parent / link).resolve().exists(), f"{page.name} -> {link}"
    demand = (site / "models" / "features.demand.html").read_text()
    assert "promo_discount_pct" in demand and "unique(product_id, period)" in demand
    assert "class='lineage'" in demand and "features.demand_features" in demand
    profile = (site / "models" / "features.customer_profile.html").read_text()
    assert "pii:direct" in profile and "pii:quasi (from source.customers.signup_date)" in profile


def test_report_renders_charts_in_a_browser(site: Path, tmp_path: Path) -> None:
    dom = _dump_dom(site / "report.html", tmp_path / "profile")
    assert "Backtest by model" in dom and "lightgbm" in dom
    assert dom.count("main-svg") >= 4  # plotly drew the charts (no network needed)
    assert "Feature importance" in dom and "Purchase propensity" in dom
    assert "Accuracy as actuals arrive" in dom and "WAPE of published runs by cutoff" in dom
    assert "Hierarchy: forecasts that add up" in dom and "total demand: history" in dom
    assert "Scenarios: what-if against the baseline" in dom and "scenario cut:" in dom
    assert "log_log_regression" in dom


def test_model_page_renders_in_a_browser(site: Path, tmp_path: Path) -> None:
    dom = _dump_dom(site / "models" / "features.demand.html", tmp_path / "profile")
    assert "<svg" in dom and "staging.orders" in dom and "passed" in dom
