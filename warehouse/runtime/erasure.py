"""Erasure requests: customers removed from everything under the warehouse.

The `erasures` source (customer_id, requested_at) is read by wh only. A build filters the
sources with it (`Source.select_sql`: a customer's own rows go, their id in an order is
emptied, so the order stays as a guest order and demand history is unchanged) and, because
the requests are an input of the models that read those sources, computes every such model
again; a version computed before the requests is never extended. After that build
publishes, `apply` purges what the rebuild cannot reach: every stored file of every version
still kept for rollback (and the forecast and propensity history, which is never recomputed)
loses the rows that name an erased customer in a column tagged `direct` (in a JSON column:
in a `direct` source field). Files are rewritten (a new file renamed over the old one), their
pseudonymised copies are deleted (a publish makes them again from the clean file), message
columns of the state and the audit log are scrubbed, and the parse cache and spill files are
deleted. The erasure log (state `erasures`) keeps counts and dates, never the ids.

`scan` is what `wh doctor` and `wh gc` run: every Parquet file's tagged columns, every text
cell of the SQLite files, and the bytes of every other file, for every erased id.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.config import Settings
from warehouse.runtime import audit_log, produced
from warehouse.runtime.engine import duckdb as engine
from warehouse.runtime.quoted import whole_words
from warehouse.runtime.sources import DIRECT_FIELDS, erased_ids, erasure_entry, erasure_requests
from warehouse.runtime.state import State, state_path
from warehouse.runtime.storage import remove_orphans, versions_root

ERASED_TEXT = "[erased]"
MIN_RAW_LENGTH = 4  # shorter ids match too many bytes of binary files to be worth reporting


@dataclass(frozen=True)
class ErasureResult:
    requests: int
    files_rewritten: int
    rows_removed: int
    copies_deleted: int
    messages_scrubbed: int
    rewritten: tuple[str, ...] = ()  # the files (paths hold no ids)

    def summary(self) -> str:
        return (
            f"{self.requests} erasure request(s) applied: {self.rows_removed} stored row(s) "
            f"removed from {self.files_rewritten} file(s) kept for rollback or history, "
            f"{self.messages_scrubbed} logged message(s) scrubbed"
        )


@dataclass(frozen=True)
class Finding:
    path: Path
    detail: str


def pending(settings: Settings, state: State) -> bool:
    """Whether the erasure requests changed since a build last applied them."""
    requests = erasure_requests(settings.sources)
    if not requests.files:
        return False
    return erasure_entry(requests.files) != state.last_erasure_digest()


class _Tagged(dict[str, dict[str, str]]):
    """{model: {column: level}}; a model no version tags (a version from before tags were
    recorded, a model since removed) still has the source's identifying column names."""

    def __missing__(self, model: str) -> dict[str, str]:
        return {field: "direct" for field in DIRECT_FIELDS}


def _tagged_columns(state: State) -> dict[str, dict[str, str]]:
    """{model: {column: level}} over every version, with the forecast tables' tags."""
    tagged = _Tagged(state.tagged_models())
    for table, columns in produced.PII.items():
        tagged[table] = {**tagged.get(table, {}), **columns}
    return tagged


def _matches(columns: dict[str, str], tagged: dict[str, str]) -> list[str]:
    """SQL conditions that a row names an erased customer (table `erased(id)`)."""
    found = []
    for name, kind in columns.items():
        level = tagged.get(name)
        if level is None:
            continue
        column = engine.quote_ident(name)
        if kind == "JSON":
            for field in DIRECT_FIELDS:
                found.append(
                    f"coalesce(json_extract_string(CAST({column} AS JSON), "
                    f"'$.{field}') IN (SELECT id FROM erased), false)"
                )
        elif level == "direct":
            found.append(f"coalesce(CAST({column} AS VARCHAR) IN (SELECT id FROM erased), false)")
    return found


def _version_files(state: State) -> dict[str, tuple[str, dict[str, str]]]:
    """Every file a recorded version lists: {file: (model, {column: type})}."""
    files: dict[str, tuple[str, dict[str, str]]] = {}
    for version in state.versions():
        for file in version.files:
            files[file] = (version.model, dict(version.columns))
    return files


