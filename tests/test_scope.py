"""What a run proves, decided without pytest: the scope and the stale entries it allows."""

from __future__ import annotations

from pathlib import Path, PurePath

from pytest_flopbudget.budgets.baseline import Baseline, BaselineEntry, merged
from pytest_flopbudget.budgets.budget import budget_from_entry
from pytest_flopbudget.budgets.config import Settings
from pytest_flopbudget.budgets.record import TestRecord
from pytest_flopbudget.budgets.scope import (
    CollectionFacts,
    Phases,
    build_scope,
    narrowed_by_paths,
)
from pytest_flopbudget.budgets.stale import find_stale
from pytest_flopbudget.counting.count import Count

PASSED = Phases("passed", "passed")
A, B = "t.py::test_a", "t.py::test_b"


def _count(name: str) -> Count:
    return Count(name=name, flops=16, macs=16, params=20, flops_per_mac=1, backend="fvcore")


def _settings(**budgets: str) -> Settings:
    by_nodeid = {
        k: budget_from_entry(k, v, k, is_nodeid=True) for k, v in budgets.items() if "::" in k
    }
    by_name = {
        k: budget_from_entry(k, v, k, is_nodeid=False) for k, v in budgets.items() if "::" not in k
    }
    return Settings(budgets_by_nodeid=by_nodeid, budgets_by_name=by_name)


def test_a_test_completes_when_its_body_passed_even_if_its_budget_failed_it() -> None:
    assert PASSED.why_not_completed() is None
    assert Phases("passed", "failed", body_passed=True).why_not_completed() is None
    assert Phases("passed", "failed").why_not_completed() == "failed"
    assert Phases("skipped").why_not_completed() == "skipped"
    assert Phases("passed", "xfailed").why_not_completed() == "xfailed"
    assert Phases("failed").why_not_completed() == "error in setup"
    assert Phases("passed").why_not_completed() == "did not finish"
    assert Phases().why_not_completed() == "not run"


def test_a_run_is_complete_only_when_nothing_was_dropped_stopped_or_broken() -> None:
    facts = CollectionFacts((A, B), (A, B))
    both = {A: PASSED, B: PASSED}
    assert build_scope(facts, both).complete
    assert not build_scope(CollectionFacts((A, B), dropped=1), both).complete
    assert not build_scope(facts, both, narrowed_by=["--ignore"]).complete
    assert build_scope(facts, {A: PASSED}).no_write == (
        "the run was interrupted (1 collected tests did not run)"
    )
    assert build_scope(CollectionFacts((A,), errors=1), both).no_write == (
        "1 errors during collection"
    )
    assert build_scope(facts, {}, only_collects="--collect-only").no_write == (
        "--collect-only runs no test"
    )
    assert not build_scope(CollectionFacts(), {}).complete


def test_workers_facts_merge_to_what_every_worker_saw() -> None:
    merged_facts = CollectionFacts.merged(
        [CollectionFacts((A, B), (A,), dropped=0), CollectionFacts((A, B), (A,), dropped=2)]
    )
    assert merged_facts == CollectionFacts((A, B), (A,), dropped=2)
    assert CollectionFacts.from_dict(merged_facts.to_dict()) == merged_facts


def test_paths_narrow_the_run_unless_they_cover_the_suite() -> None:
    root = PurePath("/repo")
    assert narrowed_by_paths([root], [root], node_ids=False) is None
    assert narrowed_by_paths([PurePath("/")], [root / "tests"], node_ids=False) is None
    assert narrowed_by_paths([root / "tests"], [root / "tests"], node_ids=False) is None
    assert narrowed_by_paths([root / "tests" / "sub"], [root], node_ids=False) is not None
    assert narrowed_by_paths([root], [root], node_ids=True) is not None


def _baseline(*keys: tuple[str, str]) -> Baseline:
    return Baseline(Path("b.json"), {key: BaselineEntry(16, 20) for key in keys})


def test_a_baseline_entry_is_stale_when_its_test_completed_without_recording_it() -> None:
    scope = build_scope(
        CollectionFacts((A, B), (A, B), dropped=1), {A: PASSED, B: Phases("skipped")}
    )
    records = [TestRecord(A, 0, [_count("New")], [])]
    found = find_stale(Settings(), _baseline((A, "Old"), (B, "Old")), records, scope)
    assert [entry.baseline_key for entry in found.stale] == [(A, "Old")]
    assert [(entry.key, entry.why) for entry in found.kept] == [(f"{B} [Old]", "skipped")]


def test_a_name_is_stale_when_every_test_that_recorded_it_completed_without_it() -> None:
    scope = build_scope(CollectionFacts((A, B), (A, B), dropped=5), {A: PASSED, B: PASSED})
    found = find_stale(_settings(Old="1 GFLOPs"), _baseline((A, "Old")), [], scope)
    assert [(entry.key, entry.why) for entry in found.stale] == [
        (f"{A} [Old]", f"{A} ran to completion without recording 'Old'"),
        ("Old", f"{A} ran to completion without recording it"),
    ]


def test_without_a_baseline_a_name_is_kept_while_a_counting_test_did_not_complete() -> None:
    skipped = build_scope(CollectionFacts((A, B), (A, B)), {A: PASSED, B: Phases("skipped")})
    found = find_stale(_settings(Old="1 GFLOPs"), None, [], skipped)
    assert found.stale == ()
    assert [entry.why for entry in found.kept] == [f"{B} skipped, it may record it"]
    complete = build_scope(CollectionFacts((A, B), (A, B)), {A: PASSED, B: PASSED})
    assert [
        entry.key for entry in find_stale(_settings(Old="1 GFLOPs"), None, [], complete).stale
    ] == ["Old"]


def test_a_node_id_budget_of_a_test_that_is_gone_is_stale_only_on_a_complete_run() -> None:
    settings = _settings(**{"t.py::test_gone": "1 GFLOPs"})
    complete = build_scope(CollectionFacts((A,), (A,)), {A: PASSED})
    narrowed = build_scope(CollectionFacts((A,), (A,)), {A: PASSED}, narrowed_by=["-k"])
    assert [entry.why for entry in find_stale(settings, None, [], complete).stale] == [
        "the test no longer exists"
    ]
    assert find_stale(settings, None, [], narrowed).stale == ()


def test_merging_a_baseline_keeps_everything_not_proven_stale() -> None:
    previous = _baseline((A, "Old"), (B, "Kept"))
    new = {(A, "New"): BaselineEntry(32, 40)}
    assert merged(previous, new, [(A, "Old")]) == {
        (B, "Kept"): BaselineEntry(16, 20),
        (A, "New"): BaselineEntry(32, 40),
    }
