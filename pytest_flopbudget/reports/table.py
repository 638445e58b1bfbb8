"""The end-of-run summary: every model against its budget, aligned and coloured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from ..budgets.config import Settings
from ..budgets.record import TestRecord
from ..budgets.stale import StaleEntry
from ..budgets.verdict import ERROR, FAILING, NO_BUDGET, OK, OVER, REGRESSION, UNKNOWN_OPS, Verdict
from . import rows

_COLOURS: dict[str, dict[str, bool]] = {
    OK: {"green": True},
    OVER: {"red": True, "bold": True},
    REGRESSION: {"red": True, "bold": True},
    UNKNOWN_OPS: {"red": True, "bold": True},
    NO_BUDGET: {"yellow": True},
    ERROR: {"red": True, "bold": True},
}
_LEFT_ALIGNED = {"test", "name", "source", "backend", "ops", "unknown ops", "status"}


def _columns(verbosity: int, settings: Settings, with_baseline: bool) -> list[str]:
    if verbosity < 0:
        columns = ["test", "name", "FLOPs", "budget", "used"]
    else:
        columns = ["test", "name", "FLOPs", "MACs", "params", "budget", "used"]
    if with_baseline:
        columns.append("vs baseline")
    columns += [label for label, _, _ in rows.hardware_columns(settings)]
    if verbosity > 0:
        columns += ["tolerance", "source", "backend", "ops", "unknown ops"]
    return [*columns, "status"]


def _status_markup(verdict: Verdict) -> dict[str, bool]:
    if verdict.status in FAILING and not verdict.enforced:
        return {"yellow": True, "bold": True}
    return _COLOURS.get(verdict.status, {})


def write(
    terminal: pytest.TerminalReporter,
    records: Sequence[TestRecord],
    settings: Settings,
    verbosity: int,
    *,
    with_baseline: bool = False,
    stale: Sequence[StaleEntry] = (),
) -> None:
    """Default: one row per verdict; ``-q`` fewer columns; ``-qq`` the tally only; ``-v`` more."""
    verdicts = [verdict for record in records for verdict in record.verdicts]
    if not verdicts and not stale:
        return
    terminal.write_sep("=", f"flop budget: {settings.convention}; {settings.ops_convention}")
    if verdicts and verbosity >= -1:
        columns = _columns(verbosity, settings, with_baseline)
        table = [rows.cells(verdict, settings, short_test=verbosity < 0) for verdict in verdicts]
        widths = {c: max(len(c), *(len(row.get(c, "-")) for row in table)) for c in columns}

        def line(cells: dict[str, str]) -> str:
            return "  ".join(
                cells.get(c, "-").ljust(widths[c])
                if c in _LEFT_ALIGNED
                else cells.get(c, "-").rjust(widths[c])
                for c in columns[:-1]
            )

        terminal.write_line(line({c: c for c in columns}) + "  status", bold=True)
        for verdict, cells in zip(verdicts, table, strict=True):
            terminal.write(line(cells) + "  ")
            terminal.write(cells["status"], **_status_markup(verdict))
            terminal.line("")
    if verbosity >= -1:
        for note in rows.notes(verdicts):
            terminal.write_line(note, yellow=True)
        if settings.unknown_ops != "ignore":
            for verdict in verdicts:
                if verdict.unknown_ops:
                    listed = ", ".join(
                        f"{op} x{n}" for op, n in sorted(verdict.unknown_ops.items())
                    )
                    terminal.write_line(
                        f"{verdict.nodeid} [{verdict.name}]: not counted (unknown ops): {listed}",
                        yellow=True,
                    )
        for entry in stale:
            terminal.write_line(f"stale: {entry.describe()}", yellow=True)
    tally = Counter(verdict.status_label for verdict in verdicts)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
    summary = f"{len(verdicts)} counted: {parts}" if verdicts else "nothing counted"
    if stale:
        summary += f"; {len(stale)} stale entries"
    terminal.write_line(summary)
