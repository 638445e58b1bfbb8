"""Counting backends. Each turns (model, args, kwargs) into a :class:`RawCount` in MACs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..count import RawCount

Backend = Callable[[torch.nn.Module, tuple[Any, ...], dict[str, Any]], RawCount]
BACKEND_NAMES = ("fvcore",)


def get_backend(name: str) -> Backend:
    if name == "fvcore":
        from .fvcore_backend import count_with_fvcore

        return count_with_fvcore
    raise ValueError(f"unknown backend {name!r} (known: {', '.join(BACKEND_NAMES)})")
