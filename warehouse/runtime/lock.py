"""One writer per warehouse: an advisory file lock the kernel releases if the holder dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warehouse.errors import BusyError, StateError


@contextmanager
def writer_lock(warehouse: Path) -> Iterator[None]:
    path = warehouse / ".lock"
    try:
        warehouse.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StateError(
            f"cannot write to the warehouse folder {warehouse}: {exc.strerror}",
            hint="wh needs a writable warehouse folder (read-only mount? full disk?)",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise BusyError(int(holder) if holder.isdigit() else None, path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
