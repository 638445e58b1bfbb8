"""Two JSON reports (``--flop-budget-json``) side by side: which models grew, and where.

Models are matched by (node id, recorded name) and compared in MACs, which mean the same under
both conventions, so a report written with ``flops_per_mac = 1`` compares cleanly with one
written with ``flops_per_mac = 2``. Per-module FLOPs are divided by each report's own
``flops_per_mac`` for the same reason.

Everything here is pure: dicts in, frozen dataclasses out, text or dicts back. Only
:func:`read_report` touches the file system; ``cli.py`` does the printing and the exit code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .count import deepest_changed_paths
from .units import format_quantity

SUPPORTED_VERSION = 1
DEFAULT_TOP = 10

Status = Literal["regressed", "grew", "shrank", "changed", "unchanged", "added", "removed"]
Key = tuple[str, str]


class ReportError(ValueError):
    """A report that cannot be compared; the message names the file and the problem."""


@dataclass(frozen=True)
class Model:
    """One counted model of a report, in MACs whatever the report's convention."""

    nodeid: str
    name: str
    macs: int
    params: int
    module_macs: dict[str, float] = field(hash=False)


@dataclass(frozen=True)
class Report:
    """A parsed report: its convention and its counted models by (node id, name)."""

    source: str
    flops_per_mac: int
    models: dict[Key, Model] = field(hash=False)
    skipped: int = 0  # rows without counts (budget errors), which have nothing to compare


@dataclass(frozen=True)
class ModuleChange:
    """One module whose MACs changed; ``None`` where the module is absent from a report."""

    path: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float:
        return (self.after or 0) - (self.before or 0)


@dataclass(frozen=True)
class ModelChange:
    """One model across the two reports (``None`` on the side where it is missing)."""

    nodeid: str
    name: str
    status: Status
    old_macs: int | None
    new_macs: int | None
    old_params: int | None
    new_params: int | None
    modules: tuple[ModuleChange, ...] = ()
    more_modules: int = 0  # deepest changed modules left out of ``modules`` by ``top``

    @property
    def regressed(self) -> bool:
        return self.status == "regressed"

    @property
    def macs_delta(self) -> int | None:
        return _delta(self.old_macs, self.new_macs)

    @property
    def macs_relative(self) -> float | None:
        return _relative(self.old_macs, self.new_macs)

    @property
    def params_delta(self) -> int | None:
        return _delta(self.old_params, self.new_params)

    @property
    def params_relative(self) -> float | None:
        return _relative(self.old_params, self.new_params)


@dataclass(frozen=True)
class Comparison:
    """Every model of both reports, in the order of the new report, then the removed ones."""

    old: Report
    new: Report
    tolerance: float
    models: tuple[ModelChange, ...]

    @property
    def conventions_differ(self) -> bool:
        return self.old.flops_per_mac != self.new.flops_per_mac

    @property
    def regressions(self) -> tuple[ModelChange, ...]:
        return tuple(model for model in self.models if model.regressed)

    @property
    def differences(self) -> tuple[ModelChange, ...]:
        """The models worth showing: all but the unchanged ones."""
        return tuple(model for model in self.models if model.status != "unchanged")


def _delta(old: int | None, new: int | None) -> int | None:
    return None if old is None or new is None else new - old


def _relative(old: int | None, new: int | None) -> float | None:
    if old is None or new is None or old == 0:
        return None
    return (new - old) / old


# --- reading ---------------------------------------------------------------------------------


def read_report(path: Path) -> Report:
    """Read and check one report file; every failure is a :class:`ReportError` naming the file."""
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
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return parse_report(data, str(path))


def parse_report(data: Any, source: str) -> Report:
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
        raise ReportError(f"unsupported report version {version!r} (supported: 1)")
    flops_per_mac = _convention(data.get("convention"))
    results = data.get("results")
    if not isinstance(results, list):
        raise ReportError(f"'results' must be a list, got {_json_type(results)}")
    models: dict[Key, Model] = {}
    skipped = 0
    for index, row in enumerate(results):
        model = _model(row, f"results[{index}]", flops_per_mac)
        if model is None:
            skipped += 1
        elif (model.nodeid, model.name) in models:
            raise ReportError(f"results[{index}]: {model.nodeid} [{model.name}] appears twice")
        else:
            models[(model.nodeid, model.name)] = model
    return Report(source=source, flops_per_mac=flops_per_mac, models=models, skipped=skipped)


def _convention(convention: Any) -> int:
    if not isinstance(convention, dict):
        raise ReportError(f"'convention' must be an object, got {_json_type(convention)}")
    flops_per_mac = convention.get("flops_per_mac")
    if flops_per_mac not in (1, 2) or isinstance(flops_per_mac, bool):
        raise ReportError(f"convention.flops_per_mac must be 1 or 2, got {flops_per_mac!r}")
    return int(flops_per_mac)


def _model(row: Any, where: str, flops_per_mac: int) -> Model | None:
    """One result row as a model, or ``None`` for a row without counts (a budget error)."""
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
    return Model(nodeid=nodeid, name=name, macs=macs, params=params, module_macs=module_macs)


