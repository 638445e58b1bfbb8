"""Under pytest-xdist the results, table and reports are those of a serial run."""

from __future__ import annotations

import json
import re
import shutil

import pytest

PYPROJECT = """
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"

[tool.flopbudget.budgets]
"test_b.py::test_wide" = "1 MMACs"
"""

FILES = {
    "test_a": """
import pytest, torch
from torch import nn

@pytest.mark.flop_budget(kmacs=1)
@pytest.mark.parametrize("width", [4, 8, 16, 32])
def test_linear(flops, width):
    flops(nn.Linear(width, width), torch.randn(2, width))

def test_two_models(flops):
    flops(nn.Linear(8, 8), torch.randn(1, 8), name="left")
    flops(nn.Conv2d(3, 4, 3), torch.randn(1, 3, 8, 8), name="right")
""",
    "test_b": """
import torch
from torch import nn

def test_wide(flops):
    flops(nn.Sequential(nn.Linear(64, 1024), nn.Linear(1024, 1024)), torch.randn(1, 64))

def test_plain():
    pass
""",
}


def _summary(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if "flop budget:" in line)
    end = next(
        i for i in range(start, len(lines)) if lines[i].startswith(("=", "FAILED")) and i > start
    )
    return [re.sub(r" in [0-9.]+s", "", line) for line in lines[start:end]]


def _run(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict, str]:
    result = pytester.runpytest(
        "--flop-budget-json=report.json", "--flop-budget-markdown=report.md", *args
    )
    report = json.loads((pytester.path / "report.json").read_text())
    return result, report, (pytester.path / "report.md").read_text()


def test_two_workers_report_exactly_what_one_process_reports(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(**FILES)
    serial, serial_json, serial_md = _run(pytester, "-n", "0")
    parallel, parallel_json, parallel_md = _run(pytester, "-n", "2")
    assert serial.parseoutcomes() == parallel.parseoutcomes() == {"passed": 5, "failed": 2}
    assert serial_json == parallel_json
    assert serial_md == parallel_md
    assert _summary(serial.stdout.str()) == _summary(parallel.stdout.str())
    assert len(serial_json["results"]) == 7  # 4 linear + left + right + wide


def test_update_under_two_workers_writes_what_a_serial_update_writes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(**FILES)
    original = (pytester.path / "pyproject.toml").read_text()
    pytester.runpytest("-n", "0", "--flop-budget-update").assert_outcomes(passed=7)
    serial = {
        name: (pytester.path / name).read_text() for name in ("pyproject.toml", "flopbudget.json")
    }

    (pytester.path / "pyproject.toml").write_text(original)
    (pytester.path / "flopbudget.json").unlink()
    shutil.rmtree(pytester.path / "__pycache__", ignore_errors=True)
    pytester.runpytest("-n", "2", "--flop-budget-update").assert_outcomes(passed=7)
    parallel = {
        name: (pytester.path / name).read_text() for name in ("pyproject.toml", "flopbudget.json")
    }
    assert serial == parallel
    pytester.runpytest("-n", "2").assert_outcomes(passed=6, failed=1)  # a marker is not updated
