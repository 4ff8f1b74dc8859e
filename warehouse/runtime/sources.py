"""Source Parquet files: finding them, checking them against the contract, fingerprinting.

A source `name` is one of `<sources>/<name>.parquet`, a folder `<sources>/<name>/` of Parquet
parts (searched recursively) or parts `<sources>/<name>_*.parquet` / `<name>-*.parquet`.
Models read it as `source.<name>`. The contract (DESIGN.md §4) is checked from Parquet
metadata alone, before any model runs, so a bad file costs no build time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.config import Settings
from warehouse.errors import ConfigError, SourceError

ERASURE_ENTRY = "<erasure requests>"  # a plan's source-files entry (Source.erasure_stats)

if TYPE_CHECKING:
    from warehouse.project.cache import FileCache
    from warehouse.runtime.engine import duckdb as engine


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # id | string | date | timestamp | double | int
    pii: str = ""  # direct (identifies a person) | quasi (does with other data) | "" (neither)


@dataclass(frozen=True)
class Contract:
    columns: tuple[Column, ...]
    optional: bool = False  # the file may be absent: models then read an empty table
    may_be_empty: bool = False
    # an erasure request removes the rows naming an erased customer (the customer's own
    # record); in other sources it empties the id (an order becomes a guest order)
    erase_rows: bool = False

    @property
    def direct(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.pii == "direct")


def _cols(spec: str) -> tuple[Column, ...]:
    """`name:kind[:pii level]` items."""
    return tuple(Column(*item.split(":")) for item in spec.split())


CONTRACTS: dict[str, Contract] = {
    "customers": Contract(
        _cols(
            "customer_id:id:direct signup_date:date:quasi country:string:quasi "
            "channel:string segment:string"
        ),
        may_be_empty=True,
        erase_rows=True,
    ),
    "products": Contract(
        _cols(
            "product_id:id sku:string name:string department:string category:string "
            "base_price:double launch_date:date discontinued_date:date"
        )
    ),
    "orders": Contract(
        _cols("order_id:id customer_id:id:direct order_ts:timestamp channel:string status:string")
    ),
    "order_items": Contract(
        _cols("order_id:id product_id:id quantity:int unit_price:double discount:double")
    ),
    "promotions": Contract(
        _cols("product_id:id start_date:date end_date:date discount_pct:double"),
        optional=True,
        may_be_empty=True,
    ),
    "inventory": Contract(
        _cols("product_id:id on_hand:int lead_time_days:int"), optional=True, may_be_empty=True
    ),
}
# the fields that identify a customer in any source: a JSON record of a source row
# (staging.rejects.row) is pseudonymised and erased by these
DIRECT_FIELDS = tuple(sorted({c for contract in CONTRACTS.values() for c in contract.direct}))
# erasure requests (README "Privacy"): read by wh only, never a model's input, so the erased
# ids are not copied into the warehouse
ERASURES = "erasures"
ERASURE_CONTRACT = Contract(
    _cols("customer_id:id requested_at:date"), optional=True, may_be_empty=True
)
SQL_TYPES = {
    "id": "VARCHAR",
    "string": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "double": "DOUBLE",
    "int": "INTEGER",
}
EXPECTED = {
    "id": "an integer or string id",
    "string": "string",
    "date": "DATE (or TIMESTAMP)",
    "timestamp": "TIMESTAMP (or DATE)",
    "double": "a number (DOUBLE)",
    "int": "an integer (INT)",
}


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[Path, ...]
    contract: Contract | None = None
    erasures: tuple[Path, ...] = ()  # erasure request files that apply to this source

    def erasure_stats(self) -> tuple[str, ...]:
        """A plan entry that changes when the erasure requests do: a version computed before
        them is never extended, only computed again (runtime/plan.py)."""
        return (erasure_entry(self.erasures),) if self.erasures else ()

    def select_sql(self, relation: str | None = None) -> str:
        """The source's rows as models read them (`relation`: the files or a subset of them),
        erased customers removed or their ids emptied."""
        from warehouse.runtime.engine import duckdb as engine

        relation = relation or engine.parquet_scan(self.files)
        if not self.erasures or self.contract is None or not self.contract.direct:
            return f"SELECT * FROM {relation}"
        erased = (
            "(SELECT DISTINCT CAST(customer_id AS VARCHAR) FROM "
            f"{engine.parquet_scan(self.erasures)} WHERE customer_id IS NOT NULL)"
        )
        hits = [
            f"coalesce(CAST({engine.quote_ident(c)} AS VARCHAR) IN {erased}, false)"
            for c in self.contract.direct
        ]
        if self.contract.erase_rows:
            return f"SELECT * FROM {relation} WHERE NOT ({' OR '.join(hits)})"
        emptied = ", ".join(
            f"CASE WHEN {hit} THEN NULL ELSE {engine.quote_ident(c)} END AS {engine.quote_ident(c)}"
            for c, hit in zip(self.contract.direct, hits, strict=True)
        )
        return f"SELECT * REPLACE ({emptied}) FROM {relation}"

    def erased_frame(self, frame: Any) -> Any:
        """`select_sql` for a Polars LazyFrame (Python models read sources as frames)."""
        if not self.erasures or self.contract is None or not self.contract.direct:
            return frame
        import polars as pl

        ids = erased_ids(self.erasures)
        hits = [pl.col(c).cast(pl.Utf8).is_in(ids).fill_null(False) for c in self.contract.direct]
        if self.contract.erase_rows:
            return frame.filter(~pl.any_horizontal(hits))
        return frame.with_columns(
            pl.when(hit).then(None).otherwise(pl.col(c)).alias(c)
            for c, hit in zip(self.contract.direct, hits, strict=True)
        )

    @property
    def absent(self) -> bool:
        return not self.files

    def file_stats(self) -> tuple[str, ...]:
        """One "path|size|mtime" per file: an appended file adds one, an edit changes one."""
        return tuple(
            f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
            for path, stat in ((p, p.stat()) for p in self.files)
        )

    def signature(self) -> str:
        """Changes whenever a file is added, removed, rewritten or touched."""
        digest = hashlib.sha256(self.name.encode())
        for stat in self.file_stats():
            digest.update(stat.encode())
        return digest.hexdigest()

    def empty_select(self) -> str:
        """An empty table with the contract's columns, read when an optional file is absent."""
        assert self.contract is not None
        columns = ", ".join(
            f'CAST(NULL AS {SQL_TYPES[c.kind]}) AS "{c.name}"' for c in self.contract.columns
        )
        return f"SELECT {columns} WHERE false"


