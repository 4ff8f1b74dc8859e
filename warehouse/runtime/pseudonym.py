"""Pseudonymised copies of personal-data columns, for readers without the steward role.

A tagged column's values are replaced by a keyed HMAC-SHA256 of their text: the same value
gives the same pseudonym in every table of a warehouse (so joins on a pseudonymised id still
work), and without the key a pseudonym cannot be turned back or recomputed from a guess.
The pseudonym is the first 63 bits of the HMAC as a number: integer columns stay BIGINT, text
columns hold its decimal text, so `CAST(id AS VARCHAR)` joins work as they do on clear ids.
Other types (a date tagged quasi) become that text too.

The key never enters the warehouse folder or a catalog: it is `WH_PSEUDONYM_KEY`, or the file
`[privacy] key_file`, or (default) `~/.config/wh/keys/<warehouse id>.key`, created with mode
600 the first time a publish needs it. Views cannot compute a keyed hash without the key, so
the pseudonymised rows are written as files: `pseudonymised/<key id>/<path under versions/>`,
one per version file, made once (a version file never changes, unless an erasure rewrote it,
which deletes its copies). DuckDB computes the HMAC from its own sha256() (RFC 2104's inner
and outer blocks as parameters; `Key.number` is the same in Python). The key id is an HMAC
of a constant, not the key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from warehouse.config import Settings, strict_table
from warehouse.errors import ConfigError

KEY_ENV = "WH_PSEUDONYM_KEY"
COPY_FORMAT = "2"  # part of a copy's name: a change to how copies are made makes new ones
LEVELS = ("direct", "quasi")
PRIVACY_KEYS = {"key_file", "pseudonymise"}
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT")  # fmt: skip


@dataclass(frozen=True)
class Key:
    secret: bytes
    origin: str  # where it came from, for messages (never the key)

    @property
    def id(self) -> str:
        return hmac.new(self.secret, b"wh key id", hashlib.sha256).hexdigest()[:12]

    def number(self, text: str) -> int:
        digest = hmac.new(self.secret, text.encode(), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") >> 1


def privacy_table(settings: Settings) -> dict[str, Any]:
    return strict_table(
        settings.extra.get("privacy"), "privacy", PRIVACY_KEYS, settings.project_dir / "wh.toml"
    )


def levels(settings: Settings) -> tuple[str, ...]:
    """The tag levels readers without the steward role see pseudonymised (default: direct)."""
    raw = privacy_table(settings).get("pseudonymise", ["direct"])
    chosen = [raw] if isinstance(raw, str) else raw
    if not isinstance(chosen, list) or any(c not in LEVELS for c in chosen) or not chosen:
        raise ConfigError(
            f"[privacy] pseudonymise must list tag levels, not {raw!r}",
            settings.project_dir / "wh.toml",
            hint='pseudonymise = ["direct"] (the default) or ["direct", "quasi"]',
        )
    return tuple(c for c in LEVELS if c in chosen)


def key_path(settings: Settings, warehouse_id: str) -> Path:
    configured = privacy_table(settings).get("key_file")
    if configured:
        path = (settings.project_dir / str(configured)).resolve()
    else:
        base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        path = base / "wh" / "keys" / f"{warehouse_id}.key"
    warehouse = settings.warehouse.resolve()
    if path.resolve() == warehouse or warehouse in path.resolve().parents:
        raise ConfigError(
            f"the pseudonymisation key file {path} is inside the warehouse folder",
            settings.project_dir / "wh.toml",
            hint="keep it out of the warehouse ([privacy] key_file elsewhere, or "
            f"{KEY_ENV}): anyone who reads the warehouse could otherwise undo pseudonyms",
        )
    return path


def load_key(settings: Settings, warehouse_id: str) -> Key:
    """The warehouse's key: the environment's, the configured file's, or a new file's."""
    text = os.environ.get(KEY_ENV)
    if text:
        if len(text) < 16:
            raise ConfigError(
                f"{KEY_ENV} is too short ({len(text)} characters)",
                hint="use at least 16 random characters, e.g. from "
                "python -c 'import secrets; print(secrets.token_hex(32))'",
            )
        return Key(text.encode(), KEY_ENV)
    path = key_path(settings, warehouse_id)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < 16:
        raise ConfigError(
            f"the pseudonymisation key in {path} is too short",
            hint="delete the file to have wh make a new key (pseudonyms change)",
        )
    return Key(secret.encode(), str(path))


KEY_ID = "pseudonym_key_id"  # state meta: the key the published analyst catalogs used


def current_key_id(settings: Settings, warehouse_id: str) -> str | None:
    """The id of the key a publish would use now, without creating one (None: no key yet)."""
    text = os.environ.get(KEY_ENV)
    if text:
        return Key(text.encode(), KEY_ENV).id
    path = key_path(settings, warehouse_id)
    if not path.is_file():
        return None
    return Key(path.read_text(encoding="utf-8").strip().encode(), str(path)).id


def root(settings: Settings, key: Key) -> Path:
    return settings.warehouse / "pseudonymised" / key.id


def pseudonymised_types(
    columns: Iterable[tuple[str, str]], tagged: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """A version's columns as its pseudonymised copy has them."""
    hidden = set(tagged)
    return tuple(
        (name, kind if name not in hidden or kind in (*INTEGER_TYPES, "JSON") else "VARCHAR")
        for name, kind in columns
    )


