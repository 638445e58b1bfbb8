"""The end-of-run summary: every model against its budget, aligned and coloured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from ..config import Settings
from ..record import TestRecord
from ..units import format_quantity
from ..verdict import ERROR, NO_BUDGET, OK, OVER, Verdict

_COLOURS: dict[str, dict[str, bool]] = {
    OK: {"green": True},
    OVER: {"red": True, "bold": True},
    NO_BUDGET: {"yellow": True},
    ERROR: {"red": True, "bold": True},
}
_RIGHT_ALIGNED = {"FLOPs", "MACs", "params", "budget", "used", "tolerance"}


def _columns(verbosity: int) -> list[str]:
    if verbosity < 0:
        return ["test", "name", "FLOPs", "budget", "used", "status"]
    columns = ["test", "name", "FLOPs", "MACs", "params", "budget", "used", "status"]
    if verbosity > 0:
        columns[-1:-1] = ["tolerance", "source", "backend", "unknown ops"]
    return columns


def _cells(verdict: Verdict, verbosity: int) -> dict[str, str]:
    test = verdict.nodeid if verbosity >= 0 else verdict.nodeid.rsplit("::", 1)[-1]
    unknown = ", ".join(f"{op} x{n}" for op, n in sorted(verdict.unknown_ops.items()))
    return {
        "test": test,
        "name": verdict.name,
        "FLOPs": format_quantity(verdict.flops, "flops"),
        "MACs": format_quantity(verdict.macs, "macs"),
        "params": format_quantity(verdict.params, "params"),
        "budget": verdict.budget_label or "-",
        "used": f"{verdict.used:.1%}" if verdict.used is not None else "-",
        "tolerance": f"{verdict.tolerance:.1%}" if verdict.budget_label else "-",
        "source": verdict.budget_source or "-",
        "backend": verdict.backend or "-",
        "unknown ops": unknown or "-",
        "status": verdict.status_label,
    }


def _status_markup(verdict: Verdict) -> dict[str, bool]:
    if verdict.status == OVER and not verdict.enforced:
        return {"yellow": True, "bold": True}
    return _COLOURS.get(verdict.status, {})


def write(
    terminal: pytest.TerminalReporter,
    records: Sequence[TestRecord],
    settings: Settings,
    verbosity: int,
) -> None:
    """Default: one row per verdict; ``-q`` fewer columns; ``-qq`` the tally only; ``-v`` more."""
    verdicts = [verdict for record in records for verdict in record.verdicts]
    if not verdicts:
        return
    terminal.write_sep("=", f"flop budget: {settings.convention}")
    if verbosity >= -1:
        columns = _columns(verbosity)
        rows = [_cells(verdict, verbosity) for verdict in verdicts]
        widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}

        def line(cells: dict[str, str]) -> str:
            return "  ".join(
                cells[c].rjust(widths[c]) if c in _RIGHT_ALIGNED else cells[c].ljust(widths[c])
                for c in columns[:-1]
            )

        terminal.write_line(line({c: c for c in columns}) + "  status", bold=True)
        for verdict, cells in zip(verdicts, rows, strict=True):
            terminal.write(line(cells) + "  ")
            terminal.write(cells["status"], **_status_markup(verdict))
            terminal.line("")
    tally = Counter(verdict.status_label for verdict in verdicts)
    parts = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
    terminal.write_line(f"{len(verdicts)} counted: {parts}")
