"""Hugging Face families built abstractly count exactly what the same models built for real do.

Each family is built from its config class with tiny sizes (random weights, nothing
downloaded), once for real and once inside ``abstract()``; both are counted by the torch
backend. Closed forms for BERT, ViT and a Mixtral-style decoder are written out by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import transformers as T

from pytest_flopbudget import CountError
from pytest_flopbudget.counting.count import Count
from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.fakes import abstract
from pytest_flopbudget.counting.known_values import known_value

D, FF, LAYERS, HEADS, VOCAB, SEQ = 32, 64, 2, 2, 100, 8
SMALL = {"hidden_size": D, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS}
DECODER = {**SMALL, "intermediate_size": FF, "vocab_size": VOCAB, "num_key_value_heads": HEADS}


def _ids(length: int = SEQ) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length))


def _pixels(size: int = 32) -> torch.Tensor:
    return torch.randn(1, 3, size, size)


def _seq2seq() -> dict[str, torch.Tensor]:
    return {"input_ids": _ids(), "decoder_input_ids": _ids(4)}


Family = tuple[Callable[[], torch.nn.Module], Callable[[], Any]]
FAMILIES: dict[str, Family] = {
    "gpt2": (
        lambda: T.GPT2LMHeadModel(
            T.GPT2Config(n_embd=D, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB)
        ),
        _ids,
    ),
    "llama": (lambda: T.LlamaForCausalLM(T.LlamaConfig(**DECODER)), _ids),
    "mistral": (lambda: T.MistralForCausalLM(T.MistralConfig(**DECODER)), _ids),
    "qwen2": (lambda: T.Qwen2ForCausalLM(T.Qwen2Config(**DECODER)), _ids),
    "gemma": (lambda: T.GemmaForCausalLM(T.GemmaConfig(**DECODER, head_dim=16)), _ids),
    "phi": (lambda: T.PhiForCausalLM(T.PhiConfig(**DECODER)), _ids),
    "t5": (
        lambda: T.T5Model(
            T.T5Config(d_model=D, d_ff=FF, d_kv=16, num_layers=1, num_heads=HEADS, vocab_size=VOCAB)
        ),
        _seq2seq,
    ),
    "clip": (
        lambda: T.CLIPModel(
            T.CLIPConfig(
                text_config={**SMALL, "intermediate_size": FF, "vocab_size": VOCAB},
                vision_config={**SMALL, "intermediate_size": FF, "image_size": 32, "patch_size": 8},
                projection_dim=16,
            )
        ),
        lambda: {"input_ids": _ids(), "pixel_values": _pixels()},
    ),
    "resnet": (
        lambda: T.ResNetModel(
            T.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])
        ),
        _pixels,
    ),
    "whisper": (
        lambda: T.WhisperModel(
            T.WhisperConfig(
                d_model=D,
                encoder_layers=1,
                decoder_layers=1,
                encoder_attention_heads=HEADS,
                decoder_attention_heads=HEADS,
                encoder_ffn_dim=FF,
                decoder_ffn_dim=FF,
                num_mel_bins=8,
                max_source_positions=16,
                vocab_size=VOCAB,
                pad_token_id=0,
                bos_token_id=1,
                eos_token_id=2,
                decoder_start_token_id=1,
            )
        ),
        lambda: {"input_features": torch.randn(1, 8, 32), "decoder_input_ids": _ids(4)},
    ),
    "bert": (
        lambda: T.BertModel(T.BertConfig(**SMALL, intermediate_size=FF, vocab_size=VOCAB)),
        _ids,
    ),
    "roberta": (
        lambda: T.RobertaModel(T.RobertaConfig(**SMALL, intermediate_size=FF, vocab_size=VOCAB)),
        _ids,
    ),
    "distilbert": (
        lambda: T.DistilBertModel(
            T.DistilBertConfig(
                dim=D, n_layers=LAYERS, n_heads=HEADS, hidden_dim=FF, vocab_size=VOCAB
            )
        ),
        _ids,
    ),
    "opt": (
        lambda: T.OPTForCausalLM(
            T.OPTConfig(**SMALL, ffn_dim=FF, vocab_size=VOCAB, word_embed_proj_dim=D)
        ),
        _ids,
    ),
    "bart": (
        lambda: T.BartModel(
            T.BartConfig(
                d_model=D,
                encoder_layers=1,
                decoder_layers=1,
                encoder_attention_heads=HEADS,
                decoder_attention_heads=HEADS,
                encoder_ffn_dim=FF,
                decoder_ffn_dim=FF,
                vocab_size=VOCAB,
            )
        ),
        _seq2seq,
    ),
    "vit": (
        lambda: T.ViTModel(T.ViTConfig(**SMALL, intermediate_size=FF, image_size=32, patch_size=8)),
        _pixels,
    ),
    "swin": (
        lambda: T.SwinModel(
            T.SwinConfig(
                image_size=32,
                patch_size=4,
                embed_dim=16,
                depths=[1, 1],
                num_heads=[2, 2],
                window_size=4,
            )
        ),
        _pixels,
    ),
    "convnext": (
        lambda: T.ConvNextModel(
            T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2)
        ),
        _pixels,
    ),
    "mixtral": (
        lambda: T.MixtralForCausalLM(
            T.MixtralConfig(**DECODER, num_local_experts=4, num_experts_per_tok=2)
        ),
        _ids,
    ),
    "qwen2_moe": (
        lambda: T.Qwen2MoeForCausalLM(
            T.Qwen2MoeConfig(
                **DECODER,
                num_experts=4,
                num_experts_per_tok=2,
                moe_intermediate_size=FF,
                shared_expert_intermediate_size=FF,
            )
        ),
        _ids,
    ),
}
MOE = {"mixtral", "qwen2_moe"}


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


def _both(family: str) -> tuple[Count, Count]:
    make_model, make_inputs = FAMILIES[family]
    real = count_model(make_model().eval(), make_inputs(), backend="torch")
    with abstract():
        model = make_model().eval()
        inputs = make_inputs()
    return real, count_model(model, inputs)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_built_abstractly_counts_what_it_counts_built_for_real(family: str) -> None:
    real, fake = _both(family)
    assert fake.abstract and not real.abstract
    assert fake.macs == real.macs > 0
    assert fake.params == real.params
    assert fake.unknown_ops == real.unknown_ops
    if family not in MOE:  # real routing splits tokens unevenly between experts
        assert fake.by_module == real.by_module


def test_bert_costs_its_projections_attention_ffn_norms_and_pooler() -> None:
    L, d, ff = SEQ, D, FF
    per_layer = (
        4 * L * d * d  # Q, K, V and output projections
        + 2 * L * L * d  # Q K^T and attn V over both heads
        + 2 * L * d * ff  # FFN up and down (GELU: 0)
        + 2 * 5 * L * d  # two LayerNorms, 5 MACs per element
    )
    analytic = 5 * L * d + LAYERS * per_layer + d * d  # embedding norm, layers, pooler on [CLS]
    assert analytic == 146_688
    real, fake = _both("bert")
    assert fake.macs == real.macs == analytic


def test_vit_costs_its_patch_embedding_layers_and_pooler_even_though_its_init_reads_values() -> (
    None
):
    d, ff, patches = D, FF, (32 // 8) ** 2
    L = patches + 1  # + [CLS]
    per_layer = 4 * L * d * d + 2 * L * L * d + 2 * L * d * ff + 2 * 5 * L * d
    analytic = patches * d * 3 * 8 * 8 + LAYERS * per_layer + 5 * L * d + d * d
    assert analytic == 428_448
    real, fake = _both("vit")
    assert fake.macs == real.macs == analytic


def test_a_mixtral_block_sends_every_token_to_top_k_experts() -> None:
    L, d, ff, experts, k = SEQ, D, FF, 4, 2
    per_layer = (
        4 * L * d * d  # Q, K, V, O (as many key/value heads as query heads)
        + 2 * L * L * d  # attention
        + L * d * experts  # router
        + k * L * 3 * d * ff  # each token through k experts: gate, up, down
    )
    rotary = (d // HEADS // 2) * L  # inv_freq @ positions
    analytic = LAYERS * per_layer + L * d * VOCAB + rotary
    assert analytic == 298_048
    real, fake = _both("mixtral")
    assert fake.macs == real.macs == analytic
    shares = [
        fake.by_module[f"model.layers.0.block_sparse_moe.experts.{e}"] for e in range(experts)
    ]
    assert shares == [L * k // experts * 3 * d * ff] * experts  # the even split


def test_bert_counts_abstractly_with_an_all_ones_attention_mask() -> None:
    model_fn, _ = FAMILIES["bert"]
    with abstract():
        model = model_fn().eval()
        inputs = {"input_ids": _ids(), "attention_mask": torch.ones(1, SEQ, dtype=torch.long)}
    real = count_model(model_fn().eval(), {"input_ids": _ids()}, backend="torch")
    assert count_model(model, inputs).macs == real.macs


def test_a_mask_whose_values_are_unknown_is_an_error_naming_the_line_and_the_fix() -> None:
    model_fn, _ = FAMILIES["bert"]
    with abstract():
        model = model_fn().eval()
        inputs = {"input_ids": _ids(), "attention_mask": torch.randint(0, 2, (1, SEQ))}
    with pytest.raises(CountError) as caught:
        count_model(model, inputs)
    message = str(caught.value)
    assert message.startswith("BertModel: modeling_attn_mask_utils.py:")
    assert "torch.all(mask == 1)" in message
    assert "torch.ones" in message and "real tensors" in message
    assert "do not pass one" not in message


def test_values_made_without_data_are_known_and_forgotten_when_written() -> None:
    with abstract():
        ones = torch.ones(2, 3)
        steps = torch.linspace(0, 1, 3)
        head = ones[:, :1]
        assert bool(torch.all(ones == 1))
        assert steps.tolist() == [0.0, 0.5, 1.0]
        head.mul_(torch.randn(2, 1))
        random = torch.randn(2)
    assert known_value(ones) is None  # a view of it was written with unknown values
    assert known_value(random) is None
    assert known_value(steps) is not None


def test_building_a_model_that_reads_unknown_values_is_a_count_error() -> None:
    class ReadsItsWeight(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(3))
            self.positive = bool((self.weight > 0).all())

    where = r"test_zoo.py:\d+ in __init__: .*reads tensor values"
    with pytest.raises(CountError, match=where), abstract():
        ReadsItsWeight()
