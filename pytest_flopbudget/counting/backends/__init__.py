"""Counting backends. Each turns (model, args, kwargs) into a :class:`RawCount` in MACs."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..count import RawCount

Backend = Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any]], RawCount]
BACKEND_NAMES = ("fvcore", "torch")


def get_backend(
    name: str,
    *,
    train: bool = False,
    ops: str = "fvcore",
    memory: bool = False,
    optimizer: str | None = None,
) -> Backend:
    """``train`` counts a training step (forward and backward): the torch backend only.
    ``ops`` is the convention of :mod:`..op_conventions` the backend counts under. ``memory``
    also measures bytes and peak memory (:mod:`..memory`), with ``optimizer``'s state."""
    backend: Backend
    if train:
        if name != "torch":
            raise ValueError("training steps are counted by the torch backend only")
        from .torch_backend import count_training_step_with_torch

        backend = count_training_step_with_torch
    elif name == "fvcore":
        from .fvcore_backend import count_with_fvcore

        backend = count_with_fvcore
    elif name == "torch":
        from .torch_backend import count_with_torch

        backend = count_with_torch
    else:
        raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKEND_NAMES)})")
    options: dict[str, Any] = {}
    if ops != "fvcore":
        options["ops"] = ops
    if memory:
        options.update(memory=True, optimizer=optimizer)
    return functools.partial(backend, **options) if options else backend


def fill_containers(by_module: Mapping[str, int]) -> dict[str, int]:
    """Containers that are never called (``nn.ModuleList``) get the sum of their children.

    Both backends attribute an op to the modules whose forward is running (the callers), so a
    container that is never called would be 0 though its layers did work; filling it keeps
    ``encoder.layer`` equal to the sum of its layers, as a reader of the tree expects.
    """
    filled = {path: int(value) for path, value in by_module.items()}
    children: dict[str, list[str]] = {}
    for path in filled:
        if path:
            children.setdefault(path.rpartition(".")[0], []).append(path)
    for path in sorted(filled, key=lambda p: -p.count(".") if p else 1):
        if path and filled[path] == 0:
            filled[path] = sum(filled[child] for child in children.get(path, ()))
    return filled
