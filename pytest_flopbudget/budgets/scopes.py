"""Budgets live where the tests live: ``[tool.flopbudget]`` tables in sub-directory pyprojects.

In a monorepo each package keeps its own ``pyproject.toml``. Every such file with a
``[tool.flopbudget]`` table between a test file's directory and the rootdir applies to the
tests below it; the nearest table wins per setting and per budget key. Node-id keys are read
relative to the directory of the file that holds them, so ``tests/test_x.py::test_y`` in
``packages/vision/pyproject.toml`` is the same test whether pytest runs from the repository
root, from the package, or with ``--rootdir``. (The rootdir's own pyproject keeps its meaning:
its keys are node ids as pytest writes them.)

Files are read lazily, once per directory, as test files are collected: nothing walks the
whole tree. A table that cannot apply is an error, never a silent "no budget".
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from .baseline import Baseline, BaselineEntry
from .budget import Budget
from .config import (
    SECTION,
    ConfigError,
    Settings,
    load_toml,
    read_pyproject,
    settings_from_pyproject,
    tool_table,
)
from .record import TestRecord
from .scope import RunScope
from .stale import GONE, StaleEntry

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass

PYPROJECT = "pyproject.toml"
# Settings a nested table may set: they decide how one test is counted and judged.
NESTED_KEYS = (
    "budgets",
    "tolerance",
    "on_exceed",
    "backend",
    "unknown_ops",
    "mode",
    "regression_tolerance",
    "tighten_threshold",
    "flops_per_mac",  # only to the run's value: one run has one convention
)
# Settings of the whole run (one baseline file, one set of table columns).
RUN_KEYS = ("baseline", "hardware")


@dataclass(frozen=True)
class Table:
    """One pyproject's ``[tool.flopbudget]`` table, its budgets keyed by this run's node ids."""

    path: Path
    prefix: str  # node-id prefix of its directory: "" at the rootdir, "packages/vision/"
    overrides: Mapping[str, Any]
    by_nodeid: Mapping[str, Budget]
    by_name: Mapping[str, Budget]
    key_prefix: str = ""  # for a file above the rootdir: the rootdir's path from the file

    def written_key(self, nodeid: str) -> str:
        """The key this file uses for ``nodeid`` (its node id relative to the file)."""
        if nodeid.startswith(self.prefix):
            nodeid = nodeid[len(self.prefix) :]
        return self.key_prefix + nodeid


def read_section(path: Path) -> dict[str, Any] | None:
    """``[tool.flopbudget]`` of ``path``; ``None`` when the file has no such table."""
    tool = tool_table(path, load_toml(path))
    if "flopbudget" not in tool:
        return None
    return read_pyproject(path)


def _prefix(directory: Path, rootdir: Path) -> str | None:
    """The node-id prefix of ``directory``; ``None`` when it is not under the rootdir."""
    try:
        relative = directory.relative_to(rootdir)
    except ValueError:
        return None
    text = relative.as_posix()
    return "" if text == "." else f"{text}/"


def _check_key(path: Path, key: str) -> None:
    file_part = PurePosixPath(key.partition("::")[0])
    if file_part.is_absolute() or ".." in file_part.parts or "\\" in key.partition("::")[0]:
        raise ConfigError(
            f"{path}: [{SECTION}.budgets] {key!r}: a node-id key is relative to the directory "
            f"of the file that holds it ({path.parent}) and must name a test below it; "
            "move the entry into a pyproject.toml above that test"
        )


def _resolved(budgets: Mapping[str, Budget], path: Path, rootdir: Path) -> dict[str, Budget]:
    """Node-id keys of the file at ``path`` as this run's node ids (rootdir-relative)."""
    directory = path.parent
    resolved: dict[str, Budget] = {}
    for key, budget in budgets.items():
        if directory == rootdir:
            resolved[key] = budget  # the rootdir's own pyproject: keys are node ids as written
            continue
        _check_key(path, key)
        file_part, sep, rest = key.partition("::")
        try:
            relative = (directory / file_part).relative_to(rootdir).as_posix()
        except ValueError:
            continue  # a test outside this run's rootdir: not one of this run's tests
        resolved[f"{relative}{sep}{rest}"] = budget
    return resolved


def _with_file(budgets: Mapping[str, Budget], path: Path) -> dict[str, Budget]:
    return {key: replace(budget, pyproject_file=str(path)) for key, budget in budgets.items()}


def _same_file(path: Path, other: Path | None) -> bool:
    if other is None:
        return False
    try:
        return path == other or path.samefile(other)
    except OSError:
        return False


