"""Every report and baseline names its toolchain; a count that changed with it says so."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from pytest_flopbudget.budgets import environment
from pytest_flopbudget.cli import main

TORCH = metadata.version("torch")
FVCORE = metadata.version("fvcore")
PLUGIN = metadata.version("pytest-flopbudget")

NET = """
import torch
from torch import nn

def test_net(flops):
    flops(nn.Linear(8, 8, bias=False), torch.randn(1, 8), name="Net")
"""
NET_MACS = 8 * 8  # one 1x8 row times an 8x8 weight


def test_the_environment_names_python_torch_fvcore_and_the_plugin() -> None:
    found = environment.current()
    assert found["python"] == platform.python_version()
    assert (found["torch"], found["fvcore"], found["pytest-flopbudget"]) == (TORCH, FVCORE, PLUGIN)


def test_transformers_is_named_only_when_the_run_imported_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "transformers" in sys.modules  # conftest imports it
    assert environment.current()["transformers"] == metadata.version("transformers")
    monkeypatch.delitem(sys.modules, "transformers")
    assert "transformers" not in environment.current()
    assert "transformers" in environment.current(imported=["transformers"])  # an xdist worker's


def test_reading_the_versions_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from pytest_flopbudget.budgets import environment\n"
        "found = environment.current()\n"
        "assert 'torch' in found and 'torch' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_changes_name_each_tool_whose_version_moved() -> None:
    before = {"python": "3.11.7", "torch": "2.13.0", "fvcore": "0.1.5"}
    after = {"python": "3.11.7", "torch": "2.15.0", "fvcore": "0.1.5", "transformers": "4.57"}
    assert environment.changes(before, after) == ["torch 2.13.0 -> 2.15.0"]
    assert environment.changes({}, after) == []  # an old file without an environment


def _baseline_project(pytester: pytest.Pytester, macs: int, env: dict[str, str] | None) -> None:
    pytester.makefile(".toml", pyproject='[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    pytester.makepyfile(test_net=NET)
    document: dict[str, object] = {
        "version": 1,
        "unit": "MACs",
        "tests": {"test_net.py::test_net": {"Net": {"macs": macs, "params": 64}}},
    }
    if env is not None:
        document["environment"] = env
    (pytester.path / "flopbudget.json").write_text(json.dumps(document))


def test_a_regression_that_came_with_a_torch_upgrade_says_so(pytester: pytest.Pytester) -> None:
    old = {**environment.current(), "torch": "2.11.0"}
    _baseline_project(pytester, NET_MACS - 1, old)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "Net: 64 MACs, up from 63 MACs in the baseline (+1.6%)",
            f"the toolchain changed too (torch 2.11.0 -> {TORCH}): the change may come from it, "
            "not from the model",
        ]
    )


def test_a_regression_with_the_same_toolchain_blames_the_model(pytester: pytest.Pytester) -> None:
    _baseline_project(pytester, NET_MACS - 1, environment.current())
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.no_fnmatch_line("*toolchain changed*")


def test_a_baseline_without_an_environment_is_still_read(pytester: pytest.Pytester) -> None:
    _baseline_project(pytester, NET_MACS, None)
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_updated_baseline_json_and_markdown_carry_the_environment(
    pytester: pytest.Pytester,
) -> None:
    _baseline_project(pytester, NET_MACS - 1, None)
    result = pytester.runpytest(
        "--flop-budget-update", "--flop-budget-json=report.json", "--flop-budget-markdown=s.md"
    )
    result.assert_outcomes(passed=1)
    expected = {"python": platform.python_version(), "torch": TORCH, "fvcore": FVCORE}
    for name in ("flopbudget.json", "report.json"):
        written = json.loads((pytester.path / name).read_text())["environment"]
        assert {key: written[key] for key in expected} == expected
        assert written["pytest-flopbudget"] == PLUGIN
    summary = (pytester.path / "s.md").read_text()
    assert f"Counted with python {platform.python_version()}, torch {TORCH}, fvcore {FVCORE}" in (
        summary
    )


def _report(path: Path, macs: int, env: dict[str, str] | None) -> Path:
    document: dict[str, object] = {
        "version": 1,
        "convention": {"flops_per_mac": 1},
        "results": [{"nodeid": "t.py::t", "name": "Net", "macs": macs, "params": 1}],
    }
    if env is not None:
        document["environment"] = env
    path.write_text(json.dumps(document))
    return path


def test_compare_mentions_toolchains_that_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _report(tmp_path / "old.json", 10, {"python": "3.11.7", "torch": "2.13.0"})
    new = _report(tmp_path / "new.json", 12, {"python": "3.11.7", "torch": "2.15.0"})
    assert main(["compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "different toolchains (torch 2.13.0 -> 2.15.0)" in out
    assert main(["compare", "--json", str(old), str(new)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["environment_changes"] == ["torch 2.13.0 -> 2.15.0"]
    assert data["new"]["environment"] == {"python": "3.11.7", "torch": "2.15.0"}


def test_compare_of_reports_without_an_environment_says_nothing_about_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = _report(tmp_path / "old.json", 10, None)
    new = _report(tmp_path / "new.json", 10, {"torch": "2.15.0"})
    assert main(["compare", str(old), str(new)]) == 0
    assert "toolchain" not in capsys.readouterr().out
