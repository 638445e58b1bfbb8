"""A Markdown summary for pull requests: ``--flop-budget-markdown`` and ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from ..budgets.config import Settings
from ..budgets.environment import describe
from ..budgets.record import TestRecord
from ..budgets.stale import StaleEntry
from ..budgets.units import format_quantity
from ..budgets.verdict import OK
from . import rows
from .files import write_atomically

HEADING = "## flop budget"
_MARKS = {"ok": "ok", "over": "**over**", "regression": "**regression**", "error": "**error**"}


def _escape(text: str) -> str:
    return text.replace("|", "\\|")


def build(
    records: Sequence[TestRecord],
    settings: Settings,
    *,
    with_baseline: bool = False,
    stale: Sequence[StaleEntry] = (),
    environment: Mapping[str, str] | None = None,
) -> str:
    verdicts = [verdict for record in records for verdict in record.verdicts]
    columns = ["test", "name", "FLOPs", "MACs", "params", *rows.resource_columns(verdicts)]
    columns += ["budget", "used"]
    if with_baseline:
        columns.append("vs baseline")
    columns += [label for label, _, _ in rows.hardware_columns(settings)]
    columns.append("status")
    lines = [HEADING, "", f"Convention: {settings.convention}; {settings.ops_convention}.", ""]
    if verdicts:
        lines.append("| " + " | ".join(columns) + " |")
        lines.append(
            "|"
            + "|".join("---" if c in ("test", "name", "status") else "---:" for c in columns)
            + "|"
        )
        prefixes = rows.family_prefixes(verdicts)
        for verdict in verdicts:
            cells = rows.cells(verdict, settings, prefixes=prefixes)
            cells["test"] = f"`{cells['test']}`"
            cells["status"] = _MARKS.get(verdict.status, verdict.status)
            if verdict.status != OK and not verdict.enforced and verdict.counted:
                cells["status"] += " (warn)"
            lines.append("| " + " | ".join(_escape(cells.get(c, "-")) for c in columns) + " |")
        lines.append("")
        legend = rows.hardware_legend(settings)
        if legend is not None:
            lines += [_escape(legend), ""]
    changed = [v for v in verdicts if v.module_changes and v.baseline_macs != v.macs]
    if changed:
        lines += ["### Changes since the baseline", ""]
        for verdict in changed:
            lines.append(f"- `{verdict.nodeid}` **{_escape(verdict.name)}**:")
            for path, before, after in verdict.module_changes:
                delta = after - before
                sign = "+" if delta >= 0 else "-"
                lines.append(
                    f"  - `{path}`: {format_quantity(before, 'flops')} -> "
                    f"{format_quantity(after, 'flops')} ({sign}{format_quantity(abs(delta), 'flops')})"
                )
        lines.append("")
    extra = rows.notes(verdicts) + [f"stale: {entry.describe()}" for entry in stale]
    if extra:
        lines += ["### Notes", "", *[f"- {_escape(note)}" for note in extra], ""]
    if environment:
        lines += [f"<sub>Counted with {_escape(describe(environment))}.</sub>", ""]
    return "\n".join(lines) + "\n"


def write(path: Path, text: str) -> None:
    write_atomically(path, text)


def looks_like_summary(content: bytes) -> bool:
    """Whether an existing file is one of these summaries, which a new run may replace."""
    return content.removeprefix(b"\xef\xbb\xbf").startswith(HEADING.encode() + b"\n")


def append_step_summary(path: Path, text: str) -> None:
    """GitHub Actions collects every step's summary by appending to one file."""
    with path.open("a", encoding="utf-8") as stream:
        stream.write(text)
