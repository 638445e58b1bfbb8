"""One test, one row, one outcome: failures, reruns and the report-only switch."""

from __future__ import annotations

import json

import pytest

from pytest_flopbudget.cli import main

OVER = """
import torch
from torch import nn
import pytest

@pytest.mark.flop_budget(macs=10)
def test_over(flops):
    flops(nn.Linear(4, 4), torch.randn(1, 4))  # 16 MACs
"""


def _outcomes(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "rerun")}


def test_a_failing_test_that_is_also_over_budget_fails_once_with_the_excess_in_its_report(
    pytester: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_both=OVER + "    assert False, 'the output is wrong'\n")
    result = pytester.runpytest(*plugin_args)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*the output is wrong*",
            "*- flop budget -*",
            "Linear: 16 MACs exceeds budget 10 MACs (+60.0%)",
        ]
    )


def test_reruns_keep_the_final_attempt_only(
    pytester: pytest.Pytester,
    plugin_args: tuple[str, ...],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pytester.makepyfile(test_over=OVER)
    result = pytester.runpytest(*plugin_args, "--reruns=3", "--flop-budget-json=report.json")
    assert _outcomes(result) == {"failed": 1, "rerun": 3}
    result.stdout.fnmatch_lines(["1 counted: 1 over"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert [row["nodeid"] for row in report["results"]] == ["test_over.py::test_over"]
    assert (
        main(["compare", str(pytester.path / "report.json"), str(pytester.path / "report.json")])
        == 0
    )


FLAKY = """
import pathlib
import torch
from torch import nn

def test_flaky(flops):
    attempts = pathlib.Path("attempts")
    attempts.write_text(attempts.read_text() + "x" if attempts.exists() else "x")
    width = 4 * len(attempts.read_text())
    flops(nn.Linear(4, width), torch.randn(1, 4))
    assert width == 12, "flaky"
"""


def test_a_test_that_passes_on_its_third_attempt_reports_that_attempt(
    pytester: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_flaky=FLAKY)
    result = pytester.runpytest(*plugin_args, "--reruns=3", "--flop-budget-json=report.json")
    assert _outcomes(result) == {"passed": 1, "rerun": 2}
    report = json.loads((pytester.path / "report.json").read_text())
    # the third attempt's Linear(4, 12): 48 MACs
    assert [(row["nodeid"], row["macs"]) for row in report["results"]] == [
        ("test_flaky.py::test_flaky", 48)
    ]


def test_report_only_shows_the_excess_and_fails_no_test(
    pytester: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    pytester.makepyfile(test_over=OVER.replace("macs=10", 'macs=10, on_exceed="fail"'))
    result = pytester.runpytest(*plugin_args, "--flop-budget-report-only")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*test_over*over (warn)*", "flop budget: report only, budgets fail no test in this run"]
    )


def test_report_only_can_be_set_in_pyproject_and_the_command_line_wins(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_over=OVER)
    pytester.makefile(".toml", pyproject="[tool.flopbudget]\nreport_only = true\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.makefile(".toml", pyproject="[tool.flopbudget]\nreport_only = false\n")
    pytester.runpytest().assert_outcomes(failed=1)
    pytester.runpytest("--flop-budget-report-only").assert_outcomes(passed=1)


def test_a_report_only_value_that_is_not_a_boolean_is_a_usage_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_over=OVER)
    pytester.makefile(".toml", pyproject='[tool.flopbudget]\nreport_only = "yes"\n')
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: [[]tool.flopbudget[]] report_only: must be true or false, got 'yes'"]
    )


def test_help_and_version_work_with_a_broken_flopbudget_table(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject='[tool.flopbudget]\non_exceed = "explode"\n')
    pytester.makepyfile(test_over=OVER)
    helped = pytester.runpytest("--help")
    assert helped.ret == 0
    helped.stdout.fnmatch_lines(["*--flop-budget-report-only*"])
    assert pytester.runpytest("--version").ret == 0
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest-flopbudget: *pyproject.toml*on_exceed*explode*"])
