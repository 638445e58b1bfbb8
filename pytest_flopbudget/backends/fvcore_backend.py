"""The default backend: fvcore's FlopCountAnalysis over a JIT trace, with our extra formulas."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..count import RawCount
from ..formulas import fvcore_overrides
from ..inputs import TensorCall, strip_prefix
from ..op_policy import split_uncounted


def count_with_fvcore(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RawCount:
    from fvcore.nn import FlopCountAnalysis

    call = TensorCall(model, args, kwargs)
    analysis = FlopCountAnalysis(call, call.tensors)
    analysis.set_op_handle(**fvcore_overrides())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    fvcore_logger = logging.getLogger("fvcore")
    previous_level = fvcore_logger.level
    fvcore_logger.setLevel(logging.ERROR)
    try:
        total = int(analysis.total())
        by_module = strip_prefix(analysis.by_module(), TensorCall.PREFIX)
        unknown, ignored = split_uncounted(analysis.unsupported_ops())
    finally:
        fvcore_logger.setLevel(previous_level)
    return RawCount(macs=total, by_module_macs=by_module, unknown_ops=unknown, ignored_ops=ignored)
