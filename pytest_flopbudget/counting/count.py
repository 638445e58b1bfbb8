"""The value a count produces: what the ``flops`` fixture returns and what reports carry."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
        )


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
