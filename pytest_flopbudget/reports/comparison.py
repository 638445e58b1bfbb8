"""A comparison (``budgets.comparison``) for people and machines: text table or dict."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from ..budgets.comparison import Comparison, ModelChange, Report
from ..budgets.resources import format_bytes
from ..budgets.units import PREFIXES, best_prefix_for, format_quantity


def to_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison for machines (``flopbudget compare --json``)."""
    return {
        "old": _report_dict(comparison.old),
        "new": _report_dict(comparison.new),
        "unit": "macs",
        "tolerance": comparison.tolerance,
        "regressed": bool(comparison.regressions),
        "environment_changes": comparison.environment_changes,
        "models": [_model_dict(model) for model in comparison.models],
    }


def _report_dict(report: Report) -> dict[str, Any]:
    return {
        "path": report.source,
        "flops_per_mac": report.flops_per_mac,
        "models": len(report.models),
        "skipped": report.skipped,
        "environment": dict(report.environment),
    }


def _model_dict(model: ModelChange) -> dict[str, Any]:
    return {
        "nodeid": model.nodeid,
        "name": model.name,
        "status": model.status,
        "regressed": model.regressed,
        "macs": {
            "old": model.old_macs,
            "new": model.new_macs,
            "delta": model.macs_delta,
            "relative": model.macs_relative,
        },
        "params": {
            "old": model.old_params,
            "new": model.new_params,
            "delta": model.params_delta,
            "relative": model.params_relative,
        },
        "active_params": {
            "old": model.old_active_params,
            "new": model.new_active_params,
            "delta": _delta(model.old_active_params, model.new_active_params),
        },
        "peak_memory": {
            "old": model.old_peak_memory,
            "new": model.new_peak_memory,
            "delta": model.peak_memory_delta,
            "relative": model.peak_memory_relative,
        },
        "modules": [
            {"path": m.path, "before": m.before, "after": m.after, "delta": m.delta}
            for m in model.modules
        ],
        "more_modules": model.more_modules,
    }


def render_text(comparison: Comparison) -> str:
    """The comparison for people: a table of changed models, then where each one changed."""
    lines = [f"flopbudget compare: {comparison.old.source} -> {comparison.new.source} (in MACs)"]
    if comparison.conventions_differ:
        lines.append(_convention_note(comparison))
    if comparison.environment_changes:
        changed = ", ".join(comparison.environment_changes)
        lines.append(
            f"note: the reports come from different toolchains ({changed}); "
            "a count that changed may have changed with it, not with the model"
        )
    differences = comparison.differences
    if differences:
        lines += ["", *_table(differences, _columns(differences))]
    for model in differences:
        if model.modules:
            lines += ["", *_module_lines(model)]
    lines += ["", _summary(comparison)]
    return "\n".join(lines) + "\n"


def render_markdown(comparison: Comparison) -> str:
    """The comparison for a pull-request comment: the table, then each model's module changes
    folded under a ``<details>`` so a long list does not bury the verdict."""
    old, new = comparison.old.source, comparison.new.source
    lines = [f"### flopbudget compare: `{_md(old)}` -> `{_md(new)}` (in MACs)", ""]
    if comparison.conventions_differ:
        lines += [_convention_note(comparison), ""]
    differences = comparison.differences
    if differences:
        columns = _columns(differences)
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "|".join("---:" if c in _RIGHT else "---" for c in columns) + "|")
        for model in differences:
            row = _row(model)
            if model.regressed:
                row["status"] = "**REGRESSED**"
            lines.append("| " + " | ".join(_md(row[c]) for c in columns) + " |")
        lines.append("")
    for model in differences:
        if not model.modules:
            continue
        count = len(model.modules) + model.more_modules
        lines += [
            "<details>",
            f"<summary>{_html(model.nodeid)} [{_html(model.name)}]: "
            f"{count} module{'s' if count != 1 else ''} changed</summary>",
            "",
            "| module | before | after | delta |",
            "|---|---:|---:|---:|",
        ]
        for change in model.modules:
            lines.append(
                f"| `{_md(change.path or '(root)')}` | {format_quantity(change.before, 'macs')} | "
                f"{format_quantity(change.after, 'macs')} | {_signed(change.delta, 'macs')} |"
            )
        if model.more_modules:
            lines.append(f"| ... and {model.more_modules} more | | | |")
        lines += ["", "</details>", ""]
    lines.append(_summary(comparison).replace("\n", "  \n"))
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Table cells: a pipe would end the cell, a backtick the code span."""
    return text.replace("|", "\\|").replace("`", "'")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _convention_note(comparison: Comparison) -> str:
    old, new = comparison.old, comparison.new
    return (
        f"note: the reports use different conventions ({old.source}: flops_per_mac = "
        f"{old.flops_per_mac}, {new.source}: flops_per_mac = {new.flops_per_mac}); "
        "MACs are the same under both, so they are compared"
    )


_TABLE_COLUMNS = (
    "test",
    "name",
    "MACs old -> new",
    "delta",
    "delta %",
    "params old -> new",
    "status",
)
_RIGHT = {"delta", "delta %"}
_MEMORY_COLUMN = "peak memory old -> new"


def _columns(models: Iterable[ModelChange]) -> tuple[str, ...]:
    """The table's columns: peak memory beside params where either report measured it."""
    if not any(m.old_peak_memory is not None or m.new_peak_memory is not None for m in models):
        return _TABLE_COLUMNS
    return (*_TABLE_COLUMNS[:-1], _MEMORY_COLUMN, _TABLE_COLUMNS[-1])


