"""Which modules a failure message names: the level where the work splits."""

from __future__ import annotations

from pytest_flopbudget.counting.count import top_modules


def test_a_container_holding_nearly_all_the_work_is_opened_up() -> None:
    by_module = {"features": 950, "features.0": 150, "features.1": 800, "head": 50}
    assert top_modules(by_module) == [("features.1", 800), ("features.0", 150)]


def test_a_dominant_leaf_is_shown_beside_its_siblings() -> None:
    by_module = {"fc1": 4, "fc2": 1000, "fc3": 2}
    assert top_modules(by_module) == [("fc2", 1000), ("fc1", 4), ("fc3", 2)]


def test_a_single_chain_of_containers_is_followed_to_its_split() -> None:
    by_module = {"model": 100, "model.encoder": 100, "model.encoder.0": 60, "model.encoder.1": 40}
    assert top_modules(by_module) == [("model.encoder.0", 60), ("model.encoder.1", 40)]
