"""wh.toml and WH_* overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from warehouse.config import ConfigWarning, load_settings
from warehouse.errors import ConfigError
from warehouse.resources import available_cpus


def test_defaults_and_environment_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wh.toml").write_text('[project]\nsources = "in"\nthreads = 3\n')
    cfg = load_settings(tmp_path)
    assert cfg.sources == tmp_path / "in"
    assert cfg.warehouse == tmp_path / "data" / "warehouse"
    # threads is a cap: never more than the CPUs this process may use
    assert (cfg.env, cfg.threads) == ("prod", min(3, available_cpus().cpus))
    monkeypatch.setenv("WH_SOURCES", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("WH_WAREHOUSE", "wh_out")
    monkeypatch.setenv("WH_ENV", "dev")
    monkeypatch.setenv("WH_THREADS", "1")
    monkeypatch.setenv("WH_MEMORY_LIMIT", "1GB")
    cfg = load_settings(tmp_path)
    assert cfg.sources == tmp_path / "elsewhere"
    assert cfg.warehouse == tmp_path / "wh_out"
    assert (cfg.env, cfg.threads, cfg.memory_limit) == ("dev", 1, "1GB")


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "wh.toml").write_text('[project]\nsources = "a"\nthreads = = 2\n')
    with pytest.raises(ConfigError) as failure:
        load_settings(tmp_path)
    assert failure.value.line == 3
    assert str(failure.value).startswith(f"{tmp_path / 'wh.toml'}:3:")


def test_unknown_key_warns_with_suggestion(tmp_path: Path) -> None:
    (tmp_path / "wh.toml").write_text("[project]\nthread = 2\n")
    with pytest.warns(ConfigWarning, match="unknown key 'thread'.*did you mean 'threads'"):
        load_settings(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[project]\nthreads = "many"\n', "threads must be int"),
        ("[project]\nthreads = 0\n", "threads must be at least 1"),
        ('[project]\nenv = "Prod!"\n', "invalid environment name"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "wh.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path)


def test_bad_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wh.toml").write_text("[project]\n")
    monkeypatch.setenv("WH_THREADS", "two")
    with pytest.raises(ConfigError, match="from WH_THREADS"):
        load_settings(tmp_path)
