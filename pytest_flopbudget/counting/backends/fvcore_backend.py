"""The default backend: fvcore's FlopCountAnalysis over a JIT trace, with our extra formulas."""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch

from ..count import RawCount
from ..formulas import FVCORE_HANDLES, FvcoreHandle, fvcore_handle, fvcore_overrides, lookup
from ..inputs import TensorCall, strip_prefix
from ..op_conventions import counts_under, dense_part
from ..op_policy import split_uncounted


def count_with_fvcore(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], *, ops: str = "fvcore"
) -> RawCount:
    """Trace the model itself when it takes only tensors; else (keyword inputs, flags) or when
    its outputs are not traceable (cache objects, None), through :class:`TensorCall`."""
    if not kwargs and all(isinstance(arg, torch.Tensor) for arg in args):
        try:
            return _analyse(model, args, prefix=None, ops=ops)
        except Exception:  # e.g. outputs the tracer cannot flatten: retry, wrapped
            pass
    call = TensorCall(model, args, kwargs)
    return _analyse(call, call.tensors, prefix=TensorCall.PREFIX, ops=ops)


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


def _analyse(
    module: torch.nn.Module, tensors: tuple[Any, ...], prefix: str | None, *, ops: str = "fvcore"
) -> RawCount:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, tensors)
    analysis.set_op_handle(**fvcore_overrides())
    left_out: Counter[str] = Counter()
    if ops != "fvcore":
        handled = {*FVCORE_HANDLES, *_fvcore_defaults()}
        analysis.set_op_handle(**_convention_handles(handled, ops, left_out))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")  # with these three off, fvcore logs nothing
    total = int(analysis.total())
    by_module = analysis.by_module()
    by_module = (
        strip_prefix(by_module, prefix) if prefix else {k: int(v) for k, v in by_module.items()}
    )
    unknown, ignored = split_uncounted(analysis.unsupported_ops())
    ignored.update(left_out)
    return RawCount(macs=total, by_module_macs=by_module, unknown_ops=unknown, ignored_ops=ignored)


def _fvcore_defaults() -> set[str]:
    """The ops fvcore counts by itself (its handles replace none of ours)."""
    from fvcore.nn import flop_count

    return set(getattr(flop_count, "_DEFAULT_SUPPORTED_OPS", {}))
