"""One verdict as the cells every human-readable report shows (terminal table, Markdown)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ..budgets.config import Settings

if TYPE_CHECKING:
    from ..budgets.hardware import Device
from ..budgets.resources import format_bytes
from ..budgets.units import (
    PARAM_KINDS,
    PREFIXES,
    Kind,
    Quantity,
    Unit,
    best_prefix_for,
    format_quantity,
    format_written_budget,
)
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


Prefixes = dict[tuple[str, str], str]
"""(model name, ``flops`` / ``macs`` / ``params``) -> the prefix its row family prints in."""


def _family_kind(kind: str) -> str:
    return "params" if kind in PARAM_KINDS else kind


def _written_quantities(verdict: Verdict) -> list[Quantity]:
    return [
        Quantity(float(figures), Unit(kind, prefix), Decimal(figures))  # type: ignore[arg-type]
        for kind, prefix, figures in verdict.budget_written
    ]


def family_prefixes(verdicts: Sequence[Verdict]) -> Prefixes:
    """One prefix per row family and kind, so that its numbers line up and compare.

    A row family is the rows of one model name (a parametrized test's models, the same model
    in several tests). Its counts and budgets of one kind (FLOPs, MACs, parameters with
    active parameters) print in the prefix of the largest of them: ``6.74B params`` against
    a budget of ``6.800B params``, ``10.4 MFLOPs`` beside ``41.8 MFLOPs``.
    """
    largest: dict[tuple[str, str], float] = {}

    def seen(name: str, kind: str, value: float | None) -> None:
        if value is not None and value > 0:
            key = (name, _family_kind(kind))
            largest[key] = max(largest.get(key, 0.0), value)

    for verdict in verdicts:
        seen(verdict.name, "flops", verdict.flops)
        seen(verdict.name, "macs", verdict.macs)
        seen(verdict.name, "params", verdict.params)
        seen(verdict.name, "params", verdict.active_params)
        for quantity in _written_quantities(verdict):
            seen(verdict.name, quantity.unit.kind, quantity.base_value)
    return {key: best_prefix_for(value, key[1]) for key, value in largest.items()}  # type: ignore[arg-type]


def _count(value: int | None, kind: Kind, name: str, prefixes: Prefixes | None) -> str:
    prefix = None if prefixes is None else prefixes.get((name, _family_kind(kind)))
    if value is not None and prefix is not None and 0 < value < PREFIXES[prefix] / 1000:
        prefix = None  # 1000 times below its family: its own prefix, not a run of zeros
    return format_quantity(value, kind, prefix)


def budget_cell(verdict: Verdict, prefixes: Prefixes | None = None) -> str:
    """The budget as written (``2.835 MFLOPs``), in its row family's prefix when given."""
    quantities = _written_quantities(verdict)
    if not quantities or prefixes is None:
        return verdict.budget_label or "-"
    parts = [
        format_written_budget(
            quantity, prefixes.get((verdict.name, _family_kind(quantity.unit.kind)))
        )
        for quantity in quantities
    ]
    if verdict.budget_resource_label:
        parts.append(verdict.budget_resource_label)
    return ", ".join(parts)


def cells(
    verdict: Verdict,
    settings: Settings,
    *,
    short_test: bool = False,
    prefixes: Prefixes | None = None,
) -> dict[str, str]:
    """``prefixes`` (from :func:`family_prefixes`) prints numbers in their row family's unit;
    without it each number takes its own best prefix."""
    test = verdict.nodeid.rsplit("::", 1)[-1] if short_test else verdict.nodeid
    unknown = ", ".join(f"{op} x{n}" for op, n in sorted(verdict.unknown_ops.items()))
    row = {
        "test": test,
        "name": verdict.name,
        "FLOPs": _count(verdict.flops, "flops", verdict.name, prefixes),
        "MACs": _count(verdict.macs, "macs", verdict.name, prefixes),
        "params": params_cell(verdict, prefixes),
        "memory": format_bytes(verdict.peak_memory),
        "time": time_cell(verdict),
        "budget": budget_cell(verdict, prefixes),
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


def params_cell(verdict: Verdict, prefixes: Prefixes | None = None) -> str:
    """``46.7B params (12.9B active)`` where a token uses fewer parameters than the model has."""
    total = _count(verdict.params, "params", verdict.name, prefixes)
    active = verdict.active_params
    if verdict.params is None or active is None or active == verdict.params:
        return total
    shown = _count(active, "params", verdict.name, prefixes).removesuffix(" params")
    return f"{total} ({shown} active)"
