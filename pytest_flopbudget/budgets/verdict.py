"""Budget + counts -> verdicts: one per budgeted subject (a name, or the whole test).

A verdict is plain data (it crosses process borders under xdist), carrying the numbers, the
budget as written, the status and the message a failing test shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..counting.count import Count, OpCost, top_modules
from .budget import Budget
from .config import Settings
from .resources import format_bytes
from .timing import unmeasured
from .units import (
    PREFIXES,
    Quantity,
    format_budget_value,
    format_quantity,
    format_written_budget,
    with_unit,
)

OK = "ok"
OVER = "over"
REGRESSION = "regression"
UNKNOWN_OPS = "unknown ops"
NO_BUDGET = "no budget"
ERROR = "error"
FAILING = (OVER, REGRESSION, UNKNOWN_OPS)


class FlopBudgetWarning(UserWarning):
    """A budget exceeded in warn mode (``on_exceed = "warn"``): shown in pytest's warnings
    summary, so ``-qq``, the final line and JUnit see it; ``-W error::...`` makes it fail."""


@dataclass(frozen=True)
class Verdict:
    nodeid: str
    name: str
    status: str
    flops: int | None = None
    macs: int | None = None
    params: int | None = None
    budget_flops: float | None = None
    budget_params: float | None = None
    budget_label: str | None = None
    budget_source: str | None = None
    budget_key: str | None = None
    budget_file: str | None = None  # the pyproject.toml that holds budget_key
    budget_unit: str | None = None
    tolerance: float = 0.0
    used: float | None = None
    enforced: bool = True
    message: str = ""
    backend: str = ""
    ops: str = "fvcore"
    by_module: Mapping[str, int] = field(default_factory=dict)
    unknown_ops: Mapping[str, int] = field(default_factory=dict)
    baseline_macs: int | None = None
    baseline_params: int | None = None
    module_changes: tuple[tuple[str, int, int], ...] = ()
    notes: tuple[str, ...] = ()
    active_params: int | None = None
    budget_active_params: float | None = None
    peak_memory: int | None = None  # bytes live at the peak; None: not measured
    budget_memory: float | None = None  # bytes
    peak_by_module: Mapping[str, int] = field(default_factory=dict)
    baseline_peak_memory: int | None = None
    seconds: float | None = None  # roofline lower bound on ``device``
    seconds_bound: str | None = None  # "compute" or "memory"
    budget_seconds: float | None = None
    device: str | None = None
    op_costs: tuple[OpCost, ...] | None = None
    """What a roofline prices; None when a count behind the verdict measured no bytes."""
    budget_written: tuple[tuple[str, str, str], ...] = ()
    budget_resource_label: str | None = None
    """The memory and time parts of ``budget_label`` (``16.00 GiB, 2.00 ms on A100:fp16``),
    which a row shows beside the compute and params parts it puts in its family's unit."""
    """(kind, prefix, figures) of each budget part as written (``("flops", "m", "2.835")``),
    so a report can show it in its row family's unit without losing a figure."""

    @property
    def fails_test(self) -> bool:
        return self.status in FAILING and self.enforced

    @property
    def status_label(self) -> str:
        if self.status in FAILING and not self.enforced:
            return f"{self.status} (warn)"
        return self.status

    @property
    def counted(self) -> bool:
        return self.flops is not None and self.macs is not None and self.params is not None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_module"] = dict(self.by_module)
        data["unknown_ops"] = dict(self.unknown_ops)
        data["peak_by_module"] = dict(self.peak_by_module)
        data["module_changes"] = [list(change) for change in self.module_changes]
        data["notes"] = list(self.notes)
        if self.op_costs is not None:
            data["op_costs"] = [cost.to_list() for cost in self.op_costs]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        values = dict(data)
        values["module_changes"] = tuple(
            tuple(change) for change in values.get("module_changes", ())
        )
        values["notes"] = tuple(values.get("notes", ()))
        if values.get("op_costs") is not None:
            values["op_costs"] = tuple(OpCost.from_list(cost) for cost in values["op_costs"])
        values["budget_written"] = tuple(tuple(part) for part in values.get("budget_written", ()))
        return cls(**values)


