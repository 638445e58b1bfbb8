"""What pytest itself shows: the header, warn-mode excesses as warnings, a stable row order."""

from __future__ import annotations

import pytest

WARN_OVER = """
import pytest
import torch
from models import FFN


@pytest.mark.flop_budget(mflops=1, on_exceed="warn")
def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4))
"""


def test_the_header_names_the_convention_and_backend(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject='[tool.flopbudget]\nflops_per_mac = 2\nbackend = "torch"\n')
    project.makepyfile("def test_plain():\n    pass\n")
    result = project.runpytest()
    result.stdout.fnmatch_lines(
        [
            "flopbudget: 1 MAC = 2 FLOPs (flops_per_mac = 2); ops=fvcore, backend=torch, "
            "mode=inference, "
            "unknown_ops=warn, on_exceed=fail"
        ]
    )


def test_a_warn_mode_excess_is_a_pytest_warning(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=WARN_OVER)
    result = project.runpytest("-q")
    result.assert_outcomes(passed=1, warnings=1)
    # 1,054,720 FLOPs against 1,000,000: +5.5%
    result.stdout.fnmatch_lines(
        ["*FlopBudgetWarning: FFN: 1.05 MFLOPs exceeds budget 1 MFLOPs (+5.5%)*"]
    )


def test_warnings_as_errors_make_a_warn_mode_excess_fail(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=WARN_OVER)
    result = project.runpytest("-W", "error::pytest_flopbudget.FlopBudgetWarning")
    result.assert_outcomes(failed=1)


RANDOM_ORDER = """
import pytest
import torch
from models import FFN, TinyConv


def pytest_collection_modifyitems(items):
    items.reverse()  # a plugin such as pytest-randomly changes the run order
"""
TESTS = """
import pytest
import torch
from models import FFN, TinyConv


def test_b_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize("width", [64, 128, 1024])
def test_a_ffn(flops, width):
    flops(FFN(hidden=width), torch.randn(1, 4))
"""


def _rows(output: str) -> list[str]:
    section = output.split("flop budget:", 1)[1].splitlines()[2:]
    return [line.split()[0] for line in section if line.startswith("test_models.py::")]


def test_rows_follow_the_source_not_the_run_order(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=TESTS)
    in_order = _rows(project.runpytest().stdout.str())
    project.makeconftest(RANDOM_ORDER)
    reversed_run = _rows(project.runpytest().stdout.str())
    expected = [
        "test_models.py::test_b_conv",
        "test_models.py::test_a_ffn[64]",
        "test_models.py::test_a_ffn[128]",
        "test_models.py::test_a_ffn[1024]",
    ]
    assert in_order == expected
    assert reversed_run == expected