def _string(row: Mapping[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise ReportError(f"{where}.{key}: expected a string, got {_json_type(value)}")
    return value


def _count(row: Mapping[str, Any], key: str, where: str) -> int | None:
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}.{key}: expected a non-negative integer or null, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ReportError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ReportError(f"{where}: expected a non-negative number, got {value!r}")
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
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__)


# --- comparing -------------------------------------------------------------------------------


def compare(old: Report, new: Report, tolerance: float = 0.0, top: int = DEFAULT_TOP) -> Comparison:
    """Match models by (node id, name) and say how each changed, in MACs.

    A model regresses when its MACs or its params grow by more than ``tolerance`` (relative:
    0.02 lets a model grow 2%). Added and removed models are listed but never regress: a
    new model has nothing to grow from.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top!r}")
    changes = [
        _change(old.models.get(key), new_model, tolerance, top)
        for key, new_model in new.models.items()
    ]
    changes += [
        _change(old_model, None, tolerance, top)
        for key, old_model in old.models.items()
        if key not in new.models
    ]
    return Comparison(old=old, new=new, tolerance=tolerance, models=tuple(changes))


def _change(old: Model | None, new: Model | None, tolerance: float, top: int) -> ModelChange:
    either = new or old
    assert either is not None
    modules = deepest_changes(old.module_macs, new.module_macs) if old and new else []
    ranked = sorted(modules, key=lambda change: (-abs(change.delta), change.path))
    return ModelChange(
        nodeid=either.nodeid,
        name=either.name,
        status=_status(old, new, bool(modules), tolerance),
        old_macs=old.macs if old else None,
        new_macs=new.macs if new else None,
        old_params=old.params if old else None,
        new_params=new.params if new else None,
        modules=tuple(ranked[:top]),
        more_modules=max(0, len(ranked) - top),
    )


def _status(
    old: Model | None, new: Model | None, modules_changed: bool, tolerance: float
) -> Status:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    pairs = ((old.macs, new.macs), (old.params, new.params))
    if any(after - before > before * tolerance for before, after in pairs):
        return "regressed"
    if any(after > before for before, after in pairs):
        return "grew"
    if any(after < before for before, after in pairs):
        return "shrank"
    return "changed" if modules_changed else "unchanged"


def deepest_changes(before: Mapping[str, float], after: Mapping[str, float]) -> list[ModuleChange]:
    """Modules whose MACs changed and none of whose submodules did (see count.py)."""
    return [
        ModuleChange(path, before.get(path), after.get(path))
        for path in deepest_changed_paths(before, after)
    ]


# --- output ----------------------------------------------------------------------------------


def to_dict(comparison: Comparison) -> dict[str, Any]:
    """The comparison for machines (``flopbudget compare --json``)."""
    return {
        "old": _report_dict(comparison.old),
        "new": _report_dict(comparison.new),
        "unit": "macs",
        "tolerance": comparison.tolerance,
        "regressed": bool(comparison.regressions),
        "models": [_model_dict(model) for model in comparison.models],
    }


def _report_dict(report: Report) -> dict[str, Any]:
    return {
        "path": report.source,
        "flops_per_mac": report.flops_per_mac,
        "models": len(report.models),
        "skipped": report.skipped,
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
    differences = comparison.differences
    if differences:
        lines += ["", *_table(differences)]
    for model in differences:
        if model.modules:
            lines += ["", *_module_lines(model)]
    lines += ["", _summary(comparison)]
    return "\n".join(lines) + "\n"


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


def _table(models: Iterable[ModelChange]) -> list[str]:
    rows = [_row(model) for model in models]
    header = {column: column for column in _TABLE_COLUMNS}
    return _aligned([header, *rows], _TABLE_COLUMNS, _RIGHT)


def _row(model: ModelChange) -> dict[str, str]:
    return {
        "test": model.nodeid,
        "name": model.name,
        "MACs old -> new": _old_to_new(model.old_macs, model.new_macs, "macs"),
        "delta": _signed(model.macs_delta, "macs"),
        "delta %": _percent(model.macs_relative),
        "params old -> new": _old_to_new(model.old_params, model.new_params, "params"),
        "status": _status_label(model),
    }


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
        *("  " + line for line in _aligned(rows, columns, {"before", "after", "delta"})),
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
    return line


def _aligned(rows: list[dict[str, str]], columns: Iterable[str], right: set[str]) -> list[str]:
    columns = tuple(columns)
    widths = {c: max(len(row[c]) for row in rows) for c in columns}
    return [
        "  ".join(
            row[c].rjust(widths[c]) if c in right else row[c].ljust(widths[c]) for c in columns
        ).rstrip()
        for row in rows
    ]


def _old_to_new(old: float | None, new: float | None, kind: Literal["macs", "params"]) -> str:
    return f"{format_quantity(old, kind)} -> {format_quantity(new, kind)}"


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