@dataclass(frozen=True)
class _Subject:
    name: str
    flops: int
    macs: int
    params: int
    backend: str
    by_module: dict[str, int]
    unknown_ops: dict[str, int]
    ops: str = "fvcore"
    active_params: int | None = None
    peak_memory: int | None = None
    peak_by_module: Mapping[str, int] = field(default_factory=dict)
    unmeasured: tuple[str, ...] = ()  # counts without per-op bytes: no time can be known
    op_costs: tuple[OpCost, ...] | None = None


def _peak(subjects: Sequence[Any]) -> tuple[int | None, Mapping[str, int]]:
    """The highest peak of passes run one after another; None if any pass was not measured."""
    if not subjects or any(s.peak_memory is None for s in subjects):
        return None, {}
    highest = max(subjects, key=lambda s: s.peak_memory)
    return highest.peak_memory, dict(highest.peak_by_module)


def _merged_costs(groups: Iterable[tuple[OpCost, ...] | None]) -> tuple[OpCost, ...] | None:
    """Op costs of several counts as one: None (unmeasured) if any of them is."""
    calls: dict[tuple[int, int], int] = {}
    for group in groups:
        if group is None:
            return None
        for cost in group:
            calls[(cost.macs, cost.bytes)] = calls.get((cost.macs, cost.bytes), 0) + cost.calls
    return tuple(OpCost(macs, moved, n) for (macs, moved), n in calls.items())


def _count_costs(count: Count) -> tuple[OpCost, ...] | None:
    """A count that measured no bytes (``bytes_moved`` None, or no op costs for work it did)
    has nothing a roofline can price."""
    if count.bytes_moved is None or (not count.op_costs and (count.macs or count.bytes_moved)):
        return None
    return count.op_costs


def _added(tallies: Iterable[Mapping[str, int]]) -> dict[str, int]:
    """Key-wise sums: per-module FLOPs or per-op occurrences of several counts."""
    total: dict[str, int] = {}
    for tally in tallies:
        for key, value in tally.items():
            total[key] = total.get(key, 0) + value
    return total


def _combine(
    name: str, counts: Sequence[Count], params: int, active_params: int | None = None
) -> _Subject:
    by_module = _added(count.by_module for count in counts)
    unknown = _added(count.unknown_ops for count in counts)
    # an abstract count says so where the backend is shown (table -v, JSON, Markdown)
    backends = sorted({f"{c.backend} (abstract)" if c.abstract else c.backend for c in counts})
    peak_memory, peak_by_module = _peak(counts)
    return _Subject(
        name=name,
        flops=sum(count.flops for count in counts),
        macs=sum(count.macs for count in counts),
        params=params,
        backend="+".join(backends),
        by_module=by_module,
        unknown_ops=unknown,
        ops="+".join(sorted({count.ops for count in counts})),
        active_params=active_params,
        peak_memory=peak_memory,
        peak_by_module=peak_by_module,
        unmeasured=tuple(unmeasured(counts)),
        op_costs=_merged_costs(_count_costs(count) for count in counts),
    )


def group_by_name(counts: Sequence[Count]) -> dict[str, _Subject]:
    """Counts recorded under one name add up their FLOPs; their params are one model's."""
    grouped: dict[str, list[Count]] = {}
    for count in counts:
        grouped.setdefault(count.name, []).append(count)
    return {
        name: _combine(
            name,
            group,
            max(count.params for count in group),
            max(count.active for count in group),
        )
        for name, group in grouped.items()
    }


