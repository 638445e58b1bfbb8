"""The committed baseline: the last accepted count of every (test, name), module by module.

Stored in MACs, which no convention changes; written deterministically (sorted keys, one entry
per node id and name) so that its diff in a pull request reads as the change in compute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import strict_json
from .units import UnitError, check_count, shown

FORMAT_VERSION = 1


class BaselineError(ValueError):
    """A baseline file that cannot be read; the message names the file and the problem."""


@dataclass(frozen=True)
class BaselineEntry:
    macs: int
    params: int
    by_module_macs: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs": self.macs,
            "params": self.params,
            "by_module_macs": dict(sorted(self.by_module_macs.items())),
        }


@dataclass(frozen=True)
class Baseline:
    path: Path
    entries: Mapping[tuple[str, str], BaselineEntry]
    exists: bool = True

    def get(self, nodeid: str, name: str) -> BaselineEntry | None:
        return self.entries.get((nodeid, name))


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
    if (
        not isinstance(data, dict)
        or data.get("version") != FORMAT_VERSION
        or not isinstance(data.get("tests"), dict)
    ):
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
            )
    return Baseline(path, entries)


def render(entries: Mapping[tuple[str, str], BaselineEntry]) -> str:
    tests: dict[str, dict[str, Any]] = {}
    for (nodeid, name), entry in sorted(entries.items()):
        tests.setdefault(nodeid, {})[name] = entry.to_dict()
    document = {"version": FORMAT_VERSION, "unit": "MACs", "tests": tests}
    return strict_json.dumps(document, indent=2, sort_keys=True) + "\n"


def merged(
    previous: Baseline | None,
    measured: Mapping[tuple[str, str], BaselineEntry],
    ran: Iterable[str],
    *,
    full_run: bool,
) -> dict[tuple[str, str], BaselineEntry]:
    """A full run replaces the baseline; a narrowed run replaces only the tests it ran."""
    ran = set(ran)
    kept: dict[tuple[str, str], BaselineEntry] = {}
    if previous is not None and not full_run:
        kept = {key: entry for key, entry in previous.entries.items() if key[0] not in ran}
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
        )
    return entries
