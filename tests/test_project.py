"""Discovering a project: unknown tables, duplicates, Python model errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse.config import load_settings
from warehouse.errors import DagCycleError, ModelError, UnknownTableError
from warehouse.project.loader import load_project


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "wh.toml").write_text("[project]\n")
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_sql_and_python_models_with_dependencies(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "sql/staging/orders.sql": "select * from source.orders",
            "sql/marts/daily.sql": "-- kind: view\nselect count(*) as n from staging.orders",
            "pipeline/stats.py": "from warehouse.python_model import model\n"
            "@model('marts.stats', inputs=['marts.daily', 'source.items'])\n"
            "def stats(daily, items):\n    return daily\n",
        },
    )
    project = load_project(load_settings(root))
    assert project.dag.order == ["staging.orders", "marts.daily", "marts.stats"]
    assert project.models["marts.stats"].depends_on == {"marts.daily"}
    assert project.models["marts.stats"].sources == {"items"}
    assert project.models["staging.orders"].sources == {"orders"}


def test_unknown_table_names_file_line_column_and_suggests(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "sql/staging/orders.sql": "select 1 as x",
            "sql/marts/daily.sql": "select *\nfrom staging.order",
        },
    )
    with pytest.raises(UnknownTableError) as failure:
        load_project(load_settings(root))
    assert str(failure.value).startswith(
        f"{root}/sql/marts/daily.sql:2:6: unknown table 'staging.order'"
    )
    assert "did you mean 'staging.orders'?" in str(failure.value)


def test_unqualified_model_name_hints_at_schema(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {"sql/staging/orders.sql": "select 1 as x", "sql/marts/daily.sql": "select * from orders"},
    )
    with pytest.raises(UnknownTableError, match=r"did you mean 'staging\.orders'"):
        load_project(load_settings(root))


def test_two_models_with_one_name(tmp_path: Path) -> None:
    root = make(
        tmp_path,
        {
            "sql/staging/orders.sql": "select 1 as x",
            "sql/staging/sub/orders.sql": "select 2 as x",
        },
    )
    with pytest.raises(ModelError, match=r"two models are named staging\.orders"):
        load_project(load_settings(root))


def test_cycle_between_models(tmp_path: Path) -> None:
    root = make(tmp_path, {"sql/a/x.sql": "select * from a.y", "sql/a/y.sql": "select * from a.x"})
    with pytest.raises(DagCycleError, match=r"a\.\w -> a\.\w -> a\.\w") as failure:
        load_project(load_settings(root))
    first = failure.value.cycle[0].split(".")[1]
    assert str(failure.value).startswith(f"{root}/sql/a/{first}.sql:1:15: dependency cycle")


def test_python_model_import_error_names_line(tmp_path: Path) -> None:
    root = make(tmp_path, {"pipeline/bad.py": "x = 1\ny = 1 / 0\n"})
    with pytest.raises(ModelError) as failure:
        load_project(load_settings(root))
    assert failure.value.line == 2
    assert "ZeroDivisionError" in str(failure.value)


def test_python_syntax_error(tmp_path: Path) -> None:
    root = make(tmp_path, {"pipeline/bad.py": "def f(:\n"})
    with pytest.raises(ModelError, match="Python syntax error"):
        load_project(load_settings(root))


def test_non_utf8_model_file(tmp_path: Path) -> None:
    root = make(tmp_path, {})
    (root / "sql" / "a").mkdir(parents=True)
    (root / "sql" / "a" / "x.sql").write_bytes(b"select '\xff' as x")
    with pytest.raises(ModelError, match="not UTF-8"):
        load_project(load_settings(root))