def _candidates(sources_dir: Path, name: str) -> list[tuple[str, tuple[Path, ...]]]:
    found: list[tuple[str, tuple[Path, ...]]] = []
    single = sources_dir / f"{name}.parquet"
    if single.is_file():
        found.append((single.name, (single.resolve(),)))
    folder = sources_dir / name
    if folder.is_dir():
        parts = tuple(sorted(p.resolve() for p in folder.rglob("*.parquet") if p.is_file()))
        if not parts:
            raise SourceError(
                f"source '{name}' is a folder with no .parquet files",
                folder,
                hint="put the source's Parquet parts in it, or remove the folder",
            )
        found.append((f"{name}/", parts))
    globbed = sorted(
        p.resolve()
        for pattern in (f"{name}_*.parquet", f"{name}-*.parquet")
        for p in sources_dir.glob(pattern)
    )
    if globbed:
        found.append((f"{name}_*.parquet", tuple(globbed)))
    return found


class FooterReader:
    """One in-memory DuckDB for the footers of every source file a run checks (starting an
    instance costs ~15 ms: one per source was most of a cold plan's source checks)."""

    def __init__(self) -> None:
        self._con: engine.Connection | None = None

    def connection(self) -> engine.Connection:
        if self._con is None:
            from warehouse.runtime.engine import duckdb as engine

            self._con = engine.connect_plain()
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def find_source(
    sources_dir: Path,
    name: str,
    cache: FileCache | None = None,
    footers: FooterReader | None = None,
    contract: Contract | None = None,
) -> Source:
    """Locate a source's files and check them against the contract if it has one."""
    contract = contract or CONTRACTS.get(name)
    if not sources_dir.is_dir():
        origin = "WH_SOURCES" if os.environ.get("WH_SOURCES") else "`sources` in wh.toml"
        raise ConfigError(
            f"sources directory {sources_dir} (from {origin}) does not exist",
            hint="point WH_SOURCES or `sources` in wh.toml at the folder of source Parquet "
            "files, or run `wh demo`",
        )
    found = _candidates(sources_dir, name)
    if len(found) > 1:
        raise SourceError(
            f"source '{name}' is given twice: {' and '.join(f[0] for f in found)}",
            sources_dir,
            hint="keep one: a single file, a folder of parts, or name_*.parquet parts",
        )
    if not found:
        if contract is not None and contract.optional:
            return Source(name, (), contract)
        raise SourceError(
            f"source '{name}' not found",
            sources_dir,
            hint=f"expected {name}.parquet, a folder {name}/ of Parquet parts, "
            f"or {name}_*.parquet parts",
        )
    source = Source(name, found[0][1], contract)
    if contract is not None:
        if cache is None:
            check_contract(source, footers)
        else:  # files that passed keep passing until they change
            cache.get(
                ("source", name, source.file_stats()), lambda: check_contract(source, footers)
            )
    return source


INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip


def _kind_matches(kind: str, duckdb_type: str) -> bool:
    """Whether a column of this DuckDB type (as DuckDB reads the Parquet file) meets the
    contract's kind; a column of nulls only (type "NULL") meets any."""
    t = duckdb_type.upper()
    if t == '"NULL"':
        return True
    integer, string = t in INTEGERS, t == "VARCHAR"
    moment = t == "DATE" or t.startswith("TIMESTAMP")
    checks: dict[str, bool] = {
        "id": integer or string,
        "string": string,
        "date": moment,
        "timestamp": moment,
        "double": t in ("FLOAT", "DOUBLE") or t.startswith("DECIMAL") or integer,
        "int": integer,
    }
    return checks[kind]


