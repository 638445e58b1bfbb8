"""An update removes nothing the run did not prove stale, and writes nothing it did not see pass."""

from __future__ import annotations

import json

import pytest

# Linear(4, 4) on one row: 16 MACs, 20 params; Linear(4, 8): 32 MACs, 40 params.
# Peak memory, fp32: the parameters, the input (4 floats) and the output:
# 20 x 4 + 16 + 16 = 112 bytes; 40 x 4 + 16 + 32 = 208 bytes.
PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"

[tool.flopbudget.budgets]
"tests/test_a.py::test_one" = "16 FLOPs"  # node-id budget
"Two" = "32 FLOPs"  # name budget
"""

TEST_A = """
import torch
from torch import nn

def test_one(flops):
    flops(nn.Linear(4, 4), torch.randn(1, 4), name="One")
"""

TEST_B = """
import torch
from torch import nn

def test_two(flops):
    flops(nn.Linear(4, 8), torch.randn(1, 4), name="Two")
"""

BASELINE = (
    json.dumps(
        {
            "tests": {
                "tests/sub/test_b.py::test_two": {
                    "Two": {"by_module_macs": {}, "macs": 32, "params": 40, "peak_memory": 208}
                },
                "tests/test_a.py::test_one": {
                    "One": {"by_module_macs": {}, "macs": 16, "params": 20, "peak_memory": 112}
                },
            },
            "unit": "MACs",
            "version": 1,
        },
        indent=2,
        sort_keys=True,
    )
    + "\n"
)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """Two tests in two directories, each with a budget and a baseline entry."""
    (pytester.path / "pyproject.toml").write_text(PYPROJECT)
    (pytester.path / "flopbudget.json").write_text(BASELINE)
    (pytester.path / "tests" / "sub").mkdir(parents=True)
    (pytester.path / "tests" / "test_a.py").write_text(TEST_A)
    (pytester.path / "tests" / "sub" / "test_b.py").write_text(TEST_B)
    return pytester


def _files(suite: pytest.Pytester) -> tuple[str, str]:
    return (
        (suite.path / "pyproject.toml").read_text(),
        (suite.path / "flopbudget.json").read_text(),
    )


def _baseline(suite: pytest.Pytester) -> dict[str, dict[str, object]]:
    tests: dict[str, dict[str, object]] = json.loads((suite.path / "flopbudget.json").read_text())[
        "tests"
    ]
    return tests


def test_a_complete_update_run_keeps_both_files_as_they_are(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=2)
    assert _files(suite) == (PYPROJECT, BASELINE)


@pytest.mark.parametrize(
    "narrowing",
    [
        pytest.param(["--ignore=tests/sub"], id="ignore"),
        pytest.param(["tests/sub"], id="a-sub-directory"),
        pytest.param(["-k", "two"], id="keyword"),
    ],
)
def test_a_narrowed_update_keeps_every_entry_of_the_tests_it_did_not_run(
    suite: pytest.Pytester, plugin_args: tuple[str, ...], narrowing: list[str]
) -> None:
    suite.runpytest(*plugin_args, "--flop-budget-update", *narrowing)
    assert _files(suite) == (PYPROJECT, BASELINE)


def test_an_update_run_from_a_sub_directory_keeps_the_rest_of_the_suite(
    suite: pytest.Pytester, plugin_args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(suite.path / "tests" / "sub")
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=1)
    assert _files(suite) == (PYPROJECT, BASELINE)


DROPPING_CONFTESTS = {
    "deselecting": """
def pytest_collection_modifyitems(config, items):
    dropped = [item for item in items if "test_one" in item.nodeid]
    items[:] = [item for item in items if item not in dropped]
    config.hook.pytest_deselected(items=dropped)
""",
    "silently-dropping": """
def pytest_collection_modifyitems(items):
    items[:] = [item for item in items if "test_one" not in item.nodeid]
