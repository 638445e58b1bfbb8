"""One verdict as the cells every human-readable report shows (terminal table, Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..budgets.config import Settings

if TYPE_CHECKING:
    from ..budgets.hardware import Device
from ..budgets.resources import format_bytes
from ..budgets.units import format_quantity
from ..budgets.verdict import Verdict


def baseline_cell(verdict: Verdict) -> str:
    if verdict.baseline_macs is None or verdict.macs is None:
        if any(note.startswith("not compared with the baseline") for note in verdict.notes):
            return "ops differ"
        return "new" if "not in the baseline" in verdict.notes else "-"
    if verdict.baseline_macs == verdict.macs:
        return "="
    if verdict.baseline_macs == 0:
        return "+inf"
    return f"{verdict.macs / verdict.baseline_macs - 1:+.1%}"


def hardware_columns(settings: Settings) -> list[tuple[str, Device, str]]:
    """(column label, device, dtype) for every ``--flop-budget-hardware`` spec."""
    if not settings.hardware:
        return []
    from ..budgets.hardware import parse_hardware_spec

    columns: list[tuple[str, Device, str]] = []
    for spec in settings.hardware:
        device, dtype = parse_hardware_spec(spec, settings.devices)
        columns.append((f"{device.name} {dtype} >=", device, dtype))
    return columns


def cells(verdict: Verdict, settings: Settings, *, short_test: bool = False) -> dict[str, str]:
    test = verdict.nodeid.rsplit("::", 1)[-1] if short_test else verdict.nodeid
    unknown = ", ".join(f"{op} x{n}" for op, n in sorted(verdict.unknown_ops.items()))
    row = {
        "test": test,
        "name": verdict.name,
        "FLOPs": format_quantity(verdict.flops, "flops"),
        "MACs": format_quantity(verdict.macs, "macs"),
        "params": params_cell(verdict),
        "memory": format_bytes(verdict.peak_memory),
        "time": time_cell(verdict),
        "budget": verdict.budget_label or "-",
        "used": f"{verdict.used:.1%}" if verdict.used is not None else "-",
        "vs baseline": baseline_cell(verdict),
        "tolerance": f"{verdict.tolerance:.1%}" if verdict.budget_label else "-",
        "source": verdict.budget_source or "-",
        "backend": verdict.backend or "-",
        "ops": verdict.ops if verdict.counted else "-",
        "unknown ops": unknown or "-",
        "status": verdict.status_label,
    }
    if settings.hardware and verdict.macs is not None:
        for label, device, dtype in hardware_columns(settings):
            row[label] = hardware_cell(verdict, device, dtype)
    return row


def resource_columns(verdicts: Sequence[Verdict]) -> list[str]:
    """``memory`` where some count measured its peak, ``time`` where some budget priced one."""
    columns = []
    if any(verdict.peak_memory is not None for verdict in verdicts):
        columns.append("memory")
    if any(verdict.seconds is not None for verdict in verdicts):
        columns.append("time")
    return columns


def time_cell(verdict: Verdict) -> str:
    """``1.90 ms, memory-bound``: the lower bound a time budget was checked against."""
    if verdict.seconds is None:
        return "-"
    from ..budgets.hardware import format_seconds

    return f"{format_seconds(verdict.seconds)}, {verdict.seconds_bound}-bound"


MACS_ONLY = "MACs only"


def hardware_cell(verdict: Verdict, device: Device, dtype: str) -> str:
    """``1.90 ms mem`` / ``441 us compute``: the roofline time, labelled by what bounds it.

    A count that measured no bytes (an older record, a backend without them) gets the
    compute-only time, ``260 ns MACs only``: a lower bound still, but a looser one.
    """
    from ..budgets.hardware import format_seconds, ideal_seconds, roofline

    assert verdict.macs is not None
    compute_only = ideal_seconds(verdict.macs, device, dtype)
    if verdict.op_costs is None:
        return f"{format_seconds(compute_only)} {MACS_ONLY}"
    result = roofline(verdict.op_costs, device, dtype)
    if result.seconds < compute_only:  # op costs that miss MACs never lower the bound
        return f"{format_seconds(compute_only)} compute"
    return result.label


def hardware_legend(settings: Settings) -> str | None:
    """What the hardware columns mean, under the table that shows them."""
    columns = hardware_columns(settings)
    if not columns:
        return None
    labels = ", ".join(label for label, _, _ in columns)
    return (
        f"{labels}: lower bound on time, each op at the slower of 2*MACs/peak and "
        "bytes/bandwidth (dense datasheet peaks); mem/compute: which ops dominate; "
        f"{MACS_ONLY}: no bytes measured, compute time only"
    )


def notes(verdicts: Sequence[Verdict]) -> list[str]:
    """Notes worth a line of their own: budgets to tighten, counts missing from the baseline."""
    lines = []
    for verdict in verdicts:
        for note in verdict.notes:
            lines.append(f"{verdict.nodeid} [{verdict.name}]: {note}")
    return lines


def params_cell(verdict: Verdict) -> str:
    """``46.7G params (12.9G active)`` where a token uses fewer parameters than the model has."""
    total = format_quantity(verdict.params, "params")
    active = verdict.active_params
    if verdict.params is None or active is None or active == verdict.params:
        return total
    return f"{total} ({format_quantity(active, 'params').removesuffix(' params')} active)"
