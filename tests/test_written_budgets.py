"""What --flop-budget-update writes holds on the next run: every count, every unit, every form.

The written value parses back (through the same reader the next run uses) to at least the
count, and at most 0.1% above it (rounded up to four significant figures).
"""

from __future__ import annotations

import tempfile
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import FFN_MACS, FFN_PARAMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_flopbudget.budgets.budget import Budget
from pytest_flopbudget.budgets.config import Settings, read_pyproject, settings_from_pyproject
from pytest_flopbudget.budgets.record import TestRecord
from pytest_flopbudget.budgets.units import (
    ALL_UNITS,
    ceil_significant,
    format_written,
    parse_quantities,
)
from pytest_flopbudget.budgets.verdict import NO_BUDGET, OK, Verdict
from pytest_flopbudget.reports.update import update_pyproject

COUNTS = st.integers(min_value=0, max_value=10**18)
KEY = "test_x.py::test_y"
STRING_UNITS = [
    "FLOPs",
    "KFLOPs",
    "MFLOPs",
    "GFLOPs",
    "TFLOPs",
    "MACs",
    "KMACs",
    "MMACs",
    "GMACs",
    "TMACs",
    "params",
    "K params",
    "M params",
    "G params",
    "B params",
]


def _verdict(flops: int, macs: int, params: int, *, budgeted: bool) -> Verdict:
    return Verdict(
        nodeid=KEY,
        name="Net",
        status=OK if budgeted else NO_BUDGET,
        flops=flops,
        macs=macs,
        params=params,
        budget_key=KEY if budgeted else None,
    )


def _update(entry: str | None, flops: int, macs: int, params: int) -> tuple[Budget | None, str]:
    """Write an update over ``entry`` (a TOML value, or no entry) and read the budget back."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "pyproject.toml"
        body = "[tool.flopbudget.budgets]\n" + (f'"{KEY}" = {entry}\n' if entry else "")
        path.write_text(body, encoding="utf-8")
        record = TestRecord(KEY, 0, [], [_verdict(flops, macs, params, budgeted=bool(entry))])
        outcome = update_pyproject(path, [record], Settings())
        read = settings_from_pyproject(path, read_pyproject(path))
        return read.budgets_by_nodeid.get(KEY), "\n".join(outcome.lines())


def _check(written: float, count: int, old: float) -> None:
    if count == 0:
        assert written == old  # a zero count keeps the old, positive budget
    else:
        assert count <= written <= count + Fraction(count, 1000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flops=COUNTS,
    macs=COUNTS,
    params=COUNTS,
    compute_unit=st.sampled_from([u for u in STRING_UNITS if "params" not in u]),
    params_unit=st.sampled_from(["params", "K params", "M params", "G params", "B params", None]),
)
def test_a_string_entry_parses_back_to_at_least_the_count_in_every_unit(
    flops: int, macs: int, params: int, compute_unit: str, params_unit: str | None
) -> None:
    old = f"3 {compute_unit}" + (f", 7 {params_unit}" if params_unit else "")
    budget, _ = _update(f'"{old}"', flops, macs, params)
    assert budget is not None and budget.compute is not None
    count = macs if "MACs" in compute_unit else flops
    _check(budget.compute.base_value, count, parse_quantities(f"3 {compute_unit}")[0].base_value)
    if params_unit:
        assert budget.params is not None
        _check(budget.params.base_value, params, parse_quantities(f"7 {params_unit}")[0].base_value)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flops=COUNTS,
    macs=COUNTS,
    params=COUNTS,
    compute_key=st.sampled_from([key for key in ALL_UNITS if "params" not in key]),
    params_key=st.sampled_from(["params", "kparams", "mparams", "bparams", "gparams", None]),
)
def test_a_table_entry_parses_back_to_at_least_the_count_in_every_unit_key(
    flops: int, macs: int, params: int, compute_key: str, params_key: str | None
) -> None:
    old = f"{{ {compute_key} = 3" + (f", {params_key} = 7" if params_key else "") + " }"
    budget, _ = _update(old, flops, macs, params)
    assert budget is not None and budget.compute is not None
    assert budget.compute.unit.key == compute_key  # the entry keeps its unit
    count = macs if ALL_UNITS[compute_key].kind == "macs" else flops
    _check(budget.compute.base_value, count, 3 * ALL_UNITS[compute_key].scale)
    if params_key:
        assert budget.params is not None and budget.params.unit == ALL_UNITS[params_key]
        _check(budget.params.base_value, params, 7 * ALL_UNITS[params_key].scale)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flops=COUNTS, params=COUNTS)
def test_a_new_entry_parses_back_to_at_least_the_count(flops: int, params: int) -> None:
    budget, lines = _update(None, flops, flops, params)
    if flops == 0 and params == 0:
        assert budget is None
        assert "counted 0 FLOPs and 0 params" in lines
        return
    assert budget is not None
    if flops:
        assert budget.compute is not None
        _check(budget.compute.base_value, flops, 0)
    if params:
        assert budget.params is not None
        _check(budget.params.base_value, params, 0)


def test_a_count_just_above_a_round_number_is_written_with_its_fourth_figure() -> None:
    assert format_written(1_001, "flops") == "1.001 KFLOPs"
    assert parse_quantities("1.001 KFLOPs")[0].base_value == 1_001


def test_counts_are_rounded_up_never_down() -> None:
    assert format_written(1_054_720, "macs") == "1.055 MMACs"
    assert format_written(10**15 + 1, "macs") == "1001 TMACs"
    assert format_written(999_999_999_999_999_999, "flops") == "1000000 TFLOPs"


def test_written_numbers_never_use_an_exponent() -> None:
    assert format_written(10**18, "params") == "1000000000B params"
    assert format_written(1, "flops", "g") == "0.000000001 GFLOPs"


def test_exact_powers_of_ten_are_written_exactly() -> None:
    assert ceil_significant(10**12, "t") == Decimal(1)
    assert format_written(1000, "flops") == "1 KFLOPs"
    assert format_written(224, "params") == "224 params"


def test_a_zero_count_keeps_the_old_budget_and_says_so() -> None:
    budget, lines = _update('"2 MMACs, 5 params"', 0, 0, 12)
    assert budget is not None and budget.compute is not None and budget.params is not None
    assert budget.compute.base_value == 2e6
    assert budget.params.base_value == 12
    assert "counted 0 MACs; a budget must be positive, so its MACs budget was kept" in lines


def test_budgets_of_four_figures_mean_exactly_what_they_say() -> None:
    assert parse_quantities("4.1 GFLOPs")[0].base_value == 4_100_000_000
    assert parse_quantities("0.000224M params")[0].base_value == 224


def test_an_update_then_a_normal_run_passes_with_the_written_budgets(
    project: pytest.Pytester,
) -> None:
    # 1,001 MACs: Linear(1000, 1) has 1,000 weights + 1 bias, and 1,000 MACs; two layers 1,001
    project.makefile(
        ".toml",
        pyproject="""
