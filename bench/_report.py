"""Render BENCHMARKS.md from ``bench/results/*.json`` (written by ``bench/run.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median
from typing import Any

import _llm_report
from _counters import TOOL_LABELS
from _format import GB, MIB
from _format import gb as _gb
from _format import run_line as _run_line
from _format import seconds as _s
from _format import table as _table
from _format import verdict as _verdict
from _models import label


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} MiB"


def _macs(macs: int | None) -> str:
    if macs is None:
        return "-"
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if macs >= scale:
            return f"{macs / scale:.4f} {unit}"
    return str(macs)


def _params(params: int | None) -> str:
    if params is None:
        return "-"
    return f"{params / 1e9:.3f} B" if params >= 1e9 else f"{params / 1e6:.3f} M"


# 1 ------------------------------------------------------------------------------------------


def _overhead(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    target = data["target"]
    rows, torch_rows, summary = [], [], []
    all_ok = True
    met = 0
    for row in data["rows"]:
        name = label(row["model"])
        if "error" in row:
            rows.append([name, row["error"], *[""] * 7])
            all_ok = False
            continue
        best, macs = row["best_s"], row["macs"]
        ratio = best["plugin_fvcore"] / best["bare_fvcore_no_grad"]
        ratio_as_written = best["plugin_fvcore"] / best["bare_fvcore"]
        times = row["times_s"]
        ratio_medians = median(times["plugin_fvcore"]) / median(times["bare_fvcore_no_grad"])
        ok = ratio <= target
        all_ok &= ok
        same = "same" if macs["plugin_fvcore"] == macs["bare_fvcore"] else "differ"
        rows.append(
            [
                name,
                _s(best["bare_fvcore"]),
                _s(best["bare_fvcore_no_grad"]),
                _s(best["plugin_fvcore"]),
                f"**{ratio:.3f}**",
                f"{ratio_as_written:.3f}",
                f"{ratio_medians:.3f}",
                f"{_macs(macs['bare_fvcore'])} / {_macs(macs['plugin_fvcore'])} ({same})",
                _verdict(ok),
            ]
        )
        torch_rows.append(
            [
                name,
                _s(best["bare_flop_counter_mode"]),
                _s(best["plugin_torch"]),
                f"{best['plugin_torch'] / best['bare_flop_counter_mode']:.3f}",
                f"{_macs(macs['bare_flop_counter_mode'])} / {_macs(macs['plugin_torch'])}",
            ]
        )
        summary.append(f"{row['model']} {ratio:.2f}")
        met += ok
    repeat = ", ".join(f"{row['model']} {row['repeat']}" for row in data["rows"])
    text = [
        "## 1. Counting overhead",
        "",
        _run_line(data["meta"]),
        "",
        "The plugin's `flops(model, inputs)` (the fixture's own callable, default fvcore "
        "backend) against bare `FlopCountAnalysis(model, inputs).total()` on the same model "
        f"object in the same process, interleaved, best of N ({repeat}). The plugin counts "
        "under `torch.no_grad()`, so the ratio that is judged is against bare fvcore under "
        "`no_grad` too; bare fvcore exactly as written (grad on) is the next column. Target: "
        f"ratio <= {target:.2f}.",
        "",
        _table(
            [
                "model",
                "bare fvcore (as written)",
                "bare fvcore, no_grad",
                "plugin `flops(...)`",
                "ratio (vs no_grad)",
                "ratio (vs as written)",
                "ratio of medians (vs no_grad)",
                "MACs bare / plugin",
                "target <= 1.10",
            ],
            rows,
        ),
        "",
        "For reference (no target), the torch backend against bare `FlopCounterMode` under "
        "`no_grad` (MACs = its FLOPs / 2):",
        "",
        _table(
            [
                "model",
                "bare FlopCounterMode",
                'plugin `backend="torch"`',
                "ratio",
                "MACs bare / plugin",
            ],
            torch_rows,
        ),
        "",
    ]
    text += _overhead_analysis(data, all_ok)
    line = (
        f"| 1 | counting overhead, `flops(...)` / bare `FlopCountAnalysis(...).total()` | "
        f"<= {target:.2f} | {', '.join(summary)} (met on {met} of {len(data['rows'])}) | "
        f"{_verdict(all_ok)} |"
    )
    return text, [line]


def _overhead_analysis(data: dict[str, Any], all_ok: bool) -> list[str]:
    verdict = (
        "The target is met on every model."
        if all_ok
        else "**The target is missed, and the plugin is the cause**: the trace is the same "
        "in both columns, so the difference is the plugin's own work around it."
    )
    return [
        "### Analysis",
        "",
        verdict + " The benchmarks import only the plugin's public API (`count_model`, "
        "`FlopCounter`), so they time what a user runs; a layer-by-layer attribution needs "
        "the internals and is a profiler's job (`python -m cProfile`), not the bench's.",
        "",
    ]


def _idle(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    ok = data["ratio"] <= data["target"]
    paired = sorted(data["paired_ratios"])
    heavy = ", ".join(data["heavy_imports"]) or "none (no torch, fvcore or transformers)"
    text = [
        "## 2. Idle overhead",
        "",
        _run_line(data["meta"]),
        "",
        f"A generated suite of {data['tests']:,} trivial tests (20 files, no `flops` fixture, "
        "no budgets) in a temporary directory with its own `pytest.ini`, run as "
        "`python -m pytest -q -p no:cacheprovider` with the plugin and with "
        f"`-p no:flopbudget` added; {data['repeat']} runs each after one warm-up each, "
        "interleaved (alternating which goes first), medians compared. Bytecode caching is on "
        "(`PYTHONDONTWRITEBYTECODE` unset for these runs), as in a user's checkout.",
        "",
        _table(
            ["runs", "median, plugin on", "median, `-p no:flopbudget`", "ratio", "target <= 1.03"],
            [
                [
                    f"full run, {data['repeat']} + {data['repeat']}",
                    _s(data["median_on_s"]),
                    _s(data["median_off_s"]),
                    f"**{data['ratio']:.3f}**",
                    _verdict(ok),
                ],
                [
                    "`--collect-only` (start-up + collection), same counts",
                    _s(data["median_collect_on_s"]),
                    _s(data["median_collect_off_s"]),
                    f"{data['median_collect_on_s'] / data['median_collect_off_s']:.3f}",
                    "(no target)",
                ],
            ],
        ),
        "",
        f"- All runs, plugin on: {', '.join(f'{t:.2f}' for t in data['on_s'])} s; off: "
        f"{', '.join(f'{t:.2f}' for t in data['off_s'])} s. Paired ratios (on/off, same "
        f"round): min {paired[0]:.3f}, median {paired[len(paired) // 2]:.3f}, max "
        f"{paired[-1]:.3f}.",
        f"- Start-up imports (`python -X importtime`, collection-only run): the plugin adds "
        f"{data['plugin_modules']} modules, {data['plugin_import_ms']:.1f} ms of import time. "
        f"Heavy libraries imported at start-up: {heavy}. torch is imported only by a test "
        "that counts.",
        _idle_split(data),
        "",
        *_idle_analysis(data, ok),
    ]
    line = (
        f"| 2 | idle overhead, {data['tests']:,} tests without budgets, on / off (median) | "
        f"<= {data['target']:.2f} | {data['ratio']:.3f} | {_verdict(ok)} |"
    )
    return text, [line]


def _idle_split(data: dict[str, Any]) -> str:
    extra = data["median_on_s"] - data["median_off_s"]
    startup = data["median_collect_on_s"] - data["median_collect_off_s"]
    per_test_us = (extra - startup) / data["tests"] * 1e6
    return (
        f"- Split (medians): the plugin adds {extra * 1000:.0f} ms to the full run, of which "
        f"{startup * 1000:.0f} ms already appear with `--collect-only` (import, "
        f"`pytest_configure`, collection hooks) and the other {(extra - startup) * 1000:.0f} "
        f"ms come from running the tests: about {per_test_us:.0f} us per test."
    )


def _idle_analysis(data: dict[str, Any], ok: bool) -> list[str]:
    paired = sorted(data["paired_ratios"])
    noise = (
        f"Run-to-run noise on this shared 2-core machine is large (paired ratios "
        f"{paired[0]:.2f} to {paired[-1]:.2f}), so only the medians of the interleaved runs "
        "and their agreement with the collect-only split are worth reading."
    )
    why = (
        "The plugin registers its per-test hooks only when some collected test requests "
        "`flops`, carries a `flop_budget` marker or has a pyproject budget keyed by its node "
        "id, and imports its report writers (and tomlkit) only when there is something to "
        "report: a suite that does not use it pays for importing a few small modules, "
        "`pytest_configure` and one cheap `pytest_runtest_logreport` per phase."
    )
    if ok:
        return ["### Analysis", "", "The target is met. " + why + " " + noise, ""]
    return [
        "### Analysis",
        "",
        "**The target is missed, and the plugin is the cause** (nothing else differs between "
        "the two runs). " + noise + " The overhead has two parts:",
        "",
        why,
        "",
    ]


# 3 ------------------------------------------------------------------------------------------


def _llm7b(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    rows, walls, peaks = [], [], []
    failed = None
    for index, run in enumerate(data["runs"], 1):
        if "error" in run:
            failed = run["error"]
            rows.append([str(index), failed, "", "", "", "", "", ""])
            continue
        cold = run["build_s"] + run["count_times_s"][0]
        walls.append(cold)
        peaks.append(run["peak_rss_mib"])
        rows.append(
            [
                str(index),
                _s(run["import_s"]),
                _s(run["build_s"]),
                _s(run["count_times_s"][0]),
                _s(run["count_s"]),
                f"**{_s(cold)}**",
                _s(run["process_wall_s"]),
                f"**{_mib(run['peak_rss_mib'])}** ({_gb(run['peak_rss_mib'])}), count alone "
                f"+{run['count_extra_mib']:.0f} MiB",
            ]
        )
    macs = next((run["macs"] for run in data["runs"] if "macs" in run), None)
    params = next((run["params"] for run in data["runs"] if "params" in run), None)
    wall_ok = bool(walls) and max(walls) <= data["target_s"] and failed is None
    rss_ok = bool(peaks) and max(peaks) * MIB / GB <= data["target_rss_gb"] and failed is None
    text = [
        "## 3. A 7B-parameter decoder, abstractly",
        "",
        _run_line(data["meta"]),
        "",
        "transformers' `LlamaForCausalLM` from a Llama-2-7B-shaped `LlamaConfig` (hidden 4096, "
        "32 layers, 32 heads, intermediate 11008, vocab 32000), built inside the fixture's "
        "`flops.abstract()` with `input_ids` of shape (1, 2048), counted by `flops(model, "
        '{"input_ids": ids})` (torch backend, as for every abstract count). Each run is a '
        "fresh interpreter; peak RSS is the process's VmHWM (imports, build and counts "
        "included). Wall time judged: building the model plus the first count (what a test "
        "does); imports and interpreter start are in the process column.",
        "",
        f"Count: {macs:,} MACs, {params:,} parameters."
        if macs is not None and params is not None
        else "No count.",
        "",
        _table(
            [
                "run",
                "import torch + transformers",
                "build (fake)",
                "first count",
                "best of 3 counts",
                "build + first count",
                "whole process",
                "peak RSS (process)",
            ],
            rows,
        ),
        "",
        f"Targets: <= {data['target_s']:.0f} s wall: {_verdict(wall_ok)} (worst "
        f"{max(walls):.2f} s); <= {data['target_rss_gb']} GB peak RSS: {_verdict(rss_ok)} "
        f"(worst {_gb(max(peaks)) if peaks else '-'}).",
        "",
    ]
    lines = [
        f"| 3 | Llama-2-7B shape at sequence 2048, build + count, wall | <= "
        f"{data['target_s']:.0f} s | {max(walls):.2f} s | {_verdict(wall_ok)} |"
        if walls
        else f"| 3 | Llama-2-7B, wall | <= {data['target_s']:.0f} s | {failed} | **MISSED** |",
        f"| 3 | Llama-2-7B shape at sequence 2048, peak RSS of the process | <= "
        f"{data['target_rss_gb']} GB | {_gb(max(peaks)) if peaks else '-'} | {_verdict(rss_ok)} |",
    ]
    good = [run for run in data["runs"] if "error" not in run]
    if good:
        imports = min(run["import_s"] for run in good)
        process = max(run["process_wall_s"] for run in good)
        text += [
            "### Analysis",
            "",
            (
                "Both targets are met with a wide margin"
                if wall_ok and rss_ok
                else "**A target is missed** (see the table)"
            )
            + f": building the fake model takes ~{_s(min(run['build_s'] for run in good))} (no "
            "weights allocated or initialised) and the count "
            f"~{_s(min(run['count_s'] for run in good))}; the count itself adds "
            f"{max(run['count_extra_mib'] for run in good):.0f} MiB. Almost all of the "
            "process's peak RSS is the imported libraries (torch and transformers). The whole "
            f"process, interpreter start and imports included, takes up to {_s(process)}, of "
            f"which {_s(imports)} or more is importing torch and transformers: a test run pays "
            "that once, whatever it counts"
            + (
                f" (read as the wall time of a whole fresh process, the {data['target_s']:.0f} s "
                "target would be missed, by the imports alone)"
                if process > data["target_s"]
                else ""
            )
            + ". The count is exact: it equals the closed form in "
            "`examples/tests/test_llm.py` (which guards this model in the examples' run).",
            "",
        ]
    return text, lines


# 4 ------------------------------------------------------------------------------------------


def _resnet(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    rows = []
    base = next((row["abstract"].get("count_s") for row in data["rows"] if row["batch"] == 1), None)
    ratio = None
    for row in data["rows"]:
        fake, real = row["abstract"], row["real_fvcore"]
        if "error" in fake:
            rows.append([str(row["batch"]), fake["error"], "", "", "", "", ""])
            continue
        this = fake["count_s"] / base if base else None
        if row["batch"] == 64:
            ratio = this
        real_time = real.get("error") or _s(real.get("count_s"))
        real_rss = "-" if "error" in real else _mib(real.get("count_peak_rss_mib"))
        rows.append(
            [
                str(row["batch"]),
                _macs(fake["macs"]),
                f"**{_s(fake['count_s'])}**",
                f"{this:.2f}x" if this is not None else "-",
                _mib(fake["peak_rss_mib"]),
                real_time,
                real_rss,
            ]
        )
    ok = ratio is not None and ratio <= data["target_ratio"]
    text = [
        "## 4. ResNet-50 at batch 1, 16 and 64",
        "",
        _run_line(data["meta"]),
        "",
        "transformers' `ResNetForImageClassification(ResNetConfig(num_labels=1000))` "
        "(ResNet-50's layout), built inside `flops.abstract()` with a (batch, 3, 224, 224) "
        "input; abstract count time is the best of N counts in a fresh process per batch. "
        "For scale, the same model with real weights and inputs counted by the default fvcore "
        "backend (best of two counts, fresh process; its peak is the RSS while counting). "
        "Target: the "
        f"abstract count at batch 64 within {data['target_ratio']}x of batch 1.",
        "",
        _table(
            [
                "batch",
                "MACs",
                "abstract count",
                "vs batch 1",
                "peak RSS (abstract, process)",
                "real tensors, fvcore backend",
                "peak RSS while counting (real)",
            ],
            rows,
        ),
        "",
    ]
    reals = [row["real_fvcore"] for row in data["rows"] if "count_s" in row["real_fvcore"]]
    if ratio is not None and len(reals) == len(data["rows"]):
        text += [
            "### Analysis",
            "",
            f"{'The target is met' if ok else '**The target is missed**'}: fake tensors carry "
            "shapes only, so an abstract count does the same Python and dispatcher work at "
            f"every batch size ({ratio:.2f}x from batch 1 to 64) and needs no memory for "
            "activations. Counting real tensors runs the real forward: with the fvcore "
            f"backend it grows from {_s(reals[0]['count_s'])} at batch 1 to "
            f"{_s(reals[-1]['count_s'])} at batch 64, and its peak RSS while counting from "
            f"{_mib(reals[0]['count_peak_rss_mib'])} to {_mib(reals[-1]['count_peak_rss_mib'])}. "
            "The MACs scale exactly with the batch (4,111,512,576 per image).",
            "",
        ]
    line = (
        f"| 4 | ResNet-50 abstract count time, batch 64 / batch 1 | <= "
        f"{data['target_ratio']}x | {ratio:.2f}x | {_verdict(ok)} |"
        if ratio is not None
        else "| 4 | ResNet-50 | - | failed | **MISSED** |"
    )
    return text, [line]


# 5 ------------------------------------------------------------------------------------------


def _peers(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    text = [
        "## 5. Side by side",
        "",
        _run_line(data["meta"]),
        "",
        "Every tool on the same models, one fresh process per tool and model (so peak RSS is "
        "the tool's own); count time is the best of N counts in that process (5; 3 for "
        "ResNet-50 and BERT, 2 for the 7B decoder), and the first count (warm-up included: a "
        "test counts once) is shown too. Everything in "
        "MACs (1 multiply-accumulate = 1): fvcore, ptflops, thop and the plugin report MACs; "
        "`FlopCounterMode` reports 2 FLOPs per MAC and is halved; calflops' MACs output is "
        "used. Real weights, except the 7B decoder (27 GB of fp32 weights, more than this "
        "machine's RAM): it is built fake (`flops.abstract()`) and each tool without "
        "fake-tensor support of its own is run inside that fake mode; those are also tried on "
        "the meta device. 'extra while counting' is peak RSS during the counts minus RSS "
        "before them (VmHWM reset in between); 'process peak' includes imports and the model.",
        "",
    ]
    if data["missing"]:
        text += [
            f"Not installed here: {', '.join(data['missing'])} "
            "(`pip install -r bench/requirements.txt`).",
            "",
        ]
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in data["rows"]:
        by_model.setdefault(row["model"], []).append(row)
    for model, rows in by_model.items():
        reference = next(
            (r.get("macs") for r in rows if r["tool"] == "plugin-fvcore" and "macs" in r), None
        )
        table = []
        for row in rows:
            tool = TOOL_LABELS[row["tool"]] + ("" if row["kind"] == "real" else f" [{row['kind']}]")
            if "error" in row:
                table.append([tool, row["error"].replace("|", "/"), *[""] * 7])
                continue
            diff = "-"
            if reference:
                delta = (row["macs"] - reference) / reference
                diff = "=" if row["macs"] == reference else f"{delta:+.2%}"
            table.append(
                [
                    tool,
                    _macs(row["macs"]),
                    diff,
                    _params(row["params"]),
                    _s(row["count_s"]),
                    _s(row["count_times_s"][0]),
                    _mib(row["count_extra_mib"]),
                    _mib(row["peak_rss_mib"]),
                    row.get("note", "") or "",
                ]
            )
        text += [
            f"### {label(model)}",
            "",
            _table(
                [
                    "tool",
                    "MACs",
                    "vs plugin",
                    "params",
                    "count time (best)",
                    "first count",
                    "extra while counting",
                    "process peak",
                    "note",
                ],
                table,
            ),
            "",
        ]
    text += [
        "### Analysis",
        "",
        "- **Counts.** Where the tools disagree, it is over what is counted, not "
        "arithmetic. Attention: only the plugin counts `scaled_dot_product_attention` (its "
        "two matmuls, `2*L^2*d` per layer); fvcore, ptflops, thop and calflops do not see "
        "it, and `FlopCounterMode` has formulas for the CUDA kernels only, not for "
        "`_scaled_dot_product_flash_attention_for_cpu`, which is what runs on CPU. That is "
        "BERT's -2.7 % (12 x 2 x 128^2 x 768 = 301,989,888 MACs) and the 7B decoder's "
        "-7.5 % (32 x 2 x 2048^2 x 4096 = 1,099,511,627,776 MACs). On the CNNs, "
        "`FlopCounterMode` and calflops count convolutions and matmuls only (no batch norm "
        "or pooling, -0.5 % to -1.2 %), while ptflops and thop also count activations, "
        "batch norm and pooling elementwise (+0.4 % to +1.2 %); the plugin keeps fvcore's "
        "convention, so its fvcore and torch backends agree with bare fvcore everywhere but "
        "attention. thop's params for BERT leave out the embeddings (it only sums modules it "
        "has rules for).",
        "- **Time.** With real tensors every tool runs the model's forward once, so on the "
        "larger models the times are close; the hook-based tools (ptflops, thop, calflops) "
        "and the dispatcher-based ones (`FlopCounterMode`, the plugin's torch backend) skip "
        "the JIT trace that fvcore (bare and as the plugin's default backend) builds and "
        "walks, and are faster on ResNet-50 and BERT. The first count in a process of a "
        "dispatcher-based tool includes a one-time warm-up of torch's dispatch-mode "
        "machinery (about a second here), visible in the 'first count' column on the tiny "
        "models.",
        "- **Memory.** Bare fvcore as written traces with grad enabled, so autograd keeps "
        "activations for a backward that never comes; the plugin counts under `no_grad` and "
        "its fvcore backend peaks lower on ResNet-50 and BERT.",
        "- **A 7B decoder.** Only abstract counting can fit it on this machine. On the meta "
        "device every tool fails inside transformers' rotary embedding "
        '(`torch.autocast(device_type="meta")`: unsupported scalarType), which is why the '
        "plugin builds fake tensors instead. Handed the plugin's fake model inside its fake "
        "mode, fvcore's JIT trace meets a real scalar tensor, thop reads a tensor value "
        "(data-dependent), calflops fails moving the model between devices; ptflops' hooks "
        "work on shapes and count it, missing attention like `FlopCounterMode`.",
        "",
    ]
    return text, ["| 5 | side by side with peers | (no target) | see section 5 | - |"]


def _memory(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    target = data["target"]
    rows, summary = [], []
    all_ok = True
    for row in data["rows"]:
        name = f"{label(row['model'])}, {row['kind']}, {row['backend']} backend"
        if "error" in row:
            rows.append([name, row["error"], *[""] * 7])
            all_ok = False
            continue
        best, cpu = row["best_s"], row["best_cpu_s"]
        ratio = cpu["on"] / cpu["off"]
        wall = best["on"] / best["off"]
        medians = median(row["cpu_s"]["on"]) / median(row["cpu_s"]["off"])
        ok = ratio <= target
        all_ok &= ok
        same = "same" if row["macs"]["on"] == row["macs"]["off"] else "**differ**"
        rows.append(
            [
                name,
                f"{_s(cpu['off'])} ({_s(best['off'])})",
                f"{_s(cpu['on'])} ({_s(best['on'])})",
                f"**{ratio:.3f}**",
                f"{medians:.3f}",
                f"{wall:.3f}",
                f"{row['peak_memory'] / 2**30:.2f} GiB / {row['bytes_moved'] / 2**30:.2f} GiB "
                f"({row['op_costs']} op costs)",
                f"{_macs(row['macs']['on'])} ({same})",
                _verdict(ok),
            ]
        )
        summary.append(f"{row['model']} {row['kind']} {row['backend']} {ratio:.2f}")
    repeat = ", ".join(f"{row['model']} {row['backend']} {row['repeat']}" for row in data["rows"])
    text = [
        "## 9. Memory tracking overhead",
        "",
        _run_line(data["meta"]),
        "",
        "`count_model(model, inputs)` with memory tracking (bytes moved, peak memory, op "
        "costs: the default) against `count_model(..., memory=False)`, on the same model in "
        f"the same process, interleaved, alternating which goes first, best of N ({repeat}), "
        "after one warm-up count. Times are the process's CPU time (`time.process_time()`, all "
        "threads), wall time in parentheses: the machine is shared (see the load average), and "
        "CPU time is what contention disturbs least; the ratio of wall times is given too. "
        f"Target: ratio <= {target:.2f}.",
        "",
        _table(
            [
                "model",
                "memory off, CPU (wall)",
                "memory on, CPU (wall)",
                "ratio (CPU, best)",
                "ratio of medians (CPU)",
                "ratio (wall, best)",
                "peak memory / bytes moved",
                "MACs (on vs off)",
                f"target <= {target:.2f}",
            ],
            rows,
        ),
        "",
    ]
    line = (
        f"| 9 | memory tracking overhead, counting with / without | <= {target:.2f} | "
        f"{', '.join(summary)} | {_verdict(all_ok)} |"
    )
    return text, [line]


SECTIONS = {
    "overhead": _overhead,
    "idle": _idle,
    "llm7b": _llm7b,
    "resnet": _resnet,
    "peers": _peers,
    "llm70b": _llm_report.llm70b,
    "generate7b": _llm_report.generate7b,
    "realfakes": _llm_report.realfakes,
    "memory": _memory,
}


def _machine(meta: dict[str, Any]) -> list[str]:
    m = meta["machine"]
    versions = m["versions"]
    rows = [
        [
            "CPU",
            f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable, torch threads {m['torch_threads']})",
        ],
        ["RAM", f"{m['ram_gib']} GiB, no GPU"],
        ["OS", m["os"]],
        ["Python", m["python"]],
        *[[name, versions[name]] for name in versions],
        ["pytest-flopbudget", m["plugin"]],
    ]
    return ["## Machine and versions", "", _table(["", ""], rows), ""]


def render(results: Path, analysis: str = "") -> str:
    found = {name: data for name in SECTIONS if (data := _load(results, name)) is not None}
    out = [
        "# Benchmarks",
        "",
        "Reproduce with one command from the repository root (the project's venv, plus the "
        "peers of section 5: `pip install -r bench/requirements.txt`, which leaves torch as "
        "it is):",
        "",
        "```bash",
        "python bench/run.py                  # all of them, then this file is rewritten",
        "python bench/run.py overhead         # or some: overhead idle llm7b resnet peers",
        "                                     #   memory llm70b generate7b realfakes",
        "```",
        "",
        "Each benchmark stores its raw numbers in `bench/results/<name>.json`; this file is "
        "rendered from them by `bench/_report.py` (edit the analysis there, not here). "
        "Wall times are `time.perf_counter()`; peak RSS is `VmHWM` of a fresh process. "
        "Counts are in MACs throughout (1 multiply-accumulate = 1, fvcore's convention; "
        "`FlopCounterMode`'s FLOPs are halved). The machine is shared with other work while "
        "these run (each section gives the load average before and after), so times are "
        "best-of-N or medians of interleaved runs, and comparisons are made within one "
        "process or one interleaved series, never across sections.",
        "",
    ]
    if not found:
        return "\n".join([*out, "No results yet.", ""])
    first = next(iter(found.values()))["meta"]
    out += _machine(first)
    summary = ["| # | benchmark | target | measured | result |", "|---|---|---|---|---|"]
    body: list[str] = []
    for name, data in found.items():
        text, lines = SECTIONS[name](data)
        summary += lines
        body += text
    out += ["## Summary", "", *summary, "", *body]
    if analysis:
        out += [analysis, ""]
    return "\n".join(out)
