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
from ..budgets import growth, resources
from ..budgets.budget import looks_like_nodeid
from ..budgets.config import Settings
from ..budgets.record import TestRecord
from ..budgets.stale import KeptEntry
from ..budgets.units import (
    BUDGET_UNITS,
    PARAM_PREFIXES,
    ceil_significant,
    format_written,
    parse_quantities,
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
    active_params: int | None = None  # None: all parameters are active
    peak_memory: int | None = None  # None: not measured, a memory budget is kept as written
    seconds: float | None = None  # the lower bound on the entry's device, if it has one

    @property
    def active(self) -> int:
        return self.params if self.active_params is None else self.active_params


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
                _keep_max(entries, (verdict.budget_file, verdict.budget_key), _measured(verdict))
            elif verdict.status == OVER:
                in_code.append(f"{verdict.nodeid} ({verdict.name})")
        if unbudgeted and any(v.budget_source == "pyproject:name" for v in record.verdicts):
            # a node-id entry would replace the test's name budgets: budget these by name too
            for verdict in unbudgeted:
                assert verdict.flops is not None and verdict.macs is not None
                assert verdict.params is not None
                _keep_max(entries, (None, verdict.name), _measured(verdict))
        elif unbudgeted:
            total = Measured(
                sum(v.flops or 0 for v in unbudgeted),
                sum(v.macs or 0 for v in unbudgeted),
                sum(v.params or 0 for v in unbudgeted),
                sum(v.active_params or v.params or 0 for v in unbudgeted),
            )
            _keep_max(entries, (None, record.nodeid), total)
    return entries, in_code


def _measured(verdict: Verdict) -> Measured:
    assert verdict.flops is not None and verdict.macs is not None and verdict.params is not None
    return Measured(
        verdict.flops,
        verdict.macs,
        verdict.params,
        verdict.active_params,
        verdict.peak_memory,
        verdict.seconds,
    )


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


def _keep_max(entries: dict[Target, Measured], key: Target, value: Measured) -> None:
    old = entries.get(key)
    if old is None:
        entries[key] = value
    else:
        entries[key] = _larger(old, value)


def _larger(old: Measured, value: Measured) -> Measured:
    return Measured(
        max(old.flops, value.flops),
        max(old.macs, value.macs),
        max(old.params, value.params),
        max(old.active, value.active),
        _max_known(old.peak_memory, value.peak_memory),
        _max_known(old.seconds, value.seconds),
    )


def _max_known(old: Any, value: Any) -> Any:
    """The larger of two measurements; unknown if either is (never a budget from half the runs)."""
    return None if old is None or value is None else max(old, value)


def _base(kind: str, measured: Measured) -> Any:
    return {
        "flops": measured.flops,
        "macs": measured.macs,
        "params": measured.params,
        "active_params": measured.active,
        "memory": measured.peak_memory,
        "time": measured.seconds,
    }[kind]


def _value_in(unit_key: str, measured: Measured) -> int | float | None:
    """The count in the entry's own unit, rounded up to 4 significant figures (0 stays 0)."""
    unit = BUDGET_UNITS[unit_key]
    count = _base(unit.kind, measured)
    if count is None:
        return None
    if unit.kind == "memory":
        number = resources.ceil_in(count, resources.MEMORY_SCALES[unit.prefix])
    elif unit.kind == "time":
        number = resources.written_seconds(count, unit.prefix)
    else:
        number = ceil_significant(count, unit.prefix)
    return int(number) if number == number.to_integral_value() else float(number)


def _zero_note(key: str, kind: str) -> str:
    unit = {"flops": "FLOPs", "macs": "MACs", "memory": "bytes", "time": "seconds"}.get(
        kind, "params"
    )
    return f"{key}: counted 0 {unit}; a budget must be positive, so its {unit} budget was kept"


def _unmeasured_note(key: str, kind: str) -> str:
    what = "peak memory" if kind == "memory" else "time"
    return f"{key}: no {what} was measured, so its {what} budget was kept as written"


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
        if count is None:
            parts.append(text.strip())
            notes.append(_unmeasured_note(key, kind))
        elif count <= 0:
            parts.append(text.strip())
            notes.append(_zero_note(key, kind))
        elif kind in ("params", "active_params"):
            prefix = quantity.unit.prefix
            parts.append(format_written(count, kind, prefix if prefix in PARAM_PREFIXES else "m"))
        elif kind == "memory":
            parts.append(resources.written_bytes(count, quantity.unit.prefix))
        else:
            parts.append(format_written(count, kind))
    return ", ".join(parts)


def _table_entry(key: str, table: Any, measured: Measured, notes: list[str]) -> None:
    for unit_key in list(table.keys()):
        if unit_key in BUDGET_UNITS:
            value = _value_in(unit_key, measured)
            if value is None:
                notes.append(_unmeasured_note(key, BUDGET_UNITS[unit_key].kind))
            elif value > 0:
                table[unit_key] = value
            else:
                notes.append(_zero_note(key, BUDGET_UNITS[unit_key].kind))


def update_pyproject(
    path: Path,
    records: Sequence[TestRecord],
    settings: Settings,
    *,
    remove: Sequence[str] = (),
    on_wait: Callable[[str], None] | None = None,
) -> UpdateOutcome:
    """Write measured values into one file; ``remove`` lists proven-stale keys.

    The file is read again under its lock, so budgets another run wrote meanwhile are kept.
    """
    (outcome,) = update_pyprojects(
        records,
        settings,
        home=lambda nodeid: (path, nodeid),
        remove=[(path, key) for key in remove],
        only=path,
        on_wait=on_wait,
    )
    return outcome


def update_pyprojects(
    records: Sequence[TestRecord],
    settings: Settings,
    *,
    home: Callable[[str], tuple[Path, str]],
    remove: Sequence[tuple[Path, str]] = (),
    only: Path | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> list[UpdateOutcome]:
    """Write each measured value into the file that owns its budget (monorepos).

    A budget read from a pyproject goes back into that pyproject; a new node-id entry goes
    where ``home`` says (the nearest file with a ``[tool.flopbudget]`` table, its key relative
    to that file). One outcome per file, the first also listing markers left alone. Each file
    is edited under its own lock.
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
    outcomes = [
        _update_file(path, by_file.get(path, {}), removals.get(path, []), on_wait) for path in paths
    ]
    outcomes[0].in_code.extend(in_code)
    return outcomes


def _keep_max_in(entries: dict[str, Measured], key: str, value: Measured) -> None:
    old = entries.get(key, value)
    entries[key] = _larger(old, value)


def _update_file(
    path: Path,
    entries: Mapping[str, Measured],
    remove: Sequence[str],
    on_wait: Callable[[str], None] | None = None,
) -> UpdateOutcome:
    outcome = UpdateOutcome(path=path)
    try:
        with locked(path, on_wait):
            _edit_pyproject(path, entries, remove, outcome)
    except LockError as error:
        raise UpdateError(str(error)) from None
    return outcome


def _edit_pyproject(
    path: Path, entries: Mapping[str, Measured], remove: Sequence[str], outcome: UpdateOutcome
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
        edited = keep_line_endings(text, tomlkit.dumps(document)).encode("utf-8")
        write_atomically(path, BOM + edited if bom else edited)


BaselineEntries = Mapping[tuple[str, str], baseline_file.BaselineEntry]


def write_baseline(
    path: Path,
    apply: Callable[[baseline_file.Baseline], BaselineEntries],
    on_wait: Callable[[str], None] | None = None,
    environment: Mapping[str, str] | None = None,
) -> str:
    """Apply this run's changes to the baseline as it is on disk now, under its lock.

    ``apply`` gets the baseline read again under the lock (another run may have written it
    since this one started) and returns every entry to write. The returned line says how the
    entries moved (growth engine). ``environment`` is the toolchain the entries were measured
    with: a baseline whose entries did not change keeps its own, and is not rewritten.
    """
    try:
        with locked(path, on_wait):
            try:
                current = baseline_file.load(path)
            except baseline_file.ForeignBaselineError as error:
                raise UpdateError(f"not updated: {error}") from None
            except baseline_file.BaselineError:
                current = baseline_file.Baseline(path, {}, exists=False)  # said at start-up
            entries = apply(current)
            if current.exists and dict(entries) == dict(current.entries):
                environment = current.environment
            text = baseline_file.render(entries, environment)
            if not current.exists or path.read_text(encoding="utf-8") != text:
                write_atomically(path, text)
    except LockError as error:
        raise UpdateError(str(error)) from None
    old = current.entries
    moves: dict[str, int] = {}
    for key, entry in entries.items():
        before = old.get(key)
        if before is None:
            move = "new"
        else:
            pairs = [(before.macs, entry.macs), (before.params, entry.params)]
            if before.peak_memory is not None and entry.peak_memory is not None:
                pairs.append((before.peak_memory, entry.peak_memory))
            move = growth.status(pairs, 0.0)
            move = "grew" if move == "regressed" else move
        moves[move] = moves.get(move, 0) + 1
    removed = sum(1 for key in old if key not in entries)
    if removed:
        moves["removed"] = removed
    order = ("grew", "shrank", "new", "removed", "unchanged")
    tally = ", ".join(f"{moves[move]} {move}" for move in order if moves.get(move))
    return f"baseline written to {path}: {len(entries)} entries" + (f" ({tally})" if tally else "")
