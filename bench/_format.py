"""Formatting shared by the BENCHMARKS.md renderers (``_report.py`` and ``_llm_report.py``)."""

from __future__ import annotations

from typing import Any

GB = 1e9
MIB = 2**20


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def gb(mib: float | None) -> str:
    return "-" if mib is None else f"{mib * MIB / GB:.2f} GB"


def verdict(ok: bool) -> str:
    return "pass" if ok else "**MISSED**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def run_line(meta: dict[str, Any]) -> str:
    quick = " **(quick run: fewer repetitions)**" if meta.get("quick") else ""
    return (
        f"Run {meta['started']} by `{meta['command']}` in {meta['duration_s']:.0f} s; load "
        f"average {meta['load_before']} before, {meta['load_after']} after.{quick}"
    )