def check_contract(source: Source, footers: FooterReader | None = None) -> int:
    """Check every file's schema and the row count from Parquet metadata; returns rows.
    DuckDB reads the footers (PyArrow would cost a tenth of a second to import, on every
    build that sees a new source file)."""
    from warehouse.runtime.engine import duckdb as engine

    assert source.contract is not None
    rows = 0
    con = footers.connection() if footers is not None else engine.connect_plain()
    try:
        for path in source.files:
            scan = engine.parquet_scan([path])
            try:
                schema = engine.describe(con, scan)
                rows += engine.parquet_rows(con, [path])
            except engine.Error as exc:
                raise SourceError(
                    f"unreadable Parquet file ({engine.short_message(str(exc))})",
                    path,
                    hint="the file is truncated or not Parquet; export it again",
                ) from None
            types = {name.lower(): kind for name, kind in schema}
            for column in source.contract.columns:
                if column.name not in types:
                    raise SourceError(
                        f"required column is missing (expected {EXPECTED[column.kind]}; "
                        f"found columns: {', '.join(name for name, _ in schema)})",
                        path,
                        column.name,
                        hint=f"add the column to {source.name}; see the source contract in "
                        "README.md",
                    )
                found = types[column.name]
                if not _kind_matches(column.kind, found):
                    raise SourceError(
                        f"expected {EXPECTED[column.kind]}, found {found}",
                        path,
                        column.name,
                        hint=f"write {column.name} as {SQL_TYPES[column.kind]} in the Parquet file",
                    )
    finally:
        if footers is None:
            con.close()
    if rows == 0 and not source.contract.may_be_empty:
        raise SourceError(
            f"source '{source.name}' has no rows",
            source.files[0],
            hint=f"{source.name} must have rows; check the export that wrote it",
        )
    return rows


def load_sources(
    sources_dir: Path, names: Iterable[str], cache: FileCache | None = None
) -> dict[str, Source]:
    footers = FooterReader()
    try:
        found = {
            name: find_source(sources_dir, name, cache, footers) for name in sorted(set(names))
        }
        requests = find_source(sources_dir, ERASURES, cache, footers, ERASURE_CONTRACT)
    finally:
        footers.close()
    if cache is not None:  # the project's models were parsed through it already: save both
        cache.save()
    if requests.files:
        found = {
            name: replace(source, erasures=requests.files)
            if source.contract is not None and source.contract.direct
            else source
            for name, source in found.items()
        }
    return found


def erasure_entry(files: Iterable[Path]) -> str:
    """The request files' paths, sizes and times, digested (not their ids): what the plan
    records per source and the erasure log per purge."""
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return f"{ERASURE_ENTRY}|{digest.hexdigest()[:20]}"


def erasure_requests(sources_dir: Path) -> Source:
    """The erasure request files (none: a Source without files)."""
    return find_source(sources_dir, ERASURES, contract=ERASURE_CONTRACT)


def erased_ids(files: Iterable[Path]) -> list[str]:
    """The customer ids the request files name, as text (ids compare as text everywhere)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids: set[str] = set()
    for path in files:
        column = pq.read_table(path, columns=["customer_id"]).column("customer_id")
        ids.update(v for v in pc.cast(column, "string").to_pylist() if v is not None)
    return sorted(ids)


@dataclass(frozen=True)
class SourceSummary:
    name: str
    files: int
    rows: int
    first_date: str | None
    last_date: str | None
    nulls: dict[str, int]


def summarize(settings: Settings) -> list[SourceSummary]:
    """Check every contract source and describe it: rows, date range, nulls per column."""
    from warehouse.runtime.engine import duckdb as engine

    sources_dir = settings.sources
    summaries = []
    con = engine.connect(settings, spill=False)
    try:
        for name, contract in CONTRACTS.items():
            source = find_source(sources_dir, name)
            if source.absent:
                summaries.append(SourceSummary(name, 0, 0, None, None, {}))
                continue
            files = ", ".join("'" + str(f).replace("'", "''") + "'" for f in source.files)
            dated = next(
                (c.name for c in contract.columns if c.kind in ("date", "timestamp")), None
            )
            nulls = [f'count(*) - count("{c.name}")' for c in contract.columns]
            dates = (
                [f'min("{dated}")::VARCHAR', f'max("{dated}")::VARCHAR']
                if dated
                else ["NULL", "NULL"]
            )
            rows = con.execute(
                f"SELECT count(*), {', '.join(dates)}, {', '.join(nulls)} "
                f"FROM read_parquet([{files}], union_by_name = true)"
            ).fetchall()
            row = rows[0] if rows else None
            assert row is not None
            null_counts = {
                c.name: int(n) for c, n in zip(contract.columns, row[3:], strict=True) if n
            }
            summaries.append(
                SourceSummary(name, len(source.files), int(row[0]), row[1], row[2], null_counts)
            )
    finally:
        con.close()
    return summaries
