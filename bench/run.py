"""Benchmarks of pytest-flopbudget: ``python bench/run.py [BENCHMARK ...] [--quick]``.

BENCHMARK is any of ``overhead idle llm7b resnet peers memory llm70b generate7b realfakes``
(default: all, in that order).
Each benchmark writes ``bench/results/<name>.json``; afterwards ``BENCHMARKS.md`` at the
repository root is rendered from every result present, so one benchmark can be re-run alone
without losing the others. ``--quick`` runs fewer repetitions (a smoke test: its numbers are
noisier and say so in BENCHMARKS.md).

Memory-sensitive measurements run in fresh interpreters (``bench/_worker.py``) that report
their own peak RSS (``VmHWM`` from ``/proc/self/status``; it is reset before counting, so the
peak of the count alone is known too). Peers (ptflops, thop, calflops) are not dependencies of
the project: ``pip install -r bench/requirements.txt``; a missing one is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_DIR, RESULTS_DIR, machine, run_worker
from _counters import TOOLS, missing_peers

BENCHMARKS = (
    "overhead",
    "idle",
    "llm7b",
    "resnet",
    "peers",
    "memory",
    "llm70b",
    "generate7b",
    "realfakes",
)


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def _say(message: str) -> None:
    print(message, flush=True)


# 1. counting overhead -------------------------------------------------------------------------

OVERHEAD_MODELS = {"ffn": 40, "small_cnn": 25, "resnet50": 7, "bert_base": 7}
"""Model -> interleaved repetitions (best of): more for the cheap ones."""


def bench_overhead(quick: bool) -> dict[str, Any]:
    rows = []
    for model, repeat in OVERHEAD_MODELS.items():
        repeat = max(3, repeat // 4) if quick else repeat
        _say(f"  overhead: {model} (best of {repeat}, interleaved)")
        result = run_worker({"task": "overhead", "model": model, "repeat": repeat})
        rows.append({"model": model, "repeat": repeat, **result})
    return {"rows": rows, "target": 1.10}


# 2. idle overhead ---------------------------------------------------------------------------

IDLE_FILES, IDLE_TESTS_PER_FILE = 20, 100


def _write_idle_suite(root: Path) -> None:
    (root / "pytest.ini").write_text("[pytest]\n")  # rootdir here, not the project's config
    for index in range(IDLE_FILES):
        body = [f'"""Generated: {IDLE_TESTS_PER_FILE} trivial tests, no flops fixture."""\n']
        for number in range(IDLE_TESTS_PER_FILE):
            body.append(f"\ndef test_{number}():\n    assert {number} + 1 > {number}\n")
        (root / f"test_generated_{index:02d}.py").write_text("".join(body))


def _idle_env() -> dict[str, str]:
    # Bytecode and assertion-rewrite caches on, as in a user's checkout: a suite that
    # recompiles its 20 files every run would make the baseline slower and hide overhead.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _pytest_run(root: Path, plugin_on: bool, collect_only: bool = False) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    if not plugin_on:
        command += ["-p", "no:flopbudget"]
    if collect_only:
        command += ["--collect-only"]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=root, env=_idle_env(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - start
    tests = IDLE_FILES * IDLE_TESTS_PER_FILE
    expected = f"{tests} tests collected" if collect_only else f"{tests} passed"
    if done.returncode != 0 or expected not in done.stdout:
        raise RuntimeError(f"idle suite run failed ({done.returncode}): {done.stdout[-500:]}")
    return elapsed


def _import_times(root: Path, plugin_on: bool) -> dict[str, int]:
    """Module -> self import time (us) of a collection-only run, from ``-X importtime``."""
    command = [sys.executable, "-X", "importtime", "-m", "pytest", "-q", "--co"]
    command += ["-p", "no:cacheprovider"] + ([] if plugin_on else ["-p", "no:flopbudget"])
    done = subprocess.run(
        command, cwd=root, env=_idle_env(), capture_output=True, text=True, check=False
    )
    found: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+\d+ \| (\s*)(\S+)", line)
        if match:
            found[match.group(3)] = int(match.group(1))
    return found


def bench_idle(quick: bool) -> dict[str, Any]:
    repeat = 3 if quick else 15
    with tempfile.TemporaryDirectory(prefix="flopbudget-idle-") as tmp:
        root = Path(tmp)
        _write_idle_suite(root)
        _say("  idle: warm-up runs (bytecode caches, OS file cache)")
        _pytest_run(root, True)
        _pytest_run(root, False)
        on: list[float] = []
        off: list[float] = []
        for index in range(repeat):  # interleaved, alternating which goes first
            order = (True, False) if index % 2 == 0 else (False, True)
            for plugin_on in order:
                (on if plugin_on else off).append(_pytest_run(root, plugin_on))
            _say(f"  idle: round {index + 1}/{repeat}: on {on[-1]:.2f} s, off {off[-1]:.2f} s")
        # the same with --collect-only: start-up and collection, no test runs, so the
        # difference between the two splits the overhead into start-up and per-test parts
        collect_on: list[float] = []
        collect_off: list[float] = []
        for index in range(repeat):
            order = (True, False) if index % 2 == 0 else (False, True)
            for plugin_on in order:
                elapsed = _pytest_run(root, plugin_on, collect_only=True)
                (collect_on if plugin_on else collect_off).append(elapsed)
        _say(
            f"  idle: collect-only medians: on {statistics.median(collect_on):.2f} s, "
            f"off {statistics.median(collect_off):.2f} s"
        )
        with_plugin = _import_times(root, True)
        without = _import_times(root, False)
    extra = {name: us for name, us in with_plugin.items() if name not in without}
    heavy = sorted(
        name for name in extra if name.split(".")[0] in ("torch", "fvcore", "transformers")
    )
    return {
        "tests": IDLE_FILES * IDLE_TESTS_PER_FILE,
        "repeat": repeat,
        "on_s": on,
        "off_s": off,
        "median_on_s": statistics.median(on),
        "median_off_s": statistics.median(off),
        "ratio": statistics.median(on) / statistics.median(off),
        "paired_ratios": [a / b for a, b in zip(on, off, strict=True)],
        "collect_on_s": collect_on,
        "collect_off_s": collect_off,
        "median_collect_on_s": statistics.median(collect_on),
        "median_collect_off_s": statistics.median(collect_off),
        "plugin_import_ms": sum(extra.values()) / 1000,
        "plugin_modules": len(extra),
        "heavy_imports": heavy,
        "target": 1.03,
    }


# 3. a 7B decoder, abstractly ----------------------------------------------------------------


def bench_llm7b(quick: bool) -> dict[str, Any]:
    runs = []
    for index in range(1 if quick else 3):
        _say(f"  llm7b: fresh process {index + 1}")
        spec = {"task": "count", "tool": "plugin-torch", "model": "llama7b", "kind": "fake"}
        runs.append(run_worker({**spec, "repeat": 3}))
    return {"runs": runs, "target_s": 5.0, "target_rss_gb": 1.5}


# 4. ResNet-50 at batch 1, 16, 64 --------------------------------------------------------------


def bench_resnet(quick: bool) -> dict[str, Any]:
    rows = []
    for batch in (1, 16, 64):
        _say(f"  resnet: batch {batch}, abstract")
        spec = {"task": "count", "model": "resnet50", "batch": batch}
        fake = run_worker(
            {**spec, "tool": "plugin-torch", "kind": "fake", "repeat": 3 if quick else 7}
        )
        _say(f"  resnet: batch {batch}, real tensors (fvcore backend, for scale)")
        real = run_worker({**spec, "tool": "plugin-fvcore", "kind": "real", "repeat": 2})
        rows.append({"batch": batch, "abstract": fake, "real_fvcore": real})
    return {"rows": rows, "target_ratio": 1.5}


# 5. peers side by side ---------------------------------------------------------------------

PEER_MODELS = ("ffn", "small_cnn", "resnet50", "bert_base", "llama7b")
PEER_REPEAT = {"resnet50": 3, "bert_base": 3, "llama7b": 2}
"""Counts per process (best of); 5 for the others."""


def _peer_kinds(tool: str, model: str) -> tuple[str, ...]:
    """Real weights, except the 7B decoder (27 GB in fp32, more than this machine has).

    The 7B decoder is built fake (``flops.abstract()``) for everyone; the tools without
    fake-tensor support of their own are run inside its scope. Those are tried on the meta
    device too, the abstract form most of them document.
    """
    if model != "llama7b":
        return ("real",)
    if tool in ("plugin-fvcore", "plugin-torch", "FlopCounterMode"):
        return ("fake",)
    return ("meta", "fake")


def bench_peers(quick: bool) -> dict[str, Any]:
    missing = missing_peers()
    for tool in missing:
        _say(f"  peers: {tool} is not installed: pip install -r bench/requirements.txt")
    rows = []
    for model in PEER_MODELS:
        for tool in TOOLS:
            for kind in _peer_kinds(tool, model):
                _say(f"  peers: {tool} on {model} ({kind})")
                repeat = 1 if quick else PEER_REPEAT.get(model, 5)
                spec = {"task": "count", "tool": tool, "model": model, "kind": kind}
                result = run_worker({**spec, "repeat": repeat})
                rows.append({"tool": tool, "model": model, "kind": kind, **result})
    return {"rows": rows, "missing": missing}


# 9. what memory tracking costs ------------------------------------------------------------

MEMORY_CASES = (
    ("llama7b", "fake", "torch", 9),
    ("resnet50", "real", "fvcore", 5),
    ("resnet50", "real", "torch", 5),
)
"""(model, kind, backend, repetitions): the abstract 7B count and a real ResNet-50."""


def bench_memory(quick: bool) -> dict[str, Any]:
    rows = []
    for model, kind, backend, repeat in MEMORY_CASES:
        repeat = 2 if quick else repeat
        _say(f"  memory: {model} ({kind}, {backend}), best of {repeat}, interleaved")
        spec = {"task": "memory", "model": model, "kind": kind, "backend": backend}
        result = run_worker({**spec, "repeat": repeat}, timeout=1800)
        rows.append({"model": model, "kind": kind, "backend": backend, "repeat": repeat, **result})
    return {"rows": rows, "target": 1.10}


# 6-8. LLM serving and real models through fakes (bench/_llm_report.py renders them) -------------


def bench_llm70b(quick: bool) -> dict[str, Any]:
    runs = []
    for index in range(1 if quick else 3):
        _say(f"  llm70b: fresh process {index + 1}")
        spec = {"task": "count", "tool": "plugin-torch", "model": "llama70b", "kind": "fake"}
        runs.append(run_worker({**spec, "repeat": 3}))
    return {"runs": runs, "target_s": 2.0, "target_rss_gb": 0.5}


GENERATE_PROMPT, GENERATE_NEW = 2048, 128


def bench_generate7b(quick: bool) -> dict[str, Any]:
    runs = []
    for index in range(1 if quick else 3):
        _say(f"  generate7b: fresh process {index + 1}")
        spec = {"task": "generate", "prompt": GENERATE_PROMPT, "new_tokens": GENERATE_NEW}
        runs.append(run_worker(spec))
    return {"runs": runs, "prompt": GENERATE_PROMPT, "new_tokens": GENERATE_NEW, "target_s": 10.0}


def bench_realfakes(quick: bool) -> dict[str, Any]:
    spec = {"task": "count", "model": "resnet50", "batch": 64, "kind": "real"}
    _say("  realfakes: ResNet-50 batch 64, real weights, abstract=True")
    fake = run_worker({**spec, "tool": "plugin-abstract", "repeat": 3 if quick else 7})
    _say("  realfakes: ResNet-50 batch 64, real weights, fvcore backend")
    real = run_worker({**spec, "tool": "plugin-fvcore", "repeat": 1 if quick else 3})
    return {"batch": 64, "abstract": fake, "fvcore": real, "target_ratio": 0.05}


RUNNERS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "overhead": bench_overhead,
    "idle": bench_idle,
    "llm7b": bench_llm7b,
    "resnet": bench_resnet,
    "peers": bench_peers,
    "memory": bench_memory,
    "llm70b": bench_llm70b,
    "generate7b": bench_generate7b,
    "realfakes": bench_realfakes,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "benchmarks", nargs="*", metavar="BENCHMARK", help=f"any of {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke test)")
    parser.add_argument(
        "--output", type=Path, default=REPO_DIR / "BENCHMARKS.md", help="the report to write"
    )
    options = parser.parse_args(argv)
    unknown = [name for name in options.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    selected = options.benchmarks or list(BENCHMARKS)
    RESULTS_DIR.mkdir(exist_ok=True)
    command = "python bench/run.py" + "".join(f" {name}" for name in options.benchmarks)
    command += " --quick" if options.quick else ""
    for name in selected:
        _say(f"{name}: running (load average {_load()})")
        started = datetime.now(timezone.utc)
        load_before = _load()
        clock = time.perf_counter()
        result = RUNNERS[name](options.quick)
        result["meta"] = {
            "command": command,
            "quick": options.quick,
            "started": started.isoformat(timespec="seconds"),
            "duration_s": time.perf_counter() - clock,
            "load_before": load_before,
            "load_after": _load(),
            "machine": machine(),
        }
        path = RESULTS_DIR / f"{name}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        _say(
            f"{name}: done in {result['meta']['duration_s']:.0f} s -> {path.relative_to(REPO_DIR)}"
        )
    from _report import render

    options.output.write_text(render(RESULTS_DIR))
    _say(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