""",
}


@pytest.mark.parametrize("conftest", list(DROPPING_CONFTESTS))
def test_a_conftest_that_drops_items_narrows_the_run(
    suite: pytest.Pytester, plugin_args: tuple[str, ...], conftest: str
) -> None:
    suite.makeconftest(DROPPING_CONFTESTS[conftest])
    suite.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=1)
    assert _files(suite) == (PYPROJECT, BASELINE)


@pytest.mark.parametrize("option", ["--collect-only", "--setup-only", "--setup-plan", "--fixtures"])
def test_runs_that_only_collect_or_set_up_write_nothing(
    suite: pytest.Pytester, plugin_args: tuple[str, ...], option: str
) -> None:
    suite.runpytest(*plugin_args, "--flop-budget-update", option)
    assert _files(suite) == (PYPROJECT, BASELINE)


def test_a_collection_error_writes_nothing(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "test_broken.py").write_text("def test_broken(:\n")
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    assert result.ret != 0
    assert _files(suite) == (PYPROJECT, BASELINE)
    result = suite.runpytest(
        *plugin_args, "--flop-budget-update", "--continue-on-collection-errors"
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["flop budgets and baseline not updated: 1 errors during collection"]
    )
    assert _files(suite) == (PYPROJECT, BASELINE)


def test_an_interrupted_run_writes_nothing(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_0_interrupt.py").write_text(
        "def test_interrupt():\n    raise KeyboardInterrupt\n"
    )
    result = suite.runpytest(*plugin_args, "--flop-budget-update", no_reraise_ctrlc=True)
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert _files(suite) == (PYPROJECT, BASELINE)


@pytest.mark.parametrize("stop", ["-x", "--sw"])
def test_a_run_stopped_at_the_first_failure_writes_nothing(
    suite: pytest.Pytester, plugin_args: tuple[str, ...], stop: str
) -> None:
    (suite.path / "tests" / "sub" / "test_0_fail.py").write_text(
        "def test_fail():\n    assert False\n"
    )
    result = suite.runpytest(*plugin_args, "--flop-budget-update", stop)
    assert result.parseoutcomes()["failed"] == 1  # under xdist, --sw is off and all ran
    assert _files(suite) == (PYPROJECT, BASELINE)


def test_stepwise_resuming_after_a_fixed_failure_keeps_the_tests_it_skipped(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    failing = suite.path / "tests" / "sub" / "test_c.py"
    failing.write_text("def test_three():\n    assert False\n")
    suite.runpytest(*plugin_args, "--sw")
    failing.write_text("def test_three():\n    pass\n")
    result = suite.runpytest(*plugin_args, "--sw", "--flop-budget-update")
    if plugin_args == ("-n", "2"):
        assert result.ret == pytest.ExitCode.OK  # pytest-xdist and --sw do not combine well
    else:
        result.assert_outcomes(passed=2, deselected=1)
    assert _files(suite) == (PYPROJECT, BASELINE)


def test_a_skipped_test_keeps_its_name_budget_and_baseline_entry_and_says_so(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(
        TEST_B.replace(
            "def test_two",
            "import pytest\n@pytest.mark.skipif(True, reason='no GPU')\ndef test_two",
        )
    )
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=1, skipped=1)
    assert _files(suite) == (PYPROJECT, BASELINE)
    result.stdout.fnmatch_lines(
        [
            "  kept (not run: skipped): baseline entry tests/sub/test_b.py::test_two [[]Two[]]",
            "  kept (not run: tests/sub/test_b.py::test_two skipped): "
            "[[]tool.flopbudget.budgets[]] 'Two'",
        ]
    )


def test_a_test_that_failed_before_it_counted_keeps_its_entries(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(
        TEST_B.replace("    flops(", "    assert False, 'fixture data missing'\n    flops(")
    )
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=1, failed=1)
    assert _files(suite) == (PYPROJECT, BASELINE)
    result.stdout.fnmatch_lines(
        ["  kept (not run: failed): baseline entry tests/sub/test_b.py::test_two [[]Two[]]"]
    )


def test_a_test_that_ran_without_recording_a_name_proves_it_stale(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(TEST_B.replace('"Two"', '"Renamed"'))
    result = suite.runpytest(*plugin_args, "--flop-budget-update", "tests/sub")
    result.assert_outcomes(passed=1)
    pyproject, _ = _files(suite)
    assert '"Two"' not in pyproject
    assert '"tests/test_a.py::test_one" = "16 FLOPs"' in pyproject
    assert sorted(_baseline(suite)) == [
        "tests/sub/test_b.py::test_two",
        "tests/test_a.py::test_one",
    ]
    assert list(_baseline(suite)["tests/sub/test_b.py::test_two"]) == ["Renamed"]


def test_a_deleted_test_is_stale_only_on_a_complete_run(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "test_a.py").unlink()
    suite.runpytest(*plugin_args, "--flop-budget-update", "tests/sub")
    assert _files(suite) == (PYPROJECT, BASELINE)
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.stdout.fnmatch_lines(
        [
            "stale: [[]tool.flopbudget.budgets[]] 'tests/test_a.py::test_one': the test no longer exists"
        ]
    )
    assert "test_one" not in _files(suite)[0]
    assert sorted(_baseline(suite)) == ["tests/sub/test_b.py::test_two"]


GROWN = """
import torch
from torch import nn

