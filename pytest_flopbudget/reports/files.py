"""Writing users' files: the old file or the new one, never half, and never a different kind of file.

- A regular file is written aside (in the directory of the file a symlink points to) and moved
  over the old one; it keeps its mode and, where the system allows, its owner. A new file gets
  the mode the umask gives (``0o666 & ~umask``), like any file a shell would create.
- A file with other hard links is rewritten in place, so every link sees the new content; a copy
  of the old content waits beside it (``.NAME.flopbudget-backup``) until the write is complete.
- A device, a FIFO, or a path through ``/proc`` or ``/dev`` (``/dev/stdout``, ``/dev/fd/3``) is
  opened and written into, never replaced.
- A temporary file left by a killed run (``.NAME.flopbudget-PID-XXXX.tmp``) is removed by the next
  write of the same file once that process is gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..budgets.paths import is_stream, real_path

__all__ = ["is_stream", "real_path", "write_atomically"]

TEMPORARY_MARK = ".flopbudget-"
BACKUP_SUFFIX = ".flopbudget-backup"


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, line endings as given) to ``path``; see the module docstring."""
    content = data.encode("utf-8") if isinstance(data, str) else data
    if is_stream(path):
        _write_into(path, content, append=True)
        return
    target = real_path(path)
    try:
        info: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        info = None
    if info is not None and info.st_nlink > 1:
        _write_in_place(target, content)
    else:
        _replace(target, content, info)


def backup_path(target: Path) -> Path:
    """Where the old content of a hard-linked file waits while it is rewritten in place."""
    return target.parent / f".{target.name}{BACKUP_SUFFIX}"


def restore_interrupted(path: Path) -> bool:
    """Put back the old content of a hard-linked file whose in-place write was interrupted.

    Call it holding the file's lock (reports/locking.py), before reading the file.
    """
    target = real_path(path)
    backup = backup_path(target)
    try:
        content = backup.read_bytes()
    except FileNotFoundError:
        return False
    _overwrite(target, content)
    backup.unlink()
    return True


def _write_into(path: Path, content: bytes, *, append: bool) -> None:
    flags = os.O_WRONLY | (os.O_APPEND if append else 0)
    descriptor = os.open(path, flags)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)


def _replace(target: Path, content: bytes, info: os.stat_result | None) -> None:
    _remove_stale_temporaries(target)
    with _interrupts_deferred():  # Ctrl-C between creating and cleaning up would leave a file
        _replace_now(target, content, info)


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold a SIGINT until the block is done, then deliver it: the few milliseconds of a
    replace always end with the old file or the new one, and no temporary file beside them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            else:
                raise KeyboardInterrupt


def _replace_now(target: Path, content: bytes, info: os.stat_result | None) -> None:
    descriptor, temporary = _create_temporary(target)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(content)
            stream.flush()
            if info is not None:
                _keep_owner_and_mode(stream.fileno(), info)
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(target.parent)


def _create_temporary(target: Path) -> tuple[int, str]:
    """A new file beside ``target``: 0o666 minus the umask, as ``open()`` would create it
    (``tempfile.mkstemp`` would give 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        name = f".{target.name}{TEMPORARY_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp"
        temporary = str(target.parent / name)
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _keep_owner_and_mode(descriptor: int, info: os.stat_result) -> None:
    if hasattr(os, "fchown"):
        own = os.fstat(descriptor)
        if (own.st_uid, own.st_gid) != (info.st_uid, info.st_gid):
            with contextlib.suppress(OSError):  # only root may give a file away
                os.fchown(descriptor, info.st_uid, info.st_gid)
    os.chmod(descriptor, stat.S_IMODE(info.st_mode))


def _write_in_place(target: Path, content: bytes) -> None:
    """Rewrite a hard-linked file's inode: replacing it would cut it off from its other names."""
    backup = backup_path(target)
    old = target.read_bytes()
    _replace(backup, old, os.stat(target))
    _overwrite(target, content)
    backup.unlink()
    _sync_directory(target.parent)


def _overwrite(target: Path, content: bytes) -> None:
    descriptor = os.open(target, os.O_WRONLY)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(content)
        stream.truncate()
        stream.flush()
        os.fsync(stream.fileno())


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable; some systems cannot open a directory, which is fine."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _remove_stale_temporaries(target: Path) -> None:
    prefix = f".{target.name}{TEMPORARY_MARK}"
    try:
        names: Iterable[str] = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists, owned by someone else
    return True


def keep_line_endings(original: str, edited: str) -> str:
    """``edited`` with the new lines ending as ``original``'s do (tomlkit writes ``\\n``).

    Lines that ``edited`` shares with ``original`` keep their bytes; only inserted or changed
    lines get the file's usual ending, CRLF when most of its lines end so.
    """
    crlf = original.count("\r\n")
    if crlf == 0 or crlf <= original.count("\n") - crlf:
        return edited
    import difflib

    old_lines = original.splitlines(keepends=True)
    new_lines = edited.splitlines(keepends=True)
    matcher = difflib.SequenceMatcher(a=old_lines, b=new_lines, autojunk=False)
    out: list[str] = []
    for tag, _, _, first, last in matcher.get_opcodes():
        for line in new_lines[first:last]:
            if tag != "equal" and line.endswith("\n") and not line.endswith("\r\n"):
                line = line[:-1] + "\r\n"
            out.append(line)
    return "".join(out)


class ForeignFileError(ValueError):
    """A report path names an existing file the plugin did not write; it is left alone."""


def check_ours(path: Path, label: str, kind: str, is_ours: Callable[[bytes], bool]) -> None:
    """Refuse to replace an existing, non-empty file that is not one of our reports.

    Called at start-up for ``--flop-budget-json`` and ``--flop-budget-markdown``, before any
    test runs: a typo in a path must not cost a user a file.
    """
    if is_stream(path):
        return
    target = real_path(path)
    try:
        size = target.stat().st_size
        content = target.read_bytes() if 0 < size <= MAX_REPORT_BYTES else b""
    except FileNotFoundError:
        return
    except OSError as error:
        raise ForeignFileError(
            f"{label}: cannot read {target}: {error.strerror or error}"
        ) from None
    if size == 0 or (content and is_ours(content)):
        return
    raise ForeignFileError(
        f"{label}: {target} exists and is not a {kind} written by pytest-flopbudget; it is "
        "left alone. Delete it or choose another path"
    )


MAX_REPORT_BYTES = 256 * 1024 * 1024
