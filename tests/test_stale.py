"""Entries that no test recorded are stale, and only a full run may say so."""

from __future__ import annotations

import json

import pytest

PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"

[tool.flopbudget.budgets]
"Gone" = "1 GFLOPs"
"test_models.py::test_removed" = "1 GFLOPs"
"""

TESTS = """
import torch
from torch import nn

def test_linear(flops):
    flops(nn.Linear(4, 4), torch.randn(1, 4))

def test_other(flops):
    flops(nn.Linear(4, 8), torch.randn(1, 4))
"""

BASELINE = {
    "version": 1,
    "unit": "MACs",
    "tests": {
        "test_models.py::test_linear": {"Linear": {"macs": 16, "params": 20, "by_module_macs": {}}},
        "test_models.py::test_other": {"Linear": {"macs": 32, "params": 40, "by_module_macs": {}}},
        "test_models.py::test_deleted": {"Net": {"macs": 1, "params": 1, "by_module_macs": {}}},
    },
}


@pytest.fixture
def stale_project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_models=TESTS)
    (pytester.path / "flopbudget.json").write_text(json.dumps(BASELINE))
    return pytester


STALE_LINES = [
    "stale: [[]tool.flopbudget.budgets[]] 'test_models.py::test_removed': the test no longer exists",
    "stale: baseline entry test_models.py::test_deleted [[]Net[]]: the test no longer exists",
    "stale: [[]tool.flopbudget.budgets[]] 'Gone': no test recorded it",
]


def test_a_full_run_reports_stale_budget_and_baseline_entries(
    stale_project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    result = stale_project.runpytest(*plugin_args, "--flop-budget-json=report.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(STALE_LINES)
    result.stdout.fnmatch_lines(["2 counted: 2 no budget; 3 stale entries"])
    report = json.loads((stale_project.path / "report.json").read_text())
    assert {(entry["where"], entry["key"]) for entry in report["stale"]} == {
        ("pyproject", "test_models.py::test_removed"),
        ("pyproject", "Gone"),
        ("baseline", "test_models.py::test_deleted [Net]"),
    }


def test_naming_the_test_directory_is_still_a_full_run(
    stale_project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    stale_project.runpytest(*plugin_args, str(stale_project.path)).stdout.fnmatch_lines(STALE_LINES)


@pytest.mark.parametrize(
    "narrowing",
    [
        ["-k", "linear"],
        ["-m", "slow"],
        ["test_models.py::test_linear"],
        ["--deselect", "test_models.py::test_other"],
    ],
)
def test_a_narrowed_run_reports_nothing_stale(
    stale_project: pytest.Pytester, narrowing: list[str], plugin_args: tuple[str, ...]
) -> None:
    result = stale_project.runpytest(*plugin_args, *narrowing)
    assert "stale:" not in result.stdout.str()


def test_a_marker_expression_that_deselects_nothing_is_a_complete_run(
    stale_project: pytest.Pytester,
) -> None:
    stale_project.runpytest("-m", "not slow").stdout.fnmatch_lines(STALE_LINES)


def test_last_failed_runs_report_nothing_stale(stale_project: pytest.Pytester) -> None:
    stale_project.makepyfile(test_fail="def test_fail():\n    assert False\n")
    stale_project.runpytest()
    result = stale_project.runpytest("--lf")
    result.assert_outcomes(failed=1)
    assert "stale:" not in result.stdout.str()


def test_a_skipped_test_keeps_its_baseline_entry_fresh(
    stale_project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    stale_project.makepyfile(
        test_models=TESTS.replace(
            "def test_other", "import pytest\n@pytest.mark.skip\ndef test_other"
        )
    )
    result = stale_project.runpytest(*plugin_args)
    assert "test_other [Linear]" not in result.stdout.str()


def test_update_on_a_full_run_drops_stale_entries(
    stale_project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    result = stale_project.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=2)
    text = (stale_project.path / "pyproject.toml").read_text()
    assert '"Gone"' not in text and "test_removed" not in text
    baseline = json.loads((stale_project.path / "flopbudget.json").read_text())
    assert sorted(baseline["tests"]) == [
        "test_models.py::test_linear",
        "test_models.py::test_other",
    ]


def test_update_on_a_narrowed_run_keeps_what_it_did_not_run(
    stale_project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    result = stale_project.runpytest(*plugin_args, "--flop-budget-update", "-k", "linear")
    assert result.parseoutcomes()["passed"] == 1  # xdist's summary does not count deselected
    text = (stale_project.path / "pyproject.toml").read_text()
    assert '"Gone"' in text
    baseline = json.loads((stale_project.path / "flopbudget.json").read_text())
    assert sorted(baseline["tests"]) == sorted(BASELINE["tests"])
