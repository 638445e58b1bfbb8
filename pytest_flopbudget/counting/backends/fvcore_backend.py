"""The default backend: fvcore's FlopCountAnalysis over a JIT trace, with our extra formulas.

A JIT trace sees less than what runs, and each gap would be a silent zero. This module closes
them, so the backend never reports a total below what ran:

* **Work whose result is not returned** (an auxiliary head stored on ``self``, a forward that
  returns ``None``): the trace keeps only ops the outputs depend on. While tracing, results of
  torch functions that no later function uses get an *anchor*, an empty tensor made from them
  (``new_empty(0)``: no copy, no memory, an op fvcore ignores), returned with the outputs, so
  every op that ran stays in the graph.
* **Calls the trace cannot see into**: a ``torch.jit.script`` function (``prim::CallFunction``),
  a custom ``torch.autograd.Function`` (``prim::PythonOp.<Name>``) without a registered
  formula, a scripted submodule. The model is then counted by the torch backend, whose
  dispatcher sees the ops inside them with the same formulas; the count's ``backend`` says
  ``torch``. Should that count fail, the fvcore count stands with those calls listed as
  unknown ops.
* **``out=`` variants** (``torch.mm(a, b, out=c)``) reach the handles with the output tensor as
  an extra argument; it is dropped first.

Attribution follows the caller (fvcore's ``ancestor_mode("caller")``, as the torch backend and
FlopCounterMode do): an op belongs to every module whose forward is running when it runs, so a
submodule shared by two parents adds to the parent that called it; containers that are never
called (``nn.ModuleList``) get the sum of their children.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from ..count import RawCount
from ..formulas import FvcoreHandle, fvcore_handle, fvcore_overrides, lookup
from ..inputs import InputError, TensorCall, strip_prefix
from ..memory import MemoryTracker, priced_handle
from ..op_conventions import counts_under, dense_part
from ..op_policy import split_uncounted
from . import fill_containers

OPAQUE_CALLS = ("prim::PythonOp", "prim::CallFunction", "prim::CallMethod")
"""Trace nodes whose work happens out of the trace's sight (see the module docstring)."""


def count_with_fvcore(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    ops: str = "fvcore",
    memory: bool = False,
    optimizer: str | None = None,
) -> RawCount:
    """Trace ``model(*args, **kwargs)`` through :class:`_AnchoredCall` and count the graph.

    With ``memory``, a :class:`..memory.MemoryTracker` watches the trace's eager run (bytes
    and live storages) and prices the graph's counted nodes from their typed values.
    """
    if any(isinstance(module, torch.jit.ScriptModule) for module in model.modules()):
        return _on_the_dispatcher(model, args, kwargs, fallback=None, ops=ops, memory=memory)
    call = _AnchoredCall(model, args, kwargs)
    tracker = MemoryTracker(model, args, kwargs, traced=True) if memory else None
    call.tracker = tracker
    raw = _analyse(call, call.tensors, ops=ops, tracker=tracker)
    if any(op.startswith(OPAQUE_CALLS) for op in raw.unknown_ops):
        return _on_the_dispatcher(model, args, kwargs, fallback=raw, ops=ops, memory=memory)
    return raw


def _on_the_dispatcher(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    fallback: RawCount | None,
    ops: str = "fvcore",
    memory: bool = False,
) -> RawCount:
    from .torch_backend import count_with_torch

    try:
        raw = count_with_torch(model, args, kwargs, ops=ops, memory=memory)
    except Exception:
        if fallback is None:
            raise
        return fallback
    return RawCount(
        macs=raw.macs,
        by_module_macs=raw.by_module_macs,
        unknown_ops=raw.unknown_ops,
        ignored_ops=raw.ignored_ops,
        backend="torch",
        memory=raw.memory,
    )


def _analyse(
    call: TensorCall,
    tensors: tuple[Any, ...],
    *,
    ops: str = "fvcore",
    tracker: MemoryTracker | None = None,
) -> RawCount:
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS

    analysis = FlopCountAnalysis(call, tensors)
    handles = {**_DEFAULT_SUPPORTED_OPS, **fvcore_overrides()}
    left_out: Counter[str] = Counter()
    if ops != "fvcore":
        handles.update(_convention_handles(set(handles), ops, left_out))
    wrapped = {op: _without_out_arguments(h) for op, h in handles.items()}
    if tracker is not None:
        wrapped = {op: priced_handle(h, tracker) for op, h in wrapped.items()}
    analysis.set_op_handle(**wrapped)
    analysis.ancestor_mode("caller")
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")  # with these three off, fvcore logs nothing
    total = int(analysis.total())
    by_module = fill_containers(strip_prefix(analysis.by_module(), TensorCall.PREFIX))
    by_module[""] = total
    unknown, ignored = split_uncounted(analysis.unsupported_ops())
    for op in [op for op in ignored if op.startswith(OPAQUE_CALLS)]:
        unknown[op] = ignored.pop(op)  # calls into unseen code are never "ignored"
    ignored.update(left_out)
    return RawCount(
        macs=total,
        by_module_macs=by_module,
        unknown_ops=unknown,
        ignored_ops=ignored,
        memory=tracker.result() if tracker is not None else None,
    )