def judge(
    nodeid: str,
    counts: Sequence[Count],
    marker_budgets: Sequence[Budget],
    settings: Settings,
    *,
    test_failed: bool = False,
    unknown_ops: str = "warn",
) -> list[Verdict]:
    """Every subject of one test against its budget (marker, then node id, then name).

    ``unknown_ops``: "warn" lists ops no formula covers, "fail" also fails the test on
    them, "ignore" drops them.
    """
    if unknown_ops == "ignore":
        counts = [replace(count, unknown_ops={}) for count in counts]
    subjects = group_by_name(counts)
    named: dict[str, Budget] = {}
    for marker_budget in marker_budgets:  # closest marker first
        if marker_budget.name is not None:
            named.setdefault(marker_budget.name, marker_budget)
    unnamed = [b for b in marker_budgets if b.name is None]
    test_budget = unnamed[0] if unnamed else settings.budgets_by_nodeid.get(nodeid)

    verdicts: list[Verdict] = []
    for name, subject in subjects.items():
        budget: Budget | None = named.get(name)
        if budget is None and test_budget is None:
            budget = settings.budgets_by_name.get(name)
        if budget is not None:
            verdicts.append(_check(nodeid, subject, budget, settings))
        elif test_budget is None:
            verdicts.append(_unbudgeted(nodeid, subject, settings))
    if test_budget is not None and subjects:
        included = {count.name for count in counts if count.counted_in in subjects}
        everything = [s for s in subjects.values() if s.name not in included] or list(
            subjects.values()
        )
        label = " + ".join(s.name for s in everything)
        peak_memory, peak_by_module = _peak(everything)
        total = _Subject(
            name=label,
            flops=sum(s.flops for s in everything),
            macs=sum(s.macs for s in everything),
            params=sum(s.params for s in everything),
            active_params=sum(_active(s) for s in everything),
            backend="+".join(sorted({s.backend for s in everything})),
            by_module=_sum_modules(everything),
            unknown_ops=_added(s.unknown_ops for s in everything),
            ops="+".join(sorted({part for s in everything for part in s.ops.split("+")})),
            peak_memory=peak_memory,
            peak_by_module=peak_by_module,
            unmeasured=tuple(sorted({name for s in everything for name in s.unmeasured})),
            op_costs=_merged_costs(s.op_costs for s in everything),
        )
        verdicts.append(_check(nodeid, total, test_budget, settings))
    verdicts = [_ops_note(verdict, settings) for verdict in verdicts]
    if unknown_ops == "fail":
        verdicts = [_fail_on_unknown_ops(verdict, settings) for verdict in verdicts]
    if not test_failed:
        verdicts.extend(_missing(nodeid, subjects, named, test_budget))
    return verdicts


def _ops_note(verdict: Verdict, settings: Settings) -> Verdict:
    """A count made under another ``ops`` convention than the header's says so in the notes."""
    if not verdict.counted or verdict.ops == settings.ops:
        return verdict
    note = f'counted under ops = "{verdict.ops}", not the run\'s ops = "{settings.ops}"'
    return replace(verdict, notes=(*verdict.notes, note))


def _fail_on_unknown_ops(verdict: Verdict, settings: Settings) -> Verdict:
    if not verdict.unknown_ops or verdict.status in (OVER, ERROR):
        return verdict
    listed = ", ".join(f"{op} x{times}" for op, times in sorted(verdict.unknown_ops.items()))
    message = (
        f"{verdict.name}: not counted (unknown ops): {listed}\n"
        "the count may be too low; register a formula with pytest_flopbudget.register_formula(), "
        'or set unknown_ops = "warn"'
    )
    return replace(verdict, status=UNKNOWN_OPS, message=message, enforced=settings.enforcing)


def _sum_modules(subjects: Sequence[_Subject]) -> dict[str, int]:
    if len(subjects) == 1:
        return dict(subjects[0].by_module)
    # several models: prefix each model's paths with its name so they stay apart
    return {f"{s.name}.{path}": value for s in subjects for path, value in s.by_module.items()} | {
        s.name: s.flops for s in subjects
    }


