"""The value a count produces: what the ``flops`` fixture returns and what reports carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OPTIMIZER_NAMES = ("sgd", "sgd_momentum", "adam", "adamw", "adagrad", "rmsprop")
"""The ``optimizer`` option's values: whose state a training step's peak memory includes
(see :data:`.memory.OPTIMIZERS`)."""


class CountError(Exception):
    """A model that could not be counted; the message names the model and the cause."""


@dataclass(frozen=True)
class RawCount:
    """What a backend measured, always in MACs (one fused multiply-add = 1)."""

    macs: int
    by_module_macs: Mapping[str, int]
    unknown_ops: Mapping[str, int] = field(default_factory=dict)
    ignored_ops: Mapping[str, int] = field(default_factory=dict)
    backend: str | None = None
    """The backend that counted, when not the one asked for (fvcore hands calls its trace
    cannot see into to the torch backend)."""
    memory: MemoryCount | None = None
    """Bytes moved and peak memory (see :mod:`.memory`); None when not measured."""


@dataclass(frozen=True)
class MemoryCount:
    """What :class:`.memory.MemoryTracker` measured: the memory fields of :class:`Count`."""

    param_bytes: int
    bytes_moved: int
    bytes_by_module: Mapping[str, int]
    bytes_by_dtype: Mapping[str, int]
    peak_memory: int
    peak_by_module: Mapping[str, int]
    op_costs: tuple[OpCost, ...]


@dataclass(frozen=True)
class OpCost:
    """Ops that cost the same: what a roofline needs to price them on a device.

    ``calls`` ops each did ``macs`` multiply-accumulates and moved ``bytes`` (tensors read plus
    written). A count keeps one entry per distinct (macs, bytes), so a 7B decoder's 32 equal
    layers cost one entry per op shape, not one per call.
    """

    macs: int
    bytes: int
    calls: int = 1

    def to_list(self) -> list[int]:
        return [self.macs, self.bytes, self.calls]

    @classmethod
    def from_list(cls, data: Any) -> OpCost:
        macs, moved, calls = data
        return cls(int(macs), int(moved), int(calls))


@dataclass(frozen=True)
class Count:
    """One call of ``flops(model, inputs)``.

    ``flops`` follows the convention in force (``flops_per_mac``); ``macs`` never changes with
    it. ``by_module`` maps module paths (as in ``model.named_modules()``) to FLOPs. ``ops`` is
    the convention of which ops count (``"fvcore"`` or ``"dense"``, see
    :mod:`.op_conventions`): counts under different ``ops`` are not comparable.
    """

    name: str
    flops: int
    macs: int
    params: int
    flops_per_mac: int
    backend: str
    by_module: Mapping[str, int] = field(default_factory=dict)
    unknown_ops: Mapping[str, int] = field(default_factory=dict)
    mode: str = "inference"
    abstract: bool = False
    ops: str = "fvcore"
    counted_in: str | None = None
    """The name of a count that already includes this one (a generation's last decode step is
    part of its decode phase): a whole-test budget does not add it twice."""
    active_params: int | None = None
    """The parameters one token's forward uses (see :mod:`.active`): ``params`` for a dense
    model, fewer for a mixture of experts. None (a count made without it) reads as ``params``."""

    # Memory and bytes (issue 12). None: not measured by the count that made this value.
    param_bytes: int | None = None
    """Bytes of the model's parameters, in their own dtypes."""
    bytes_moved: int | None = None
    """Bytes of tensors every op read and wrote, summed over ops."""
    bytes_by_module: Mapping[str, int] = field(default_factory=dict)
    """``bytes_moved`` per module path, like ``by_module`` (a parent includes its children)."""
    bytes_by_dtype: Mapping[str, int] = field(default_factory=dict)
    """``bytes_moved`` per dtype (``"float32"``, ``"bfloat16"``, ...)."""
    peak_memory: int | None = None
    """Bytes live at the peak of the counted pass (see :mod:`.memory` for what it includes)."""
    peak_by_module: Mapping[str, int] = field(default_factory=dict)
    """The bytes live at the peak, by the module that holds them (its parameters, its
    activations); what an over-budget message names."""
    op_costs: tuple[OpCost, ...] = ()
    """(macs, bytes) per op, grouped: the input of a roofline."""

    def __post_init__(self) -> None:
        if self.active_params is None:
            object.__setattr__(self, "active_params", self.params)

    @property
    def active(self) -> int:
        """``active_params`` as an int (the field is filled in on construction)."""
        return self.params if self.active_params is None else self.active_params

    def top_modules(self, limit: int = 5) -> list[tuple[str, int]]:
        """The heaviest modules at the shallowest depth where the work splits."""
        return top_modules(self.by_module, limit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "flops": self.flops,
            "macs": self.macs,
            "params": self.params,
            "flops_per_mac": self.flops_per_mac,
            "backend": self.backend,
            "by_module": dict(self.by_module),
            "unknown_ops": dict(self.unknown_ops),
            "mode": self.mode,
            "abstract": self.abstract,
            "ops": self.ops,
            "counted_in": self.counted_in,
            "active_params": self.active,
            "param_bytes": self.param_bytes,
            "bytes_moved": self.bytes_moved,
            "bytes_by_module": dict(self.bytes_by_module),
            "bytes_by_dtype": dict(self.bytes_by_dtype),
            "peak_memory": self.peak_memory,
            "peak_by_module": dict(self.peak_by_module),
            "op_costs": [cost.to_list() for cost in self.op_costs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Count:
        return cls(
            name=data["name"],
            flops=int(data["flops"]),
            macs=int(data["macs"]),
            params=int(data["params"]),
            flops_per_mac=int(data["flops_per_mac"]),
            backend=data["backend"],
            by_module={str(k): int(v) for k, v in data.get("by_module", {}).items()},
            unknown_ops={str(k): int(v) for k, v in data.get("unknown_ops", {}).items()},
            mode=str(data.get("mode", "inference")),
            abstract=bool(data.get("abstract", False)),
            ops=str(data.get("ops", "fvcore")),
            counted_in=data.get("counted_in"),
            active_params=(
                int(data["active_params"]) if data.get("active_params") is not None else None
            ),
            param_bytes=_optional_int(data.get("param_bytes")),
            bytes_moved=_optional_int(data.get("bytes_moved")),
            bytes_by_module={str(k): int(v) for k, v in data.get("bytes_by_module", {}).items()},
            bytes_by_dtype={str(k): int(v) for k, v in data.get("bytes_by_dtype", {}).items()},
            peak_memory=_optional_int(data.get("peak_memory")),
            peak_by_module={str(k): int(v) for k, v in data.get("peak_by_module", {}).items()},
            op_costs=tuple(OpCost.from_list(item) for item in data.get("op_costs", [])),
        )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def top_modules(by_module: Mapping[str, int], limit: int = 5) -> list[tuple[str, int]]:
    """The heaviest modules at the level where the work splits.

    Descends from the root while one child holds nearly all (90%) of its parent's work and has
    submodules, so a ``features`` container or a single ``encoder`` is opened up to show what
    is inside it, while a dominant leaf is shown beside its siblings.
    """
    prefix = ""
    while True:
        depth = prefix.count(".") + 1 if prefix else 0
        children = {
            path: value
            for path, value in by_module.items()
            if path
            and value > 0
            and path.count(".") == depth
            and (not prefix or path.startswith(prefix + "."))
        }
        if not children:
            return [(prefix, by_module[prefix])][:limit] if prefix else []
        heaviest = max(children, key=lambda path: (children[path], path))
        parent = by_module.get(prefix, 0) if prefix else sum(children.values())
        opens_up = any(path.startswith(heaviest + ".") for path in by_module)
        if children[heaviest] >= 0.9 * parent and opens_up:
            prefix = heaviest
            continue
        ranked = sorted(children.items(), key=lambda item: (-item[1], item[0]))
        return ranked[:limit]
