"""``flops.generate``: prefill, decode over all new tokens, and the cost of one token.

Closed forms for a tiny Llama: one decode step at context ``c`` (``c - 1`` cached positions
plus the new token) costs, in MACs,

    N_matmul + 2 * n_layer * c * d_attn + rotary

where ``N_matmul = n_layer (4 d^2 + 3 d ff) + d V`` (every weight matrix once, lm_head
included) and the attention term is Q K^T plus attn V over ``c`` keys. In the 1 MAC = 2 FLOPs
convention that is ``2N + 4 n_layer n_ctx d_attn``: the textbook ``2N + 2 n_layer n_ctx
d_attn`` (Kaplan et al.) counts the masked Q K^T only, the plugin counts attn V too.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T

from pytest_flopbudget import CountError
from pytest_flopbudget.counting.fakes import abstract
from pytest_flopbudget.counting.generate import count_generate

D, FF, LAYERS, HEADS, VOCAB = 32, 64, 2, 2, 100
PROMPT, NEW = 8, 6
ROTARY = D // HEADS // 2  # inv_freq @ positions: one MAC per frequency and position
N_MATMUL = LAYERS * (4 * D * D + 3 * D * FF) + D * VOCAB


def _llama() -> T.LlamaForCausalLM:
    config = T.LlamaConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=FF,
        vocab_size=VOCAB,
    )
    return T.LlamaForCausalLM(config).eval()


def per_token(context: int) -> int:
    return N_MATMUL + 2 * LAYERS * context * D + ROTARY


def prefill(length: int) -> int:
    # causal attention is counted in full: L x L scores (the fused kernel computes them)
    return length * N_MATMUL + 2 * LAYERS * length * length * D + ROTARY * length


def test_prefill_and_every_decode_step_cost_their_closed_forms() -> None:
    torch.manual_seed(0)
    result = count_generate(_llama(), torch.randint(0, VOCAB, (1, PROMPT)), max_new_tokens=NEW)
    assert per_token(PROMPT + 1) == 24_840
    assert result.prefill.macs == prefill(PROMPT)
    contexts = range(PROMPT + 1, PROMPT + NEW + 1)
    assert [result.per_token_at(c).macs for c in contexts] == [per_token(c) for c in contexts]
    assert result.decode.macs == sum(per_token(c) for c in contexts) == 150_960
    assert result.decode_last.macs == per_token(PROMPT + NEW)
    assert result.macs == result.prefill.macs + result.decode.macs
    assert set(result.phases) == {"prefill", "decode", "decode_last"}
    assert result.affine


def test_per_token_cost_in_flops_is_twice_the_parameters_plus_the_attention_term() -> None:
    torch.manual_seed(0)
    result = count_generate(_llama(), torch.randint(0, VOCAB, (1, PROMPT)), max_new_tokens=2)
    context, d_attn = PROMPT + 2, D
    flops = 2 * result.decode_last.macs
    assert flops == 2 * N_MATMUL + 4 * LAYERS * context * d_attn + 2 * ROTARY


def test_an_abstract_generation_counts_what_a_real_one_does() -> None:
    torch.manual_seed(0)
    real = count_generate(_llama(), torch.randint(0, VOCAB, (2, PROMPT)), max_new_tokens=NEW)
    with abstract():
        model = _llama()
        ids = torch.randint(0, VOCAB, (2, PROMPT))
    fake = count_generate(model, {"input_ids": ids}, max_new_tokens=NEW, name="Llama")
    for phase in ("prefill", "decode", "decode_last"):
        assert fake.phases[phase].macs == real.phases[phase].macs
        assert fake.phases[phase].by_module == real.phases[phase].by_module
        assert fake.phases[phase].name == f"Llama:{phase}"
    # batch 2: twice the work per token, but the rotary angles are shared by the batch
    contexts = range(PROMPT + 1, PROMPT + NEW + 1)
    assert fake.decode.macs == sum(2 * per_token(c) - ROTARY for c in contexts)


def test_an_attention_mask_grows_with_the_tokens() -> None:
    with abstract():
        model = _llama()
        ids = torch.randint(0, VOCAB, (1, PROMPT))
        mask = torch.ones(1, PROMPT, dtype=torch.long)
    result = count_generate(model, {"input_ids": ids, "attention_mask": mask}, max_new_tokens=3)
    assert result.decode.macs == sum(per_token(c) for c in range(PROMPT + 1, PROMPT + 4))


def test_one_new_token_is_one_decode_step() -> None:
    torch.manual_seed(0)
    result = count_generate(_llama(), torch.randint(0, VOCAB, (1, PROMPT)), max_new_tokens=1)
    assert result.decode.macs == result.decode_last.macs == per_token(PROMPT + 1)
    with pytest.raises(ValueError, match="decoded at contexts 9 to 9"):
        result.per_token_at(20)


class NoCache(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)

    def forward(self, input_ids: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.embed(input_ids)


def test_a_model_without_a_cache_is_a_clear_error() -> None:
    with pytest.raises(CountError, match="needs a model that returns past_key_values"):
        count_generate(NoCache(), torch.zeros(1, 4, dtype=torch.long), max_new_tokens=2)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_max_new_tokens_must_be_a_positive_int(bad: object) -> None:
    with pytest.raises(CountError, match="max_new_tokens must be a positive int"):
        count_generate(_llama(), torch.zeros(1, 4, dtype=torch.long), max_new_tokens=bad)  # type: ignore[arg-type]


PHASE_TEST = """
import pytest, torch, transformers as T

