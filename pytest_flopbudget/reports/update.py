"""``--flop-budget-update``: write measured values into ``[tool.flopbudget.budgets]``.

tomlkit keeps every other byte of the file (comments, order, other tables); the new file is
written aside and then moved over the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from ..budgets import baseline as baseline_file
from ..budgets import growth
from ..budgets.budget import looks_like_nodeid
from ..budgets.config import Settings
from ..budgets.record import TestRecord
from ..budgets.units import (
    ALL_UNITS,
    PARAM_PREFIXES,
    ceil_significant,
    format_written,
    parse_quantities,
)
from ..budgets.verdict import NO_BUDGET, OVER, Verdict
from .files import write_atomically


class UpdateError(Exception):
    """The pyproject could not be updated; nothing was written."""


@dataclass(frozen=True)
class Measured:
    flops: int
    macs: int
    params: int


@dataclass
class UpdateOutcome:
    path: Path
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    in_code: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        lines = [f"flop budgets updated in {self.path}: {len(self.written)} entries"]
        lines += [f"  {key}" for key in self.written]
        lines += [f"  removed (no test recorded it): {key}" for key in self.removed]
        lines += [f"  {note}" for note in self.notes]
        for where in self.in_code:
            lines.append(f"  not updated (budget set by a marker in code, edit it there): {where}")
        return lines


# (the pyproject.toml holding the entry, or None for a new entry; its key)
Target = tuple[str | None, str]


def planned_entries(records: Sequence[TestRecord]) -> tuple[dict[Target, Measured], list[str]]:
    """Which pyproject keys get which measured values, and over-budget markers left alone."""
    entries: dict[Target, Measured] = {}
    in_code: list[str] = []
    for record in records:
        unbudgeted: list[Verdict] = []
        for verdict in record.verdicts:
            if verdict.flops is None or verdict.macs is None or verdict.params is None:
                continue
            if verdict.status == NO_BUDGET:
                unbudgeted.append(verdict)
            elif verdict.budget_key is not None:
                _keep_max(
                    entries,
                    (verdict.budget_file, verdict.budget_key),
                    Measured(verdict.flops, verdict.macs, verdict.params),
                )
            elif verdict.status == OVER:
                in_code.append(f"{verdict.nodeid} ({verdict.name})")
        if unbudgeted:
            total = Measured(
                sum(v.flops or 0 for v in unbudgeted),
                sum(v.macs or 0 for v in unbudgeted),
                sum(v.params or 0 for v in unbudgeted),
            )
            _keep_max(entries, (None, record.nodeid), total)
    return entries, in_code


def _keep_max(entries: dict[Target, Measured], key: Target, value: Measured) -> None:
    old = entries.get(key)
    if old is None:
        entries[key] = value
    else:
        entries[key] = Measured(
            max(old.flops, value.flops), max(old.macs, value.macs), max(old.params, value.params)
        )


def _base(kind: str, measured: Measured) -> int:
    return {"flops": measured.flops, "macs": measured.macs, "params": measured.params}[kind]


def _value_in(unit_key: str, measured: Measured) -> int | float:
    """The count in the entry's own unit, rounded up to 4 significant figures (0 stays 0)."""
    unit = ALL_UNITS[unit_key]
    number = ceil_significant(_base(unit.kind, measured), unit.prefix)
    return int(number) if number == number.to_integral_value() else float(number)


def _zero_note(key: str, kind: str) -> str:
    unit = "FLOPs" if kind == "flops" else "MACs" if kind == "macs" else "params"
    return f"{key}: counted 0 {unit}; a budget must be positive, so its {unit} budget was kept"


def _string_entry(key: str, measured: Measured, old: str | None, notes: list[str]) -> str | None:
    """A new entry carries compute and params; an old one keeps its own units and parts.

    A zero count cannot be a budget (budgets are positive): an old part keeps its value (any
    positive budget holds a zero count) and a new entry leaves it out. ``None``: nothing to
    write at all.
    """
    if old is None:
        parts = [
            format_written(_base(kind, measured), kind)  # type: ignore[arg-type]
            for kind in ("flops", "params")
            if _base(kind, measured) > 0
        ]
        if not parts:
            notes.append(
                f"{key}: counted 0 FLOPs and 0 params; a budget must be positive, "
                "so none was written"
            )
        return ", ".join(parts) or None
    parts = []
    for text, quantity in zip(old.split(","), parse_quantities(old), strict=True):
        kind = quantity.unit.kind
        count = _base(kind, measured)
        if count <= 0:
            parts.append(text.strip())
            notes.append(_zero_note(key, kind))
        elif kind == "params":
            prefix = quantity.unit.prefix
            parts.append(
                format_written(count, "params", prefix if prefix in PARAM_PREFIXES else "m")
            )
        else:
            parts.append(format_written(count, kind))
    return ", ".join(parts)


