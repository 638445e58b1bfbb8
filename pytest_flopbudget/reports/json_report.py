"""``--flop-budget-json``: every verdict with its numbers, for machines; and reading it back.

The writer and the reader live together so that what one writes the other accepts
(``flopbudget compare`` reads these files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from json import JSONDecodeError
from pathlib import Path
from typing import Any

from ..budgets import strict_json
from ..budgets.comparison import Key, Model, Report
from ..budgets.config import Settings
from ..budgets.environment import read as read_environment
from ..budgets.record import TestRecord
from ..budgets.stale import StaleEntry
from ..budgets.units import MAX_QUANTITY, UnitError, as_number, check_count, shown
from ..counting.op_conventions import DEFAULT_OPS, OPS_CONVENTIONS
from .files import write_atomically

FORMAT_VERSION = 1
SUPPORTED_VERSION = FORMAT_VERSION


class ReportError(ValueError):
    """A report that cannot be read; the message names the file and the problem."""


def build(
    records: Sequence[TestRecord],
    settings: Settings,
    stale: Sequence[StaleEntry] = (),
    environment: Mapping[str, str] | None = None,
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
                    "active_params": verdict.active_params,
                    "budget": verdict.budget_flops,
                    "budget_params": verdict.budget_params,
                    "budget_active_params": verdict.budget_active_params,
                    "peak_memory": verdict.peak_memory,
                    "budget_memory": verdict.budget_memory,
                    "peak_by_module": dict(verdict.peak_by_module),
                    "baseline_peak_memory": verdict.baseline_peak_memory,
                    "seconds": verdict.seconds,
                    "seconds_bound": verdict.seconds_bound,
                    "budget_seconds": verdict.budget_seconds,
                    "device": verdict.device,
                    "budget_label": verdict.budget_label,
                    "budget_source": verdict.budget_source,
                    "tolerance": verdict.tolerance,
                    "used": verdict.used,
                    "status": verdict.status,
                    "enforced": verdict.enforced,
                    "backend": verdict.backend,
                    "ops": verdict.ops,
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
        "convention": {
            "flops_per_mac": settings.flops_per_mac,
            "description": settings.convention,
            "ops": settings.ops,
            "ops_description": settings.ops_convention,
        },
        "environment": dict(environment or {}),
        "results": results,
        "stale": [{"where": entry.where, "key": entry.key} for entry in stale],
    }


def write(
    path: Path,
    records: Sequence[TestRecord],
    settings: Settings,
    stale: Sequence[StaleEntry] = (),
    environment: Mapping[str, str] | None = None,
) -> None:
    try:
        document = build(records, settings, stale, environment)
        text = strict_json.dumps(document, indent=2, sort_keys=True)
    except ValueError as exc:  # NaN or an infinity: no reader would accept the file
        raise ReportError(f"{path}: not written: {exc}") from None
    write_atomically(path, text + "\n")


def looks_like_report(content: bytes) -> bool:
    """Whether an existing file is one of these reports, which a new run may replace."""
    try:
        data = strict_json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and {"version", "convention", "results"} <= data.keys()


def read(path: Path) -> Report:
    """Read and check one report file; every failure is a :class:`ReportError` naming the file."""
    return parse(load(path), str(path))


def load(path: Path) -> Any:
    """The decoded JSON of a report file, unchecked (``parse`` checks it); errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a directory, not a JSON report") from None
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = strict_json.loads(text)
    except JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # NaN, Infinity, too deep, an integer too long
        raise ReportError(f"{path}: not valid JSON: {exc}") from None
    return data


def parse(data: Any, source: str) -> Report:
    """Check the structure of a decoded report; ``source`` names it in error messages."""
    try:
        return _parse(data, source)
    except ReportError as exc:
        raise ReportError(f"{source}: {exc}") from None


