"""The ``flops`` fixture: count a model, record the count on the running test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .count import Count

if TYPE_CHECKING:
    import torch


class FlopCounter:
    """``flops(model, inputs, *, name=None, grad=False)``: what the ``flops`` fixture returns.

    ``inputs`` is a tensor, a tuple of positional arguments or a dict of keyword arguments.
    Each call is recorded under ``name`` (default: the model's class name) for the budget
    check and the summary; the model is left as it was found.
    """

    def __init__(self, *, flops_per_mac: int, backend: str = "fvcore") -> None:
        self._flops_per_mac = flops_per_mac
        self._backend = backend
        self._counts: list[Count] = []

    def __call__(
        self,
        model: torch.nn.Module,
        inputs: object,
        *,
        name: str | None = None,
        grad: bool = False,
    ) -> Count:
        __tracebackhide__ = True
        from .counter import count_model  # torch is imported only by tests that count

        count = count_model(
            model,
            inputs,
            name=name,
            flops_per_mac=self._flops_per_mac,
            backend=self._backend,
            grad=grad,
        )
        self._counts.append(count)
        return count

    @property
    def counts(self) -> Sequence[Count]:
        """Every count recorded in this test so far, in call order."""
        return tuple(self._counts)
