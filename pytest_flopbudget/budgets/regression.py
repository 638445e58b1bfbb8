"""Verdict + baseline -> verdict: growth since the committed baseline is a regression.

FLOP counts are exact, so the default regression tolerance is zero: any growth is a change
someone should see, even under the budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from .baseline import Baseline
from .config import Settings
from .environment import toolchain_note
from .growth import grew_beyond, module_changes
from .resources import format_bytes
from .units import Kind, format_quantity
from .verdict import NO_BUDGET, OK, OVER, REGRESSION, Verdict

MODULES_SHOWN = 10


def against_baseline(
    verdict: Verdict,
    baseline: Baseline | None,
    settings: Settings,
    environment: Mapping[str, str] | None = None,
) -> Verdict:
    """``environment``: this run's versions; a count that changed while one of them did says
    so, so a toolchain upgrade is not read as a model change."""
    if baseline is None or not verdict.counted:
        return verdict
    notes = list(verdict.notes)
    entry = baseline.get(verdict.nodeid, verdict.name)
    if entry is None:
        notes.append("not in the baseline")
        return replace(verdict, notes=tuple(notes))
    assert verdict.macs is not None and verdict.params is not None
    if entry.ops != verdict.ops:
        notes.append(
            f'not compared with the baseline: it was counted under ops = "{entry.ops}", this '
            f'run under ops = "{verdict.ops}"; rewrite it with --flop-budget-update'
        )
        return replace(verdict, notes=tuple(notes))
    fpm = settings.flops_per_mac
    before = {path: macs * fpm for path, macs in entry.by_module_macs.items()}
    changes = tuple(
        (change.path, int(change.before or 0), int(change.after or 0))
        for change in module_changes(before, verdict.by_module)[:MODULES_SHOWN]
    )
    tolerance = settings.regression_tolerance
    active = verdict.params if verdict.active_params is None else verdict.active_params
    grew = (
        grew_beyond(entry.macs, verdict.macs, tolerance)
        or grew_beyond(entry.params, verdict.params, tolerance)
        or grew_beyond(entry.active, active, tolerance)
    )
    memory_grew = (
        entry.peak_memory is not None
        and verdict.peak_memory is not None
        and grew_beyond(entry.peak_memory, verdict.peak_memory, tolerance)
    )
    status, message = verdict.status, verdict.message
    toolchain = None
    memory_changed = (
        entry.peak_memory is not None
        and verdict.peak_memory is not None
        and verdict.peak_memory != entry.peak_memory
    )
    if (verdict.macs, verdict.params, active) != (
        entry.macs,
        entry.params,
        entry.active,
    ) or memory_changed:
        toolchain = toolchain_note(baseline.environment, environment or {})
        if toolchain is not None and not (grew or memory_grew):
            notes.append(f"changed since the baseline: {toolchain}")
    if grew or memory_grew:
        lines = []
        if grew:
            params_changed = (verdict.params, active) != (entry.params, entry.active)
            if verdict.macs != entry.macs or not params_changed:
                lines.append(_growth(verdict.name, verdict.macs, entry.macs, "macs"))
            if verdict.params != entry.params:
                lines.append(_growth(verdict.name, verdict.params, entry.params, "params"))
            if active != entry.active:
                lines.append(_growth(verdict.name, active, entry.active, "params", "active "))
        if memory_changed:
            assert verdict.peak_memory is not None and entry.peak_memory is not None
            lines.append(_memory_growth(verdict.name, verdict.peak_memory, entry.peak_memory))
        if toolchain is not None:
            lines.append(toolchain)
        lines += _module_lines(changes)
        if status in (OK, NO_BUDGET):
            status = REGRESSION
            message = "\n".join(lines)
        elif status == OVER:
            message = "\n".join([message, *lines])
    return replace(
        verdict,
        status=status,
        message=message,
        baseline_macs=entry.macs,
        baseline_params=entry.params,
        baseline_peak_memory=entry.peak_memory,
        module_changes=changes,
        notes=tuple(notes),
    )


def tighten_note(verdict: Verdict, settings: Settings) -> Verdict:
    """Flag budgets the model uses only a small share of: they no longer guard anything."""
    if verdict.status != OK or verdict.used is None or verdict.used >= settings.tighten_threshold:
        return verdict
    note = f"budget can be tightened (uses {verdict.used:.0%})"
    return replace(verdict, notes=(*verdict.notes, note))


def _growth(name: str, now: int, before: int, kind: str, prefix: str = "") -> str:
    change = f"{(now / before - 1):+.1%}" if before else "new"
    unit: Kind = "macs" if kind == "macs" else "params"
    direction = "down" if now < before else "up"
    return (
        f"{name}: {prefix}{format_quantity(now, unit)}, {direction} from "
        f"{format_quantity(before, unit)} in the baseline ({change})"
    )


def _memory_growth(name: str, now: int, before: int) -> str:
    change = f"{(now / before - 1):+.1%}" if before else "new"
    return (
        f"{name}: {format_bytes(now)} peak memory, "
        f"{'up' if now >= before else 'down'} from {format_bytes(before)} "
        f"in the baseline ({change})"
    )


def _module_lines(changes: tuple[tuple[str, int, int], ...]) -> list[str]:
    if not changes:
        return []
    width = max(len(path) for path, _, _ in changes)
    lines = ["modules that changed (FLOPs before -> after):"]
    for path, before, after in changes:
        delta = after - before
        sign = "+" if delta >= 0 else "-"
        lines.append(
            f"  {path:<{width}}  {format_quantity(before, 'flops'):>12} -> "
            f"{format_quantity(after, 'flops'):>12}  ({sign}{format_quantity(abs(delta), 'flops')})"
        )
    return lines
