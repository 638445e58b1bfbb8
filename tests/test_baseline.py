"""The committed baseline: update, pass, grow, fail naming the module, update again."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"
"""


def _model_test(hidden: int) -> str:
    return f"""
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(8, {hidden}), nn.Linear({hidden}, 16))
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        return self.head(self.encoder(x))

import pytest

@pytest.mark.flop_budget(kmacs=100)  # generous: growth shows as a regression, not as over budget
def test_net(flops):
    flops(Net(), torch.randn(2, 8))
"""


def _macs(hidden: int) -> dict[str, int]:
    # batch 2: Linear(8, h) 2*8*h, Linear(h, 16) 2*h*16, Linear(16, 4) 2*16*4
    first, second, head = 2 * 8 * hidden, 2 * hidden * 16, 2 * 16 * 4
    return {
        "encoder": first + second,
        "encoder.0": first,
        "encoder.1": second,
        "head": head,
        "": first + second + head,
    }


def _params(hidden: int) -> int:
    return (8 * hidden + hidden) + (hidden * 16 + 16) + (16 * 4 + 4)


def _peak_memory(hidden: int) -> int:
    # fp32 parameters, and at the peak (encoder.1 running) the input (2 x 8 floats), encoder.0's
    # output (2 x hidden) and encoder.1's (2 x 16)
    return 4 * _params(hidden) + 4 * (2 * 8 + 2 * hidden + 2 * 16)


def test_the_whole_life_cycle(pytester: pytest.Pytester, plugin_args: tuple[str, ...]) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=_model_test(32))
    baseline = pytester.path / "flopbudget.json"

    first = pytester.runpytest(*plugin_args)
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*does not exist yet; create it with --flop-budget-update"])
    first.stdout.fnmatch_lines(["*test_net*Net*new*ok*"])
    assert not baseline.exists()

    pytester.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=1)
    macs = _macs(32)
    written = json.loads(baseline.read_text())
    assert written.pop("environment")["torch"] == metadata.version("torch")
    assert written == {
        "version": 1,
        "unit": "MACs",
        "tests": {
            "test_net.py::test_net": {
                "Net": {
                    "macs": macs[""],
                    "params": _params(32),
                    "by_module_macs": {k: v for k, v in macs.items() if k},
                    "peak_memory": _peak_memory(32),
                }
            }
        },
    }

    pytester.runpytest(*plugin_args).assert_outcomes(passed=1)

    pytester.makepyfile(test_net=_model_test(40))
    grown = pytester.runpytest(*plugin_args)
    grown.assert_outcomes(failed=1)
    before, after = _macs(32), _macs(40)
    grown.stdout.fnmatch_lines(
        [
            f"Net: * up from * in the baseline (+{after[''] / before[''] - 1:.1%})",
            "*",
            "modules that changed (FLOPs before -> after):",
            # encoder.1: 2*32*16 = 1024 -> 2*40*16 = 1280; encoder.0: 2*8*32 = 512 -> 640
            "  encoder.1   1.02 KFLOPs ->  1.28 KFLOPs  (+256 FLOPs)",
            "  encoder.0     512 FLOPs ->    640 FLOPs  (+128 FLOPs)",
        ]
    )
    assert "  head " not in grown.stdout.str()
    grown.stdout.fnmatch_lines([f"*test_net*Net*{after[''] / before[''] - 1:+.1%}*regression"])

    pytester.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=1)
    pytester.runpytest(*plugin_args).assert_outcomes(passed=1)


def test_growth_within_the_regression_tolerance_passes(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT + "regression_tolerance = 0.3\n")
    pytester.makepyfile(test_net=_model_test(32))
    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_net=_model_test(40))  # +25%
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_shrinking_model_passes_and_says_by_how_much(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=_model_test(40))
    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_net=_model_test(32))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    change = _macs(32)[""] / _macs(40)[""] - 1  # 1664 / 2048 - 1
    result.stdout.fnmatch_lines([f"*test_net*{change:+.1%}*ok"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"version": 1, "tests": {"test_net.py::test_net": {"Net": {"macs": 12', "not valid JSON"),
        ('{"version": 7, "tests": {}}', "not a pytest-flopbudget baseline"),
        (
            '{"version": 1, "tests": {"t": {"Net": {"macs": -1, "params": 3}}}}',
            "macs: expected a non-negative integer",
        ),
    ],
)
def test_a_corrupted_baseline_stops_the_run_and_is_left_alone(
    pytester: pytest.Pytester, content: str, problem: str
) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=_model_test(32))
    baseline = pytester.path / "flopbudget.json"
    baseline.write_text(content)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-flopbudget: *flopbudget.json: *{problem}*"])
    assert baseline.read_text() == content

    repaired = pytester.runpytest("--flop-budget-update")
    repaired.assert_outcomes(passed=1)
    repaired.stdout.fnmatch_lines(["*it will be rewritten"])
    assert (
        json.loads(baseline.read_text())["tests"]["test_net.py::test_net"]["Net"]["macs"]
        == _macs(32)[""]
    )


def test_a_test_missing_from_the_baseline_is_reported_not_failed(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=_model_test(32))
    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_other=_model_test(16))
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["test_other.py::test_net [[]Net[]]: not in the baseline"])


def test_budgets_used_far_below_their_limit_are_flagged(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".toml",
        pyproject=PYPROJECT.replace('baseline = "flopbudget.json"', "tighten_threshold = 0.25"),
    )
    macs = _macs(32)[""]
    pytester.makepyfile(test_net=_model_test(32).replace("kmacs=100", f"macs={5 * macs}"))
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["test_net.py::test_net [[]Net[]]: budget can be tightened (uses 20%)"]
    )


@pytest.mark.parametrize("content", ['{"name": "web-app", "version": "1.0.0"}\n', "[1, 2, 3]\n"])
def test_a_baseline_path_naming_another_tools_json_file_is_never_rewritten(
    pytester: pytest.Pytester, content: str
) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=_model_test(32))
    baseline = pytester.path / "flopbudget.json"
    baseline.write_text(content)
    for args in ((), ("--flop-budget-update",)):
        result = pytester.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(
            ["ERROR: pytest-flopbudget: *flopbudget.json: *another tool's*"]
        )
        assert baseline.read_text() == content