def copy_path(settings: Settings, key: Key, file: str, tagged: Iterable[str]) -> Path:
    """Where the pseudonymised copy of a version file lives (the column set is in the name:
    versions sharing a file could be tagged differently)."""
    from warehouse.runtime.storage import versions_root

    relative = Path(file).resolve().relative_to(versions_root(settings).resolve())
    columns = hashlib.sha256("|".join([COPY_FORMAT, *sorted(tagged)]).encode()).hexdigest()[:8]
    return root(settings, key) / relative.parent / f"{relative.stem}.{columns}.parquet"


def _install_key(con: Any, key: Key) -> None:
    """HMAC's inner and outer key blocks (RFC 2104) as a one-row temporary table of an
    in-memory connection, so DuckDB computes HMAC-SHA256 in SQL from its sha256(). They reach
    DuckDB as parameters: never in a statement's text (which an error message may quote) and
    never on disk (the connection has no temporary directory)."""
    block = key.secret if len(key.secret) <= 64 else hashlib.sha256(key.secret).digest()
    block = block.ljust(64, b"\0")
    con.execute("SET temp_directory = ''")  # nothing of this connection is ever spilled
    con.execute(
        "CREATE TEMP TABLE wh_key AS SELECT ?::BLOB AS inner_pad, ?::BLOB AS outer_pad",
        [bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)],
    )


def _number(text: str) -> str:
    """SQL: the pseudonym of a VARCHAR expression as a BIGINT (Key.number, in DuckDB)."""
    inner = f"unhex(sha256(wh_key.inner_pad || encode({text})))"
    return f"((('0x' || substr(sha256(wh_key.outer_pad || {inner}), 1, 16))::UBIGINT) >> 1)::BIGINT"


