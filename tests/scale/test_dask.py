"""The global LightGBM trained with lightgbm.dask on a LocalCluster ([forecast] cluster):
backtest accuracy within 2 % of single-machine training, and the same forecast tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import forecast_project, rows

from warehouse.config import load_settings
from warehouse.errors import ConfigError
from warehouse.forecasting.distributed import stopped_at
from warehouse.forecasting.run import forecast
from warehouse.forecasting.spec import load_spec
from warehouse.runtime.build import build

pytestmark = pytest.mark.scale

NO_GATES = "[forecast.audits]\nbeat_naive = false\n"


def test_training_on_two_dask_workers_matches_one_machine(
    tmp_path: Path, forecast_sources: Path
) -> None:
    results = {}
    tables = {}
    for cluster in ("", "local:2"):
        folder = tmp_path / (cluster.replace(":", "") or "one")
        folder.mkdir()
        project = forecast_project(folder, forecast_sources)
        toml = project.project_dir / "wh.toml"
        text = toml.read_text().replace("[forecast]\n", "[forecast]\ncustomers = false\n")
        if cluster:
            text = text.replace("[forecast]\n", f'[forecast]\ncluster = "{cluster}"\n')
        toml.write_text(text + NO_GATES)
        build(project)
        loaded = load_settings(project.project_dir)
        assert load_spec(loaded).cluster == cluster
        result = forecast(loaded, models=["lightgbm"])
        results[cluster] = result.scores["lightgbm"]["wape"]
        if cluster:  # every LightGBM fit (two folds, the refit) ran on both workers
            assert "LightGBM trained on Dask (local:2): 3 fits on 2 workers" in result.notes
        tables[cluster] = rows(
            loaded,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'forecast' ORDER BY table_name, ordinal_position",
        )
    single, distributed = results[""], results["local:2"]
    assert abs(distributed - single) <= 0.02 * single, results
    assert tables["local:2"] == tables[""]


def test_early_stopping_is_applied_to_the_workers_curve() -> None:
    # the best round before three rounds without improvement, counted from 1
    assert stopped_at([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0], 3) == 3
    assert stopped_at([5.0, 4.0, 3.0, 3.5, 3.2, 2.9], 3) == 6
    assert stopped_at([1.0, 2.0, 3.0], None) == 1


def test_a_bad_cluster_setting_is_refused(tmp_path: Path, forecast_sources: Path) -> None:
    project = forecast_project(tmp_path, forecast_sources)
    toml = project.project_dir / "wh.toml"
    toml.write_text(toml.read_text().replace("[forecast]\n", '[forecast]\ncluster = "local"\n'))
    with pytest.raises(ConfigError, match="local:N or dask://host:port"):
        load_spec(load_settings(project.project_dir))
