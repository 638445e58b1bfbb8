"""Active parameters in the baseline and in ``flopbudget compare``: a mixture of experts that
routes each token to more experts uses more parameters per token, and that is a regression
even where its total parameters (and, here, its MACs) are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_flopbudget.budgets.baseline import Baseline, BaselineEntry, load, render
from pytest_flopbudget.budgets.config import Settings
from pytest_flopbudget.budgets.regression import against_baseline
from pytest_flopbudget.budgets.verdict import NO_BUDGET, REGRESSION, Verdict
from pytest_flopbudget.cli import main

# Mixtral 8x7B: 46,702,792,704 parameters, 12,879,925,248 active with 2 of 8 experts per
# token; with 3 of 8, one more expert per layer: + 32 x 176,160,768 = 18,517,069,824.
TOTAL, ACTIVE_TOP2, ACTIVE_TOP3 = 46_702_792_704, 12_879_925_248, 18_517_069_824
MACS = 1_000_000


def _verdict(active: int) -> Verdict:
    return Verdict(
        nodeid="t.py::test_moe",
        name="Mixtral",
        status=NO_BUDGET,
        flops=MACS,
        macs=MACS,
        params=TOTAL,
        active_params=active,
    )


def _baseline(tmp_path: Path, active: int | None) -> Baseline:
    entry = BaselineEntry(macs=MACS, params=TOTAL, active_params=active)
    path = tmp_path / "flopbudget.json"
    path.write_text(render({("t.py::test_moe", "Mixtral"): entry}))
    return load(path)


def test_active_params_that_grew_since_the_baseline_are_a_regression(tmp_path: Path) -> None:
    assert ACTIVE_TOP3 - ACTIVE_TOP2 == 32 * 3 * 4096 * 14336
    verdict = against_baseline(_verdict(ACTIVE_TOP3), _baseline(tmp_path, ACTIVE_TOP2), Settings())
    assert verdict.status == REGRESSION
    assert "Mixtral: active 18.5B params, up from 12.9B params in the baseline (+43.8%)" in (
        verdict.message
    )


def test_unchanged_active_params_are_no_regression(tmp_path: Path) -> None:
    verdict = against_baseline(_verdict(ACTIVE_TOP2), _baseline(tmp_path, ACTIVE_TOP2), Settings())
    assert verdict.status == NO_BUDGET


def test_the_baseline_stores_active_params_only_where_they_differ_from_params(
    tmp_path: Path,
) -> None:
    moe = json.loads(_baseline(tmp_path, ACTIVE_TOP2).path.read_text())
    assert moe["tests"]["t.py::test_moe"]["Mixtral"]["active_params"] == ACTIVE_TOP2
    dense = BaselineEntry(macs=MACS, params=TOTAL, active_params=TOTAL).to_dict()
    assert "active_params" not in dense  # dense models' baselines read as before
    assert _baseline(tmp_path, None).get("t.py::test_moe", "Mixtral").active == TOTAL  # type: ignore[union-attr]


def _report(active: int) -> dict[str, object]:
    row = {
        "nodeid": "t.py::test_moe",
        "name": "Mixtral",
        "flops": MACS,
        "macs": MACS,
        "params": TOTAL,
        "active_params": active,
        "budget": None,
        "status": "no budget",
        "by_module": {},
    }
    return {"version": 1, "convention": {"flops_per_mac": 1}, "results": [row]}


def test_compare_fails_on_active_params_that_grew_and_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(_report(ACTIVE_TOP2)))
    new.write_text(json.dumps(_report(ACTIVE_TOP3)))
    code = main(["compare", str(old), str(new)])
    out = capsys.readouterr().out
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith("t.py::test_moe  ")]
    assert "46.7B params -> 46.7B params (active 12.9B -> 18.5B)" in row
    assert row.endswith("REGRESSED")
    code = main(["compare", str(old), str(new), "--json"])
    data = json.loads(capsys.readouterr().out)
    (model,) = data["models"]
    assert model["active_params"] == {
        "old": ACTIVE_TOP2,
        "new": ACTIVE_TOP3,
        "delta": ACTIVE_TOP3 - ACTIVE_TOP2,
    }


MOE_TEST = """
import pytest, torch, transformers as T

TOP_K = {top_k}

def test_moe(flops):
    config = T.MixtralConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             num_key_value_heads=2, intermediate_size=32, vocab_size=50,
                             num_local_experts=4, num_experts_per_tok=TOP_K)
    with flops.abstract():
        model = T.MixtralForCausalLM(config).eval()
        ids = torch.zeros(1, 8, dtype=torch.long)
    flops(model, {{"input_ids": ids}}, name="Mixtral")
"""

# one expert 3 * 16 * 32 = 1,536; the rest (embedding, head, attention, router, norms) 3,024
EXPERT, SHARED = 3 * 16 * 32, 2 * 50 * 16 + 4 * 16 * 16 + 4 * 16 + 3 * 16


def test_the_update_records_active_params_and_a_wider_routing_then_regresses(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    pytester.makepyfile(test_moe=MOE_TEST.format(top_k=1))
    pytester.runpytest("--flop-budget-update", "-p", "no:randomly").assert_outcomes(passed=1)
    stored = json.loads((pytester.path / "flopbudget.json").read_text())
    entry = stored["tests"]["test_moe.py::test_moe"]["Mixtral"]
    assert (entry["params"], entry["active_params"]) == (SHARED + 4 * EXPERT, SHARED + EXPERT)
    pytester.makepyfile(test_moe=MOE_TEST.format(top_k=2))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Mixtral: active *, up from * in the baseline*"])