def _table_entry(key: str, table: Any, measured: Measured, notes: list[str]) -> None:
    for unit_key in list(table.keys()):
        if unit_key in ALL_UNITS:
            value = _value_in(unit_key, measured)
            if value > 0:
                table[unit_key] = value
            else:
                notes.append(_zero_note(key, ALL_UNITS[unit_key].kind))


def update_pyproject(
    path: Path, records: Sequence[TestRecord], settings: Settings, *, remove: Sequence[str] = ()
) -> UpdateOutcome:
    """Write measured values into one file; ``remove`` lists stale keys (found only on a full
    run)."""
    (outcome,) = update_pyprojects(
        records,
        settings,
        home=lambda nodeid: (path, nodeid),
        remove=[(path, key) for key in remove],
        only=path,
    )
    return outcome


def update_pyprojects(
    records: Sequence[TestRecord],
    settings: Settings,
    *,
    home: Callable[[str], tuple[Path, str]],
    remove: Sequence[tuple[Path, str]] = (),
    only: Path | None = None,
) -> list[UpdateOutcome]:
    """Write each measured value into the file that owns its budget (monorepos).

    A budget read from a pyproject goes back into that pyproject; a new node-id entry goes
    where ``home`` says (the nearest file with a ``[tool.flopbudget]`` table, its key relative
    to that file). One outcome per file, the first also listing markers left alone.
    """
    planned, in_code = planned_entries(records)
    by_file: dict[Path, dict[str, Measured]] = {}
    for (file, key), measured in planned.items():
        if only is not None:
            path, written = only, key
        elif file is not None:
            path, written = Path(file), key
        else:
            path, written = home(key)
        _keep_max_in(by_file.setdefault(path, {}), written, measured)
    removals: dict[Path, list[str]] = {}
    for path, key in remove:
        removals.setdefault(path, []).append(key)
    paths = sorted(set(by_file) | set(removals), key=lambda p: (len(p.parts), str(p)))
    if not paths:
        paths = [only or settings.pyproject or Path("pyproject.toml")]
    outcomes = [_update_file(path, by_file.get(path, {}), removals.get(path, [])) for path in paths]
    outcomes[0].in_code.extend(in_code)
    return outcomes


def _keep_max_in(entries: dict[str, Measured], key: str, value: Measured) -> None:
    old = entries.get(key, value)
    entries[key] = Measured(
        max(old.flops, value.flops), max(old.macs, value.macs), max(old.params, value.params)
    )


def _update_file(
    path: Path, entries: Mapping[str, Measured], remove: Sequence[str]
) -> UpdateOutcome:
    outcome = UpdateOutcome(path=path)
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        document = tomlkit.parse(text)
    except (OSError, UnicodeDecodeError, TOMLKitError) as error:
        raise UpdateError(f"{path}: not updated, cannot read it: {error}") from None
    tool = document.setdefault("tool", tomlkit.table(is_super_table=True))
    flopbudget = tool.setdefault("flopbudget", tomlkit.table())
    if "budgets" not in flopbudget:
        flopbudget.append("budgets", tomlkit.table())
    budgets = flopbudget["budgets"]
    for key in sorted(entries, key=lambda k: (not looks_like_nodeid(k), k)):
        measured = entries[key]
        old = budgets.get(key)
        if isinstance(old, dict):
            _table_entry(key, old, measured, outcome.notes)
        else:
            entry = _string_entry(
                key, measured, old if isinstance(old, str) else None, outcome.notes
            )
            if entry is None:
                continue
            budgets[key] = entry
        outcome.written.append(key)
    for key in remove:
        if key in budgets and key not in entries:
            del budgets[key]
            outcome.removed.append(key)
    if entries or outcome.removed:
        write_atomically(path, tomlkit.dumps(document))
    return outcome


def write_baseline(
    path: Path,
    previous: baseline_file.Baseline | None,
    entries: Mapping[tuple[str, str], baseline_file.BaselineEntry],
    environment: Mapping[str, str] | None = None,
) -> str:
    """Write the baseline; the returned line says how its entries moved (growth engine)."""
    write_atomically(path, baseline_file.render(entries, environment))
    old = previous.entries if previous is not None else {}
    moves: dict[str, int] = {}
    for key, entry in entries.items():
        before = old.get(key)
        if before is None:
            move = "new"
        else:
            pairs = ((before.macs, entry.macs), (before.params, entry.params))
            move = growth.status(pairs, 0.0)
            move = "grew" if move == "regressed" else move
        moves[move] = moves.get(move, 0) + 1
    removed = sum(1 for key in old if key not in entries)
    if removed:
        moves["removed"] = removed
    order = ("grew", "shrank", "new", "removed", "unchanged")
    tally = ", ".join(f"{moves[move]} {move}" for move in order if moves.get(move))
    return f"baseline written to {path}: {len(entries)} entries" + (f" ({tally})" if tally else "")
