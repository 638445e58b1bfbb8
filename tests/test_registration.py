"""How pytest sees the plugin: entry point, marker, options, and turning it off."""

from __future__ import annotations

import pytest


def test_the_marker_is_registered_for_strict_markers(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=2)
def test_ffn(flops):
    flops(FFN(), ffn_input())
"""
    )
    project.runpytest("--strict-markers").assert_outcomes(passed=1)


def test_the_marker_is_described_in_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.flop_budget(gflops=4.1, *): fail the test if the models*"]
    )


def test_the_options_have_their_own_help_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "compute budgets for PyTorch models (pytest-flopbudget):",
            "  --flop-budget-json=PATH*",
            "  --flop-budget-update*",
            "  --flop-budget-on-exceed=*",
        ]
    )


def test_p_no_flopbudget_turns_the_plugin_off(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
def test_uses_fixture(flops):
    pass
"""
    )
    result = project.runpytest("-p", "no:flopbudget")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'flops' not found*"])
