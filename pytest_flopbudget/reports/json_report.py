"""``--flop-budget-json``: every verdict with its numbers, for machines."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Settings
from ..record import TestRecord
from .files import write_atomically

FORMAT_VERSION = 1


def build(records: Sequence[TestRecord], settings: Settings) -> dict[str, Any]:
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
                }
            )
    return {
        "version": FORMAT_VERSION,
        "convention": {"flops_per_mac": settings.flops_per_mac, "description": settings.convention},
        "results": results,
    }


def write(path: Path, records: Sequence[TestRecord], settings: Settings) -> None:
    text = json.dumps(build(records, settings), indent=2, sort_keys=True) + "\n"
    write_atomically(path, text)
