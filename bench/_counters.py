"""The counting tools compared, each as ``count(built) -> Counted`` in MACs.

Conventions, all reported in MACs (one multiply-accumulate = 1):

- the plugin: ``Count.macs`` (its FLOPs follow ``flops_per_mac``; MACs never change);
- fvcore: ``FlopCountAnalysis.total()`` counts one fused multiply-add as one "flop": MACs;
- ``torch.utils.flop_counter.FlopCounterMode``: 2 FLOPs per MAC, so its total is halved;
- ptflops (default ``pytorch`` backend) and thop: MACs;
- calflops: ``calculate_flops`` returns (FLOPs = 2 x MACs, MACs, params); its MACs are used.

A fake model (``flops.abstract()``) is counted inside its scope by every tool: the plugin
re-enters it itself, the others are run inside it (``scope_of``).

Peers are not project dependencies (``bench/requirements.txt``); a missing one is reported by
:func:`missing_peers` and its rows say so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass

from _models import Built, scope_of

TOOLS = (
    "plugin-fvcore",
    "plugin-torch",
    "fvcore",
    "FlopCounterMode",
    "ptflops",
    "thop",
    "calflops",
)
TOOL_LABELS = {
    "plugin-fvcore": "this plugin, `flops(...)` (fvcore backend)",
    "plugin-torch": 'this plugin, `flops(..., backend="torch")`',
    "fvcore": "fvcore `FlopCountAnalysis(...).total()`",
    "FlopCounterMode": "`torch.utils.flop_counter.FlopCounterMode` (/2)",
    "ptflops": "ptflops `get_model_complexity_info` (pytorch backend)",
    "thop": "thop `profile`",
    "calflops": "calflops `calculate_flops` (MACs)",
}
PEER_MODULES = {"ptflops": "ptflops", "thop": "thop", "calflops": "calflops"}


class ToolFailed(RuntimeError):
    """A tool ran but gave no count (ptflops prints its error and returns None)."""


@dataclass
class Counted:
    macs: int
    params: int | None
    note: str = ""


def missing_peers() -> list[str]:
    """Peers from bench/requirements.txt that are not importable here."""
    return [tool for tool, module in PEER_MODULES.items() if not importlib.util.find_spec(module)]


def _params(built: Built) -> int:
    return sum(p.numel() for p in built.model.parameters())


def plugin(backend: str) -> Callable[[Built], Counted]:
    def count(built: Built) -> Counted:
        from pytest_flopbudget import FlopCounter

        result = FlopCounter(flops_per_mac=1)(built.model, built.args, backend=backend)
        note = "" if result.backend == backend else f"counted by the {result.backend} backend"
        if result.unknown_ops:
            note = "; ".join(filter(None, [note, f"unknown ops: {', '.join(result.unknown_ops)}"]))
        return Counted(result.macs, result.params, note)

    return count


def fvcore(built: Built) -> Counted:
    """Bare fvcore, exactly as a user writes it."""
    from fvcore.nn import FlopCountAnalysis

    with scope_of(built):
        macs = int(FlopCountAnalysis(built.model, built.args).total())
    return Counted(macs, _params(built))


def flop_counter_mode(built: Built) -> Counted:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with scope_of(built), torch.no_grad(), counter:
        built.model(*built.args)
    return Counted(counter.get_total_flops() // 2, _params(built))


def ptflops(built: Built) -> Counted:
    from ptflops import get_model_complexity_info

    (first,) = built.args
    sink = io.StringIO()
    with scope_of(built), contextlib.redirect_stdout(sink):
        macs, params = get_model_complexity_info(
            built.model,
            tuple(first.shape[1:]),
            input_constructor=lambda _shape: first,
            as_strings=False,
            print_per_layer_stat=False,
            ost=sink,
        )
    if macs is None:
        lines = [line for line in sink.getvalue().splitlines() if line.strip()]
        reason = next((line for line in lines if "Error" in line or "error" in line), None)
        raise ToolFailed(reason or (lines[-1] if lines else "returned None"))
    return Counted(int(macs), int(params))


def thop(built: Built) -> Counted:
    from thop import profile

    with scope_of(built):
        macs, params = profile(built.model, inputs=built.args, verbose=False)
    return Counted(int(macs), int(params))


def calflops(built: Built) -> Counted:
    from calflops import calculate_flops

    with scope_of(built), contextlib.redirect_stdout(io.StringIO()):
        _flops, macs, params = calculate_flops(
            built.model,
            args=list(built.args),
            print_results=False,
            print_detailed=False,
            output_as_string=False,
        )
    return Counted(int(macs), int(params))


def plugin_abstract(built: Built) -> Counted:
    """A model with real weights, counted through fake copies: ``flops(..., abstract=True)``."""
    from pytest_flopbudget import FlopCounter

    result = FlopCounter(flops_per_mac=1)(built.model, built.args, abstract=True)
    return Counted(result.macs, result.params, "" if result.abstract else "not abstract")


COUNTERS: dict[str, Callable[[Built], Counted]] = {
    "plugin-fvcore": plugin("fvcore"),
    "plugin-torch": plugin("torch"),
    "fvcore": fvcore,
    "FlopCounterMode": flop_counter_mode,
    "ptflops": ptflops,
    "thop": thop,
    "calflops": calflops,
    "plugin-abstract": plugin_abstract,
}
