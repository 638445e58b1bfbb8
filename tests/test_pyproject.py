"""[tool.flopbudget] in pyproject.toml: budgets, precedence, the convention, and bad config."""

from __future__ import annotations

import pytest
from conftest import FFN_MACS

FFN_TEST = """
from models import FFN, ffn_input

def test_ffn(flops):
    flops(FFN(), ffn_input())

def test_named(flops):
    flops(FFN(), ffn_input(), name="ffn")
"""


def _pyproject(project: pytest.Pytester, body: str) -> None:
    project.makefile(".toml", pyproject=body)


def test_budgets_keyed_by_node_id_and_by_name(project: pytest.Pytester) -> None:
    _pyproject(
        project,
        """
[tool.flopbudget.budgets]
"test_keys.py::test_ffn" = "1 MMACs"
"ffn" = { mmacs = 1.1 }
""",
    )
    project.makepyfile(test_keys=FFN_TEST)
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FFN: 1.05 MMACs exceeds budget 1 MMACs (+5.5%)*"])
    result.stdout.fnmatch_lines(["FAILED test_keys.py::test_ffn*"])
    result.stdout.fnmatch_lines(["*test_named*ffn*1.1 MMACs*ok*"])


def test_precedence_is_marker_then_node_id_then_name(project: pytest.Pytester) -> None:
    _pyproject(
        project,
        """
[tool.flopbudget.budgets]
"test_order.py::test_node_id_beats_name" = "2 MMACs"
"test_order.py::test_marker_beats_node_id" = "0.5 MMACs"
"FFN" = "0.5 MMACs"
""",
    )
    project.makepyfile(
        test_order="""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=2)
def test_marker_beats_node_id(flops):
    flops(FFN(), ffn_input())

def test_node_id_beats_name(flops):
    flops(FFN(), ffn_input())

def test_name_applies_last(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest("-v")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_order.py::test_name_applies_last*"])
    result.stdout.fnmatch_lines(["*test_marker_beats_node_id*2 MMACs*marker*ok*"])
    result.stdout.fnmatch_lines(["*test_node_id_beats_name*2 MMACs*pyproject:nodeid*ok*"])


def test_parametrized_ids_are_keys_of_their_own(project: pytest.Pytester) -> None:
    _pyproject(
        project,
        f"""
[tool.flopbudget.budgets]
"test_params.py::test_width[1024]" = {{ macs = {FFN_MACS} }}
"test_params.py::test_width[2048]" = {{ macs = {FFN_MACS} }}
""",
    )
    project.makepyfile(
        test_params="""
import pytest
from models import FFN, ffn_input

@pytest.mark.parametrize("hidden", [1024, 2048])
def test_width(flops, hidden):
    flops(FFN(hidden), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_params.py::test_width[[]2048[]]*"])


@pytest.mark.parametrize(
    ("flops_per_mac", "budget", "passes"),
    [
        (1, f"{FFN_MACS} FLOPs", True),
        (2, f"{FFN_MACS} FLOPs", False),
        (2, f"{2 * FFN_MACS} FLOPs", True),
        (2, f"{FFN_MACS} MACs", True),
    ],
)
def test_the_convention_switch_doubles_flops_but_not_macs(
    project: pytest.Pytester, flops_per_mac: int, budget: str, passes: bool
) -> None:
    _pyproject(
        project,
        f"""
[tool.flopbudget]
flops_per_mac = {flops_per_mac}

[tool.flopbudget.budgets]
"FFN" = "{budget}"
""",
    )
    project.makepyfile(
        f"""
from models import FFN, ffn_input

def test_ffn(flops):
    result = flops(FFN(), ffn_input())
    assert result.macs == {FFN_MACS}
    assert result.flops == {flops_per_mac} * {FFN_MACS}
    assert result.by_module["fc2"] == {flops_per_mac} * 1024 * 1024
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1) if passes else result.assert_outcomes(failed=1)
    header = "1 FLOP = 1 MAC" if flops_per_mac == 1 else "1 MAC = 2 FLOPs"
    result.stdout.fnmatch_lines([f"*flop budget: {header}*"])


def test_global_tolerance_applies_unless_a_budget_sets_its_own(project: pytest.Pytester) -> None:
    _pyproject(
        project,
        """
[tool.flopbudget]
tolerance = 0.1

[tool.flopbudget.budgets]
"test_tol.py::test_global" = "1 MMACs"
"test_tol.py::test_own" = { mmacs = 1, tolerance = 0.01 }
""",
    )
    project.makepyfile(
        test_tol="""
from models import FFN, ffn_input

def test_global(flops):
    flops(FFN(), ffn_input())

def test_own(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_tol.py::test_own*"])


def test_warn_mode_reports_without_failing(project: pytest.Pytester) -> None:
    _pyproject(project, '[tool.flopbudget]\non_exceed = "warn"\n')
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=1)
def test_over(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_over*FFN*1 MMACs*105.5%*over (warn)*"])
    assert result.ret == 0


def test_the_command_line_overrides_on_exceed(project: pytest.Pytester) -> None:
    _pyproject(project, '[tool.flopbudget]\non_exceed = "warn"\n')
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=1)
def test_over(flops):
    flops(FFN(), ffn_input())
"""
    )
    project.runpytest("--flop-budget-on-exceed=fail").assert_outcomes(failed=1)


def test_a_pyproject_budget_for_a_test_that_counts_nothing_is_an_error(
    project: pytest.Pytester,
) -> None:
    _pyproject(project, '[tool.flopbudget.budgets]\n"test_lazy.py::test_lazy" = "1 GFLOPs"\n')
    project.makepyfile(test_lazy="def test_lazy():\n    pass\n")
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*pyproject.toml: [[]tool.flopbudget.budgets[]] 'test_lazy.py::test_lazy': the test has a budget but counted no model*"
        ]
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            "[tool.flopbudget]\nflops_per_mac = 3\n",
            "[tool.flopbudget] flops_per_mac: must be 1 or 2, got 3",
        ),
        ("[tool.flopbudget]\nflops_per_mac = true\n", "flops_per_mac: must be 1 or 2, got True"),
        (
            '[tool.flopbudget]\ntolerance = "2%"\n',
            "tolerance: tolerance must be a number such as 0.02",
        ),
        ("[tool.flopbudget]\ntolerance = -0.5\n", "tolerance must not be negative"),
        (
            '[tool.flopbudget]\non_exceed = "explode"\n',
            'on_exceed: must be "fail" or "warn", got \'explode\'',
        ),
        ("[tool.flopbudget]\nbudget = {}\n", "unknown key 'budget'"),
        ("[tool.flopbudget]\nbudgets = 3\n", "budgets: must be a table, got int"),
        (
            '[tool.flopbudget.budgets]\nFFN = "4.1 gigs"\n',
            "[tool.flopbudget.budgets] 'FFN': cannot read '4.1 gigs'",
        ),
        (
            "[tool.flopbudget.budgets]\nFFN = 4.1\n",
            "[tool.flopbudget.budgets] 'FFN': expected a string such as",
        ),
        ("[tool.flopbudget.budgets]\nFFN = { gflop = 4.1 }\n", "'FFN': unknown argument 'gflop'"),
        (
            '[tool.flopbudget.budgets]\nFFN = { gflops = 4.1, name = "x" }\n',
            "'FFN': unknown argument 'name'",
        ),
        (
            "[tool.flopbudget.budgets]\nFFN = { gflops = 0 }\n",
            "'FFN': gflops must be a positive number, got 0",
        ),
        ("[tool]\nflopbudget = 1\n", "[tool.flopbudget] must be a table, got int"),
    ],
)
def test_bad_configuration_is_a_usage_error_naming_file_and_key(
    project: pytest.Pytester, body: str, problem: str
) -> None:
    _pyproject(project, body)
    project.makepyfile(FFN_TEST)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    pattern = problem.replace("[", "[[]")
    result.stderr.fnmatch_lines([f"ERROR: pytest-flopbudget: *pyproject.toml: *{pattern}*"])
    assert "INTERNALERROR" not in result.stderr.str() + result.stdout.str()
    assert "Traceback" not in result.stderr.str()


def test_a_pyproject_with_a_syntax_error_stops_the_run_naming_file_and_line(
    project: pytest.Pytester,
) -> None:
    project.makeini("[pytest]\n")  # pytest itself may read pyproject.toml first; either names it
    _pyproject(project, "[tool.flopbudget\nflops_per_mac = 1\n")
    project.makepyfile(FFN_TEST)
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *pyproject.toml: *line 1*"])


def test_one_budget_may_warn_while_the_others_fail(project: pytest.Pytester) -> None:
    _pyproject(project, '[tool.flopbudget.budgets]\n"FFN" = { mmacs = 1, on_exceed = "warn" }\n')
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

def test_warned(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget(mmacs=1)
def test_failed(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget(mmacs=1, on_exceed="warn")
def test_marker_warns(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_failed*"])
    result.stdout.fnmatch_lines(["*test_warned*over (warn)*"])