def _table(models: Iterable[ModelChange], columns: tuple[str, ...] = _TABLE_COLUMNS) -> list[str]:
    rows = [_row(model) for model in models]
    header = {column: column for column in columns}
    return aligned([header, *rows], columns, _RIGHT)


def _row(model: ModelChange) -> dict[str, str]:
    return {
        "test": model.nodeid,
        "name": model.name,
        "MACs old -> new": _old_to_new(model.old_macs, model.new_macs, "macs"),
        "delta": _signed(model.macs_delta, "macs"),
        "delta %": _percent(model.macs_relative),
        "params old -> new": _params_cell(model),
        _MEMORY_COLUMN: _memory_old_to_new(model),
        "status": _status_label(model),
    }


def _params_cell(model: ModelChange) -> str:
    """``46.7B -> 46.7B params (active 12.9B -> 18.5B)`` where a side has fewer active."""
    cell = _old_to_new(model.old_params, model.new_params, "params")
    sides = (
        (model.old_params, model.old_active_params),
        (model.new_params, model.new_active_params),
    )
    if all(active is None or active == params for params, active in sides):
        return cell
    old, new = (format_quantity(a, "params").removesuffix(" params") for _, a in sides)
    return f"{cell} (active {old} -> {new})"


def _delta(old: int | None, new: int | None) -> int | None:
    return None if old is None or new is None else new - old


def _memory_old_to_new(model: ModelChange) -> str:
    """``4.04 MiB -> 4.54 MiB (+12.4%)``; ``-`` on a side that did not measure it."""
    old, new = model.old_peak_memory, model.new_peak_memory
    text = f"{format_bytes(old)} -> {format_bytes(new)}"
    relative = model.peak_memory_relative
    return text if relative is None or relative == 0 else f"{text} ({_percent(relative)})"


def _status_label(model: ModelChange) -> str:
    if model.status == "regressed":
        return "REGRESSED"
    if model.status == "grew":
        return "grew (within tolerance)"
    return model.status


def _module_lines(model: ModelChange) -> list[str]:
    title = f"{model.nodeid} [{model.name}]: modules whose MACs changed (deepest, by |delta|)"
    columns = ("module", "before", "after", "delta")
    rows = [{column: column for column in columns}] + [
        {
            "module": change.path or "(root)",
            "before": format_quantity(change.before, "macs"),
            "after": format_quantity(change.after, "macs"),
            "delta": _signed(change.delta, "macs"),
        }
        for change in model.modules
    ]
    lines = [
        title,
        *("  " + line for line in aligned(rows, columns, {"before", "after", "delta"})),
    ]
    if model.more_modules:
        lines.append(f"  ... and {model.more_modules} more")
    return lines


def _summary(comparison: Comparison) -> str:
    counts: dict[str, int] = {}
    for model in comparison.models:
        counts[model.status] = counts.get(model.status, 0) + 1
    order = ("regressed", "grew", "shrank", "changed", "added", "removed", "unchanged")
    tally = ", ".join(f"{counts[status]} {status}" for status in order if status in counts)
    total = len(comparison.models)
    line = f"{total} model{'s' if total != 1 else ''} compared" + (f": {tally}" if tally else "")
    skipped = [f"{r.skipped} in {r.source}" for r in (comparison.old, comparison.new) if r.skipped]
    if skipped:
        line += f" (rows without counts skipped: {', '.join(skipped)})"
    if comparison.regressions:
        line += f"\nregression: MACs or params grew by more than {comparison.tolerance:.1%}"
        if any(m.old_peak_memory is not None for m in comparison.regressions):
            line += " (or peak memory, where both reports measured it)"
    return line


def aligned(rows: list[dict[str, str]], columns: Iterable[str], right: set[str]) -> list[str]:
    """Rows of cells as text columns, ``right`` ones right-aligned (also ``flopbudget merge``'s)."""
    columns = tuple(columns)
    widths = {c: max(len(row[c]) for row in rows) for c in columns}
    return [
        "  ".join(
            row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in columns
        ).rstrip()
        for row in rows
    ]


def _old_to_new(old: float | None, new: float | None, kind: Literal["macs", "params"]) -> str:
    """Both sides in one prefix, that of the larger (``999 KMACs -> 1.00 MMACs`` reads as a
    thousandfold jump; ``0.999 MMACs -> 1.00 MMACs`` does not)."""
    values = [abs(value) for value in (old, new) if value]
    if not values:
        return f"{format_quantity(old, kind)} -> {format_quantity(new, kind)}"
    prefix = best_prefix_for(max(values), kind)
    shown = [
        format_quantity(
            value, kind, None if not value or abs(value) < PREFIXES[prefix] / 1000 else prefix
        )
        for value in (old, new)
    ]
    return f"{shown[0]} -> {shown[1]}"


def _signed(value: float | None, kind: Literal["macs", "params"]) -> str:
    if value is None:
        return "-"
    text = format_quantity(value, kind)
    return f"+{text}" if value > 0 else text


def _percent(relative: float | None) -> str:
    if relative is None:
        return "-"
    percent = relative * 100
    return f"{percent:+.2f}%" if abs(percent) < 10 else f"{percent:+.1f}%"
