"""Budget and baseline entries that no test records any more, and those this run cannot judge.

An entry is stale only when the run proves it (scope.py says what a run proves):

- a node-id entry: its test ran to completion without recording it, or the test no longer
  exists (on a complete run only);
- a name entry: every test that recorded the name in the baseline ran to completion without
  recording it; without a baseline, a complete run in which every test that counts ran to
  completion and none recorded it.

Everything else is kept, with the reason ("not run: skipped").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .baseline import Baseline
from .config import Settings
from .record import TestRecord
from .scope import NOT_IN_RUN, RunScope

PYPROJECT = "pyproject"
BASELINE = "baseline"


@dataclass(frozen=True)
class StaleEntry:
    where: str  # "pyproject" or "baseline"
    key: str
    why: str = "no test recorded it"
    baseline_key: tuple[str, str] | None = None  # (node id, name) of a baseline entry

    path: Path | None = None  # a nested pyproject.toml; None: the run's own

    def describe(self) -> str:
        if self.where == PYPROJECT:
            place = f"{self.path}: " if self.path is not None else ""
            return f"{place}[tool.flopbudget.budgets] {self.key!r}: {self.why}"
        return f"baseline entry {self.key}: {self.why}"


@dataclass(frozen=True)
class KeptEntry:
    """An entry the run could not judge: kept as it is."""

    where: str
    key: str
    why: str

    @property
    def in_run(self) -> bool:
        """The test was in this run but did not complete (skipped, failed, ...)."""
        return self.why != NOT_IN_RUN

    def describe(self) -> str:
        place = "[tool.flopbudget.budgets]" if self.where == PYPROJECT else "baseline entry"
        key = repr(self.key) if self.where == PYPROJECT else self.key
        return f"kept (not run: {self.why}): {place} {key}"


@dataclass(frozen=True)
class Staleness:
    stale: tuple[StaleEntry, ...] = ()
    kept: tuple[KeptEntry, ...] = ()

    def stale_keys(self, where: str) -> list[str]:
        return [entry.key for entry in self.stale if entry.where == where]

    def stale_baseline_keys(self) -> set[tuple[str, str]]:
        return {entry.baseline_key for entry in self.stale if entry.baseline_key is not None}


GONE = "the test no longer exists"


def _ran_without(nodeid: str, name: str | None = None) -> str:
    what = f"recording {name!r}" if name is not None else "recording it"
    return f"{nodeid} ran to completion without {what}"


def find_stale(
    settings: Settings,
    baseline: Baseline | None,
    records: Sequence[TestRecord],
    scope: RunScope,
) -> Staleness:
    names = {count.name for record in records for count in record.counts}
    recorded = {(v.nodeid, v.name) for record in records for v in record.verdicts if v.counted}
    recorded |= {(record.nodeid, count.name) for record in records for count in record.counts}
    stale: list[StaleEntry] = []
    kept: list[KeptEntry] = []

    for key in settings.budgets_by_nodeid:
        if key in scope.collected:
            continue
        if scope.complete:
            stale.append(StaleEntry(PYPROJECT, key, GONE))
        else:
            kept.append(KeptEntry(PYPROJECT, key, scope.why_not_completed(key)))

    owners: dict[str, list[str]] = {}
    if baseline is not None:
        for nodeid, name in sorted(baseline.entries):
            owners.setdefault(name, []).append(nodeid)
            if (nodeid, name) in recorded:
                continue
            label = f"{nodeid} [{name}]"
            if nodeid in scope.completed:
                why = _ran_without(nodeid, name)
                stale.append(StaleEntry(BASELINE, label, why, (nodeid, name)))
            elif nodeid not in scope.collected and scope.complete:
                stale.append(StaleEntry(BASELINE, label, GONE, (nodeid, name)))
            else:
                kept.append(KeptEntry(BASELINE, label, scope.why_not_completed(nodeid)))

    for name in settings.budgets_by_name:
        if name in names:
            continue
        why_kept = _name_unproven(owners.get(name, []), scope)
        if why_kept is None:
            owned = owners.get(name)
            why = (
                f"{', '.join(owned)} ran to completion without recording it"
                if owned
                else "no test recorded it"
            )
            stale.append(StaleEntry(PYPROJECT, name, why))
        else:
            kept.append(KeptEntry(PYPROJECT, name, why_kept))
    return Staleness(tuple(stale), tuple(kept))


def _name_unproven(owners: Sequence[str], scope: RunScope) -> str | None:
    """Why the run cannot tell that nobody records a name any more (None: it can)."""
    if owners:
        for nodeid in owners:
            proven = nodeid in scope.completed or (nodeid not in scope.collected and scope.complete)
            if not proven:
                return f"{nodeid} {scope.why_not_completed(nodeid)}"
        return None
    if not scope.complete:
        return NOT_IN_RUN
    unfinished = sorted(nodeid for nodeid in scope.counting if nodeid not in scope.completed)
    if unfinished:
        first = unfinished[0]
        more = f" and {len(unfinished) - 1} more" if len(unfinished) > 1 else ""
        return f"{first} {scope.why_not_completed(first)}{more}, it may record it"
    return None