def test_two(flops):
    count = flops(nn.Linear(4, 64), torch.randn(1, 4), name="Two")
    assert count.macs <= 32, "the model grew"
"""


def test_an_update_takes_no_numbers_from_a_test_that_failed_its_own_assertions(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(GROWN)
    result = suite.runpytest(*plugin_args, "--flop-budget-update")
    result.assert_outcomes(passed=1, failed=1)
    assert _files(suite) == (PYPROJECT, BASELINE)
    result.stdout.fnmatch_lines(
        [
            "  not updated (the test failed; --flop-budget-update-failed takes its counts "
            "anyway): tests/sub/test_b.py::test_two"
        ]
    )


def test_update_failed_takes_the_numbers_of_failed_tests_too(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(GROWN)
    result = suite.runpytest(*plugin_args, "--flop-budget-update", "--flop-budget-update-failed")
    result.assert_outcomes(passed=1, failed=1)
    # Linear(4, 64): 256 MACs, 320 params; peak 320 x 4 + 16 + 64 x 4 = 1,552 bytes
    assert '"Two" = "256 FLOPs"' in _files(suite)[0]
    assert _baseline(suite)["tests/sub/test_b.py::test_two"]["Two"] == {
        "by_module_macs": {},
        "macs": 256,
        "params": 320,
        "peak_memory": 1552,
    }


def test_a_test_with_a_name_budget_and_an_unbudgeted_model_keeps_its_name_budget(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    (suite.path / "tests" / "sub" / "test_b.py").write_text(
        TEST_B + '    flops(nn.Linear(4, 2), torch.randn(1, 4), name="Head")\n'
    )
    suite.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=2)
    pyproject, _ = _files(suite)
    assert "test_two" not in pyproject  # a node-id entry would replace the name budget
    assert '"Two" = "32 FLOPs"' in pyproject
    assert 'Head = "8 FLOPs, 10 params"' in pyproject
    (suite.path / "tests" / "sub" / "test_b.py").write_text(
        TEST_B.replace("Linear(4, 8)", "Linear(4, 9)")
        + '    flops(nn.Linear(4, 2), torch.randn(1, 4), name="Head")\n'
    )
    result = suite.runpytest(*plugin_args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*Two: 36 FLOPs exceeds budget 32 FLOPs*"])


def test_report_data_is_on_the_report_before_any_logreport_hook_runs(
    suite: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    suite.makeconftest(
        """
import pytest

@pytest.hookimpl(wrapper=True)  # runs before every other logreport hook, as xdist's does
def pytest_runtest_logreport(report):
    if report.when == "teardown":
        with open("seen.txt", "a") as seen:
            seen.write(f"{report.nodeid} {hasattr(report, 'flopbudget')}\\n")
    return (yield)
"""
    )
    suite.runpytest(*plugin_args).assert_outcomes(passed=2)
    # under xdist the controller logs the reports too: each test is seen twice
    seen = sorted(set((suite.path / "seen.txt").read_text().splitlines()))
    assert seen == ["tests/sub/test_b.py::test_two True", "tests/test_a.py::test_one True"]
