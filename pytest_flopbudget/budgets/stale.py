"""Budget and baseline entries that no test recorded: they guard nothing any more.

Only a full run can tell (a run narrowed by -k, -m, a file selection or --lf simply did not
run the tests that would have recorded them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from .baseline import Baseline
from .config import Settings
from .record import TestRecord


@dataclass(frozen=True)
class StaleEntry:
    where: str  # "pyproject" or "baseline"
    key: str
    path: Path | None = None  # a nested pyproject.toml; None: the run's own

    def describe(self) -> str:
        if self.where == "pyproject":
            place = f"{self.path}: " if self.path is not None else ""
            return f"{place}[tool.flopbudget.budgets] {self.key!r}: no test recorded it"
        return f"baseline entry {self.key}: no test recorded it"


def find_stale(
    settings: Settings,
    baseline: Baseline | None,
    records: Sequence[TestRecord],
    seen_nodeids: Collection[str],
    ran_nodeids: Collection[str],
) -> list[StaleEntry]:
    """``seen``: every test reported; ``ran``: those whose body ran (not skipped)."""
    names = {count.name for record in records for count in record.counts}
    stale = [
        StaleEntry("pyproject", key)
        for key in settings.budgets_by_nodeid
        if key not in seen_nodeids
    ]
    stale += [StaleEntry("pyproject", key) for key in settings.budgets_by_name if key not in names]
    if baseline is not None:
        recorded = {(v.nodeid, v.name) for record in records for v in record.verdicts if v.counted}
        for nodeid, name in sorted(baseline.entries):
            gone = nodeid not in seen_nodeids
            if gone or (nodeid in ran_nodeids and (nodeid, name) not in recorded):
                stale.append(StaleEntry("baseline", f"{nodeid} [{name}]"))
    return stale
