"""Helpers shared by the benchmark runner and its worker processes: memory, time, machine."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
RESULT_MARKER = "BENCH-RESULT: "
"""Workers print their result as one JSON line after this marker (tools print noise too)."""

PEERS = ("ptflops", "thop", "calflops")
VERSIONED = ("torch", "fvcore", "transformers", "pytest", "pytest-xdist", *PEERS)


def status_kib(field: str) -> int:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def mib(kib: float) -> float:
    return kib / 1024


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeat`` times: (best wall seconds, every time, the last result)."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def emit(result: dict[str, Any]) -> None:
    """Print a worker's result for :func:`run_worker` to find."""
    print(RESULT_MARKER + json.dumps(result), flush=True)


def run_worker(spec: dict[str, Any], *, timeout: float = 900) -> dict[str, Any]:
    """Run ``bench/_worker.py`` on ``spec`` in a fresh interpreter and return its result.

    The worker reports its own peak RSS (VmHWM); the result also carries ``process_wall_s``
    (interpreter start to exit, seen from here). A worker that crashes or prints no result
    gives ``{"error": ...}``; a tool that fails gives ``{"error": "fails: <reason>"}``.
    """
    command = [sys.executable, str(BENCH_DIR / "_worker.py"), json.dumps(spec)]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=REPO_DIR, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"worker exited {done.returncode}: {tail[:200]}"}
    result: dict[str, Any] = json.loads(lines[-1][len(RESULT_MARKER) :])
    result["process_wall_s"] = wall
    return result


def version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    """CPU model, cores and RAM of this machine, and the versions the numbers depend on."""
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    ram_gib = 0.0
    try:
        found = re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        ram_gib = int(found.group(1)) / 1024**2 if found else 0.0
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch_threads = None
    try:
        import torch

        torch_threads = torch.get_num_threads()
    except ImportError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch_threads,
        "ram_gib": round(ram_gib, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": {name: version_of(name) for name in VERSIONED},
        "plugin": version_of("pytest-flopbudget"),
    }