def _missing(
    nodeid: str,
    subjects: Mapping[str, _Subject],
    named: Mapping[str, Budget],
    test_budget: Budget | None,
) -> list[Verdict]:
    errors: list[Verdict] = []
    recorded = ", ".join(repr(name) for name in subjects) or "nothing"
    for name, budget in named.items():
        if name not in subjects:
            errors.append(
                Verdict(
                    nodeid=nodeid,
                    name=name,
                    status=ERROR,
                    budget_source=budget.source,
                    message=f"{budget.origin}: budget for {name!r}, but no count was recorded "
                    f"under that name (recorded: {recorded}); call flops(model, inputs, name={name!r})",
                )
            )
    if test_budget is not None and not subjects:
        errors.append(
            Verdict(
                nodeid=nodeid,
                name="-",
                status=ERROR,
                budget_source=test_budget.source,
                message=f"{test_budget.origin}: the test has a budget but counted no model; "
                "call the flops fixture: flops(model, inputs)",
            )
        )
    return errors


def _unbudgeted(nodeid: str, subject: _Subject, settings: Settings) -> Verdict:
    return Verdict(
        nodeid=nodeid,
        name=subject.name,
        status=NO_BUDGET,
        enforced=settings.on_exceed == "fail" and settings.enforcing,
        flops=subject.flops,
        macs=subject.macs,
        params=subject.params,
        active_params=_active(subject),
        backend=subject.backend,
        ops=subject.ops,
        by_module=subject.by_module,
        unknown_ops=subject.unknown_ops,
        peak_memory=subject.peak_memory,
        peak_by_module=subject.peak_by_module,
        op_costs=subject.op_costs,
    )


def _active(subject: _Subject) -> int:
    return subject.params if subject.active_params is None else subject.active_params