class Scopes:
    """The run's pyproject tables, read once per directory as tests are collected.

    Owned by the plugin's manager (run state, not a module global).
    """

    def __init__(self, settings: Settings, rootdir: Path) -> None:
        self.rootdir = rootdir.resolve()
        # the directory resolved, not the file: a symlinked pyproject.toml keys node ids
        # relative to where the link is (where pytest found it), and is edited through it
        pyproject = settings.pyproject
        base_path = pyproject.parent.resolve() / pyproject.name if pyproject is not None else None
        self.base_path = base_path
        by_nodeid = _with_file(settings.budgets_by_nodeid, base_path) if base_path else {}
        by_name = _with_file(settings.budgets_by_name, base_path) if base_path else {}
        if base_path is not None:
            by_nodeid = _resolved(by_nodeid, base_path, self.rootdir)
        base_dir = base_path.parent if base_path is not None else self.rootdir
        above = _prefix(self.rootdir, base_dir) if base_dir != self.rootdir else None
        self.base = Table(
            path=base_path or self.rootdir / PYPROJECT,
            prefix=_prefix(base_dir, self.rootdir) or "",
            overrides={},
            by_nodeid=by_nodeid,
            by_name=by_name,
            key_prefix=above or "",
        )
        self.base_exists = base_path is not None and base_path.is_file()
        self.settings = replace(settings, budgets_by_nodeid=by_nodeid, budgets_by_name=by_name)
        self._tables: dict[Path, Table | None] = {}  # directory -> its table, if any
        self._chains: dict[
            Path, tuple[Table, ...]
        ] = {}  # directory -> nested tables, nearest first
        self._settings: dict[Path, Settings] = {}
        self._baseline_outside: dict[tuple[str, str], BaselineEntry] = {}

    # reading

    def _table_in(self, directory: Path) -> Table | None:
        if directory in self._tables:
            return self._tables[directory]
        table = None
        path = directory / PYPROJECT
        if path.is_file() and not _same_file(path, self.base_path):
            section = read_section(path)
            if section is not None:
                table = self._nested(path, section)
        self._tables[directory] = table
        return table

    def _nested(self, path: Path, section: Mapping[str, Any]) -> Table:
        place = f"{path}: [{SECTION}]"
        for key in RUN_KEYS:
            if key in section:
                raise ConfigError(
                    f"{place} {key}: applies to the whole run, so only the pyproject pytest "
                    f"reads its settings from ({self.base.path}) may set it"
                )
        read = settings_from_pyproject(path, section, self.settings.devices)
        if "flops_per_mac" in section and read.flops_per_mac != self.settings.flops_per_mac:
            raise ConfigError(
                f"{place} flops_per_mac: {read.flops_per_mac} differs from "
                f"{self.settings.flops_per_mac} in {self.base.path}; one run counts in one "
                "convention, so set it once there"
            )
        prefix = _prefix(path.parent, self.rootdir)
        assert prefix is not None
        return Table(
            path=path,
            prefix=prefix,
            overrides={
                key: getattr(read, key)
                for key in NESTED_KEYS
                if key in section and key != "budgets"
            },
            by_nodeid=_resolved(_with_file(read.budgets_by_nodeid, path), path, self.rootdir),
            by_name=_with_file(read.budgets_by_name, path),
        )

    def chain(self, directory: Path) -> tuple[Table, ...]:
        """The nested tables that apply to tests in ``directory``, nearest first."""
        directory = directory.resolve()
        cached = self._chains.get(directory)
        if cached is not None:
            return cached
        if directory == self.rootdir or self.rootdir in directory.parents:
            parent = self.chain(directory.parent) if directory != self.rootdir else ()
            table = self._table_in(directory)
            chain = (table, *parent) if table is not None else parent
        else:
            self._outside(directory)
            chain = ()
        self._chains[directory] = chain
        return chain

    def _outside(self, directory: Path) -> None:
        """A test outside the rootdir: a table between it and the rootdir cannot apply."""
        for candidate in (directory, *directory.parents):
            if candidate in self.rootdir.parents:
                return
            path = candidate / PYPROJECT
            if path.is_file() and path != self.base_path and read_section(path) is not None:
                raise ConfigError(
                    f"{path}: [{SECTION}] is outside the rootdir {self.rootdir}, so it cannot "
                    f"apply to the tests in {directory}; run pytest from a directory that "
                    "contains both (or pass --rootdir)"
                )

    def settings_for(self, test_file: Path) -> Settings:
        """The settings of the tests in ``test_file``: nearest table first, then the base."""
        directory = test_file.parent.resolve()
        found = self._settings.get(directory)
        if found is not None:
            return found
        chain = self.chain(directory)
        settings = self.settings
        if chain:
            overrides: dict[str, Any] = {}
            by_nodeid = dict(self.base.by_nodeid)
            by_name = dict(self.base.by_name)
            for table in reversed(chain):  # farthest first, so the nearest wins
                overrides.update(table.overrides)
                by_nodeid.update(table.by_nodeid)
                by_name.update(table.by_name)
            settings = replace(
                settings, **overrides, budgets_by_nodeid=by_nodeid, budgets_by_name=by_name
            )
        self._settings[directory] = settings
        return settings

    def test_file(self, nodeid: str) -> Path:
        """The file of a node id (for reports that arrive without their item, under xdist)."""
        return self.rootdir / nodeid.partition("::")[0]

    def baseline_for_run(self, baseline: Baseline) -> Baseline:
        """The baseline keyed by this run's node ids.

        Its node ids are relative to the pyproject that names it, like that file's budget keys:
        with that file above the rootdir (``-c pyproject.toml --rootdir=packages/vision``),
        ``packages/vision/tests/...`` is this run's ``tests/...``; entries of tests outside the
        rootdir are set aside and written back untouched.
        """
        prefix = self.base.key_prefix
        if not prefix:
            return baseline
        inside: dict[tuple[str, str], BaselineEntry] = {}
        for (nodeid, name), entry in baseline.entries.items():
            if nodeid.startswith(prefix):
                inside[(nodeid[len(prefix) :], name)] = entry
            else:
                self._baseline_outside[(nodeid, name)] = entry
        return replace(baseline, entries=inside)

    def baseline_for_file(
        self, entries: Mapping[tuple[str, str], BaselineEntry]
    ) -> dict[tuple[str, str], BaselineEntry]:
        """This run's baseline entries keyed as the file keys them (see ``baseline_for_run``)."""
        prefix = self.base.key_prefix
        if not prefix:
            return dict(entries)
        mine = {(prefix + nodeid, name): entry for (nodeid, name), entry in entries.items()}
        return {**self._baseline_outside, **mine}

    # writing

    def home(self, nodeid: str) -> tuple[Path, str]:
        """Where a new budget for ``nodeid`` goes: the nearest file with a table, and its key."""
        try:
            chain = self.chain(self.test_file(nodeid).parent)
        except ConfigError:
            chain = ()  # reported when its tests were collected
        table = chain[0] if chain else self.base
        return table.path, table.written_key(nodeid)

    def tables(self) -> tuple[Table, ...]:
        """The nested tables read so far (those of directories whose tests were collected)."""
        return tuple(table for table in self._tables.values() if table is not None)

    def written_key(self, path: Path | None, key: str) -> str:
        """A base-table stale key (this run's node id) as the base file writes it."""
        budget = self.base.by_nodeid.get(key)
        if path is None and budget is not None and budget.pyproject_key is not None:
            return budget.pyproject_key
        return key

    def stale(self, records: Sequence[TestRecord], scope: RunScope) -> list[StaleEntry]:
        """Nested entries this run proves no test records (the base table's: ``find_stale``).

        The same proof as for the base table: a node-id key is stale only when its test was not
        collected in a complete run (it no longer exists); a name, only when no test below the
        table's directory recorded it, the run was complete, and every test below it that could
        record a name ran to completion. Tables of directories that were not collected are not
        read, so their entries are never called stale.
        """
        for nodeid in scope.collected:
            try:
                self.chain(self.test_file(nodeid).parent)
            except ConfigError:
                continue  # already reported at collection
        if not scope.complete:
            return []
        stale: list[StaleEntry] = []
        for table in self.tables():
            names = {
                count.name
                for record in records
                if record.nodeid.startswith(table.prefix)
                for count in record.counts
            }
            for nodeid, budget in table.by_nodeid.items():
                if nodeid not in scope.collected:
                    key = budget.pyproject_key or nodeid
                    stale.append(StaleEntry("pyproject", key, GONE, path=table.path))
            unfinished = [
                nodeid
                for nodeid in scope.counting
                if nodeid.startswith(table.prefix) and nodeid not in scope.completed
            ]
            if unfinished:
                continue
            for name in table.by_name:
                if name not in names:
                    why = "no test below it recorded it"
                    stale.append(StaleEntry("pyproject", name, why, path=table.path))
        return stale
