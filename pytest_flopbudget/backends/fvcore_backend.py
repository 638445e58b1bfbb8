"""The default backend: fvcore's FlopCountAnalysis over a JIT trace, with our extra formulas."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..count import RawCount
from ..formulas import fvcore_overrides
from ..inputs import TensorCall, output_tensors, strip_prefix
from ..op_policy import split_uncounted


def count_with_fvcore(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> RawCount:
    """Trace the model itself when it takes only tensors; else (keyword inputs, flags) or when
    its outputs are not traceable (cache objects, None), through :class:`TensorCall`."""
    with _fvcore_quiet():
        if not kwargs and all(isinstance(arg, torch.Tensor) for arg in args):
            outputs: list[object] = []
            hook = model.register_forward_hook(lambda _m, _i, out: outputs.append(out))
            try:
                count = _analyse(model, args, prefix=None)
            except Exception:  # e.g. outputs the tracer cannot flatten: retry, wrapped
                count = None
            finally:
                hook.remove()
            if count is not None and all(output_tensors(out) for out in outputs):
                return count
        call = TensorCall(model, args, kwargs)
        return _analyse(call, call.tensors, prefix=TensorCall.PREFIX)


def _analyse(module: torch.nn.Module, tensors: tuple[Any, ...], prefix: str | None) -> RawCount:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(module, tensors)
    analysis.set_op_handle(**fvcore_overrides())
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    total = int(analysis.total())
    by_module = analysis.by_module()
    by_module = (
        strip_prefix(by_module, prefix) if prefix else {k: int(v) for k, v in by_module.items()}
    )
    unknown, ignored = split_uncounted(analysis.unsupported_ops())
    return RawCount(macs=total, by_module_macs=by_module, unknown_ops=unknown, ignored_ops=ignored)


@contextmanager
def _fvcore_quiet() -> Iterator[None]:
    """fvcore logs skipped ops and uncalled modules; the plugin reports those itself."""
    logger = logging.getLogger("fvcore")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)
