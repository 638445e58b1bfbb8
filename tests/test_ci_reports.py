"""Reports for CI: Markdown (file and GitHub step summary) and JUnit XML properties."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from conftest import CONV_MACS, FFN_MACS, FFN_PARAMS

TESTS = """
import pytest, torch
from models import FFN, TinyConv, ffn_input

@pytest.mark.flop_budget(mmacs=1.1)
def test_ffn(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget(kmacs=10, on_exceed="warn")
def test_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
"""


def test_the_markdown_summary_is_written_to_a_file(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=TESTS)
    project.runpytest("--flop-budget-markdown=summary.md").assert_outcomes(passed=2)
    text = (project.path / "summary.md").read_text()
    assert text.splitlines()[:6] == [
        "## flop budget",
        "",
        "Convention: 1 FLOP = 1 MAC (fvcore's convention; flops_per_mac = 1); "
        'ops = "fvcore" (convolutions, matrix products, attention, norms, pooling, resampling).',
        "",
        "| test | name | FLOPs | MACs | params | memory | budget | used | status |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    # peak memory: 1,056,770 fp32 parameters + the input and two 1024-float activations
    assert f"{(FFN_PARAMS * 4 + 16 + 2 * 4096) / 2**20:.2f}" == "4.04"
    assert (
        "| `test_models.py::test_ffn` | FFN | 1.05 MFLOPs | 1.05 MMACs | 1.06M params | 4.04 MiB "
        "| 1.1 MMACs | 95.9% | ok |" in text
    )
    used = f"{CONV_MACS / 10_000:.1%}"  # 13,824 of 10,000 MACs
    assert (
        f"| 13.8 KFLOPs | 13.8 KMACs | 224 params | {_conv_peak()} | 10 KMACs | {used} "
        "| **over** (warn) |" in text
    )


def _conv_peak() -> str:
    """TinyConv's peak as the counter estimates it (its workspace is the counter's to test)."""
    import torch

    from pytest_flopbudget.budgets.resources import format_bytes
    from pytest_flopbudget.counting.counter import count_model

    conv = torch.nn.Conv2d(3, 8, kernel_size=3, padding=1)
    return format_bytes(count_model(conv, torch.randn(1, 3, 8, 8)).peak_memory)


def test_the_markdown_summary_is_appended_to_the_github_step_summary(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = project.path / "step-summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    project.makepyfile(test_models=TESTS)
    project.runpytest().assert_outcomes(passed=2)
    text = summary.read_text()
    assert text.startswith("# earlier step\n## flop budget\n")
    assert "`test_models.py::test_conv`" in text


def test_each_count_is_a_junit_property(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=TESTS)
    project.runpytest("--junitxml=junit.xml").assert_outcomes(passed=2)
    root = ET.parse(project.path / "junit.xml").getroot()
    cases = {case.get("name"): case for case in root.iter("testcase")}
    properties = {p.get("name"): p.get("value") for p in cases["test_ffn"].iter("property")}
    assert properties == {
        "flopbudget[FFN].flops": str(FFN_MACS),
        "flopbudget[FFN].macs": str(FFN_MACS),
        "flopbudget[FFN].params": str(FFN_PARAMS),
        "flopbudget[FFN].budget_flops": "1100000",
        "flopbudget[FFN].peak_memory": str(FFN_PARAMS * 4 + 16 + 2 * 4096),
        "flopbudget[FFN].status": "ok",
    }
    conv = {p.get("name"): p.get("value") for p in cases["test_conv"].iter("property")}
    assert conv["flopbudget[TinyConv].status"] == "over (warn)"


def test_hardware_columns_show_the_roofline_time_as_a_lower_bound(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject='[tool.flopbudget]\nhardware = ["T4"]\n')
    project.makepyfile(test_models=TESTS)
    result = project.runpytest()
    # The FFN on one fp32 row moves (read + written, 4 bytes each):
    #   fc1 (1024 bias + 4 x + 4096 weight + 1024 out) * 4 =    24,592
    #   2 relu (1024 in + 1024 out) * 4 * 2               =    16,384
    #   fc2 (1024 + 1024 + 1,048,576 + 1024) * 4          = 4,206,592
    #   fc3 (2 + 1024 + 2048 + 2) * 4                     =    12,304
    ffn_bytes = 24_592 + 16_384 + 4_206_592 + 12_304
    # every op is memory-bound on a T4 in fp32 (fc2: 2 * 1,048,576 / 8.1e12 = 0.26 us of
    # arithmetic against 4,206,592 / 320e9 = 13.1 us of traffic): 4,259,872 / 320e9 = 13.3 us
    assert f"{ffn_bytes / 320e9 * 1e6:.1f}" == "13.3"
    assert ffn_bytes / 320e9 > 2 * FFN_MACS / 8.1e12
    result.stdout.fnmatch_lines(
        [
            "*budget *used *T4 fp32 >= *status",
            "*test_ffn*95.9%  *13.3 us mem  ok",
            "T4 fp32 >=: lower bound on time, each op at the slower of 2*MACs/peak and*",
        ]
    )
    cli = project.runpytest("--flop-budget-hardware=A100:fp16")
    # 4,259,872 / 1555e9 = 2.74 us (its MACs alone: 2 * 1,054,720 / 312e12 = 6.76 ns)
    assert f"{ffn_bytes / 1555e9 * 1e6:.2f}" == "2.74"
    cli.stdout.fnmatch_lines(["*A100 fp16 >= *status", "*test_ffn*2.74 us mem  ok"])


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (
            "--flop-budget-hardware=T5",
            "--flop-budget-hardware=T5: hardware spec 'T5': unknown device 'T5'",
        ),
        ("pyproject", "[[]tool.flopbudget[]] hardware: hardware spec 'A100:fp8'"),
    ],
)
def test_an_unknown_device_is_a_usage_error(
    project: pytest.Pytester, where: str, problem: str
) -> None:
    args = [where] if where.startswith("--") else []
    if where == "pyproject":
        project.makefile(".toml", pyproject='[tool.flopbudget]\nhardware = ["A100:fp8"]\n')
    project.makepyfile(test_models=TESTS)
    result = project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-flopbudget: *{problem}*"])