def _parse(data: Any, source: str) -> Report:
    if not isinstance(data, dict):
        raise ReportError(f"expected a JSON object, got {_json_type(data)}")
    if "version" not in data:
        raise ReportError("no 'version': not a report written by --flop-budget-json")
    version = data["version"]
    if version != SUPPORTED_VERSION or isinstance(version, bool):
        raise ReportError(f"unsupported report version {shown(version)} (supported: 1)")
    flops_per_mac = _convention(data.get("convention"))
    ops = _ops(data["convention"].get("ops", DEFAULT_OPS), "convention.ops")
    results = data.get("results")
    if not isinstance(results, list):
        raise ReportError(f"'results' must be a list, got {_json_type(results)}")
    models: dict[Key, Model] = {}
    skipped = 0
    for index, row in enumerate(results):
        model = _model(row, f"results[{index}]", flops_per_mac, ops)
        if model is None:
            skipped += 1
        elif (model.nodeid, model.name) in models:
            raise ReportError(f"results[{index}]: {model.nodeid} [{model.name}] appears twice")
        else:
            models[(model.nodeid, model.name)] = model
    return Report(
        source=source,
        flops_per_mac=flops_per_mac,
        models=models,
        skipped=skipped,
        ops=ops,
        environment=read_environment(data.get("environment")),
    )


def _convention(convention: Any) -> int:
    if not isinstance(convention, dict):
        raise ReportError(f"'convention' must be an object, got {_json_type(convention)}")
    flops_per_mac = convention.get("flops_per_mac")
    if flops_per_mac not in (1, 2) or isinstance(flops_per_mac, bool):
        raise ReportError(f"convention.flops_per_mac must be 1 or 2, got {shown(flops_per_mac)}")
    return int(flops_per_mac)


def _ops(value: Any, where: str) -> str:
    """An ops convention, or several joined by ``+`` (a test that counted under both).

    Reports written before the switch existed carry none: they were all fvcore's."""
    parts = value.split("+") if isinstance(value, str) else [value]
    if not all(part in OPS_CONVENTIONS for part in parts):
        allowed = " or ".join(f'"{name}"' for name in OPS_CONVENTIONS)
        raise ReportError(f"{where}: must be {allowed}, got {value!r}")
    return str(value)


def _model(row: Any, where: str, flops_per_mac: int, ops: str = DEFAULT_OPS) -> Model | None:
    """One result row as a model, or ``None`` for a row without counts (a budget error).

    A row without ``ops`` was counted under the report's convention."""
    if not isinstance(row, dict):
        raise ReportError(f"{where}: expected an object, got {_json_type(row)}")
    nodeid = _string(row, "nodeid", where)
    name = _string(row, "name", where)
    macs = _count(row, "macs", where)
    params = _count(row, "params", where)
    if macs is None or params is None:
        return None
    by_module = row.get("by_module", {})
    if not isinstance(by_module, dict):
        raise ReportError(f"{where}.by_module: expected an object, got {_json_type(by_module)}")
    module_macs = {
        str(path): _as_macs(_number(value, f"{where}.by_module[{path!r}]"), flops_per_mac)
        for path, value in by_module.items()
    }
    return Model(
        nodeid=nodeid,
        name=name,
        macs=macs,
        params=params,
        module_macs=module_macs,
        ops=_ops(row.get("ops", ops), f"{where}.ops"),
        active_params=_count(row, "active_params", where),
        peak_memory=_count(row, "peak_memory", where),
    )


def _string(row: Mapping[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise ReportError(f"{where}.{key}: expected a string, got {_json_type(value)}")
    return value


def _count(row: Mapping[str, Any], key: str, where: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    try:
        return check_count(value, key)
    except UnitError:
        raise ReportError(
            f"{where}.{key}: expected a non-negative integer or null (at most 1e30), got {shown(value)}"
        ) from None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}: expected a number, got {shown(value)}")
    try:
        number = check_count(value, where) if isinstance(value, int) else as_number(value, where)
    except UnitError:
        number = -1.0
    if not 0 <= number <= MAX_QUANTITY * (1 + 1e-9):
        raise ReportError(f"{where}: expected a non-negative number up to 1e30, got {shown(value)}")
    return value


def _as_macs(flops: float, flops_per_mac: int) -> float:
    """FLOPs of the report's convention -> MACs, kept an int when it divides exactly."""
    if isinstance(flops, int) and flops % flops_per_mac == 0:
        return flops // flops_per_mac
    return flops / flops_per_mac


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {shown(value)}"
    return names.get(type(value), type(value).__name__)
