"""Time budgets on a named device: ``ms=2.0, device="A100:fp16"`` against the roofline lower bound.

The seed article's FFN (fp32) on a (1, 4) input moves, by hand (bytes read plus written):

    fc1   input 16 + weight 16,384 + bias 4,096 + output 4,096     =    24,592
    fc2   input 4,096 + weight 4,194,304 + bias 4,096 + out 4,096  = 4,206,592
    fc3   input 4,096 + weight 8,192 + bias 8 + output 8           =    12,304
    relu  twice, 4,096 in and 4,096 out                            =    16,384
    total                                                          = 4,259,872

Every op does at most 2 x 1,048,576 FLOPs on 4 MB, far below the A100's 312 TFLOP/s /
1,555 GB/s = 200 FLOPs per byte: all are memory-bound, and the lower bound on A100:fp16 is
4,259,872 / 1,555e9 s = 2.74 us.
"""

from __future__ import annotations

import pytest
from conftest import FFN_MACS, FFN_PARAMS

from pytest_flopbudget.budgets.budget import BudgetError, budget_from_entry, budget_from_marker
from pytest_flopbudget.budgets.config import Settings
from pytest_flopbudget.budgets.verdict import ERROR, OK, OVER, judge
from pytest_flopbudget.counting.count import Count, OpCost

FFN_BYTES = 24_592 + 4_206_592 + 12_304 + 2 * (4_096 + 4_096)
A100_BANDWIDTH = 1555e9
FFN_SECONDS = FFN_BYTES / A100_BANDWIDTH
WHERE = "t.py::test_x: @pytest.mark.flop_budget"

TEST_FFN = """
import pytest
import torch
from models import FFN

{marker}
def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4))
"""


def _count(op_costs: tuple[OpCost, ...], moved: int | None, macs: int = FFN_MACS) -> Count:
    return Count(
        name="FFN",
        flops=macs,
        macs=macs,
        params=FFN_PARAMS,
        flops_per_mac=1,
        backend="torch",
        bytes_moved=moved,
        op_costs=op_costs,
        peak_memory=4 * 2**20,
    )


def test_the_hand_arithmetic_gives_2_74_microseconds() -> None:
    assert FFN_BYTES == 4_259_872
    assert f"{FFN_SECONDS * 1e6:.2f}" == "2.74"


def test_a_time_budget_on_a_named_device_passes_and_fails_naming_the_bound(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    marker = '@pytest.mark.flop_budget(us=3, device="A100:fp16")'
    project.makepyfile(test_ffn=TEST_FFN.format(marker=marker))
    passed = project.runpytest(*plugin_args)
    passed.assert_outcomes(passed=1)
    used = f"{FFN_SECONDS / 3e-6:.1%}"  # 91.3%
    passed.stdout.fnmatch_lines(
        [f"*test_ffn*FFN*2.74 us, memory-bound*3 us on A100:fp16*{used}*ok"]
    )

    marker = '@pytest.mark.flop_budget(us=2.5, device="A100:fp16")'
    project.makepyfile(test_ffn=TEST_FFN.format(marker=marker))
    failed = project.runpytest(*plugin_args)
    failed.assert_outcomes(failed=1)
    excess = f"+{FFN_SECONDS / 2.5e-6 - 1:.1%}"  # +9.6%
    failed.stdout.fnmatch_lines(
        [f"*FFN: 2.74 us on A100:fp16, memory-bound (lower bound) exceeds budget 2.5 us ({excess})"]
    )


def test_a_time_budget_in_pyproject_is_an_inline_table_with_its_device(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    project.makefile(
        ".toml",
        pyproject='[tool.flopbudget.budgets]\nFFN = { us = 2, device = "A100:fp16", gib = 1 }\n',
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*FFN: 2.74 us on A100:fp16, memory-bound (lower bound) exceeds budget 2 us*"]
    )
    result.stdout.fnmatch_lines(["*FFN*4.04 MiB*2.74 us, memory-bound*1 GiB, 2 us on A100*"])


def test_the_update_rewrites_a_time_budget_rounded_up_in_its_unit(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    pyproject = project.makefile(
        ".toml", pyproject='[tool.flopbudget.budgets]\nFFN = { us = 1, device = "A100:fp16" }\n'
    )
    project.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    # 2.73946... us rounded up to four significant figures
    assert 'FFN = { us = 2.74, device = "A100:fp16" }' in pyproject.read_text()
    project.runpytest().assert_outcomes(passed=1)


def test_a_compute_bound_count_names_its_bound() -> None:
    budget = budget_from_marker((), {"ms": 5, "device": "A100:fp16"}, WHERE)
    assert budget is not None
    # 10^12 MACs = 2 x 10^12 FLOPs at 312 TFLOP/s: 6.41 ms; 1 MB at 1,555 GB/s: 0.64 us
    count = _count((OpCost(10**12, 10**6, 1),), 10**6, macs=10**12)
    (verdict,) = judge("t.py::test_x", [count], [budget], Settings())
    assert verdict.status == OVER
    assert verdict.seconds_bound == "compute"
    assert verdict.message.splitlines()[0] == (
        "FFN: 6.41 ms on A100:fp16, compute-bound (lower bound) exceeds budget 5 ms (+28.2%)"
    )


def test_a_budget_may_combine_compute_memory_and_time_and_shows_each() -> None:
    budget = budget_from_marker(
        (), {"gflops": 2000, "gib": 16, "ms": 7, "device": "A100:fp16"}, WHERE
    )
    assert budget is not None
    count = _count((OpCost(10**12, 10**6, 1),), 10**6, macs=10**12)
    (verdict,) = judge("t.py::test_x", [count], [budget], Settings())
    assert verdict.status == OK
    assert verdict.budget_label == "2000 GFLOPs, 16 GiB, 7 ms on A100:fp16"
    assert verdict.seconds == pytest.approx(2e12 / 312e12)


def test_a_time_budget_on_counts_without_bytes_is_an_error_never_a_pass() -> None:
    budget = budget_from_marker((), {"ms": 5, "device": "A100:fp16"}, WHERE)
    assert budget is not None
    (verdict,) = judge("t.py::test_x", [_count((), None)], [budget], Settings())
    assert verdict.status == ERROR
    assert verdict.message.startswith(
        f"{WHERE}: time budget on A100:fp16 for 'FFN', but the count of 'FFN' has no bytes per op"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"ms": 2.0},
            'ms= needs the device its lower bound is computed on, e.g. device="A100:fp16"',
        ),
        ({"gflops": 1, "device": "A100:fp16"}, "device='A100:fp16' needs a time budget"),
        ({"ms": -1, "device": "A100:fp16"}, "ms must be a positive number, got -1"),
        ({"ms": 1, "s": 1, "device": "A100:fp16"}, "give at most one time unit"),
        ({"ms": 2, "device": "Z80:fp16"}, "device: hardware spec 'Z80:fp16': unknown device 'Z80'"),
        ({"ms": 2, "device": "T4:bf16"}, "device: hardware spec 'T4:bf16': T4 has no bf16 peak"),
        ({"ms": 2, "device": 3}, "device must be a device spec such as"),
    ],
)
def test_bad_time_budgets_in_a_marker_are_refused_naming_the_place(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(BudgetError) as error:
        budget_from_marker((), kwargs, WHERE)
    assert str(error.value).startswith(f"{WHERE}: {message}")


def test_a_time_in_a_pyproject_string_is_refused_with_the_table_to_write() -> None:
    with pytest.raises(BudgetError) as error:
        budget_from_entry("FFN", "2 ms", "pyproject.toml: 'FFN'", is_nodeid=False)
    assert str(error.value) == (
        "pyproject.toml: 'FFN': a time budget needs the device it is computed on, which a "
        'string cannot carry; write a table: { ms = 2, device = "A100:fp16" }'
    )


def test_a_marker_string_may_carry_the_time_beside_its_device() -> None:
    budget = budget_from_marker(("2 ms",), {"device": "A100:fp16"}, WHERE)
    assert budget is not None and budget.time is not None
    assert (budget.time.base_value, budget.device) == (0.002, "A100:fp16")


def test_a_bad_time_budget_in_a_marker_errors_the_test_naming_it(project: pytest.Pytester) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker="@pytest.mark.flop_budget(ms=2.0)"))
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_ffn.py::test_ffn: @pytest.mark.flop_budget: ms= needs the device its lower "
            'bound is computed on, e.g. device="A100:fp16"'
        ]
    )


def test_an_unknown_device_in_pyproject_is_a_usage_error_naming_the_key(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    project.makefile(
        ".toml", pyproject='[tool.flopbudget.budgets]\nFFN = { ms = 2, device = "Z80" }\n'
    )
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "pyproject.toml: [tool.flopbudget.budgets] 'FFN': device: hardware spec 'Z80': "
        "unknown device 'Z80'" in result.stderr.str()
    )


TOY_TPU = """
def pytest_flopbudget_hardware(config):
    return {"Toy_TPU": {"peaks": {"fp32": 1e12, "bf16": 4e12}, "bandwidth": 1e11,
                        "source": "https://example.com/toy-tpu"}}
"""


def test_a_time_budget_may_name_a_device_a_plugin_contributed(project: pytest.Pytester) -> None:
    project.makeconftest(TOY_TPU)
    marker = '@pytest.mark.flop_budget(us=40, device="Toy_TPU:bf16")'
    project.makepyfile(test_ffn=TEST_FFN.format(marker=marker))
    project.makefile(
        ".toml",
        pyproject='[tool.flopbudget.budgets]\nFFN = { us = 43, device = "Toy_TPU:bf16" }\n',
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    # 4,259,872 bytes at 1e11 bytes/s = 42.6 us; 42.59872 / 40 = +6.5%
    assert f"{FFN_BYTES / 1e11 * 1e6:.1f}" == "42.6"
    result.stdout.fnmatch_lines(
        ["*FFN: 42.6 us on Toy_TPU:bf16, memory-bound (lower bound) exceeds budget 40 us (+6.5%)"]
    )
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))  # the pyproject entry applies
    project.runpytest().assert_outcomes(passed=1)