def write_copy(
    con: Any, source: str, target: Path, columns: Iterable[tuple[str, str]],
    tagged: Iterable[str],
) -> None:  # fmt: skip
    """Write the pseudonymised copy of one version file (atomically: a rename), on a
    connection that has the key table (`Pseudonymiser.connection`). Each distinct value is
    hashed once and joined back (10 M orders of 1 M customers: 3.4 s against 8.0 s hashing
    every row, on 2 threads)."""
    from warehouse.runtime.engine import duckdb as engine

    hidden = set(tagged)
    scan = engine.parquet_scan([source])
    replaced: list[str] = []
    maps: list[str] = []
    joins: list[str] = []
    for name, kind in columns:
        if name not in hidden:
            continue
        column = "t." + engine.quote_ident(name)
        alias = engine.quote_ident(name)
        if kind == "JSON":  # a record (staging.rejects.row): its identifying fields only
            replaced.append(f"{_json_fields(column)} AS {alias}")
            continue
        m = f"m{len(maps)}"
        number = _number("v")
        value = number if kind in INTEGER_TYPES else f"CAST({number} AS VARCHAR)"
        maps.append(
            f"{m} AS (SELECT v, {value} AS p FROM (SELECT DISTINCT CAST({alias} AS VARCHAR) "
            f"AS v FROM {scan}), wh_key)"
        )
        joins.append(f"LEFT JOIN {m} ON {m}.v = CAST({column} AS VARCHAR)")
        replaced.append(f"{m}.p AS {alias}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    with_maps = f"WITH {', '.join(maps)} " if maps else ""
    con.execute(
        f"COPY ({with_maps}SELECT t.* REPLACE ({', '.join(replaced)}) FROM {scan} AS t "
        f"CROSS JOIN wh_key {' '.join(joins)}) TO {engine.quote_literal(str(partial))} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    os.replace(partial, target)


def _json_fields(column: str) -> str:
    """A JSON record with each source field tagged `direct` (e.g. customer_id) replaced by
    its pseudonym; records without such a field are left as they are."""
    from warehouse.runtime.sources import DIRECT_FIELDS

    expression = column
    for field in DIRECT_FIELDS:
        path = f"'$.{field}'"
        expression = (
            f"CASE WHEN json_extract_string({expression}, {path}) IS NULL THEN {expression} "
            f"ELSE json_merge_patch({expression}, json_object('{field}', CAST("
            f"{_number(f'json_extract_string({expression}, {path})')} AS VARCHAR))) END"
        )
    return expression


class Pseudonymiser:
    """Makes (once) and names the pseudonymised copies of published versions' files."""

    def __init__(self, settings: Settings, key: Key) -> None:
        self.settings = settings
        self.key = key
        self._con: Any = None

    def files(self, files: Iterable[str], columns: Iterable[tuple[str, str]],
              tagged: Iterable[str]) -> list[str]:  # fmt: skip
        tagged = sorted(tagged)
        columns = list(columns)
        found = []
        for file in files:
            target = copy_path(self.settings, self.key, file, tagged)
            if not target.exists():
                write_copy(self.connection(), file, target, columns, tagged)
            found.append(str(target))
        return found

    def connection(self) -> Any:
        if self._con is None:
            from warehouse.runtime.engine import duckdb as engine

            self._con = engine.connect(self.settings, spill=False)
            _install_key(self._con, self.key)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None


def remove_stale_copies(settings: Settings, state: Any, live: set[str]) -> int:
    """Delete pseudonymised copies of version files that are gone, and the copies made with
    another key than the current one (a rotated key's pseudonyms must not outlive it), except
    in `live`: the folders a catalog that environments show reads (an environment not yet
    published again after a rotation keeps its copies). Returns files removed."""
    from warehouse.runtime.storage import versions_root

    base = settings.warehouse / "pseudonymised"
    if not base.is_dir():
        return 0
    try:
        current = current_key_id(settings, state.warehouse_id())
    except ConfigError:
        return 0  # the key cannot be read: which copies are stale is unknown
    removed = 0
    for folder in base.iterdir():
        for copy in folder.rglob("*.parquet"):
            if str(copy.parent) + "/" in live:
                continue
            relative = copy.relative_to(folder)
            original = (
                versions_root(settings)
                / relative.parent
                / (relative.name.rsplit(".", 2)[0] + ".parquet")
            )
            if folder.name != current or not original.exists():
                copy.unlink()
                removed += 1
    for folder in sorted(base.rglob("*"), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed
