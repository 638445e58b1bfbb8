"""Which files the run writes, checked at start-up: never two of them the same file.

A JSON report written over the baseline, or a baseline written over pyproject.toml, would
destroy the file the next run needs; the run is refused before anything is written. Pure
path logic (no reading of contents), shared with reports/files.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .config import SECTION, ConfigError, Settings


def real_path(path: Path) -> Path:
    """The file a chain of symlinks ends at: the one to edit, and to write aside of."""
    return Path(os.path.realpath(path))


def is_stream(path: Path) -> bool:
    """Whether ``path`` is written into rather than replaced: a device, a FIFO, or a link to an
    open file (``/dev/stdout`` is a regular file when the shell redirects it to one)."""
    raw = os.path.abspath(path)
    hop = raw
    for _ in range(40):
        if hop.startswith("/proc/"):
            return True
        try:
            link = os.readlink(hop)
        except OSError:
            break
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), link))
    if raw.startswith(("/dev/", "/proc/")) and os.path.realpath(raw) != raw:
        return True  # /dev/fd/3: a link inside a linked directory
    try:
        mode = os.stat(raw).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def same_file(first: Path, second: Path) -> bool:
    """Through symlinks, hard links, ``..`` and relative paths; for files not yet written,
    the same resolved path."""
    try:
        return os.path.samefile(first, second)
    except OSError:
        return os.path.normcase(os.path.realpath(first)) == os.path.normcase(
            os.path.realpath(second)
        )


def written_files(settings: Settings, step_summary: str | None) -> list[tuple[str, Path]]:
    """Every file this run may write or edit, each named as the user set it."""
    files: list[tuple[str, Path]] = []
    if settings.pyproject is not None:
        files.append(
            (f"the pyproject.toml holding [{SECTION}] ({settings.pyproject})", settings.pyproject)
        )
    if settings.baseline_path is not None:
        files.append((f"[{SECTION}] baseline ({settings.baseline_path})", settings.baseline_path))
    if settings.json_path is not None:
        files.append((f"--flop-budget-json={settings.json_path}", settings.json_path))
    if settings.markdown_path is not None:
        files.append((f"--flop-budget-markdown={settings.markdown_path}", settings.markdown_path))
    if settings.html_path is not None:
        files.append((f"--flop-budget-html={settings.html_path}", settings.html_path))
    if step_summary:
        files.append((f"$GITHUB_STEP_SUMMARY ({step_summary})", Path(step_summary).absolute()))
    return files


def check_separate(files: Sequence[tuple[str, Path]]) -> None:
    """Refuse two roles for one file; devices and pipes (``/dev/null``, ``/dev/stdout``) may be
    shared, since they are written into, never replaced."""
    for index, (label, path) in enumerate(files):
        for other_label, other in files[:index]:
            if is_stream(path) and is_stream(other):
                continue
            if same_file(path, other):
                raise ConfigError(
                    f"{other_label} and {label} are the same file ({real_path(path)}); "
                    "writing one would destroy the other. Give each its own path"
                )
