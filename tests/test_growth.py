"""The one comparison engine: "grew beyond tolerance" and "which modules changed"."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_flopbudget.budgets.growth import (
    ModuleChange,
    grew_beyond,
    module_changes,
    status,
)


def test_only_the_deepest_changed_modules_are_named() -> None:
    before = {"": 30, "a": 20, "a.x": 10, "a.y": 10, "b": 10}
    after = {"": 45, "a": 35, "a.x": 25, "a.y": 10, "b": 10}
    assert module_changes(before, after) == [ModuleChange("a.x", 10, 25)]


def test_ancestors_of_changed_modules_are_skipped_and_the_biggest_change_comes_first() -> None:
    before = {"a": 10, "a.b": 10, "a.b.c": 10, "a.d": 0, "e": 5}
    after = {"a": 12, "a.b": 12, "a.b.c": 12, "e": 5, "f": 3}
    assert module_changes(before, after) == [
        ModuleChange("f", None, 3),
        ModuleChange("a.b.c", 10, 12),
    ]


@pytest.mark.parametrize(
    ("before", "after", "tolerance", "grew"),
    [
        (100, 100, 0.0, False),
        (100, 101, 0.0, True),  # one MAC more is growth at tolerance 0
        (100, 102, 0.02, False),  # exactly 2% is within a 2% tolerance
        (100, 103, 0.02, True),
        (0, 1, 0.5, True),  # from nothing, any work is growth
        (2**60, 2**60 + 1, 0.0, True),  # beyond float precision, still exact
    ],
)
def test_growth_beyond_tolerance_is_exact(
    before: int, after: int, tolerance: float, grew: bool
) -> None:
    assert grew_beyond(before, after, tolerance) is grew


@given(
    before=st.integers(min_value=0, max_value=10**18),
    after=st.integers(min_value=0, max_value=10**18),
)
def test_at_tolerance_zero_growth_is_any_increase(before: int, after: int) -> None:
    assert grew_beyond(before, after, 0.0) is (after > before)


def test_status_names_the_worst_movement_of_any_pair() -> None:
    assert status([(10, 12), (5, 5)], 0.0) == "regressed"
    assert status([(10, 12), (5, 5)], 0.5) == "grew"
    assert status([(10, 8), (5, 5)], 0.0) == "shrank"
    assert status([(10, 10)], 0.0, modules_changed=True) == "changed"
    assert status([(10, 10)], 0.0) == "unchanged"
