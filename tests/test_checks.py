"""[checks]: plausibility limits are settings, and what cleaning rejects is reported loudly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from conftest import copy_project, rows
from test_cli import wh

from warehouse.config import load_settings


def _with_a_huge_line(sources: Path) -> int:
    """One real-looking order line far above the old fixed limit (1,000,000 units): a month
    of a large series converted to one line."""
    items = pl.read_parquet(sources / "order_items.parquet")
    huge = items.head(1).with_columns(quantity=pl.lit(2_500_000, items["quantity"].dtype))
    items.slice(1).vstack(huge).write_parquet(sources / "order_items.parquet")
    return int(huge["product_id"].cast(pl.String)[0])


def test_a_volume_above_the_old_limit_is_kept_by_default(
    tmp_path: Path, tiny_sources: Path
) -> None:
    settings = copy_project(tmp_path / "p", tiny_sources)
    product = _with_a_huge_line(settings.sources)
    code, _, err = wh(settings, "build", "--quiet")
    assert code == 0, err
    assert (
        rows(settings, f"SELECT max(units) FROM features.demand WHERE product_id = '{product}'")[0][
            0
        ]
        >= 2_500_000
    )
    assert rows(
        settings, "SELECT count(*) FROM staging.rejects WHERE reason = 'implausible_quantity'"
    ) == [(0,)]


def test_a_lower_limit_rejects_loudly(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(
        tmp_path / "p", tiny_sources, more_toml="[checks]\nmax_line_quantity = 1000000\n"
    )
    assert load_settings(settings.project_dir).checks["max_line_quantity"] == 1_000_000
    _with_a_huge_line(settings.sources)
    code, out, err = wh(settings, "build")
    assert code == 0, err
    # the build's own output names the reason, the rows and the units that went with them
    assert "implausible_quantity" in out and "2,500,000" in out
    assert "rejected lines carried" in err and "[checks]" in err
    assert rows(
        settings, "SELECT count(*) FROM staging.rejects WHERE reason = 'implausible_quantity'"
    ) == [(1,)]


def test_checks_settings_are_validated(tmp_path: Path, tiny_sources: Path) -> None:
    settings = copy_project(tmp_path / "p", tiny_sources)
    config = settings.project_dir / "wh.toml"
    config.write_text(config.read_text() + "[checks]\nmax_line_quantity = -5\n")
    code, _, err = wh(settings, "build")
    assert code != 0 and "max_line_quantity must be above 0" in err
