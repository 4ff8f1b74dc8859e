"""The file cache of parsed models and checked sources: an optimisation that never decides
an answer (a stale, corrupt or unwritable cache only costs time)."""

from __future__ import annotations

import pytest
from conftest import edit

from warehouse.config import Settings
from warehouse.errors import SourceError
from warehouse.project.cache import FileCache
from warehouse.project.loader import load_project
from warehouse.runtime.sources import CONTRACTS, load_sources


def test_only_edited_models_are_parsed_again(project: Settings) -> None:
    first = load_project(project)
    assert first.cache is not None
    load_sources(project.sources, CONTRACTS, first.cache)  # saves
    again = load_project(project)
    assert again.cache is not None and not again.cache.changed
    assert again.models == first.models
    edit(project, "sql/staging/orders.sql", lambda s: s.replace("o.channel,", "o.status as s,"))
    edited = load_project(project)
    assert edited.cache is not None and edited.cache.changed
    assert len(edited.cache.entries) == len(first.cache.entries) + 1
    assert edited.models["staging.orders"].query != first.models["staging.orders"].query
    assert edited.models["features.demand"] == first.models["features.demand"]


def test_a_corrupt_cache_is_ignored(project: Settings) -> None:
    cache = FileCache(project.warehouse)
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(b"not a pickle")
    assert load_project(project).models  # parsed afresh
    assert FileCache(project.warehouse).entries == {}


def test_a_changed_source_file_is_checked_again(project: Settings) -> None:
    load_sources(project.sources, CONTRACTS, load_project(project).cache)
    broken = project.sources / "customers.parquet"
    broken.write_bytes(broken.read_bytes()[:100])  # truncated after it passed
    with pytest.raises(SourceError, match="unreadable Parquet file"):
        load_sources(project.sources, CONTRACTS, load_project(project).cache)
