"""``flopbudget merge``: shard reports of one suite in, one report, table and stale list out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CONV_MACS, FFN_MACS, FFN_PARAMS
from test_cli import model, report, run_main, write

from pytest_flopbudget.cli import main

CONV_PARAMS = 8 * 3 * 3 * 3 + 8  # weights plus biases of Conv2d(3, 8, 3)


def shard(*rows: dict[str, Any], stale: list[dict[str, str]] | None = None, **kw: Any) -> Any:
    document = report(*rows, **kw)
    document["stale"] = stale or []
    return document


def merged(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_two_shards_become_one_report_with_every_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::test_a")))
    b = write(tmp_path, "b.json", shard(model(name="Conv", macs=CONV_MACS, nodeid="t.py::test_b")))
    code, out, err = run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")
    assert code == 0, err
    rows = merged(tmp_path / "m.json")["results"]
    assert [(r["nodeid"], r["name"], r["macs"]) for r in rows] == [
        ("t.py::test_a", "FFN", FFN_MACS),
        ("t.py::test_b", "Conv", CONV_MACS),
    ]
    assert "merged 2 shards: 2 models (2 no budget), 0 stale entries" in out
    assert "t.py::test_b" in out


def test_the_merged_report_is_read_by_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::test_a")))
    b = write(tmp_path, "b.json", shard(model(nodeid="t.py::test_b")))
    assert run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")[0] == 0
    full = write(
        tmp_path, "full.json", report(model(nodeid="t.py::test_a"), model(nodeid="t.py::test_b"))
    )
    code, _out, err = run_main(capsys, "compare", full, tmp_path / "m.json")
    assert code == 0, err


def test_shards_with_different_flops_per_mac_are_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::a")))
    b = write(tmp_path, "b.json", shard(model(nodeid="t.py::b", flops_per_mac=2), flops_per_mac=2))
    code, _out, err = run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")
    assert code == 2
    assert f"{b}: convention.flops_per_mac is 2 but 1 in {a}" in err
    assert not (tmp_path / "m.json").exists()


def test_shards_with_different_ops_conventions_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dense = shard(model(nodeid="t.py::b"))
    dense["convention"]["ops"] = "dense"
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::a")))
    b = write(tmp_path, "b.json", dense)
    code, _out, err = run_main(capsys, "merge", a, b)
    assert code == 2
    assert f"{b}: convention.ops is 'dense' but 'fvcore' in {a}" in err


def test_one_model_counted_differently_by_two_shards_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model()))
    b = write(tmp_path, "b.json", shard(model(macs=FFN_MACS + 1)))
    code, _out, err = run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")
    assert code == 2
    assert f"{b}: tests/test_models.py::test_ffn [FFN] counted" in err
    assert f"macs={FFN_MACS + 1}" in err and f"macs={FFN_MACS}" in err


def test_one_model_counted_alike_by_two_shards_appears_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model()))
    b = write(tmp_path, "b.json", shard(model()))
    assert run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")[0] == 0
    assert len(merged(tmp_path / "m.json")["results"]) == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ({"results": []}, "no 'version'"),
        ({**report(), "stale": "x"}, "'stale' must be a list"),
        ({**report(), "stale": [{"where": 1}]}, "stale[0]"),
    ],
)
def test_a_bad_shard_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: Any, problem: str
) -> None:
    good = write(tmp_path, "good.json", shard(model()))
    bad = write(tmp_path, "bad.json", content)
    code, _out, err = run_main(capsys, "merge", good, bad, "-o", tmp_path / "m.json")
    assert code == 2
    assert f"flopbudget merge: error: {bad}: " in err and problem in err
    assert not (tmp_path / "m.json").exists()


def test_a_missing_shard_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run_main(capsys, "merge", tmp_path / "nope.json")
    assert code == 2
    assert "nope.json: no such file" in err


def test_an_output_that_is_not_a_report_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", shard(model()))
    notes = write(tmp_path, "notes.txt", "my notes\n")
    code, _out, err = run_main(capsys, "merge", a, "-o", notes)
    assert code == 2
    assert "is not a JSON report written by pytest-flopbudget" in err
    assert notes.read_text() == "my notes\n"


def test_a_stale_entry_of_one_shard_stays_stale_when_no_shard_recorded_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = {"where": "baseline", "key": "t.py::test_a [Old]"}
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::test_a"), stale=[gone]))
    b = write(tmp_path, "b.json", shard(model(nodeid="t.py::test_b")))
    code, out, err = run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")
    assert code == 0, err
    assert merged(tmp_path / "m.json")["stale"] == [gone]
    assert "stale: baseline entry 't.py::test_a [Old]'" in out


def test_a_stale_entry_that_another_shard_recorded_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = {"where": "pyproject", "key": "Conv"}
    pair = {"where": "baseline", "key": "t.py::test_b [Conv]"}
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::test_a"), stale=[name, pair]))
    b = write(tmp_path, "b.json", shard(model(name="Conv", nodeid="t.py::test_b")))
    code, out, err = run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")
    assert code == 0, err
    assert merged(tmp_path / "m.json")["stale"] == []
    assert "kept: pyproject entry 'Conv': listed stale by" in out


def test_a_node_id_budget_whose_test_recorded_in_another_shard_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = {"where": "pyproject", "key": "t.py::test_b"}
    a = write(tmp_path, "a.json", shard(model(nodeid="t.py::test_a"), stale=[key]))
    b = write(tmp_path, "b.json", shard(model(nodeid="t.py::test_b")))
    assert run_main(capsys, "merge", a, b, "-o", tmp_path / "m.json")[0] == 0
    assert merged(tmp_path / "m.json")["stale"] == []


SUITE = """
import torch
from torch import nn

from models import FFN, TinyConv


def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4))


def test_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))


def test_both(flops):
    flops(FFN(), torch.randn(1, 4), name="Second")
    flops(TinyConv(), torch.randn(1, 3, 8, 8), name="Third")
"""


def _results(path: Path) -> list[tuple[str, str, int, int]]:
    rows = json.loads(path.read_text())["results"]
    return sorted((r["nodeid"], r["name"], r["macs"], r["params"]) for r in rows)


def test_two_shards_of_a_real_suite_merge_into_the_full_run(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=SUITE)
    full = project.runpytest("--flop-budget-json=full.json")
    full.assert_outcomes(passed=3)
    first = project.runpytest("-k", "ffn", "--flop-budget-json=shard1.json")
    first.assert_outcomes(passed=1, deselected=2)
    second = project.runpytest("-k", "not ffn", "--flop-budget-json=shard2.json")
    second.assert_outcomes(passed=2, deselected=1)
    root = project.path
    code = main(
        ["merge", str(root / "shard1.json"), str(root / "shard2.json"), "-o", str(root / "m.json")]
    )
    assert code == 0
    expected = [
        ("test_models.py::test_both", "Second", FFN_MACS, FFN_PARAMS),
        ("test_models.py::test_both", "Third", CONV_MACS, CONV_PARAMS),
        ("test_models.py::test_conv", "TinyConv", CONV_MACS, CONV_PARAMS),
        ("test_models.py::test_ffn", "FFN", FFN_MACS, FFN_PARAMS),
    ]
    assert _results(root / "m.json") == expected
    assert _results(root / "full.json") == expected
