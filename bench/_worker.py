"""One measurement in a fresh interpreter: ``python bench/_worker.py '<json spec>'``.

Specs (see ``run.py``):

- ``{"task": "count", "tool": ..., "model": ..., "kind": "real|fake|meta", "batch": 1,
  "repeat": 3}``: build the model, then count it ``repeat`` times. Reports import, build and
  count times (best and all), the count, RSS before counting, and peak RSS (VmHWM) both over
  the whole process and during the counts alone (VmHWM is reset before the first count).
- ``{"task": "overhead", "model": ..., "repeat": 7}``: the plugin's ``flops(...)`` against
  bare ``FlopCountAnalysis(model, inputs).total()`` (and the torch backend against bare
  ``FlopCounterMode``), interleaved on one model in one process, best of ``repeat`` each.

The result is printed as one JSON line after ``BENCH-RESULT: ``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_of, emit, mib, reset_peak_rss, status_kib  # noqa: E402


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    if type(error).__name__ == "ToolFailed":  # the tool's own message names its error
        return first[:200]
    return f"{type(error).__name__}: {first}"[:200]


def count_task(spec: dict[str, Any]) -> dict[str, Any]:
    tool = spec["tool"]
    import _counters
    import _models
    import torch  # noqa: F401  (import time is measured apart from the tool's)

    if tool in _counters.PEER_MODULES and tool in _counters.missing_peers():
        return {"error": f"not installed (pip install -r bench/requirements.txt): {tool}"}
    if tool in _counters.PEER_MODULES:
        __import__(_counters.PEER_MODULES[tool])
    elif tool in ("fvcore", "plugin-fvcore"):
        import fvcore.nn  # noqa: F401
    if tool.startswith("plugin"):
        from pytest_flopbudget import count_model  # noqa: F401
    _models.preload(spec["model"])
    imported = time.perf_counter()
    built = _models.build(spec["model"], spec.get("kind", "real"), spec.get("batch", 1))
    built_at = time.perf_counter()
    rss_before = status_kib("VmRSS")
    hwm_before = status_kib("VmHWM")
    reset_ok = reset_peak_rss()
    counter = _counters.COUNTERS[tool]
    result: dict[str, Any] = {
        "import_s": imported - _START,
        "build_s": built_at - imported,
        "rss_before_mib": mib(rss_before),
    }
    cpu_times: list[float] = []

    def timed() -> Any:  # CPU seconds too: on a shared machine they move less with the load
        start = time.process_time()
        try:
            return counter(built)
        finally:
            cpu_times.append(time.process_time() - start)

    try:
        best, times, counted = best_of(timed, spec.get("repeat", 1))
    except Exception as error:  # a tool's failure is a result: "fails: <reason>"
        traceback.print_exc()
        result["error"] = f"fails: {_first_line(error)}"
        return result
    hwm_counting = status_kib("VmHWM")
    result.update(
        macs=counted.macs,
        params=counted.params,
        note=counted.note,
        count_s=best,
        count_times_s=times,
        count_cpu_s=cpu_times,
        peak_rss_mib=mib(max(hwm_before, hwm_counting)),
        count_peak_rss_mib=mib(hwm_counting) if reset_ok else None,
        count_extra_mib=mib(hwm_counting - rss_before) if reset_ok else None,
        total_s=time.perf_counter() - _START,
    )
    return result


def overhead_task(spec: dict[str, Any]) -> dict[str, Any]:
    import _models
    import torch
    from fvcore.nn import FlopCountAnalysis
    from torch.utils.flop_counter import FlopCounterMode

    from pytest_flopbudget import FlopCounter

    built = _models.build(spec["model"])
    model, args = built.model, built.args
    flops = FlopCounter(flops_per_mac=1)

    def bare_fvcore() -> int:
        return int(FlopCountAnalysis(model, args).total())

    def bare_fvcore_no_grad() -> int:
        with torch.no_grad():
            return int(FlopCountAnalysis(model, args).total())

    def plugin_fvcore() -> int:
        return flops(model, args).macs

    def bare_flop_counter_mode() -> int:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(*args)
        return counter.get_total_flops() // 2

    def plugin_torch() -> int:
        return flops(model, args, backend="torch").macs

    contenders = {
        "bare_fvcore": bare_fvcore,
        "bare_fvcore_no_grad": bare_fvcore_no_grad,
        "plugin_fvcore": plugin_fvcore,
        "bare_flop_counter_mode": bare_flop_counter_mode,
        "plugin_torch": plugin_torch,
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    macs: dict[str, int] = {}
    for _ in range(spec.get("repeat", 7)):  # interleaved: drift hits every contender alike
        for name, fn in contenders.items():
            # bare fvcore logs its unsupported ops to stderr (captured by the runner): that
            # is part of its cost as a user sees it
            _best, (elapsed,), macs[name] = best_of(fn, 1)
            times[name].append(elapsed)
    return {
        "best_s": {name: min(values) for name, values in times.items()},
        "times_s": times,
        "macs": macs,
    }


def memory_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Counting with memory tracking (bytes moved, peak memory) against without it, on one
    model in one process, interleaved (alternating which goes first), best of ``repeat``."""
    import _models

    from pytest_flopbudget.counting.counter import count_model

    built = _models.build(spec["model"], spec.get("kind", "real"), spec.get("batch", 1))
    backend = spec.get("backend", "fvcore")

    def count(memory: bool) -> Any:
        return count_model(built.model, built.args, backend=backend, memory=memory)

    times: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    counted: dict[str, Any] = {}
    count(True)  # warm-up: lazy imports and first-call caches stay out of both columns
    for index in range(spec.get("repeat", 5)):
        order = ("on", "off") if index % 2 == 0 else ("off", "on")
        for name in order:
            gc.collect()  # garbage of the previous count is not charged to this one
            started = time.process_time()
            _best, (elapsed,), counted[name] = best_of(lambda n=name: count(n == "on"), 1)
            cpu[name].append(time.process_time() - started)
            times[name].append(elapsed)
    on, off = counted["on"], counted["off"]
    return {
        "best_s": {name: min(values) for name, values in times.items()},
        "times_s": times,
        "best_cpu_s": {name: min(values) for name, values in cpu.items()},
        "cpu_s": cpu,
        "macs": {"on": on.macs, "off": off.macs},
        "backend": on.backend,
        "peak_memory": on.peak_memory,
        "param_bytes": on.param_bytes,
        "bytes_moved": on.bytes_moved,
        "op_costs": len(on.op_costs),
    }