def llama():
    config = T.LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=2, intermediate_size=64, vocab_size=100)
    return T.LlamaForCausalLM(config).eval()

@pytest.mark.flop_budget(kmacs=30, name="Llama:decode_last")
@pytest.mark.flop_budget(kmacs=150, name="Llama:decode")
def test_phases(flops):
    with flops.abstract():
        model = llama()
        ids = torch.randint(0, 100, (1, 8))
    flops.generate(model, ids, max_new_tokens=6, name="Llama")
"""


def test_budgets_bind_to_each_phase_by_name_and_the_table_shows_each(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_gen=PHASE_TEST)
    pytester.makepyprojecttoml('[tool.flopbudget.budgets]\n"Llama:prefill" = "200 KMACs"\n')
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    # decode is 150,960 MACs: over its 150 KMACs budget; decode_last (25,480) and prefill pass
    result.stdout.fnmatch_lines(["*Llama:decode: 150.96 KMACs exceeds budget 150 KMACs*"])
    table = result.stdout.str()
    for phase in ("Llama:prefill", "Llama:decode ", "Llama:decode_last"):
        assert phase in table


def test_a_whole_test_budget_counts_the_last_step_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gen=PHASE_TEST.replace(
            '@pytest.mark.flop_budget(kmacs=30, name="Llama:decode_last")\n'
            '@pytest.mark.flop_budget(kmacs=150, name="Llama:decode")\n',
            "@pytest.mark.flop_budget(macs=348_656)\n",
        )
    )
    # prefill 197,696 + decode 150,960 = 348,656: passes only if decode_last is not added
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=1)


def _step_by_step(model: torch.nn.Module, prompt: torch.Tensor, new: int) -> list[int]:
    """Every decode step counted on its own, by hand: the reference the closed-form sum meets."""
    from pytest_flopbudget.counting.counter import count_model

    with torch.no_grad():
        cache = model(input_ids=prompt, use_cache=True).past_key_values
    token = torch.zeros(prompt.shape[0], 1, dtype=torch.long)
    counted = []
    for _ in range(new):
        kwargs = {"input_ids": token, "past_key_values": cache, "use_cache": True}
        counted.append(count_model(model, kwargs, backend="torch").macs)
        with torch.no_grad():  # the count leaves the cache as it was: grow it by the token
            cache = model(**kwargs).past_key_values
    return counted


def test_the_closed_form_decode_total_equals_counting_every_step() -> None:
    torch.manual_seed(0)
    model, prompt = _llama(), torch.randint(0, VOCAB, (1, PROMPT))
    steps = _step_by_step(model, prompt, 20)
    assert steps == [per_token(c) for c in range(PROMPT + 1, PROMPT + 21)]
    result = count_generate(model, prompt, max_new_tokens=20)
    assert result.affine and "3 of 20 steps counted" in result.how
    assert len(result.steps) == 3
    assert result.decode.macs == sum(steps)
    assert result.decode_last.macs == steps[-1]


WINDOW = 11


def _mistral() -> T.MistralForCausalLM:
    config = T.MistralConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=FF,
        vocab_size=VOCAB,
        sliding_window=WINDOW,
    )
    return T.MistralForCausalLM(config).eval()


def test_a_sliding_window_is_counted_step_by_step_and_says_so() -> None:
    # a token attends to at most WINDOW keys: the cost grows until the context reaches the
    # window, then stays flat; no line through the first steps predicts the last
    torch.manual_seed(0)
    model, prompt = _mistral(), torch.randint(0, VOCAB, (1, PROMPT))
    contexts = range(PROMPT + 1, PROMPT + NEW + 1)
    expected = [per_token(min(c, WINDOW)) for c in contexts]
    assert _step_by_step(model, prompt, NEW) == expected
    real = count_generate(model, prompt, max_new_tokens=NEW)
    with abstract():
        fake_model, fake_prompt = _mistral(), torch.zeros(1, PROMPT, dtype=torch.long)
    fake = count_generate(fake_model, fake_prompt, max_new_tokens=NEW)
    for result in (real, fake):
        assert not result.affine
        assert "one by one" in result.how and "not affine" in result.how
        assert result.decode.macs == sum(expected)
        assert [result.per_token_at(c).macs for c in contexts] == expected
        assert result.decode_last.macs == per_token(WINDOW)
        assert result.prefill.macs == prefill(PROMPT)
