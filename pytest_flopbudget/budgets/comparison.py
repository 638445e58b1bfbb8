"""Two counted runs side by side: which models grew, and where (``flopbudget compare``).

Models are matched by (node id, recorded name) and compared in MACs, which mean the same under
both conventions, so a report written with ``flops_per_mac = 1`` compares cleanly with one
written with ``flops_per_mac = 2``. "Grew" and "which modules changed" come from
:mod:`.growth`, the engine the in-run regression check uses too.

Counts made under different ``ops`` conventions (``"fvcore"``: with norms, pooling and
resampling; ``"dense"``: without) differ by up to a few percent on the same model, which is
neither growth nor shrinkage: :func:`compare` refuses them with :class:`ConventionMismatch`.

Pure: reports in, frozen dataclasses out. Reading report files is ``reports.json_report``'s
job, rendering is ``reports.comparison``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from . import environment, growth
from .growth import ModuleChange, module_changes

DEFAULT_TOP = 10

Status = Literal["regressed", "grew", "shrank", "changed", "unchanged", "added", "removed"]
Key = tuple[str, str]


@dataclass(frozen=True)
class Model:
    """One counted model of a report, in MACs whatever the report's convention."""

    nodeid: str
    name: str
    macs: int
    params: int
    module_macs: dict[str, float] = field(hash=False)
    ops: str = "fvcore"
    peak_memory: int | None = None  # bytes; None in rows counted without it
    active_params: int | None = None
    """Parameters one token's forward uses (mixture of experts); None: the same as params."""

    @property
    def active(self) -> int:
        return self.params if self.active_params is None else self.active_params


class ConventionMismatch(ValueError):
    """The two reports counted the same models under different ``ops`` conventions."""


@dataclass(frozen=True)
class Report:
    """A parsed report: its convention and its counted models by (node id, name)."""

    source: str
    flops_per_mac: int
    models: dict[Key, Model] = field(hash=False)
    skipped: int = 0  # rows without counts (budget errors), which have nothing to compare
    ops: str = "fvcore"
    environment: dict[str, str] = field(default_factory=dict, hash=False)  # {} before 0.1.0


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
    old_active_params: int | None = None
    new_active_params: int | None = None
    old_peak_memory: int | None = None
    new_peak_memory: int | None = None

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

    @property
    def peak_memory_delta(self) -> int | None:
        return _delta(self.old_peak_memory, self.new_peak_memory)

    @property
    def peak_memory_relative(self) -> float | None:
        return _relative(self.old_peak_memory, self.new_peak_memory)


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
    def environment_changes(self) -> list[str]:
        """``torch 2.13.0 -> 2.15.0``: tools both reports name, at different versions."""
        return environment.changes(self.old.environment, self.new.environment)

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


def compare(old: Report, new: Report, tolerance: float = 0.0, top: int = DEFAULT_TOP) -> Comparison:
    """Match models by (node id, name) and say how each changed, in MACs.

    A model regresses when its MACs, its params, its active params (what one token uses,
    fewer than params for a mixture of experts) or its peak memory (when both reports
    measured it) grow by more than ``tolerance`` (relative:
    0.02 lets a model grow 2%). Added and removed models are listed but never regress: a
    new model has nothing to grow from.
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance!r}")
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top!r}")
    _check_same_ops(old, new)
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


def _check_same_ops(old: Report, new: Report) -> None:
    mismatched = [
        (key, model.ops, new.models[key].ops)
        for key, model in old.models.items()
        if key in new.models and model.ops != new.models[key].ops
    ]
    if not mismatched:
        return
    (nodeid, name), before, after = mismatched[0]
    more = f" and {len(mismatched) - 1} more" if len(mismatched) > 1 else ""
    raise ConventionMismatch(
        f"{old.source} and {new.source} counted under different ops conventions: "
        f'{nodeid} [{name}] under ops = "{before}" in one, ops = "{after}" in the other{more}. '
        'ops = "fvcore" counts norms, pooling and resampling and ops = "dense" does not, so '
        "the difference is not a change in the model; write both reports with the same ops"
    )


def _change(old: Model | None, new: Model | None, tolerance: float, top: int) -> ModelChange:
    either = new or old
    assert either is not None
    ranked = module_changes(old.module_macs, new.module_macs) if old and new else []
    return ModelChange(
        nodeid=either.nodeid,
        name=either.name,
        status=_status(old, new, bool(ranked), tolerance),
        old_macs=old.macs if old else None,
        new_macs=new.macs if new else None,
        old_params=old.params if old else None,
        new_params=new.params if new else None,
        modules=tuple(ranked[:top]),
        more_modules=max(0, len(ranked) - top),
        old_active_params=old.active if old else None,
        new_active_params=new.active if new else None,
        old_peak_memory=old.peak_memory if old else None,
        new_peak_memory=new.peak_memory if new else None,
    )


def _status(
    old: Model | None, new: Model | None, modules_changed: bool, tolerance: float
) -> Status:
    if old is None:
        return "added"
    if new is None:
        return "removed"
    pairs = [(old.macs, new.macs), (old.params, new.params), (old.active, new.active)]
    if old.peak_memory is not None and new.peak_memory is not None:
        pairs.append((old.peak_memory, new.peak_memory))
    return growth.status(pairs, tolerance, modules_changed=modules_changed)


__all__ = [
    "DEFAULT_TOP",
    "Comparison",
    "ConventionMismatch",
    "Model",
    "ModelChange",
    "ModuleChange",
    "Report",
    "compare",
]