def apply(settings: Settings, state: State, force: bool = False) -> ErasureResult | None:
    """Purge erased customers from every stored file, when the requests changed since they
    were last applied (or `force`). Call under the writer lock, after the build published."""
    requests = erasure_requests(settings.sources)
    if not requests.files:
        return None
    digest = erasure_entry(requests.files)
    if not force and digest == state.last_erasure_digest():
        return None
    ids = erased_ids(requests.files)
    remove_orphans(settings, state)  # unlisted files (killed builds) go rather than be read
    remove_partials(settings)
    tagged = _tagged_columns(state)
    con = engine.connect(settings)
    rewritten: dict[str, int] = {}
    removed = copies = 0
    try:
        con.register("erased_ids", _ids_table(ids))
        con.execute("CREATE TEMP TABLE erased AS SELECT DISTINCT id FROM erased_ids")
        for file, (model, columns) in sorted(_version_files(state).items()):
            conditions = _matches(columns, tagged[model])
            if not conditions or not Path(file).exists():
                continue
            hit = " OR ".join(conditions)
            scan = engine.parquet_scan([file])
            (found,) = con.execute(f"SELECT count(*) FROM {scan} WHERE {hit}").fetchone() or (0,)
            if not found:
                continue
            partial = Path(file).with_name(f".{Path(file).name}.erasing")
            con.execute(
                f"COPY (SELECT * FROM {scan} WHERE NOT ({hit})) TO "
                f"{engine.quote_literal(str(partial))} (FORMAT parquet, COMPRESSION zstd)"
            )
            (kept,) = con.execute(
                f"SELECT count(*) FROM {engine.parquet_scan([partial])}"
            ).fetchone() or (0,)
            os.chmod(partial, stat.S_IMODE(os.stat(file).st_mode))  # owner-only stays so
            os.replace(partial, file)
            rewritten[file] = int(kept)
            removed += int(found)
            copies += _delete_copies(settings, Path(file))
    finally:
        con.close()
    if rewritten:
        state.set_segment_rows(rewritten)
    scrubbed = state.scrub(ids, ERASED_TEXT) + audit_log.scrub(settings, ids, ERASED_TEXT)
    _delete_caches(settings)
    dates = _request_dates(requests.files)
    state.record_erasure(len(ids), dates[0], dates[1], len(rewritten), removed, digest)
    return ErasureResult(len(ids), len(rewritten), removed, copies, scrubbed, tuple(rewritten))


def republish(
    settings: Settings, state: State, build_id: str | None, result: ErasureResult
) -> None:
    """Publish again every environment that serves a rewritten file (the forecast tables a
    build serves on unchanged): its analyst catalog needs new pseudonymised copies. The new
    publish stands in for the head (same versions), so a rollback skips it."""
    from warehouse.runtime.publish import publish

    rewritten = set(result.rewritten)
    for env, head in state.heads().items():
        files = {f for fp in head.mapping.values() if (v := state.get_version(fp)) for f in v.files}
        if files & rewritten:
            publish(settings, state, env, head.mapping, "erasure", build_id, head.previous_id)


def remove_partials(settings: Settings) -> int:
    """Files a killed purge or copy left half-written (`.<name>.erasing`, `.<name>.partial`):
    they may hold erased rows and no version lists them."""
    removed = 0
    for folder in (versions_root(settings), settings.warehouse / "pseudonymised"):
        if folder.is_dir():
            for path in folder.rglob(".*"):
                if path.is_file() and path.name.endswith((".erasing", ".partial")):
                    path.unlink()
                    removed += 1
    return removed


def _ids_table(ids: list[str]) -> Any:
    import pyarrow as pa

    return pa.table({"id": pa.array(ids, pa.string())})


def _delete_copies(settings: Settings, file: Path) -> int:
    """Pseudonymised copies of a rewritten file (any key): the next publish makes them anew."""
    base = settings.warehouse / "pseudonymised"
    if not base.is_dir():
        return 0
    relative = file.resolve().relative_to(versions_root(settings).resolve())
    deleted = 0
    for key_folder in base.iterdir():
        for copy in (key_folder / relative.parent).glob(f"{relative.stem}.*.parquet"):
            copy.unlink()
            deleted += 1
    return deleted


