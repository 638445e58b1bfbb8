"""``--flop-budget-json``: every verdict with its numbers, for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..record import TestRecord
from ..stale import StaleEntry
from .files import write_atomically

FORMAT_VERSION = 1


def build(
    records: Sequence[TestRecord], settings: Settings, stale: Sequence[StaleEntry] = ()
) -> dict[str, Any]:
    results = []
    for record in records:
        for verdict in record.verdicts:
            results.append(
                {
                    "nodeid": verdict.nodeid,
                    "name": verdict.name,
                    "flops": verdict.flops,
                    "macs": verdict.macs,
                    "params": verdict.params,
                    "budget": verdict.budget_flops,
                    "budget_params": verdict.budget_params,
                    "budget_label": verdict.budget_label,
                    "budget_source": verdict.budget_source,
                    "tolerance": verdict.tolerance,
                    "used": verdict.used,
                    "status": verdict.status,
                    "enforced": verdict.enforced,
                    "backend": verdict.backend,
                    "message": verdict.message,
                    "unknown_ops": dict(verdict.unknown_ops),
                    "by_module": dict(verdict.by_module),
                    "baseline_macs": verdict.baseline_macs,
                    "baseline_params": verdict.baseline_params,
                    "delta_macs": (
                        verdict.macs - verdict.baseline_macs
                        if verdict.macs is not None and verdict.baseline_macs is not None
                        else None
                    ),
                    "module_changes": [
                        {"module": path, "before": before, "after": after, "delta": after - before}
                        for path, before, after in verdict.module_changes
                    ],
                    "notes": list(verdict.notes),
                }
            )
    return {
        "version": FORMAT_VERSION,
        "convention": {"flops_per_mac": settings.flops_per_mac, "description": settings.convention},
        "results": results,
        "stale": [{"where": entry.where, "key": entry.key} for entry in stale],
    }


def write(
    path: Path, records: Sequence[TestRecord], settings: Settings, stale: Sequence[StaleEntry] = ()
) -> None:
    text = json.dumps(build(records, settings, stale), indent=2, sort_keys=True) + "\n"
    write_atomically(path, text)