[tool.flopbudget.budgets]
"test_round.py::test_just_above" = "1 KFLOPs"
"test_round.py::test_ffn" = { gmacs = 1.0, mparams = 1.0 }
"test_round.py::test_nothing" = "5 MACs, 1 params"
""",
    )
    project.makepyfile(
        test_round="""
import torch
from torch import nn
from models import FFN, ffn_input

class JustAbove(nn.Module):
    def __init__(self):
        super().__init__()
        self.big = nn.Linear(1000, 1, bias=False)
        self.one = nn.Linear(1, 1, bias=False)

    def forward(self, x):
        return self.one(self.big(x))

def test_just_above(flops):
    assert flops(JustAbove(), torch.randn(1, 1000)).macs == 1001

def test_ffn(flops):
    assert flops(FFN(), ffn_input()).macs == FFN_MACS

def test_nothing(flops):
    assert flops(nn.Identity(), torch.randn(1, 3)).macs == 0

def test_new(flops):
    flops(JustAbove(), torch.randn(1, 1000))
"""
        + f"\nFFN_MACS = {FFN_MACS}\n"
    )
    project.runpytest().assert_outcomes(passed=2, failed=2)  # 1,001 > 1 KFLOPs; 1.06M > 1M

    updated = project.runpytest("--flop-budget-update")
    updated.assert_outcomes(passed=4)
    updated.stdout.fnmatch_lines(["*test_round.py::test_nothing: counted 0 MACs*was kept"])
    text = (project.path / "pyproject.toml").read_text()
    assert '"test_round.py::test_just_above" = "1.001 KFLOPs"' in text
    # 1,054,720 MACs and 1,056,770 params, rounded up to four figures in the table's units
    assert (FFN_MACS, FFN_PARAMS) == (1_054_720, 1_056_770)
    assert "{ gmacs = 0.001055, mparams = 1.057 }" in text
    assert '"test_round.py::test_nothing" = "5 MACs, 1 params"' in text
    assert '"test_round.py::test_new" = "1.001 KFLOPs, 1.001K params"' in text

    again = project.runpytest()
    again.assert_outcomes(passed=4)
    again.stdout.no_fnmatch_line("*no budget*")


def test_the_summary_shows_a_written_budget_with_all_its_figures(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject='[tool.flopbudget.budgets]\n"FFN" = "1.055 MMACs"\n')
    project.makepyfile(
        test_one="from models import FFN, ffn_input\n\n"
        "def test_ffn(flops):\n    flops(FFN(), ffn_input())\n"
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_ffn*FFN*1.055 MMACs*ok*"])
