"""The default backend: fvcore's FlopCountAnalysis over a JIT trace, with our extra formulas."""

from __future__ import annotations

from typing import Any

import torch

from ..count import RawCount
from ..formulas import fvcore_overrides
from ..inputs import TensorCall, strip_prefix
from ..op_policy import split_uncounted


def count_with_fvcore(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RawCount:
    """Trace the model itself when it takes only tensors; else (keyword inputs, flags) or when
    its outputs are not traceable (cache objects, None), through :class:`TensorCall`."""
    if not kwargs and all(isinstance(arg, torch.Tensor) for arg in args):
        try:
            return _analyse(model, args, prefix=None)
        except Exception:  # e.g. outputs the tracer cannot flatten: retry, wrapped
            pass
    call = TensorCall(model, args, kwargs)
    return _analyse(call, call.tensors, prefix=TensorCall.PREFIX)


def _analyse(module: torch.nn.Module, tensors: tuple[Any, ...], prefix: str | None) -> RawCount:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, tensors)
    analysis.set_op_handle(**fvcore_overrides())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")  # with these three off, fvcore logs nothing
    total = int(analysis.total())
    by_module = analysis.by_module()
    by_module = (
        strip_prefix(by_module, prefix) if prefix else {k: int(v) for k, v in by_module.items()}
    )
    unknown, ignored = split_uncounted(analysis.unsupported_ops())
    return RawCount(macs=total, by_module_macs=by_module, unknown_ops=unknown, ignored_ops=ignored)
