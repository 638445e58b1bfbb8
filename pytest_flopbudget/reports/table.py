"""The end-of-run summary: every model against its budget, aligned and coloured."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pytest

from ..budgets.config import Settings
from ..budgets.record import TestRecord
from ..budgets.stale import StaleEntry
from ..budgets.verdict import ERROR, FAILING, NO_BUDGET, OK, OVER, REGRESSION, UNKNOWN_OPS, Verdict
from . import layout, rows

_COLOURS: dict[str, dict[str, bool]] = {
    OK: {"green": True},
    OVER: {"red": True, "bold": True},
    REGRESSION: {"red": True, "bold": True},
    UNKNOWN_OPS: {"red": True, "bold": True},
    NO_BUDGET: {"yellow": True},
    ERROR: {"red": True, "bold": True},
}
_LEFT_ALIGNED = {"test", "name", "source", "backend", "ops", "unknown ops", "status"}


def header_line(settings: Settings) -> str:
    """pytest's session header names the convention before any number is printed."""
    options = {
        "ops": settings.ops,
        "backend": settings.backend,
        "mode": settings.mode,
        "unknown_ops": settings.unknown_ops,
        "on_exceed": settings.on_exceed,
    }
    listed = ", ".join(f"{key}={value}" for key, value in options.items())
    if settings.abstract:
        listed += ", abstract=true (real models counted through fake copies)"
    return f"flopbudget: {settings.convention}; {listed}"


def _columns(
    verbosity: int, settings: Settings, with_baseline: bool, resources: Sequence[str] = ()
) -> list[str]:
    if verbosity < 0:
        columns = ["test", "name", "FLOPs", "budget", "used"]
    else:
        columns = ["test", "name", "FLOPs", "MACs", "params", *resources, "budget", "used"]
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
    """Default: one row per verdict; ``-q`` fewer columns; ``-qq`` the tally only; ``-v`` more.

    Every line fits the terminal's width (see ``layout.py``): long ids are elided in the
    middle, secondary columns fold onto a continuation line (under ``-v``) or leave (otherwise),
    and a terminal too narrow for one line per model gets two.
    """
    verdicts = [verdict for record in records for verdict in record.verdicts]
    if not verdicts and not stale:
        return
    width = max(terminal._tw.fullwidth, 40)
    title = f"flop budget: {settings.convention}; {settings.ops_convention}"
    if len(title) + 4 <= width:
        terminal.write_sep("=", title)
    else:  # the conventions on lines of their own, wrapped between words
        terminal.write_sep("=", "flop budget:")
        for part in layout.wrap(title.removeprefix("flop budget: "), width):
            terminal.write_line(part)
    if verdicts and verbosity >= -1:
        _write_rows(terminal, verdicts, settings, verbosity, with_baseline, width)
        legend = rows.hardware_legend(settings)
        if legend is not None:
            for part in layout.wrap(legend, width):
                terminal.write_line(part)
    if verbosity >= -1:
        for note in _note_lines(verdicts, settings, stale):
            for part in layout.wrap(note, width):
                terminal.write_line(part, yellow=True)
    terminal.write_line(tally(verdicts, stale))


def _write_rows(
    terminal: pytest.TerminalReporter,
    verdicts: Sequence[Verdict],
    settings: Settings,
    verbosity: int,
    with_baseline: bool,
    width: int,
) -> None:
    columns = _columns(verbosity, settings, with_baseline, rows.resource_columns(verdicts))
    prefixes = rows.family_prefixes(verdicts)
    table = [rows.cells(verdict, settings, prefixes=prefixes) for verdict in verdicts]
    if verbosity < 0:
        short = layout.short_ids(verdict.nodeid for verdict in verdicts)
        for verdict, cells in zip(verdicts, table, strict=True):
            cells["test"] = short[verdict.nodeid]
    shape, table = layout.fit(columns, table, width)
    # folded columns go to a continuation line when asked for (-v), else they leave quietly
    extra = shape.folded if verbosity > 0 else ()
    if shape.stacked:
        # one model per block: nothing competes for the line, so no column is left out
        rest = [c for c in (*shape.columns, *shape.folded) if c not in ("test", "status")]
        for verdict, cells in zip(verdicts, table, strict=True):
            status = cells["status"]
            test = layout.elide_nodeid(cells["test"], width - len(status) - len(layout.GAP))
            terminal.write(test + layout.GAP)
            terminal.write(status, **_status_markup(verdict))
            terminal.line("")
            for more in layout.continuation(cells, rest, width):
                terminal.write_line(more)
        return

    def line(cells: dict[str, str]) -> str:
        return layout.GAP.join(
            cells.get(c, "-").ljust(shape.widths[c])
            if c in _LEFT_ALIGNED
            else cells.get(c, "-").rjust(shape.widths[c])
            for c in shape.columns[:-1]
        )

    terminal.write_line(line({c: c for c in shape.columns}) + layout.GAP + "status", bold=True)
    for verdict, cells in zip(verdicts, table, strict=True):
        terminal.write(line(cells) + layout.GAP)
        terminal.write(cells["status"], **_status_markup(verdict))
        terminal.line("")
        for more in layout.continuation(cells, extra, width):
            terminal.write_line(more)


def _note_lines(
    verdicts: Sequence[Verdict], settings: Settings, stale: Sequence[StaleEntry]
) -> list[str]:
    lines = rows.notes(verdicts)
    if settings.unknown_ops != "ignore":
        for verdict in verdicts:
            if verdict.unknown_ops:
                listed = ", ".join(f"{op} x{n}" for op, n in sorted(verdict.unknown_ops.items()))
                lines.append(
                    f"{verdict.nodeid} [{verdict.name}]: not counted (unknown ops): {listed}"
                )
    lines += [f"stale: {entry.describe()}" for entry in stale]
    return lines


SEVERITY = (ERROR, OVER, REGRESSION, UNKNOWN_OPS, NO_BUDGET, OK)


def tally(verdicts: Sequence[Verdict], stale: Sequence[StaleEntry] = ()) -> str:
    """``3 counted: 1 over, 2 ok; 1 error`` — worst first; errors that counted nothing are
    named after the counted models, not counted among them."""
    counted = [verdict for verdict in verdicts if verdict.counted]
    uncounted = [verdict for verdict in verdicts if not verdict.counted]

    def parts(group: Sequence[Verdict]) -> str:
        labels = Counter(verdict.status_label for verdict in group)

        def rank(label: str) -> tuple[int, bool, str]:
            base = label.removesuffix(" (warn)")
            order = SEVERITY.index(base) if base in SEVERITY else len(SEVERITY)
            return (order, label != base, label)

        return ", ".join(f"{labels[label]} {label}" for label in sorted(labels, key=rank))

    summary = f"{len(counted)} counted: {parts(counted)}" if counted else "nothing counted"
    if uncounted:
        summary += f"; {parts(uncounted)} (nothing counted)"
    if stale:
        summary += f"; {len(stale)} stale entries"
    return summary
