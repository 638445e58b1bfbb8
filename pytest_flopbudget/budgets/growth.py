"""The one comparison engine: did a count grow beyond its tolerance, and which modules changed.

The in-run regression check (``regression.py``), the baseline update and ``flopbudget compare``
all ask these two questions of the same two numbers; they ask them here, so CI and the command
line cannot disagree. Counts are exact integers, so the test is exact too (fractions, not
floats): with tolerance 0, one more MAC is growth.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Status = Literal["regressed", "grew", "shrank", "changed", "unchanged"]


@dataclass(frozen=True)
class ModuleChange:
    """One module whose count changed; ``None`` where the module is absent on that side."""

    path: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float:
        return (self.after or 0) - (self.before or 0)


def grew_beyond(before: float, after: float, tolerance: float) -> bool:
    """``after`` exceeds ``before`` by more than ``tolerance`` of it (0.02 allows 2%)."""
    return Fraction(after) - Fraction(before) > Fraction(before) * Fraction(tolerance)


def status(
    pairs: Iterable[tuple[float, float]], tolerance: float, *, modules_changed: bool = False
) -> Status:
    """How ``(before, after)`` pairs (MACs, params, ...) moved, worst first."""
    pairs = list(pairs)
    if any(grew_beyond(before, after, tolerance) for before, after in pairs):
        return "regressed"
    if any(after > before for before, after in pairs):
        return "grew"
    if any(after < before for before, after in pairs):
        return "shrank"
    return "changed" if modules_changed else "unchanged"


def deepest_changed_paths(before: Mapping[str, float], after: Mapping[str, float]) -> list[str]:
    """Modules whose count changed and none of whose submodules did, in path order.

    ``by_module`` lists every level of the module tree, so a change in ``layer1.0.conv2``
    also changes ``layer1.0`` and ``layer1``; only the deepest says where to look. A module
    missing on one side counts as 0.
    """
    changed = [
        path
        for path in sorted(set(before) | set(after))
        if before.get(path, 0) != after.get(path, 0)
    ]
    ancestors = {
        ".".join(path.split(".")[:end]) for path in changed for end in range(path.count(".") + 1)
    }
    return [path for path in changed if path and path not in ancestors]


def module_changes(before: Mapping[str, float], after: Mapping[str, float]) -> list[ModuleChange]:
    """The deepest changed modules, biggest change first (ties by path)."""
    changes = [
        ModuleChange(path, before.get(path), after.get(path))
        for path in deepest_changed_paths(before, after)
    ]
    changes.sort(key=lambda change: (-abs(change.delta), change.path))
    return changes
