"""The flop_budget marker: units, tolerance, params, names, scope, and its bad arguments."""

from __future__ import annotations

import pytest
from conftest import CONV_MACS, FFN_MACS, FFN_PARAMS


def _ffn_test(marker: str) -> str:
    return f"""
import pytest
from models import FFN, ffn_input

{marker}
def test_ffn(flops):
    flops(FFN(), ffn_input())
"""


def test_a_model_under_its_budget_passes(project: pytest.Pytester) -> None:
    project.makepyfile(_ffn_test("@pytest.mark.flop_budget(mflops=1.06)"))
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_ffn*FFN*1.05 MFLOPs*1.06 MFLOPs*ok*"])


def test_a_model_over_its_budget_fails_with_the_excess_and_its_heaviest_modules(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(_ffn_test("@pytest.mark.flop_budget(mflops=1.0)"))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    excess = (FFN_MACS / 1e6 - 1) * 100  # 5.472 %
    result.stdout.fnmatch_lines(
        [
            f"FFN: 1.05 MFLOPs exceeds budget 1.0 MFLOPs (+{excess:.1f}%)",
            "top modules by FLOPs:",
            "  fc2 *1.05 MFLOPs*",
            "  fc1 *4.10 KFLOPs*",
            "  fc3 *2.05 KFLOPs*",
        ]
    )
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    ("unit", "scale"),
    [
        ("flops", 1),
        ("kflops", 1e3),
        ("mflops", 1e6),
        ("gflops", 1e9),
        ("tflops", 1e12),
        ("macs", 1),
        ("kmacs", 1e3),
        ("mmacs", 1e6),
        ("gmacs", 1e9),
        ("tmacs", 1e12),
    ],
)
def test_every_unit_draws_the_line_at_the_exact_count(
    project: pytest.Pytester, unit: str, scale: float
) -> None:
    exact = FFN_MACS / scale
    project.makepyfile(
        f"""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget({unit}={exact!r})
def test_at_budget(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget({unit}={(FFN_MACS - 1) / scale!r})
def test_one_below(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_one_below*"])


def test_tolerance_gives_relative_slack(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=1.0, tolerance=0.06)
def test_within_slack(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget(mmacs=1.0, tolerance=0.05)
def test_beyond_slack(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*exceeds budget 1.0 MMACs (+5.5%, tolerance 5.0%)*"])


def test_a_params_only_budget_guards_model_size(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(params={FFN_PARAMS})
def test_fits(flops):
    assert flops(FFN(), ffn_input()).params == {FFN_PARAMS}

@pytest.mark.flop_budget(mparams=1.0)
def test_too_big(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*FFN: 1.06M params exceeds budget 1.0M params (+5.7%)*"])


def test_a_positional_budget_string_is_accepted(project: pytest.Pytester) -> None:
    project.makepyfile(_ffn_test('@pytest.mark.flop_budget("1 MMACs, 2M params")'))
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FFN: 1.05 MMACs exceeds budget 1 MMACs (+5.5%)*"])


def test_named_budgets_bind_to_their_counts_and_an_unnamed_one_to_the_sum(
    project: pytest.Pytester,
) -> None:
    total = FFN_MACS + CONV_MACS
    project.makepyfile(
        f"""
import pytest, torch
from models import FFN, TinyConv, ffn_input

@pytest.mark.flop_budget(macs={FFN_MACS}, name="ffn")
@pytest.mark.flop_budget(macs={CONV_MACS}, name="conv")
@pytest.mark.flop_budget(macs={total})
def test_both_fit(flops):
    flops(FFN(), ffn_input(), name="ffn")
    flops(TinyConv(), torch.randn(1, 3, 8, 8), name="conv")

@pytest.mark.flop_budget(macs={CONV_MACS - 1}, name="conv")
def test_conv_over(flops):
    flops(FFN(), ffn_input(), name="ffn")
    flops(TinyConv(), torch.randn(1, 3, 8, 8), name="conv")

@pytest.mark.flop_budget(macs={total - 1})
def test_sum_over(flops):
    flops(FFN(), ffn_input(), name="ffn")
    flops(TinyConv(), torch.randn(1, 3, 8, 8), name="conv")
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*conv: 13,824 MACs exceeds budget 13,823 MACs*",
            "*ffn + conv: 1,068,544 MACs exceeds budget 1,068,543 MACs (+<0.1%)*",
        ]
    )
    result.stdout.fnmatch_lines(["*test_conv_over*ffn*no budget*"])


