"""Under pytest-sugar, pytest-rich and pytest-randomly the table and the over-budget message
still show, and the reports do not depend on the order the tests ran in.

The rest of the suite runs with these plugins off (conftest.py); each test here turns on the
one it is about with ``-p``, as a user's installed plugin would be.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FFN_MACS

ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")

TESTS = """
import pytest
import torch
from models import FFN, TinyConv


@pytest.mark.flop_budget(mmacs=1.0)
def test_ffn_over(flops):
    flops(FFN(), torch.randn(1, 4))


@pytest.mark.flop_budget(kmacs=14)
def test_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("hidden", [8, 16, 32, 64])
def test_ffn_widths(flops, hidden):
    flops(FFN(hidden), torch.randn(1, 4), name=f"FFN-{hidden}")
"""

# FFN(hidden): 4*h + h*h + h*2 MACs; the one over budget counts FFN_MACS against 1.0 MMACs
OVER_MESSAGE = f"FFN: {FFN_MACS / 1e6:.2f} MMACs exceeds budget 1.0 MMACs (+5.5%)"
CONV_ROW = "test_plugins.py::test_conv  *TinyConv*13.8 KMACs*14 KMACs*ok"


def _write(project: pytest.Pytester) -> None:
    project.makepyfile(test_plugins=TESTS)


def test_under_pytest_sugar_the_table_and_the_excess_show(project: pytest.Pytester) -> None:
    _write(project)
    result = project.runpytest_subprocess("-p", "sugar", "--force-sugar")
    output = ANSI.sub("", result.stdout.str())
    assert "pytest-sugar" in output  # sugar's reporter really ran
    assert OVER_MESSAGE in output
    result.stdout.fnmatch_lines([CONV_ROW, "6 counted: 1 over, 4 no budget, 1 ok"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def _run_in_a_terminal(cwd: Path, *args: str) -> tuple[int, str]:
    """pytest-rich takes over only a real terminal: run pytest on a pseudo-terminal."""
    main, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    code = process.wait(timeout=300)
    return code, ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r", "")


def test_under_pytest_rich_the_table_and_the_excess_show(project: pytest.Pytester) -> None:
    _write(project)
    code, output = _run_in_a_terminal(project.path, "-p", "rich", "--rich")
    assert "Summary" in output and "Total Tests" in output  # rich's reporter really ran
    assert OVER_MESSAGE in output
    assert "test_plugins.py::test_ffn_over [FFN]" in output  # the message names its test
    assert re.search(
        r"test_plugins\.py::test_conv +TinyConv .*13\.8 KMACs .*14 KMACs .* ok", output
    )
    assert "6 counted: 1 over, 4 no budget, 1 ok" in output
    assert code == pytest.ExitCode.TESTS_FAILED


def _randomly_run(project: pytest.Pytester, seed: int) -> tuple[list[str], list[str], str, str]:
    result = project.runpytest_subprocess(
        "-p",
        "randomly",
        f"--randomly-seed={seed}",
        "-v",
        "--flop-budget-json=report.json",
        "--flop-budget-markdown=summary.md",
    )
    output = result.stdout.str()
    ran = re.findall(r"^(test_plugins\.py::\S+) (?:PASSED|FAILED)", output, re.MULTILINE)
    table = output.split("flop budget:", 1)[1].splitlines()[1:]
    table = table[: next(i for i, line in enumerate(table) if " counted" in line) + 1]
    report = json.loads((project.path / "report.json").read_text())
    report.pop("environment", None)
    return ran, table, json.dumps(report, sort_keys=True), (project.path / "summary.md").read_text()


def test_under_pytest_randomly_two_seeds_give_the_same_table_and_reports(
    project: pytest.Pytester,
) -> None:
    _write(project)
    ran_1, table_1, json_1, markdown_1 = _randomly_run(project, 1)
    ran_2, table_2, json_2, markdown_2 = _randomly_run(project, 2)
    assert sorted(ran_1) == sorted(ran_2) and len(ran_1) == 6
    assert ran_1 != ran_2, "the two seeds must run the tests in different orders"
    assert table_1 == table_2
    assert json_1 == json_2
    assert markdown_1 == markdown_2
    rows = [line.split()[0] for line in table_1[1:-1]]
    assert rows == [
        "test_plugins.py::test_ffn_over",
        "test_plugins.py::test_conv",
        "test_plugins.py::test_ffn_widths[8]",
        "test_plugins.py::test_ffn_widths[16]",
        "test_plugins.py::test_ffn_widths[32]",
        "test_plugins.py::test_ffn_widths[64]",
    ]
