"""Numbers people read at a glance: parameters in K/M/B, budgets with the figures they were
written with, one prefix per row family."""

from __future__ import annotations

from decimal import Decimal

import pytest
from conftest import FFN_MACS, FFN_PARAMS
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_flopbudget.budgets.budget import BudgetError, budget_from_marker
from pytest_flopbudget.budgets.units import (
    ALL_UNITS,
    UnitError,
    format_quantity,
    format_written,
    format_written_budget,
    parse_quantities,
)
from pytest_flopbudget.budgets.verdict import Verdict
from pytest_flopbudget.reports import rows

FEW = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    "text", ["7B params", "7 B params", "7b params", "7 bparams", "7G params", "7 g params"]
)
def test_billions_of_parameters_are_written_b_and_g_is_still_read(text: str) -> None:
    (quantity,) = parse_quantities(text)
    assert quantity.base_value == 7_000_000_000
    assert quantity.unit.kind == "params"
    assert format_written_budget(quantity) == "7B params"


def test_active_parameters_take_b_too() -> None:
    (quantity,) = parse_quantities("12.9B active params")
    assert quantity.base_value == 12_900_000_000
    assert format_written_budget(quantity) == "12.9B active params"


@pytest.mark.parametrize(
    ("key", "base"),
    [
        ("kparams", 7e3),
        ("mparams", 7e6),
        ("bparams", 7e9),
        ("gparams", 7e9),
        ("kactive_params", 7e3),
        ("bactive_params", 7e9),
        ("gactive_params", 7e9),
    ],
)
def test_marker_keys_name_params_in_k_m_and_b(key: str, base: float) -> None:
    budget = budget_from_marker((), {key: 7}, "test_x.py::test_y")
    assert budget is not None
    quantity = budget.active_params if "active" in key else budget.params
    assert quantity is not None and quantity.base_value == base


def test_b_is_for_parameters_only() -> None:
    with pytest.raises(UnitError, match="B \\(billions\\) is for parameter counts"):
        parse_quantities("7 BFLOPs")
    with pytest.raises(UnitError, match="parameter counts take K, M or B"):
        parse_quantities("7T params")
    with pytest.raises(BudgetError, match="unknown argument 'bflops'"):
        budget_from_marker((), {"bflops": 7}, "test_x.py::test_y")


def test_parameter_counts_print_in_b_never_g() -> None:
    assert format_quantity(6_738_415_616, "params") == "6.74B params"
    assert format_quantity(46_702_792_704, "active_params") == "46.7B active params"
    assert format_quantity(1_200_000_000_000, "params") == "1200B params"
    assert format_written(6_738_415_616, "params") == "6.739B params"
    assert ALL_UNITS["gparams"].label == "B params"
    assert ALL_UNITS["gparams"].key == "bparams"


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("2.835 MFLOPs", "2.835 MFLOPs"),
        ("4.10 GFLOPs", "4.10 GFLOPs"),
        ("4.1 GFLOPs", "4.1 GFLOPs"),
        ("1e3 KMACs", "1000 KMACs"),
        ("6800M params", "6800M params"),
    ],
)
def test_a_budget_shows_the_figures_it_was_written_with(written: str, shown: str) -> None:
    (quantity,) = parse_quantities(written)
    assert format_written_budget(quantity) == shown


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        ({"gflops": 4.1}, "4.1 GFLOPs"),
        ({"mmacs": 2}, "2 MMACs"),
        ({"mparams": 25.6}, "25.6M params"),
    ],
)
def test_a_marker_budget_shows_the_number_typed(arguments: dict[str, float], shown: str) -> None:
    budget = budget_from_marker((), arguments, "test_x.py::test_y")
    assert budget is not None
    quantity = budget.compute or budget.params
    assert quantity is not None and format_written_budget(quantity) == shown


def test_a_budget_in_another_prefix_keeps_its_significant_figures() -> None:
    (quantity,) = parse_quantities("6800M params")
    assert format_written_budget(quantity, "g") == "6.800B params"
    (quantity,) = parse_quantities("4.1 GFLOPs")
    assert format_written_budget(quantity, "m") == "4100 MFLOPs"
    assert format_written_budget(quantity, "t") == "0.0041 TFLOPs"


COUNTS = st.integers(min_value=1, max_value=10**15)
PARAM_KINDS = st.sampled_from(["params", "active_params"])
ALL_KINDS = st.sampled_from(["flops", "macs", "params", "active_params"])


@FEW
@given(count=COUNTS, kind=PARAM_KINDS)
def test_a_written_parameter_budget_reads_back_to_at_least_the_count(count: int, kind: str) -> None:
    (quantity,) = parse_quantities(format_written(count, kind))  # type: ignore[arg-type]
    assert quantity.base_value >= count
    assert quantity.base_value <= count * 1.001 + 1