def _convention_handles(
    handled: set[str], ops: str, left_out: Counter[str]
) -> dict[str, FvcoreHandle]:
    """Under ``ops = "dense"``, every handled op the convention leaves out counts 0 (and is
    tallied in ``left_out``); fused ops keep their dense part."""
    handles: dict[str, FvcoreHandle] = {}
    for op in handled:
        if not counts_under(ops, op):
            handles[op] = _zero_handle(op, left_out)
        else:
            formula = lookup(op)
            if formula is not None and dense_part(op, formula) is not formula:
                handles[op] = fvcore_handle(dense_part(op, formula))
    return handles


def _zero_handle(op: str, left_out: Counter[str]) -> FvcoreHandle:
    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        left_out[op] += 1
        return 0

    return handle


class _AnchoredCall(TensorCall):
    """:class:`TensorCall` that also returns an anchor for every result nothing used."""

    tracker: MemoryTracker | None = None
    """Tracks bytes and live storages of the traced run."""

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        tracker = self.tracker
        with tracker.tracking() if tracker else contextlib.nullcontext(), _Anchors() as unused:
            found = self.call(*tensors)
            if tracker is not None:
                tracker.returned(found)
        anchors = unused.anchors(found)
        if not found and not anchors:
            raise InputError("the model returned no tensors and ran no tensor ops")
        return (*found, *anchors)


class _Anchors(TorchFunctionMode):
    """Tracks the results of torch functions that no later torch function took as input.

    Every result is either used by a later op or left unused; anchoring the unused ones at the
    end (``result.new_empty(0)``, returned with the outputs) keeps every op that ran in the
    trace. Only unused results are held, so memory stays as in a plain forward, and a model
    whose results all flow into its outputs gets no anchor at all. The mode is off while its
    handler runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._unused: dict[int, torch.Tensor] = {}

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        result = func(*args, **kwargs) if kwargs else func(*args)
        if isinstance(result, torch.Tensor):
            produced: list[torch.Tensor] = [result]
        elif isinstance(result, (tuple, list)):
            produced = [item for item in result if isinstance(item, torch.Tensor)]
        else:  # metadata queries (.shape, .size()) do not use their tensor
            return result
        if not produced or _in_functorch_transform():  # vmap's wrappers must stay inside it
            return result
        unused = self._unused
        for value in args:
            if isinstance(value, torch.Tensor):
                unused.pop(id(value), None)
            elif isinstance(value, (list, tuple)):
                for item in value:
                    unused.pop(id(item), None)
        if kwargs:
            for tensor in _tensors_in(kwargs.values()):
                unused.pop(id(tensor), None)
        for tensor in produced:
            unused[id(tensor)] = tensor
        return result

    def anchors(self, outputs: list[torch.Tensor]) -> list[torch.Tensor]:
        returned = {id(tensor) for tensor in outputs}
        anchors = []
        for key, tensor in self._unused.items():
            if key not in returned:
                with contextlib.suppress(Exception):  # layouts without new_empty (quantized)
                    anchors.append(tensor.new_empty(0))
        self._unused.clear()
        return anchors


def _in_functorch_transform() -> bool:
    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active is not None and active())


def _tensors_in(values: Any) -> list[torch.Tensor]:
    """Tensors among ``values`` and inside their lists and tuples (``torch.cat([a, b])``)."""
    found = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, torch.Tensor))
    return found


@functools.lru_cache(maxsize=1024)
def _without_out_arguments(handle: FvcoreHandle) -> FvcoreHandle:
    """fvcore's handles assert their argument count; ``out=`` adds one. Drop it.

    Cached per handle: a count wraps some 150 handles, which cost more than a small model's
    whole trace when wrapped afresh each time.
    """

    @functools.wraps(handle)
    def wrapped(inputs: list[Any], outputs: list[Any]) -> Any:
        if outputs:
            positions = _out_positions(outputs[0].node().schema())
            if positions:
                inputs = [value for i, value in enumerate(inputs) if i not in positions]
        return handle(inputs, outputs)

    return wrapped


@functools.lru_cache(maxsize=256)
def _out_positions(schema: str) -> frozenset[int]:
    """Positions of the keyword-only arguments an op writes into (``*, Tensor(a!) out``)."""
    if "!" not in schema:
        return frozenset()
    try:
        parsed = torch._C.parse_schema(schema)
    except Exception:  # "(no schema)" and the like
        return frozenset()
    return frozenset(
        index
        for index, argument in enumerate(parsed.arguments)
        if argument.kwarg_only and argument.alias_info is not None and argument.alias_info.is_write
    )