def _check(nodeid: str, subject: _Subject, budget: Budget, settings: Settings) -> Verdict:
    tolerance = budget.tolerance if budget.tolerance is not None else settings.tolerance
    fpm = settings.flops_per_mac
    problems: list[str] = []
    limit_flops: float | None = None
    used: float | None = None
    labels: list[str] = []
    unit_key: str | None = None
    if budget.compute is not None:
        unit = budget.compute.unit
        unit_key = unit.key
        limit = budget.compute.base_value
        measured = subject.macs if unit.kind == "macs" else subject.flops
        limit_flops = limit * fpm if unit.kind == "macs" else limit
        used = subject.flops / limit_flops
        labels.append(format_written_budget(budget.compute))
        if measured > limit * (1 + tolerance):
            problems.append(_over(subject.name, measured, budget.compute, tolerance))
    limit_params: float | None = None
    if budget.params is not None:
        unit = budget.params.unit
        limit_params = budget.params.base_value
        labels.append(format_written_budget(budget.params))
        if used is None:
            used = subject.params / limit_params
        if subject.params > limit_params * (1 + tolerance):
            problems.append(_over(subject.name, subject.params, budget.params, tolerance))
    limit_active: float | None = None
    if budget.active_params is not None:
        unit = budget.active_params.unit
        limit_active = budget.active_params.base_value
        labels.append(format_written_budget(budget.active_params))
        if used is None:
            used = _active(subject) / limit_active
        if _active(subject) > limit_active * (1 + tolerance):
            problems.append(_over(subject.name, _active(subject), budget.active_params, tolerance))
    compute_over = bool(problems)  # the FLOPs by module say where, for these only
    resource_labels: list[str] = []
    errors: list[str] = []
    limit_memory: float | None = None
    if budget.memory is not None:
        unit = budget.memory.unit
        limit_memory = budget.memory.base_value
        labels.append(format_written_budget(budget.memory))
        resource_labels.append(labels[-1])
        if subject.peak_memory is None:
            errors.append(
                f"{budget.origin}: memory budget {labels[-1]} for {subject.name!r}, but its "
                "count has no peak memory (this backend or mode did not measure it); "
                "a memory budget is never passed unchecked"
            )
        else:
            if used is None:
                used = subject.peak_memory / limit_memory
            if subject.peak_memory > limit_memory * (1 + tolerance):
                problems.append(
                    _over_resource(subject.name, subject.peak_memory, budget.memory, tolerance)
                )
                problems += _peak_details(subject)
    timing = None
    limit_seconds: float | None = None
    if budget.time is not None:
        timing, problem, error = _check_time(subject, budget, tolerance, settings)
        limit_seconds = budget.time.base_value
        labels.append(f"{format_written_budget(budget.time)} on {budget.device}")
        resource_labels.append(labels[-1])
        if error is not None:
            errors.append(error)
        elif problem is not None:
            problems.append(problem)
        if timing is not None and used is None:
            used = timing.seconds / limit_seconds
    status = OVER if problems else OK
    message = ""
    if problems:
        message = "\n".join([*problems, *_details(subject, flops_modules=compute_over)])
    if errors:  # never hidden by the rest of the budget passing, nor hiding its excess
        status = ERROR
        message = "\n".join([*errors, *([message] if message else [])])
    return Verdict(
        nodeid=nodeid,
        name=subject.name,
        status=status,
        flops=subject.flops,
        macs=subject.macs,
        params=subject.params,
        budget_flops=limit_flops,
        budget_params=limit_params,
        active_params=_active(subject),
        budget_active_params=limit_active,
        budget_label=", ".join(labels),
        budget_written=_written_parts(budget),
        budget_resource_label=", ".join(resource_labels) or None,
        budget_source=budget.source,
        budget_key=budget.pyproject_key,
        budget_file=budget.pyproject_file,
        budget_unit=unit_key,
        tolerance=tolerance,
        used=used,
        enforced=(budget.on_exceed or settings.on_exceed) == "fail" and settings.enforcing,
        message=message,
        backend=subject.backend,
        ops=subject.ops,
        by_module=subject.by_module,
        unknown_ops=subject.unknown_ops,
        peak_memory=subject.peak_memory,
        budget_memory=limit_memory,
        peak_by_module=subject.peak_by_module,
        seconds=timing.seconds if timing is not None else None,
        seconds_bound=timing.bound if timing is not None else None,
        budget_seconds=limit_seconds,
        device=budget.device,
        op_costs=subject.op_costs,
    )


def _check_time(
    subject: _Subject, budget: Budget, tolerance: float, settings: Settings
) -> tuple[Any, str | None, str | None]:
    """(timing, excess message, error message) of a time budget."""
    from .hardware import HardwareError
    from .timing import lower_bound

    assert budget.time is not None and budget.device is not None
    if subject.unmeasured or subject.op_costs is None:
        names = ", ".join(repr(name) for name in subject.unmeasured)
        return (
            None,
            None,
            f"{budget.origin}: time budget on {budget.device} for {subject.name!r}, but the "
            f"count of {names} has no bytes per op (this backend or mode did not measure them), "
            "so no lower bound can be computed; a time budget is never passed unchecked",
        )
    try:
        timing = lower_bound(subject.op_costs, budget.device, settings.devices)
    except HardwareError as error:
        return None, None, f"{budget.origin}: time budget on {budget.device}: {error}"
    limit = budget.time.base_value
    if timing.seconds <= limit * (1 + tolerance):
        return timing, None, None
    excess = (timing.seconds / limit - 1) * 100
    shown = f"+{excess:.1f}%" if excess >= 0.05 else "+<0.1%"
    slack = f", tolerance {tolerance:.1%}" if tolerance else ""
    allowed = format_written_budget(budget.time)
    return (
        timing,
        f"{subject.name}: {timing.describe()} exceeds budget {allowed} ({shown}{slack})",
        None,
    )


