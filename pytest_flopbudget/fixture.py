"""The ``flops`` fixture: count a model, record the count on the running test."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .budgets.config import CountOptions
from .counting.count import Count, CountError

if TYPE_CHECKING:
    import torch

    from .counting.fakes import AbstractScope
    from .counting.generate import GenerationCount


class FlopCounter:
    """``flops(model, inputs, *, name=None, grad=False, backend=None, mode=None, ops=None)``.

    ``inputs`` is a tensor, a tuple of positional arguments or a dict of keyword arguments.
    Each call is recorded under ``name`` (default: the model's class name) for the budget
    check and the summary; the model is left as it was found. ``backend``, ``mode`` and
    ``ops`` override the test's marker and pyproject settings for this call. ``optimizer``
    (``"adam"``, ...) adds its state to a training step's peak memory; the marker's or
    pyproject's applies to ``mode="train"`` counts.
    """

    def __init__(self, *, flops_per_mac: int, options: CountOptions | None = None) -> None:
        self._flops_per_mac = flops_per_mac
        self._options = options or CountOptions()
        self._counts: list[Count] = []
        self._scopes: list[AbstractScope] = []

    def __call__(
        self,
        model: torch.nn.Module,
        inputs: object,
        *,
        name: str | None = None,
        grad: bool = False,
        backend: str | None = None,
        mode: str | None = None,
        ops: str | None = None,
        optimizer: str | None = None,
    ) -> Count:
        __tracebackhide__ = True
        from .counting.counter import count_model  # torch is imported only by tests that count

        backend = backend if backend is not None else self._options.backend
        mode = mode if mode is not None else self._options.mode
        ops = ops if ops is not None else self._options.ops
        if backend not in ("fvcore", "torch"):
            raise CountError(f'flops(backend=...) must be "fvcore" or "torch", got {backend!r}')
        if mode not in ("inference", "train"):
            raise CountError(f'flops(mode=...) must be "inference" or "train", got {mode!r}')
        if optimizer is None and mode == "train":
            optimizer = self._options.optimizer  # a marker's or pyproject's, for training steps
        count = count_model(
            model,
            inputs,
            name=name,
            flops_per_mac=self._flops_per_mac,
            backend=backend,
            mode=mode,
            grad=grad,
            ops=ops,
            optimizer=optimizer,
        )
        self._counts.append(count)
        return count

    def generate(
        self,
        model: torch.nn.Module,
        inputs: object,
        *,
        max_new_tokens: int,
        name: str | None = None,
    ) -> GenerationCount:
        """Count greedy generation: prefill, ``max_new_tokens`` decode steps, the last step.

        Records ``<name>:prefill``, ``<name>:decode`` and ``<name>:decode_last`` (default name:
        the model's class name), so budgets bind to each phase by name. Counted by the torch
        backend, on real or abstract models (see :mod:`.counting.generate`).
        """
        __tracebackhide__ = True
        from .counting.generate import count_generate

        result = count_generate(
            model,
            inputs,
            max_new_tokens=max_new_tokens,
            name=name,
            flops_per_mac=self._flops_per_mac,
        )
        self._counts.extend(result.phases.values())
        return result

    def abstract(self) -> AbstractScope:
        """``with flops.abstract():`` build a model and inputs that allocate nothing.

        Models and tensors created inside are fake (shapes and dtypes, no storage); count them
        after the block with the same ``flops(model, inputs)`` call. Fake mode is active only
        inside the block.
        """
        from .counting.fakes import abstract

        scope = abstract()
        self._scopes.append(scope)
        return scope

    def close(self) -> None:
        """At the test's teardown: deactivate abstract scopes left open, and say so.

        A scope entered with ``__enter__`` and never exited would leave fake mode on for every
        later test in the process; closing it here keeps them real, and the error makes the
        test that left it open fail at teardown instead of its neighbours.
        """
        from .counting.fakes import close_open_scopes

        left_open = sum(scope.close() for scope in self._scopes) + close_open_scopes()
        self._scopes.clear()
        if left_open:
            raise CountError(
                f"{left_open} abstract() scope(s) entered in this test were never exited; they "
                "were closed at teardown (use `with flops.abstract():`)"
            )

    @property
    def counts(self) -> Sequence[Count]:
        """Every count recorded in this test so far, in call order."""
        return tuple(self._counts)