def test_repeated_counts_under_one_name_add_up(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
import pytest, torch
from models import TinyConv

@pytest.mark.flop_budget(macs={2 * CONV_MACS})
def test_two_calls(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
    flops(TinyConv(), torch.randn(1, 3, 8, 8))

@pytest.mark.flop_budget(macs={2 * CONV_MACS - 1})
def test_two_calls_over(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
"""
    )
    project.runpytest().assert_outcomes(passed=1, failed=1)


def test_class_and_module_markers_apply_and_the_closest_wins(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

pytestmark = pytest.mark.flop_budget(mmacs=1.0)

def test_module_level(flops):
    flops(FFN(), ffn_input())

@pytest.mark.flop_budget(mmacs=2.0)
class TestGenerous:
    def test_class_level(self, flops):
        flops(FFN(), ffn_input())

    @pytest.mark.flop_budget(mmacs=0.5)
    def test_function_level(self, flops):
        flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_module_level _*",
            "FFN: 1.05 MMACs exceeds budget 1.0 MMACs*",
            "*_ TestGenerous.test_function_level _*",
            "FFN: 1.05 MMACs exceeds budget 0.5 MMACs*",
        ]
    )


def test_parametrized_tests_are_checked_one_by_one(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(macs={FFN_MACS})
@pytest.mark.parametrize("hidden", [1024, 2048])
def test_width(flops, hidden):
    flops(FFN(hidden), ffn_input())
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED *test_width[[]2048[]]*"])


def test_a_budget_whose_test_never_counts_is_an_error_not_a_pass(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(gflops=1)
def test_forgot_the_fixture():
    pass

@pytest.mark.flop_budget(gflops=1, name="decoder")
def test_counted_another_name(flops):
    flops(FFN(), ffn_input(), name="encoder")
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_forgot_the_fixture*the test has a budget but counted no model*",
            "*budget for 'decoder', but no count was recorded under that name (recorded: 'encoder')*",
        ]
    )


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ("gflop=4.1", "unknown argument 'gflop'"),
        ("gflops=4.1, mmacs=2", "give exactly one compute unit, got 2 (gflops, mmacs)"),
        ("gflops=-1", "gflops must be a positive number, got -1"),
        ("gflops=0", "gflops must be a positive number, got 0"),
        ("gflops='lots'", "gflops must be a number, got 'lots'"),
        ("'4.1 gigs'", "cannot read '4.1 gigs'"),
        ("", "no budget given"),
        ("4.1", "positional arguments are not accepted"),
        ("gflops=1, tolerance=-0.1", "tolerance must not be negative"),
        ("gflops=1, name=''", "name must be a non-empty string"),
        ("params=1, mparams=1", "give at most one of params / kparams / mparams / bparams"),
        ("gflops=1, on_exceed='maybe'", 'on_exceed must be "fail" or "warn", got \'maybe\''),
    ],
)
def test_invalid_marker_arguments_error_the_test_naming_the_marker(
    project: pytest.Pytester, arguments: str, problem: str
) -> None:
    project.makepyfile(
        f"""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget({arguments})
def test_bad(flops):
    flops(FFN(), ffn_input())

def test_unrelated():
    pass
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*test_bad: @pytest.mark.flop_budget: *{problem}*"])
    assert "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()