def _peak_details(subject: _Subject, limit: int = 3) -> list[str]:
    """The modules holding the peak, heaviest first, so an excess says where to look."""
    held_by = {path: held for path, held in subject.peak_by_module.items() if path}
    ranked = (
        top_modules(held_by, limit)
        or sorted(held_by.items(), key=lambda item: (-item[1], item[0]))[:limit]
    )
    if not ranked or not subject.peak_memory:
        return []
    width = max(len(path) for path, _ in ranked)
    lines = ["peak memory held by:"]
    for path, held in ranked:
        share = held / subject.peak_memory
        lines.append(f"  {path:<{width}}  {format_bytes(held):>12}  {share:6.1%}")
    return lines


def _written_parts(budget: Budget) -> tuple[tuple[str, str, str], ...]:
    parts = []
    for quantity in (budget.compute, budget.params, budget.active_params):
        if quantity is not None and quantity.written is not None:
            parts.append((quantity.unit.kind, quantity.unit.prefix, f"{quantity.written:f}"))
    return tuple(parts)


def _over(name: str, measured: float, budget: Quantity, tolerance: float) -> str:
    """``10.45 MFLOPs exceeds budget 10 MFLOPs (+4.5%)``: the budget as written, the count
    with at least its decimals (two or more) in its unit."""
    limit, kind, prefix = budget.base_value, budget.unit.kind, budget.unit.prefix
    excess = (measured / limit - 1) * 100
    shown = f"+{excess:.1f}%" if excess >= 0.05 else "+<0.1%"
    slack = f", tolerance {tolerance:.1%}" if tolerance else ""
    decimals = 2
    exponent = budget.written.as_tuple().exponent if budget.written is not None else 0
    if isinstance(exponent, int) and -exponent > decimals:
        decimals = -exponent
    got = _in_unit(measured, kind, prefix, decimals)
    allowed = format_written_budget(budget)
    if not prefix or _in_unit(limit, kind, prefix, decimals) == got:
        # too close to tell apart in the budget's unit: show exact numbers
        got, allowed = format_budget_value(measured, kind, ""), format_budget_value(limit, kind, "")
    return f"{name}: {got} exceeds budget {allowed} ({shown}{slack})"


def _in_unit(value: float, kind: Any, prefix: str, decimals: int) -> str:
    return with_unit(f"{value / PREFIXES[prefix]:.{decimals}f}", kind, prefix)


def _over_resource(name: str, measured: float, budget: Quantity, tolerance: float) -> str:
    """A memory excess: the count in the budget's unit, the budget as written (exact bytes
    where the unit cannot tell them apart)."""
    limit, kind, prefix = budget.base_value, budget.unit.kind, budget.unit.prefix
    excess = (measured / limit - 1) * 100
    shown = f"+{excess:.1f}%" if excess >= 0.05 else "+<0.1%"
    slack = f", tolerance {tolerance:.1%}" if tolerance else ""
    got = format_budget_value(measured, kind, prefix)
    allowed = format_written_budget(budget)
    if got == format_budget_value(limit, kind, prefix):  # too close to tell apart: exact bytes
        base = "b" if kind == "memory" else ""
        got, allowed = (
            format_budget_value(measured, kind, base),
            format_budget_value(limit, kind, base),
        )
    if kind == "memory":
        got += " peak memory"
    return f"{name}: {got} exceeds budget {allowed} ({shown}{slack})"


def _details(subject: _Subject, *, flops_modules: bool = True) -> list[str]:
    lines: list[str] = []
    ranked = top_modules(subject.by_module) if flops_modules else []
    if ranked:
        lines.append("top modules by FLOPs:")
        width = max(len(path) for path, _ in ranked)
        for path, flops in ranked:
            share = flops / subject.flops if subject.flops else 0.0
            lines.append(f"  {path:<{width}}  {format_quantity(flops, 'flops'):>12}  {share:6.1%}")
    if subject.unknown_ops:
        listed = ", ".join(f"{op} x{times}" for op, times in sorted(subject.unknown_ops.items()))
        lines.append(f"not counted (unknown ops): {listed}")
    return lines