def _delete_caches(settings: Settings) -> None:
    """The parse cache (rebuilt by the next command) and any spill file of a build."""
    for folder in (settings.warehouse / "cache", settings.warehouse / "tmp"):
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    path.unlink()


def _request_dates(files: tuple[Path, ...]) -> tuple[str | None, str | None]:
    con = engine.connect_plain()
    try:
        row = con.execute(
            f"SELECT CAST(min(requested_at) AS VARCHAR), CAST(max(requested_at) AS VARCHAR) "
            f"FROM {engine.parquet_scan(files)}"
        ).fetchone()
    except engine.Error:
        return None, None
    finally:
        con.close()
    return (row[0], row[1]) if row else (None, None)


def scan(settings: Settings, state: State | None) -> tuple[int, list[Finding]]:
    """(erased ids, files under the warehouse that still hold one). No requests: (0, [])."""
    requests = erasure_requests(settings.sources)
    if not requests.files:
        return 0, []
    ids = erased_ids(requests.files)
    if not ids:
        return 0, []
    findings: list[Finding] = []
    tagged = _tagged_columns(state) if state is not None else _Tagged(produced.PII)
    listed = _version_files(state) if state is not None else {}
    pattern = whole_words(ids)
    raw_ids = [i for i in ids if len(i) >= MIN_RAW_LENGTH]
    raw = whole_words(raw_ids) if raw_ids else None
    con = engine.connect_plain()
    try:
        con.register("erased_ids", _ids_table(ids))
        con.execute("CREATE TEMP TABLE erased AS SELECT DISTINCT id FROM erased_ids")
        for path in sorted(p for p in settings.warehouse.rglob("*") if p.is_file()):
            if path.suffix == ".parquet":
                findings += _scan_parquet(con, path, listed, tagged)
            elif path.suffix == ".db":
                findings += _scan_sqlite(path, state, pattern)
            elif raw is not None:
                found = raw.search(path.read_bytes().decode("latin-1"))
                if found:
                    findings.append(Finding(path, f"holds {found.group(0)!r}"))
    finally:
        con.close()
    return len(ids), findings


def _scan_parquet(
    con: Any, path: Path, listed: dict[str, tuple[str, dict[str, str]]],
    tagged: dict[str, dict[str, str]],
) -> list[Finding]:  # fmt: skip
    scan = engine.parquet_scan([path])
    columns = dict(engine.describe(con, scan))
    model = listed.get(str(path), ("", {}))[0] or _model_of(path)
    conditions = _matches(columns, tagged[model])
    if not conditions:
        return []
    (count,) = con.execute(
        f"SELECT count(*) FROM {scan} WHERE {' OR '.join(conditions)}"
    ).fetchone()
    return [Finding(path, f"{count} row(s) of {model}")] if count else []


def _model_of(path: Path) -> str:
    """The model a file under versions/ or pseudonymised/<key>/ belongs to, from its path."""
    parts = path.parts
    for anchor in ("versions", "pseudonymised"):
        if anchor in parts:
            at = parts.index(anchor) + (1 if anchor == "versions" else 2)
            return ".".join(parts[at : at + 2])
    return ""


def _scan_sqlite(path: Path, state: State | None, pattern: Any) -> list[Finding]:
    """The text columns where wh's SQLite files can quote data: the state's messages, the
    audit log's statements (their other columns are numbers, paths and names). A write-ahead
    log beside one gets the raw check of other files (a purge checkpoints and truncates it)."""
    try:
        if path == state_path(path.parent) and state is not None:
            columns = state.quoting(pattern)
        elif path == audit_log.log_path_in(path.parent.parent) and path.name == "audit.db":
            columns = audit_log.quoting(path, pattern)
        else:
            return []
    except sqlite3.Error:
        return [Finding(path, "cannot be read to check it")]
    return [Finding(path, f"{column} holds an erased id") for column in columns]
