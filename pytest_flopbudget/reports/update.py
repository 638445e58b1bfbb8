"""``--flop-budget-update``: write measured values into ``[tool.flopbudget.budgets]``.

tomlkit keeps every other byte of the file (comments, order, other tables), and
``keep_line_endings`` the CRLF line endings tomlkit writes as LF in new lines; a BOM stays. The
file is edited under its lock (locking.py) and written through files.py.
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
from ..budgets.stale import KeptEntry
from ..budgets.units import (
    COMPUTE_UNITS,
    PARAM_UNITS,
    PREFIXES,
    best_prefix,
    parse_quantities,
    round_up,
)
from ..budgets.verdict import NO_BUDGET, OVER, Verdict
from .files import keep_line_endings, write_atomically
from .locking import LockError, locked

BOM = b"\xef\xbb\xbf"


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

    def lines(self) -> list[str]:
        lines = [f"flop budgets updated in {self.path}: {len(self.written)} entries"]
        lines += [f"  {key}" for key in self.written]
        lines += [f"  removed (no test recorded it): {key}" for key in self.removed]
        for where in self.in_code:
            lines.append(f"  not updated (budget set by a marker in code, edit it there): {where}")
        return lines


def planned_entries(records: Sequence[TestRecord]) -> tuple[dict[str, Measured], list[str]]:
    """Which pyproject keys get which measured values, and over-budget markers left alone."""
    entries: dict[str, Measured] = {}
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
                    verdict.budget_key,
                    Measured(verdict.flops, verdict.macs, verdict.params),
                )
            elif verdict.status == OVER:
                in_code.append(f"{verdict.nodeid} ({verdict.name})")
        if unbudgeted and any(v.budget_source == "pyproject:name" for v in record.verdicts):
            # a node-id entry would replace the test's name budgets: budget these by name too
            for verdict in unbudgeted:
                assert verdict.flops is not None and verdict.macs is not None
                assert verdict.params is not None
                _keep_max(
                    entries, verdict.name, Measured(verdict.flops, verdict.macs, verdict.params)
                )
        elif unbudgeted:
            total = Measured(
                sum(v.flops or 0 for v in unbudgeted),
                sum(v.macs or 0 for v in unbudgeted),
                sum(v.params or 0 for v in unbudgeted),
            )
            _keep_max(entries, record.nodeid, total)
    return entries, in_code


def left_alone(
    kept: Sequence[KeptEntry], not_taken: Sequence[tuple[str, str]], *, failed_option: str
) -> list[str]:
    """What the update did not touch, and why: it never removes or rewrites without proof."""
    lines = [
        f"  not updated (the test {why}; {failed_option} takes its counts anyway): {nodeid}"
        for nodeid, why in not_taken
    ]
    lines += [f"  {entry.describe()}" for entry in kept if entry.in_run]
    outside = sum(1 for entry in kept if not entry.in_run)
    if outside:
        lines.append(f"  kept {outside} entries of tests not in this run")
    return lines


def _keep_max(entries: dict[str, Measured], key: str, value: Measured) -> None:
    old = entries.get(key)
    if old is None:
        entries[key] = value
    else:
        entries[key] = Measured(
            max(old.flops, value.flops), max(old.macs, value.macs), max(old.params, value.params)
        )


def _value_in(unit_key: str, measured: Measured) -> float:
    unit = COMPUTE_UNITS.get(unit_key) or PARAM_UNITS[unit_key]
    base = {"flops": measured.flops, "macs": measured.macs, "params": measured.params}[unit.kind]
    scaled = base / PREFIXES[unit.prefix]
    if scaled <= 0:
        return 0.0
    rounded, prefix = round_up(base)
    # express the rounded-up value in the entry's own unit
    return float(f"{rounded * PREFIXES[prefix] / PREFIXES[unit.prefix]:.12g}")


def _string_entry(measured: Measured, old: str | None) -> str:
    """A new entry carries compute and params; an old one keeps its own units and parts."""
    compute_kind: str | None = "flops"
    params_prefix: str | None = best_prefix(measured.params)
    if old is not None:
        kinds = {q.unit.kind: q.unit.prefix for q in parse_quantities(old)}
        compute_kind = next((kind for kind in ("flops", "macs") if kind in kinds), None)
        params_prefix = kinds.get("params")
    parts = []
    base = measured.macs if compute_kind == "macs" else measured.flops
    if compute_kind is not None and base > 0:
        value, prefix = round_up(base)
        parts.append(f"{value:g} {prefix.upper()}{'FLOPs' if compute_kind == 'flops' else 'MACs'}")
    if params_prefix is not None and measured.params > 0:
        prefix = params_prefix if params_prefix in ("", "k", "m", "g") else "m"
        value, natural = round_up(measured.params)
        scaled = float(f"{value * PREFIXES[natural] / PREFIXES[prefix]:.12g}")
        parts.append(f"{scaled:g}{prefix.upper()} params" if prefix else f"{scaled:g} params")
    return ", ".join(parts)


def _table_entry(table: Any, measured: Measured) -> None:
    for key in list(table.keys()):
        if key in COMPUTE_UNITS or key in PARAM_UNITS:
            value = _value_in(key, measured)
            if value > 0:
                table[key] = value


def update_pyproject(
    path: Path,
    records: Sequence[TestRecord],
    settings: Settings,
    *,
    remove: Sequence[str] = (),
    on_wait: Callable[[str], None] | None = None,
) -> UpdateOutcome:
    """Write measured values; ``remove`` lists stale keys (found only on a full run).

    The file is read again under its lock, so budgets another run wrote meanwhile are kept.
    """
    entries, in_code = planned_entries(records)
    outcome = UpdateOutcome(path=path, in_code=in_code)
    try:
        with locked(path, on_wait):
            _edit_pyproject(path, entries, remove, outcome)
    except LockError as error:
        raise UpdateError(str(error)) from None
    return outcome


def _edit_pyproject(
    path: Path, entries: dict[str, Measured], remove: Sequence[str], outcome: UpdateOutcome
) -> None:
    """Read (under the lock), change the budgets, write back every other byte as it was."""
    try:
        raw = path.read_bytes() if path.exists() else b""
        bom = raw.startswith(BOM)
        text = raw[len(BOM) :].decode("utf-8") if bom else raw.decode("utf-8")
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
            _table_entry(old, measured)
        else:
            budgets[key] = _string_entry(measured, old if isinstance(old, str) else None)
        outcome.written.append(key)
    for key in remove:
        if key in budgets and key not in entries:
            del budgets[key]
            outcome.removed.append(key)
    if entries or outcome.removed:
        edited = keep_line_endings(text, tomlkit.dumps(document)).encode("utf-8")
        write_atomically(path, BOM + edited if bom else edited)


BaselineEntries = Mapping[tuple[str, str], baseline_file.BaselineEntry]


def write_baseline(
    path: Path,
    apply: Callable[[baseline_file.Baseline], BaselineEntries],
    on_wait: Callable[[str], None] | None = None,
) -> str:
    """Apply this run's changes to the baseline as it is on disk now, under its lock.

    ``apply`` gets the baseline read again under the lock (another run may have written it
    since this one started) and returns every entry to write. The returned line says how the
    entries moved (growth engine).
    """
    try:
        with locked(path, on_wait):
            try:
                current = baseline_file.load(path)
            except baseline_file.BaselineError:
                current = baseline_file.Baseline(path, {}, exists=False)  # said at start-up
            entries = apply(current)
            write_atomically(path, baseline_file.render(entries))
    except LockError as error:
        raise UpdateError(str(error)) from None
    old = current.entries
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