def generate_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Build the 7B decoder abstractly and count ``flops.generate`` (build included)."""
    import _models
    import torch

    from pytest_flopbudget import FlopCounter

    _models.preload("llama7b")
    imported = time.perf_counter()
    rss_before = status_kib("VmRSS")
    reset_ok = reset_peak_rss()
    flops = FlopCounter(flops_per_mac=1)
    cpu_start = time.process_time()
    with flops.abstract():
        from transformers import LlamaConfig, LlamaForCausalLM

        model = LlamaForCausalLM(LlamaConfig(**_models.LLAMA_7B)).eval()
        prompt = torch.zeros(1, spec["prompt"], dtype=torch.long)
    built = time.perf_counter()
    result = flops.generate(model, prompt, max_new_tokens=spec["new_tokens"], name="Llama-2-7B")
    done = time.perf_counter()
    cpu_s = time.process_time() - cpu_start
    hwm = status_kib("VmHWM")
    return {
        "import_s": imported - _START,
        "build_s": built - imported,
        "generate_s": done - built,
        "wall_s": done - imported,
        "cpu_s": cpu_s,
        "prefill_macs": result.prefill.macs,
        "decode_macs": result.decode.macs,
        "decode_last_macs": result.decode_last.macs,
        "steps_counted": len(result.steps),
        "affine": result.affine,
        "how": result.how,
        "peak_rss_mib": mib(hwm),
        "count_extra_mib": mib(hwm - rss_before) if reset_ok else None,
    }


def main() -> None:
    spec = json.loads(sys.argv[1])
    warnings.simplefilter("ignore")  # tools' deprecation chatter; the plugin silences its own
    tasks = {
        "count": count_task,
        "overhead": overhead_task,
        "memory": memory_task,
        "generate": generate_task,
    }
    try:
        result = tasks[spec["task"]](spec)
    except Exception as error:
        traceback.print_exc()
        result = {"error": f"fails: {_first_line(error)}"}
    result["spec"] = spec
    emit(result)


if __name__ == "__main__":
    main()
