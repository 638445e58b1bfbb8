"""Counting formulas for ops, one function per op, in MACs (one fused multiply-add = 1).

A formula sees an op's arguments in ATen schema order with every tensor replaced by its shape
(a tuple of ints) and every other value as it is, and the outputs the same way. Both backends
use the same formulas (fvcore through :func:`fvcore_handle`, the torch backend directly), so
switching backends does not move a budget.

(Interface stub: filled in by the formula work of issue 3.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Shape = tuple[int, ...]
Formula = Callable[[Sequence[Any], Sequence[Any]], int]
"""``formula(inputs, outputs) -> MACs``; tensors appear as shapes."""

FvcoreHandle = Callable[[list[Any], list[Any]], Any]

FORMULAS: dict[str, Formula] = {}
"""Keyed by ATen op name without overload, e.g. ``"aten::scaled_dot_product_attention"``."""

FVCORE_HANDLES: dict[str, FvcoreHandle] = {}


def lookup(op: str) -> Formula | None:
    """The formula for ``op`` (``aten::mm`` or ``aten::mm.default``), or None."""
    return FORMULAS.get(op.split(".", 1)[0])
