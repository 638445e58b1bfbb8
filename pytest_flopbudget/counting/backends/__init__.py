"""Counting backends. Each turns (model, args, kwargs) into a :class:`RawCount` in MACs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..count import RawCount

Backend = Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any]], RawCount]
BACKEND_NAMES = ("fvcore", "torch")


def get_backend(name: str, *, train: bool = False) -> Backend:
    """``train`` counts a training step (forward and backward): the torch backend only."""
    if train:
        if name != "torch":
            raise ValueError("training steps are counted by the torch backend only")
        from .torch_backend import count_training_step_with_torch

        return count_training_step_with_torch
    if name == "fvcore":
        from .fvcore_backend import count_with_fvcore

        return count_with_fvcore
    if name == "torch":
        from .torch_backend import count_with_torch

        return count_with_torch
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKEND_NAMES)})")
