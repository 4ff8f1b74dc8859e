"""Audits, directives and variables are checked when the project loads, with file:line:col
and a suggestion, before anything is computed."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import edit

from warehouse.config import RESERVED_VARIABLES, Settings, load_settings
from warehouse.errors import ConfigError, ModelError
from warehouse.project.audit_rules import AUDIT_RULES, check_audit
from warehouse.project.model import parse_header, sql_model
from warehouse.runtime.audits import AUDITS


def header_error(header: str) -> ModelError:
    with pytest.raises(ModelError) as caught:
        parse_header(header + "\nselect 1 as x\n", "sql/m/x.sql")
    return caught.value


def test_a_misspelt_audit_points_at_the_call_and_suggests_the_name() -> None:
    error = header_error("-- kind: full\n-- audits:  unique(x), not_nul(product_id)")
    # line 2; "not_nul" starts at column 24 of "-- audits:  unique(x), not_nul(product_id)"
    assert (error.line, error.column) == (2, 24), error.message
    assert "unknown audit 'not_nul'" in error.message
    assert error.hint is not None and "did you mean 'not_null'" in error.hint


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ("not_null()", "takes at least 1 argument"),
        ("accepted_values(status)", "takes at least 2 arguments"),
        ("freshness(a, b)", "takes 1 argument"),
        ("row_count(x)", "takes no columns"),
        ("row_count(mni=1)", "did you mean 'min'"),
        ("row_count(min=one)", "min must be a whole number"),
        ("freshness(ts, max_age_days=2.5)", "max_age_days must be a whole number"),
    ],
)
def test_bad_calls_are_refused_with_what_to_write(call: str, says: str) -> None:
    error = header_error(f"-- audits: {call}")
    assert says in error.message + (error.hint or ""), (error.message, error.hint)
    assert (error.line, error.column) == (1, 12)


def test_every_audit_rule_has_sql_and_every_sql_has_a_rule() -> None:
    assert set(AUDIT_RULES) == set(AUDITS)
    for name, rule in AUDIT_RULES.items():  # the usage in each hint is itself a valid call
        usage = rule.usage.replace("schema.table", "source.orders")
        model = sql_model("m.x", Path("sql/m/x.sql"), f"-- audits: {usage}\nselect 1 as x", {})
        assert [a.name for a in model.audits] == [name]
        if rule.min_args == 0:
            check_audit(name, (), (), "x", 1, 1)


def test_the_compared_table_must_be_read_by_the_model(project: Settings) -> None:
    from warehouse.project.loader import load_project

    edit(
        project,
        "sql/staging/promotions.sql",
        lambda s: "-- audits: same_row_count(checks.orders)\n" + s,
    )
    with pytest.raises(ModelError) as caught:
        load_project(project)
    assert "checks.orders is not read by the model" in caught.value.message
    assert caught.value.line == 1 and caught.value.column == 12
    assert "checks.promotions" in (caught.value.hint or "")


def test_plan_refuses_a_bad_audit_and_a_build_leaves_no_version_behind(
    project: Settings,
) -> None:
    import warehouse as wh

    edit(project, "sql/staging/products.sql", lambda s: "-- audits: not_nul(product_id)\n" + s)
    with pytest.raises(ModelError, match="unknown audit 'not_nul'"):
        wh.plan(project)
    with pytest.raises(ModelError, match="unknown audit 'not_nul'"):
        wh.build(project)
    assert not (project.warehouse / "versions").exists() or not any(
        (project.warehouse / "versions").rglob("*.parquet")
    )


@pytest.mark.parametrize("name", sorted(RESERVED_VARIABLES))
def test_reserved_variable_names_are_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "wh.toml").write_text(f"[project]\n[vars]\n{name} = 1\n")
    with pytest.raises(ConfigError, match=f"'{name}' is reserved"):
        load_settings(tmp_path)


def test_reserved_names_cover_every_builtin_variable(tmp_path: Path) -> None:
    (tmp_path / "wh.toml").write_text("[project]\n")
    settings = load_settings(tmp_path)
    assert set(settings.variables) <= RESERVED_VARIABLES
    assert {"incremental", "start_date", "end_date"} <= RESERVED_VARIABLES


def test_an_unknown_parameter_points_at_its_use_and_suggests_the_variable() -> None:
    with pytest.raises(ModelError) as caught:
        sql_model(
            "a.b",
            Path("sql/a/b.sql"),
            "-- kind: full\n-- uses $frq in a comment\nselect 1 as x\nwhere 2 > $frq",
            {"freq": "day"},
        )
    assert (caught.value.line, caught.value.column) == (4, 11)
    assert caught.value.hint is not None and "did you mean $freq" in caught.value.hint
