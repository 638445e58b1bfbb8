"""Each count as JUnit XML properties (``user_properties``), for dashboards that read JUnit."""

from __future__ import annotations

import math
import re

from ..budgets.verdict import Verdict

# What XML 1.0 cannot hold (and DEL): pytest escapes property values, but not their names.
_NOT_XML = re.compile(
    "[^\u0009\u000a\u000d\u0020-\u007e\u0080-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def xml_safe(text: str) -> str:
    """``text`` with the characters XML forbids shown as ``#x1B``, as pytest shows values."""
    return _NOT_XML.sub(lambda match: f"#x{ord(match.group()):02X}", text)


def properties(verdicts: list[Verdict]) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = []
    for verdict in verdicts:
        prefix = f"flopbudget[{xml_safe(verdict.name)}]"
        if verdict.counted:
            props += [
                (f"{prefix}.flops", verdict.flops),
                (f"{prefix}.macs", verdict.macs),
                (f"{prefix}.params", verdict.params),
            ]
        if verdict.budget_flops is not None and math.isfinite(verdict.budget_flops):
            props.append((f"{prefix}.budget_flops", int(verdict.budget_flops)))
        if verdict.peak_memory is not None:
            props.append((f"{prefix}.peak_memory", verdict.peak_memory))
        if verdict.budget_memory is not None:
            props.append((f"{prefix}.budget_memory", int(verdict.budget_memory)))
        if verdict.seconds is not None:
            props.append((f"{prefix}.seconds", verdict.seconds))
            props.append((f"{prefix}.bound", f"{verdict.seconds_bound} on {verdict.device}"))
        if verdict.budget_seconds is not None:
            props.append((f"{prefix}.budget_seconds", verdict.budget_seconds))
        if verdict.baseline_macs is not None:
            props.append((f"{prefix}.baseline_macs", verdict.baseline_macs))
        props.append((f"{prefix}.status", verdict.status_label))
    return props
