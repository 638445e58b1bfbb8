"""The committed baseline: the last accepted count of every (test, name), module by module.

Stored in MACs, which no convention changes; written deterministically (sorted keys, one entry
per node id and name) so that its diff in a pull request reads as the change in compute.
The ``ops`` convention does change MACs (``"dense"`` leaves norms and pooling out), so an entry
counted under ``ops = "dense"`` says so; an entry without ``ops`` was counted under fvcore's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..counting.op_conventions import DEFAULT_OPS, OPS_CONVENTIONS
from . import environment as environment_info
from . import strict_json
from .units import UnitError, check_count, shown

FORMAT_VERSION = 1


class BaselineError(ValueError):
    """A baseline file that cannot be read; the message names the file and the problem."""


class ForeignBaselineError(BaselineError):
    """Valid JSON without a baseline's keys: someone else's file, never to be rewritten."""


@dataclass(frozen=True)
class BaselineEntry:
    macs: int
    params: int
    by_module_macs: Mapping[str, int] = field(default_factory=dict)
    ops: str = DEFAULT_OPS
    peak_memory: int | None = None  # bytes; absent in entries counted without it
    active_params: int | None = None
    """What one token's forward uses (mixture of experts); None: all of ``params``."""

    @property
    def active(self) -> int:
        return self.params if self.active_params is None else self.active_params

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "macs": self.macs,
            "params": self.params,
            "by_module_macs": dict(sorted(self.by_module_macs.items())),
        }
        if self.ops != DEFAULT_OPS:  # baselines written before the switch stay as they were
            data["ops"] = self.ops
        if self.active_params is not None and self.active_params != self.params:
            data["active_params"] = self.active_params
        if self.peak_memory is not None:
            data["peak_memory"] = self.peak_memory
        return data


@dataclass(frozen=True)
class Baseline:
    path: Path
    entries: Mapping[tuple[str, str], BaselineEntry]
    exists: bool = True
    # versions the baseline was counted with (empty for baselines written before they were)
    environment: Mapping[str, str] = field(default_factory=dict)

    def get(self, nodeid: str, name: str) -> BaselineEntry | None:
        return self.entries.get((nodeid, name))


def _ops(value: object, where: str) -> str:
    parts = value.split("+") if isinstance(value, str) else [value]
    if not all(part in OPS_CONVENTIONS for part in parts):
        allowed = " or ".join(f'"{name}"' for name in OPS_CONVENTIONS)
        raise BaselineError(f"{where}: must be {allowed}, got {value!r}")
    return str(value)


def _int(value: object, where: str) -> int:
    try:
        return check_count(value, "count")
    except UnitError:
        raise BaselineError(
            f"{where}: expected a non-negative integer up to 1e30, got {shown(value)}"
        ) from None


def load(path: Path) -> Baseline:
    """Read ``path``; a missing file is an empty baseline, a corrupted one an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Baseline(path, {}, exists=False)
    except UnicodeDecodeError as error:
        raise BaselineError(f"{path}: cannot read the baseline: {error}") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or error
        raise BaselineError(f"{path}: cannot read the baseline: {reason}") from None
    try:
        data = strict_json.loads(text)
    except ValueError as error:
        raise BaselineError(
            f"{path}: the baseline is not valid JSON ({error}); it may be half-written or "
            "hand-edited. Restore it from version control or rewrite it with --flop-budget-update"
        ) from None
    if not isinstance(data, dict) or "version" not in data or "tests" not in data:
        raise ForeignBaselineError(
            f'{path}: valid JSON, but not a pytest-flopbudget baseline (no "version" and "tests" '
            "keys): another tool's file? It is left alone, also by --flop-budget-update; point "
            "[tool.flopbudget] baseline at a file of its own"
        )
    if data.get("version") != FORMAT_VERSION or not isinstance(data.get("tests"), dict):
        raise BaselineError(
            f'{path}: not a pytest-flopbudget baseline (expected {{"version": {FORMAT_VERSION}, '
            '"tests": {...}}); rewrite it with --flop-budget-update'
        )
    entries: dict[tuple[str, str], BaselineEntry] = {}
    for nodeid, names in data["tests"].items():
        if not isinstance(names, dict):
            raise BaselineError(f"{path}: tests[{nodeid!r}]: expected an object of names")
        for name, entry in names.items():
            where = f"{path}: tests[{nodeid!r}][{name!r}]"
            if not isinstance(entry, dict):
                raise BaselineError(f"{where}: expected an object")
            modules = entry.get("by_module_macs", {})
            if not isinstance(modules, dict):
                raise BaselineError(f"{where}.by_module_macs: expected an object")
            entries[(nodeid, name)] = BaselineEntry(
                macs=_int(entry.get("macs"), f"{where}.macs"),
                params=_int(entry.get("params"), f"{where}.params"),
                by_module_macs={
                    str(k): _int(v, f"{where}.by_module_macs[{k!r}]") for k, v in modules.items()
                },
                ops=_ops(entry.get("ops", DEFAULT_OPS), f"{where}.ops"),
                active_params=(
                    None
                    if entry.get("active_params") is None
                    else _fewer(
                        _int(entry.get("active_params"), f"{where}.active_params"),
                        _int(entry.get("params"), f"{where}.params"),
                    )
                ),
                peak_memory=(
                    _int(entry["peak_memory"], f"{where}.peak_memory")
                    if entry.get("peak_memory") is not None
                    else None
                ),
            )
    return Baseline(path, entries, environment=environment_info.read(data.get("environment")))


def _fewer(active: int | None, params: int) -> int | None:
    """Active params as an entry keeps them: None for a dense model (all of its params), so
    an entry compares equal however it was made, and dense entries are written as before."""
    return None if active is None or active == params else active


def render(
    entries: Mapping[tuple[str, str], BaselineEntry],
    environment: Mapping[str, str] | None = None,
) -> str:
    tests: dict[str, dict[str, Any]] = {}
    for (nodeid, name), entry in sorted(entries.items()):
        tests.setdefault(nodeid, {})[name] = entry.to_dict()
    document: dict[str, Any] = {"version": FORMAT_VERSION, "unit": "MACs", "tests": tests}
    if environment:
        document["environment"] = dict(environment)
    return strict_json.dumps(document, indent=2, sort_keys=True) + "\n"


def merged(
    previous: Baseline | None,
    measured: Mapping[tuple[str, str], BaselineEntry],
    stale: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], BaselineEntry]:
    """Every previous entry, except those proven stale, with the new measurements over them.

    Entries of tests that did not run (or did not run to completion) are kept as they were.
    """
    stale = set(stale)
    kept: dict[tuple[str, str], BaselineEntry] = {}
    if previous is not None:
        kept = {key: entry for key, entry in previous.entries.items() if key not in stale}
    return {**kept, **measured}


def measured_entries(
    verdicts: Iterable[Any], flops_per_mac: int
) -> dict[tuple[str, str], BaselineEntry]:
    """One entry per counted verdict, keyed by (node id, name), in MACs."""
    entries: dict[tuple[str, str], BaselineEntry] = {}
    for verdict in verdicts:
        if not verdict.counted:
            continue
        entries[(verdict.nodeid, verdict.name)] = BaselineEntry(
            macs=verdict.macs,
            params=verdict.params,
            by_module_macs={
                path: flops // flops_per_mac for path, flops in verdict.by_module.items()
            },
            ops=verdict.ops,
            active_params=_fewer(verdict.active_params, verdict.params),
            peak_memory=getattr(verdict, "peak_memory", None),
        )
    return entries
