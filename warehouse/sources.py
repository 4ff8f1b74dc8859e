"""Finding source Parquet files and fingerprinting their contents cheaply.

A source `name` is `<sources>/<name>.parquet` or a directory `<sources>/<name>/` of Parquet
parts (searched recursively). Models read it as `source.<name>`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from warehouse.errors import SourceError


@dataclass(frozen=True)
class Source:
    name: str
    files: tuple[Path, ...]

    def signature(self) -> str:
        """Changes whenever a file is added, removed, rewritten or touched."""
        digest = hashlib.sha256(self.name.encode())
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}".encode())
        return digest.hexdigest()


def find_source(sources_dir: Path, name: str) -> Source:
    single = sources_dir / f"{name}.parquet"
    folder = sources_dir / name
    if single.is_file():
        return Source(name, (single.resolve(),))
    if folder.is_dir():
        parts = tuple(sorted(p.resolve() for p in folder.rglob("*.parquet") if p.is_file()))
        if not parts:
            raise SourceError(
                f"source '{name}' is a directory with no .parquet files",
                folder,
                hint="put the source's Parquet parts in it",
            )
        return Source(name, parts)
    if not sources_dir.is_dir():
        raise SourceError(
            "sources directory does not exist",
            sources_dir,
            hint="set WH_SOURCES or `sources` in wh.toml, or run `wh demo`",
        )
    raise SourceError(
        f"source '{name}' not found",
        sources_dir,
        hint=f"expected {single.name} or a folder {name}/ of Parquet parts",
    )
