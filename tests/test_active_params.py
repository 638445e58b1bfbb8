"""Active parameters: what one token's forward uses, beside the model's total, and budgets on it.

A tiny Mixtral-style decoder (hidden 32, 2 layers, 4 experts of which a token uses 2, MLP
experts 32 -> 64 -> 32 with three bias-free projections, vocabulary 100, untied head):

    expert            3 * 32 * 64                      =  6,144
    attention         q, k, v, o: 4 * 32 * 32          =  4,096
    router            32 * 4                           =    128
    norms             2 * 32                           =     64
    layer, total      4 * 6,144 + 4,096 + 128 + 64     = 28,864
    layer, active     2 * 6,144 + 4,096 + 128 + 64     = 16,576
    outside layers    embedding 3,200 + head 3,200 + final norm 32 = 6,432
    total             2 * 28,864 + 6,432               = 64,160
    active            2 * 16,576 + 6,432               = 39,584
"""

from __future__ import annotations

import pytest
import torch
import transformers as T
from conftest import FFN_PARAMS
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_flopbudget.budgets.budget import BudgetError, budget_from_entry, budget_from_marker
from pytest_flopbudget.budgets.units import format_written, parse_quantities
from pytest_flopbudget.counting.count import Count
from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.fakes import abstract

MIXTRAL_PARAMS = 64_160
MIXTRAL_ACTIVE = 39_584
SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "vocab_size": 100,
}


def _mixtral() -> torch.nn.Module:
    config = T.MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2)
    return T.MixtralForCausalLM(config)


def test_a_mixture_of_experts_counts_its_total_and_its_active_parameters() -> None:
    count = count_model(_mixtral(), torch.zeros(1, 8, dtype=torch.long))
    assert (count.params, count.active_params) == (MIXTRAL_PARAMS, MIXTRAL_ACTIVE)


def test_an_abstract_mixture_of_experts_has_the_same_active_parameters() -> None:
    with abstract():
        model, ids = _mixtral(), torch.zeros(1, 8, dtype=torch.long)
    count = count_model(model, ids)
    assert (count.params, count.active_params) == (MIXTRAL_PARAMS, MIXTRAL_ACTIVE)


def test_a_dense_model_uses_every_parameter_for_every_token() -> None:
    config = T.LlamaConfig(**SMALL)
    count = count_model(T.LlamaForCausalLM(config), torch.zeros(1, 8, dtype=torch.long))
    # per layer 4 * 32 * 32 + 3 * 32 * 64 + 2 * 32 = 10,304; embedding, head, final norm 6,432
    assert count.params == count.active_params == 2 * 10_304 + 6_432


def test_experts_of_different_sizes_count_the_largest_k_as_active() -> None:
    class Block(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.top_k = 1
            self.gate = torch.nn.Linear(4, 2, bias=False)  # 8
            self.experts = torch.nn.ModuleList(
                [torch.nn.Linear(4, 4, bias=False), torch.nn.Linear(4, 8, bias=False)]
            )  # 16 and 32

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.experts[0](x) + self.experts[1](x)[..., :4]

    count = count_model(Block(), torch.randn(1, 4))
    assert (count.params, count.active_params) == (8 + 16 + 32, 8 + 32)


def test_a_count_keeps_its_active_parameters_through_json() -> None:
    count = Count("m", 10, 10, 100, 1, "torch", active_params=40)
    assert Count.from_dict(count.to_dict()).active_params == 40
    old = {k: v for k, v in count.to_dict().items() if k != "active_params"}
    assert Count.from_dict(old).active_params == 100


def test_active_parameter_budgets_read_from_keys_and_strings() -> None:
    marker = budget_from_marker((), {"mactive_params": 0.04, "mparams": 0.07}, "t")
    assert marker is not None and marker.active_params is not None and marker.params is not None
    assert marker.active_params.base_value == 40_000 and marker.params.base_value == 70_000
    entry = budget_from_entry("Mixtral", "46.7G params, 12.9G active params", "p", is_nodeid=False)
    assert entry.active_params is not None and entry.active_params.base_value == 12.9e9
    assert entry.params is not None and entry.params.base_value == 46.7e9


def test_two_active_parameter_budgets_in_one_entry_are_an_error() -> None:
    with pytest.raises(BudgetError, match="at most one of active_params"):
        budget_from_entry("m", {"active_params": 5, "gactive_params": 1}, "p", is_nodeid=False)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=10**12))
def test_a_written_active_parameter_budget_reads_back_at_or_above_the_count(count: int) -> None:
    (quantity,) = parse_quantities(format_written(count, "active_params"))
    assert quantity.unit.kind == "active_params"
    assert count <= quantity.base_value <= count * 1.001


TEST_MIXTRAL = """
import pytest
import torch
import transformers as T

SMALL = {small!r}


@pytest.mark.flop_budget({marker})
def test_mixtral(flops):
    config = T.MixtralConfig(**SMALL, num_local_experts=4, num_experts_per_tok=2)
    model = T.MixtralForCausalLM(config)
    flops(model, torch.zeros(1, 8, dtype=torch.long), name="Mixtral")
    if {both}:
        flops(model, torch.zeros(1, 8, dtype=torch.long), name="Mixtral-table")
"""


def test_an_active_parameter_budget_fails_a_model_that_uses_more(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TEST_MIXTRAL.format(small=SMALL, both=False, marker="active_params=39_000"))
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    excess = (MIXTRAL_ACTIVE / 39_000 - 1) * 100
    result.stdout.fnmatch_lines(
        [f"*Mixtral: 39,584 active params exceeds budget 39,000 active params (+{excess:.1f}%)*"]
    )


def test_the_table_shows_total_and_active_parameters_of_a_mixture_of_experts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        TEST_MIXTRAL.format(small=SMALL, both=False, marker='"0.04M active params"')
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Mixtral*64.2K params (39.6K active)*40K active params*ok*"])


def test_a_dense_model_meets_an_active_budget_with_all_its_parameters(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        f"""
import pytest
from torch import nn
import torch

@pytest.mark.flop_budget(active_params={FFN_PARAMS - 1})
def test_ffn(flops):
    flops(nn.Sequential(nn.Linear(4, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 2)),
          torch.randn(1, 4))
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*exceeds budget*active params*"])


def test_the_update_writes_active_parameter_budgets_in_their_own_units(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TEST_MIXTRAL.format(small=SMALL, both=True, marker='backend="torch"'))
    pytester.makepyprojecttoml(
        """
[tool.flopbudget.budgets]
"Mixtral" = "1K params, 1K active params"  # kept comment
"Mixtral-table" = { mactive_params = 0.001 }
"""
    )
    result = pytester.runpytest("--flop-budget-update")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "pyproject.toml").read_text()
    assert '"Mixtral" = "64.16K params, 39.59K active params"  # kept comment' in text
    assert '"Mixtral-table" = { mactive_params = 0.03959 }' in text
