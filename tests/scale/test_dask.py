"""The global LightGBM trained with lightgbm.dask on a LocalCluster ([forecast] cluster):
backtest accuracy within 2 % of single-machine training, and the same forecast tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import copy_project, forecast_project, rows

from warehouse.config import load_settings
from warehouse.errors import ConfigError
from warehouse.forecasting.distributed import stopped_at
from warehouse.forecasting.run import forecast
from warehouse.forecasting.spec import load_spec
from warehouse.interfaces.demo import DemoSpec, generate
from warehouse.runtime.build import build

pytestmark = pytest.mark.scale

NO_GATES = "[forecast.audits]\nbeat_naive = false\n"


@pytest.fixture(scope="module")
def demo_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's own data (`wh demo`: 100 products, two years): the tiny fixtures have too
    few rows for two LightGBM ranks to agree on bins and splits within 2 %."""
    out = tmp_path_factory.mktemp("demo") / "sources"
    generate(out, DemoSpec())
    return out


def test_training_on_two_dask_workers_matches_one_machine(
    tmp_path: Path, demo_sources: Path
) -> None:
    results: dict[str, float] = {}
    ets: dict[str, float] = {}
    tables = {}
    for cluster in ("", "local:2"):
        forecast_toml = "[forecast]\ncustomers = false\n" + (
            f'cluster = "{cluster}"\n' if cluster else ""
        )
        project = copy_project(
            tmp_path / (cluster.replace(":", "") or "one"),
            demo_sources,
            more_toml=forecast_toml + NO_GATES,
        )
        build(project)
        assert load_spec(project).cluster == cluster
        result = forecast(project, models=["lightgbm", "ets"])
        results[cluster] = result.scores["lightgbm"]["wape"]
        ets[cluster] = result.scores["ets"]["wape"]
        if cluster:  # every LightGBM fit ran on both workers, and AutoETS per series there
            assert any(
                "LightGBM trained on Dask (local:2):" in n
                and "on 2 workers; statsforecast on Dask (local:2):" in n
                for n in result.notes
            ), result.notes
        tables[cluster] = rows(
            project,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'forecast' ORDER BY table_name, ordinal_position",
        )
    single, distributed = results[""], results["local:2"]
    print("backtest WAPE, one machine vs two Dask workers:", results)
    assert abs(distributed - single) <= 0.02 * single, results
    # the same per-series models on the workers: equal but for float32 on the way back
    assert ets["local:2"] == pytest.approx(ets[""], rel=1e-5), ets
    assert tables["local:2"] == tables[""] and tables[""]


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
