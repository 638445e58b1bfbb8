"""One writer at a time for each file the update reads, changes and writes back.

Two ``--flop-budget-update`` runs at once (two terminals, two CI jobs on one runner) would each
read the file, change it, and write it: the second write would drop the first run's changes.
Each read-modify-write therefore holds a lock (``filelock``, an ``flock`` on Unix) on a file
``.flopbudget.lock`` in the directory of the file it edits, and re-reads the file once it holds
it. The lock file stays behind after the run (deleting a lock file others may be waiting on
would let two writers in); it is empty and safe to delete when no run is active, and belongs in
``.gitignore``. A run that is killed releases its lock with its process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from .files import is_stream, real_path, restore_interrupted

LOCK_NAME = ".flopbudget.lock"
TIMEOUT_VARIABLE = "FLOPBUDGET_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 120.0


class LockError(Exception):
    """The lock could not be taken in time, or ``FLOPBUDGET_LOCK_TIMEOUT`` is not a number."""


def lock_timeout() -> float:
    raw = os.environ.get(TIMEOUT_VARIABLE)
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise LockError(f"{TIMEOUT_VARIABLE}={raw!r}: must be a number of seconds >= 0")
    return value


def lock_path(path: Path) -> Path:
    return real_path(path).parent / LOCK_NAME


@contextmanager
def locked(path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the lock for ``path`` (the file a symlink points to); say so if it must wait.

    An interrupted in-place write of a hard-linked file is undone first, so the caller reads
    a complete file.
    """
    if is_stream(path):
        yield  # a device or a pipe: nothing to read back, nothing to lock
        return
    timeout = lock_timeout()
    where = lock_path(path)
    lock = FileLock(str(where))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if on_wait is not None:
            on_wait(
                f"pytest-flopbudget: another run is updating {real_path(path)}; waiting up to "
                f"{timeout:g} s for its lock {where} (set {TIMEOUT_VARIABLE} to change this)"
            )
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise LockError(
                f"{real_path(path)}: not updated: another run held the lock {where} for "
                f"{timeout:g} s. If no other pytest-flopbudget run is active, delete {where} "
                f"and run again; to wait longer, set {TIMEOUT_VARIABLE} (seconds)"
            ) from None
    try:
        restore_interrupted(path)
        yield
    finally:
        lock.release()