@FEW
@given(count=COUNTS, kind=ALL_KINDS)
def test_every_count_printed_reads_back_as_a_budget_string(count: int, kind: str) -> None:
    (quantity,) = parse_quantities(format_quantity(count, kind))  # type: ignore[arg-type]
    assert quantity.base_value == pytest.approx(count, rel=5e-3)


FIGURES = st.decimals(
    min_value=Decimal("0.001"), max_value=Decimal(999_999), places=3, allow_nan=False
).filter(lambda number: number >= 1 or number.as_tuple().digits[-1] != 0)
PREFIXES = st.sampled_from(["", "k", "m", "g"])
SEPARATORS = st.sampled_from(["", " "])
LETTERS = {"": "", "k": "K", "m": "M", "g": "B"}


@FEW
@given(figures=FIGURES, prefix=PREFIXES, target=PREFIXES, separator=SEPARATORS, kind=PARAM_KINDS)
def test_a_parameter_budget_shown_in_any_prefix_reads_back_exactly(
    figures: Decimal, prefix: str, target: str, separator: str, kind: str
) -> None:
    noun = "params" if kind == "params" else "active params"
    text = f"{figures}{separator}{LETTERS[prefix]} {noun}"
    try:
        (quantity,) = parse_quantities(text)
    except UnitError:  # below one parameter
        assert figures * 1000 ** ["", "k", "m", "g"].index(prefix) < 1
        return
    shown = format_written_budget(quantity, target)
    (again,) = parse_quantities(shown)
    assert again.base_value == quantity.base_value
    assert format_written_budget(again) == shown  # what is shown is shown the same again


def _verdict(name: str, macs: int, params: int, written: tuple[tuple[str, str, str], ...] = ()):
    return Verdict(
        nodeid=f"test_x.py::test_{name}",
        name=name,
        status="ok",
        flops=macs,
        macs=macs,
        params=params,
        budget_label="x",
        budget_written=written,
    )


def test_a_row_family_prints_each_kind_in_one_prefix() -> None:
    small = _verdict("FFN", 112, 130)
    large = _verdict("FFN", 4_480, 4_610, (("macs", "k", "5"),))
    llama = _verdict("Llama", 14_600_000_000_000, 6_738_415_616, (("params", "m", "6800"),))
    prefixes = rows.family_prefixes([small, large, llama])
    assert prefixes[("FFN", "macs")] == "k"
    assert prefixes[("Llama", "params")] == "g"
    assert rows._count(small.macs, "macs", "FFN", prefixes) == "0.112 KMACs"
    assert rows._count(large.macs, "macs", "FFN", prefixes) == "4.48 KMACs"
    assert rows.params_cell(llama, prefixes) == "6.74B params"
    assert rows.budget_cell(llama, prefixes) == "6.800B params"
    assert rows.budget_cell(large, prefixes) == "5 KMACs"


def test_a_count_far_below_its_family_keeps_its_own_prefix() -> None:
    tiny = _verdict("net", 5, 5)
    huge = _verdict("net", 5_000_000, 5_000_000)
    prefixes = rows.family_prefixes([tiny, huge])
    assert rows._count(tiny.macs, "macs", "net", prefixes) == "5 MACs"


def test_the_table_shows_b_params_and_written_budgets(project: pytest.Pytester) -> None:
    project.makepyprojecttoml(
        '[tool.flopbudget.budgets]\n"test_b.py::test_ffn" = "1.1 MMACs, 0.0011B params"\n'
    )
    project.makepyfile(
        test_b="""
import pytest, torch
from models import FFN

def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4))

@pytest.mark.flop_budget(mmacs=1.06, bparams=0.001)
def test_over(flops):
    flops(FFN(), torch.randn(1, 4))
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    assert FFN_MACS < 1.06e6 and FFN_PARAMS > 1e6  # only the params budget is exceeded
    result.stdout.fnmatch_lines(
        [
            # one family (FFN): params in M, budgets with their written figures
            "test_b.py::test_ffn  *FFN*1.06M params  *1.1 MMACs, 1.1M params*ok",
            "test_b.py::test_over  *FFN*1.06M params  *1.06 MMACs, 1M params*over",
        ]
    )
    result.stdout.fnmatch_lines(
        [f"FFN: {FFN_PARAMS:,} params exceeds budget 1,000,000 params (+5.7%)"]
    )


def test_compare_shows_before_and_after_in_one_prefix() -> None:
    from pytest_flopbudget.reports.comparison import _old_to_new

    assert _old_to_new(999_000, 1_054_720, "macs") == "0.999 MMACs -> 1.05 MMACs"
    assert _old_to_new(6_738_415_616, 6_800_000_000, "params") == "6.74B params -> 6.80B params"
    assert _old_to_new(0, 1_054_720, "macs") == "0 MACs -> 1.05 MMACs"
