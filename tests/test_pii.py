"""Personal-data tags: declared on source contract columns and model headers, propagated
through column lineage to every model column computed from them (issue 17, part 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import copy_project, edit, wh_command

from warehouse.config import Settings, load_settings
from warehouse.errors import ModelError
from warehouse.project.loader import load_project
from warehouse.runtime.build import build
from warehouse.runtime.lineage import lineage_schema
from warehouse.runtime.pii import PiiReport, pii_report
from warehouse.runtime.state import open_state


def _report(settings: Settings) -> PiiReport:
    project = load_project(settings)
    state = open_state(settings)
    try:
        return pii_report(project, lineage_schema(project, state, settings.env))
    finally:
        state.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_sources: Path) -> Settings:
    """The example project, built once; the tests here only read it."""
    settings = copy_project(tmp_path_factory.mktemp("pii") / "project", tiny_sources)
    build(settings)
    return settings


def test_a_customer_id_is_tagged_through_three_models(built: Settings) -> None:
    report = _report(built)
    # source.customers -> checks.customers -> staging.customers -> features.customer_profile
    for table in ("checks.customers", "staging.customers", "features.customer_profile"):
        tag = report.of(table, "customer_id")
        assert tag is not None and tag.level == "direct", table
        assert "source.customers.customer_id" in tag.origins
    tenure = report.of("features.customer_profile", "tenure_days")  # computed from signup_date
    assert tenure is not None and tenure.level == "quasi" and not tenure.declared
    assert tenure.origins == ("source.customers.signup_date",)
    # declared: a score of one customer is quasi, a reason code is none (with its reason)
    score = report.of("features.customer_profile", "recency_score")
    assert score is not None and score.level == "quasi" and score.declared
    assert report.of("checks.orders", "reject_reason") is None
    assert report.cleared[("checks.orders", "reject_reason")].startswith("a reason code")
    # product demand has nothing to do with people
    assert report.of("features.demand", "units") is None
    assert not [t for t in report.ordered() if t.table.startswith("features.demand")]


def test_none_stops_a_tag_and_needs_a_reason(built: Settings, tmp_path: Path) -> None:
    # tags are metadata: an edited copy reads the built warehouse's columns as they are
    shutil.copytree(built.project_dir, tmp_path / "copy")
    project = load_settings(tmp_path / "copy")
    edit(
        project,
        "sql/staging/customers.sql",
        lambda s: "-- pii: country none: the test says so\n" + s,
    )
    report = _report(project)
    assert report.of("staging.customers", "country") is None
    assert report.of("features.customer_profile", "country") is None  # downstream too
    assert report.cleared[("staging.customers", "country")] == "the test says so"
    edit(project, "sql/staging/customers.sql", lambda s: s.replace(": the test says so", ""))
    with pytest.raises(ModelError) as error:
        load_project(project)
    assert "needs a reason" in str(error.value) and error.value.line == 1


def test_lineage_lists_every_pii_column(built: Settings) -> None:
    done = subprocess.run(
        wh_command(built, "lineage", "--pii", "--json"), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    listed = {(t["table"], t["column"]): t["pii"] for t in answer["pii"]}
    assert listed[("features.customer_profile", "customer_id")] == "direct"
    assert listed[("staging.rejects", "row")] == "direct"  # declared: the row as JSON
    assert ("staging.orders", "is_guest") not in listed
    assert ("forecast.customer_propensity", "customer_id") not in listed  # no forecast yet
    assert {"table": "staging.orders", "column": "is_guest"}.items() <= next(
        c for c in answer["cleared"] if c["column"] == "is_guest"
    ).items()
