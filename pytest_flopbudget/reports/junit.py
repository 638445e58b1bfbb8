"""Each count as JUnit XML properties (``user_properties``), for dashboards that read JUnit."""

from __future__ import annotations

from ..budgets.verdict import Verdict


def properties(verdicts: list[Verdict]) -> list[tuple[str, object]]:
    props: list[tuple[str, object]] = []
    for verdict in verdicts:
        prefix = f"flopbudget[{verdict.name}]"
        if verdict.counted:
            props += [
                (f"{prefix}.flops", verdict.flops),
                (f"{prefix}.macs", verdict.macs),
                (f"{prefix}.params", verdict.params),
            ]
        if verdict.budget_flops is not None:
            props.append((f"{prefix}.budget_flops", int(verdict.budget_flops)))
        if verdict.baseline_macs is not None:
            props.append((f"{prefix}.baseline_macs", verdict.baseline_macs))
        props.append((f"{prefix}.status", verdict.status_label))
    return props
