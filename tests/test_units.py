from __future__ import annotations

import pytest

from pytest_flopbudget.budgets.units import UnitError, format_quantity, parse_quantities, round_up


@pytest.mark.parametrize(
    ("text", "base", "key"),
    [
        ("4.1 GFLOPs", 4.1e9, "gflops"),
        ("300 MMACs", 300e6, "mmacs"),
        ("25.6M params", 25.6e6, "mparams"),
        ("2 tflops", 2e12, "tflops"),
        ("1e3 kmacs", 1e6, "kmacs"),
        ("512 FLOPs", 512, "flops"),
        (" 7 gmac ", 7e9, "gmacs"),
    ],
)
def test_budget_strings_are_read_case_insensitively(text: str, base: float, key: str) -> None:
    (quantity,) = parse_quantities(text)
    assert quantity.base_value == pytest.approx(base)
    assert quantity.unit.key == key


def test_a_budget_string_may_carry_compute_and_params() -> None:
    compute, params = parse_quantities("4.1 GFLOPs, 25.6M params")
    assert (compute.unit.key, params.unit.key) == ("gflops", "mparams")


@pytest.mark.parametrize(
    "text", ["", "4.1", "GFLOPs", "4.1 gigs", "-1 GFLOPs", "0 MMACs", "4.1 PFLOPs", "1,"]
)
def test_unreadable_budget_strings_are_refused(text: str) -> None:
    with pytest.raises(UnitError):
        parse_quantities(text)


def test_counts_print_with_three_significant_figures() -> None:
    assert format_quantity(4_520_000_000, "flops") == "4.52 GFLOPs"
    assert format_quantity(4096, "flops") == "4.10 KFLOPs"
    assert format_quantity(25_557_032, "params") == "25.6M params"
    assert format_quantity(512, "macs") == "512 MACs"


def test_rounding_up_never_goes_below_the_value() -> None:
    value, prefix = round_up(1_054_720)
    assert (value, prefix) == (1.055, "m")
    value, prefix = round_up(4_000_000_000)
    assert value * 1e9 >= 4_000_000_000
