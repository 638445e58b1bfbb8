"""Real models against counts worked out by hand, on both backends.

Every model is built from its config class (transformers) or by hand, with random weights;
nothing is downloaded. Each expected count below is arithmetic on the model's shapes, never a
number copied from a counter, under the conventions of :mod:`pytest_flopbudget.counting.formulas`:

* everything is in MACs: a linear layer on T tokens is T*in*out, a (N, K) x (K, M) product
  N*K*M, a convolution out_numel * Cin/groups * kernel, a transposed one in_numel *
  Cout/groups * kernel (each input element is scattered through its kernel);
* attention is Q K^T plus attn V: B*H*L*S*(E + Ev), i.e. 2*L*S*d over all heads of a model
  of width d = H*E; a causal mask counts the full L x S product; grouped-query attention is
  counted per query head;
* LayerNorm (affine) is 5 MACs per element, BatchNorm in eval (affine) 2 per element,
  adaptive average pooling 1 per input element (fvcore's rules); a hand-written RMS norm
  (transformers' LlamaRMSNorm: pow, mean, rsqrt, mul) is elementwise work: 0;
* elementwise ops (add, GELU, tanh, softmax, dropout, scaling) and embedding lookups are 0.

Each model must count within 0.5% of its analytic count on both backends, the backends within
1% of each other, and no op may be left unknown.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import (
    BertConfig,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    ViTConfig,
    ViTModel,
)

from pytest_flopbudget.counting.count import Count
from pytest_flopbudget.counting.counter import count_model

BACKENDS = ("fvcore", "torch")


# --------------------------------------------------------------------------------------------
# helpers


def count_on_both_backends(
    model: nn.Module, inputs: object | Callable[[], object], analytic: int, **options: Any
) -> dict[str, Count]:
    """Count on each backend; check each against ``analytic`` and the two against each other.

    ``inputs`` may be a function returning fresh inputs, for models that change what they are
    given (a decoding step appends to its KV cache).
    """
    counts: dict[str, Count] = {}
    for backend in BACKENDS:
        given = inputs() if callable(inputs) else inputs
        counts[backend] = count_model(model, given, backend=backend, **options)
    for backend, count in counts.items():
        assert count.unknown_ops == {}, f"{backend}: unknown ops {count.unknown_ops}"
        assert count.macs == pytest.approx(analytic, rel=0.005), (
            f"{backend} counted {count.macs:,} MACs, analytic {analytic:,} "
            f"({(count.macs - analytic) / analytic:+.2%})"
        )
    assert counts["fvcore"].macs == pytest.approx(counts["torch"].macs, rel=0.01)
    return counts


class _Dispatched(TorchDispatchMode):
    """Records the name of every ATen op the dispatcher runs."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: set[str] = set()

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Any,
        args: Any = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        self.ops.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def dispatched_ops(model: nn.Module, inputs: object, *, grad: bool = False) -> set[str]:
    """The ATen ops ``model(inputs)`` runs, by default under no_grad as counting runs it."""
    args, kwargs = (
        ((), inputs)
        if isinstance(inputs, dict)
        else (inputs if isinstance(inputs, tuple) else (inputs,), {})
    )
    with torch.set_grad_enabled(grad), _Dispatched() as recorder:
        model(*args, **kwargs)
    return recorder.ops


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


# --------------------------------------------------------------------------------------------
# transformers models

D, FF, LAYERS, HEADS, SEQ, VOCAB = 64, 256, 2, 4, 16, 100


def _ids(length: int = SEQ) -> torch.Tensor:
    return torch.randint(0, VOCAB, (1, length))


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_a_bert_encoder_counts_the_same_with_sdpa_and_with_eager_attention(
    attn_implementation: str,
) -> None:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FF,
        max_position_embeddings=64,
        attn_implementation=attn_implementation,
    )
    model = BertModel(config).eval()
    inputs = {"input_ids": _ids()}
    L, d, ff = SEQ, D, FF
    per_layer = (
        3 * L * d * d  # Q, K, V projections
        + 2 * L * L * d  # Q K^T and attn V, over the 4 heads of 16 (4 * L*L*16 each)
        + L * d * d  # attention output projection
        + L * d * ff  # FFN up (GELU: 0)
        + L * ff * d  # FFN down
        + 2 * 5 * L * d  # 2 LayerNorms, 5 MACs per element (fvcore's rule, affine)
    )
    analytic = (
        0  # word, position and token-type embeddings: lookups and adds
        + 5 * L * d  # embedding LayerNorm
        + LAYERS * per_layer
        + 1 * d * d  # pooler: Linear(d, d) on the [CLS] token only (tanh: 0)
    )
    assert analytic == 1_668_096

    ops = dispatched_ops(model, inputs)
    sdpa = "aten::_scaled_dot_product_flash_attention_for_cpu"
    assert (sdpa in ops) == (attn_implementation == "sdpa")
    count_on_both_backends(model, inputs, analytic)


def test_a_vit_encoder_counts_its_patch_embedding_attention_and_pooler() -> None:
    config = ViTConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=FF,
        image_size=32,
        patch_size=8,
        attn_implementation="sdpa",
    )
    model = ViTModel(config).eval()
    d, ff = D, FF
    patches = (32 // 8) ** 2  # 16
    L = patches + 1  # + [CLS]
    per_layer = (
        3 * L * d * d  # Q, K, V
        + 2 * L * L * d  # Q K^T and attn V
        + L * d * d  # output projection
        + 2 * L * d * ff  # MLP up and down
        + 2 * 5 * L * d  # layernorm_before, layernorm_after: 5 MACs per element
    )
    analytic = (
        patches * d * (3 * 8 * 8)  # patch embedding: Conv2d(3, d, 8, stride 8), 16 outputs
        + LAYERS * per_layer
        + 5 * L * d  # final LayerNorm
        + 1 * d * d  # pooler on [CLS]
    )
    assert analytic == 1_973_056
    count_on_both_backends(model, {"pixel_values": torch.randn(1, 3, 32, 32)}, analytic)


def _gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=D,
        n_layer=LAYERS,
        n_head=HEADS,
        n_positions=64,
        attn_implementation="sdpa",
    )
    return GPT2LMHeadModel(config).eval()


def _gpt2_macs(new: int, cached: int) -> int:
    """GPT2LMHeadModel (inner = 4d) on ``new`` tokens after ``cached`` ones."""
    d, ff, keys = D, 4 * D, cached + new
    per_layer = (
        5 * new * d  # ln_1, 5 MACs per element
        + new * d * 3 * d  # c_attn, Conv1D(d, 3d) (an addmm)
        + 2 * new * keys * d  # Q K^T and attn V: the new queries over cached + new keys
        + new * d * d  # c_proj
        + 5 * new * d  # ln_2
        + new * d * ff  # mlp.c_fc (GELU: 0)
        + new * ff * d  # mlp.c_proj
    )
    return (
        0  # wte, wpe: lookups
        + LAYERS * per_layer
        + 5 * new * d  # ln_f
        + new * d * VOCAB  # lm_head
    )


def test_a_gpt2_decoder_counts_its_prompt_and_returns_its_cache() -> None:
    model = _gpt2()
    ids = _ids()
    with torch.no_grad():
        output = model(input_ids=ids, use_cache=True)
    assert output.past_key_values.get_seq_length() == SEQ  # a cache object, not a tensor

    analytic = _gpt2_macs(new=SEQ, cached=0)
    assert analytic == 1_766_400
    count_on_both_backends(model, {"input_ids": ids, "use_cache": True}, analytic)


def test_a_gpt2_decoding_step_counts_attention_over_the_cache_and_the_new_token() -> None:
    model = _gpt2()
    with torch.no_grad():
        cache = model(input_ids=_ids(), use_cache=True).past_key_values
    next_token = _ids(1)

    def step_inputs() -> dict[str, Any]:
        # each forward appends to the cache it is given: every count gets its own copy
        return {"input_ids": next_token, "past_key_values": copy.deepcopy(cache), "use_cache": True}

    analytic = _gpt2_macs(new=1, cached=SEQ)  # attention of 1 query over 16 + 1 keys
    assert analytic == 110_656
    count_on_both_backends(model, step_inputs, analytic)


def test_counting_a_decoding_step_leaves_the_callers_cache_as_it_was() -> None:
    model = _gpt2()
    with torch.no_grad():
        cache = model(input_ids=_ids(), use_cache=True).past_key_values
    inputs = {"input_ids": _ids(1), "past_key_values": cache, "use_cache": True}
    first = count_model(model, inputs, backend="fvcore")
    second = count_model(model, inputs, backend="torch")
    assert cache.get_seq_length() == SEQ
    assert first.macs == second.macs == _gpt2_macs(new=1, cached=SEQ)


def test_module_lists_that_are_never_called_hold_their_layers_sum_on_both_backends() -> None:
    model = _gpt2()
    counts = [count_model(model, {"input_ids": _ids()}, backend=b) for b in ("fvcore", "torch")]
    for count in counts:
        layers = [count.by_module[f"transformer.h.{i}"] for i in range(LAYERS)]
        assert count.by_module["transformer.h"] == sum(layers) > 0
    assert counts[0].by_module == counts[1].by_module


def test_a_llama_decoder_counts_grouped_query_attention_per_query_head() -> None:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        intermediate_size=172,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    L, d, ff = SEQ, D, 172
    head_dim = d // HEADS  # 16
    kv = 2 * head_dim  # 2 key/value heads: k_proj and v_proj are Linear(d, 32)
    per_layer = (
        0  # input_layernorm, post_attention_layernorm: hand-written RMS norms, elementwise
        + L * d * d  # q_proj
        + 2 * L * d * kv  # k_proj, v_proj
        + HEADS * 2 * L * L * head_dim  # Q K^T and attn V for every one of the 4 query heads
        + L * d * d  # o_proj
        + 3 * L * d * ff  # gate_proj, up_proj, down_proj (SiLU and the product: 0)
    )
    analytic = (
        0  # embed_tokens: lookup
        + (head_dim // 2) * L  # rotary: inv_freq (8, 1) @ positions (1, 16), a matmul with K=1
        + LAYERS * per_layer
        + 0  # final RMS norm
        + L * d * VOCAB  # lm_head
    )
    assert analytic == 1_618_048
    count_on_both_backends(model, {"input_ids": _ids()}, analytic)


# --------------------------------------------------------------------------------------------
# convolutions


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.grouped = nn.Conv2d(16, 32, 3, stride=2, padding=1, groups=4)
        self.depthwise = nn.Conv2d(32, 32, 3, padding=1, groups=32)
        self.pointwise = nn.Conv2d(32, 64, 1)
        self.up = nn.ConvTranspose2d(64, 16, 2, stride=2)
        self.up_grouped = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1, groups=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.stem(x)))  # 16 x 32 x 32
        x = torch.relu(self.pointwise(self.depthwise(self.grouped(x))))  # 64 x 16 x 16
        x = self.up_grouped(torch.relu(self.up(x)))  # 16 x 32 x 32, then 8 x 64 x 64
        return self.fc(self.pool(x).flatten(1))


def test_a_cnn_counts_grouped_depthwise_and_transposed_convolutions() -> None:
    B = 2
    expected_by_module = {
        "stem": B * (16 * 32 * 32) * 3 * 3 * 3,  # out_numel * Cin * kernel
        "bn": B * 2 * (16 * 32 * 32),  # eval BatchNorm, affine: 2 per element
        "grouped": B * (32 * 16 * 16) * (16 // 4) * 3 * 3,  # Cin/groups = 4 per output
        "depthwise": B * (32 * 16 * 16) * 1 * 3 * 3,  # one input channel per output
        "pointwise": B * (64 * 16 * 16) * 32,
        "up": B * (64 * 16 * 16) * 16 * 2 * 2,  # in_numel * Cout * kernel
        "up_grouped": B * (16 * 32 * 32) * (8 // 2) * 4 * 4,  # in_numel * Cout/groups * kernel
        "pool": B * 8 * 64 * 64,  # 1 per input element
        "fc": B * 8 * 10,
    }
    analytic = sum(expected_by_module.values())
    assert analytic == 6_996_128

    counts = count_on_both_backends(SmallCNN().eval(), torch.randn(B, 3, 32, 32), analytic)
    for count in counts.values():
        assert {path: count.by_module[path] for path in expected_by_module} == expected_by_module


# --------------------------------------------------------------------------------------------
# attention modules and SDPA

B, L, E = 2, 16, 64


def _mha_macs() -> int:
    return (
        3 * B * L * E * E  # in-projection (one (3E, E) weight)
        + 2 * B * L * L * E  # Q K^T and attn V over the 4 heads of 16
        + B * L * E * E  # out-projection
    )


def _mha_inputs() -> dict[str, Any]:
    x = torch.randn(B, L, E)
    return {"query": x, "key": x, "value": x, "need_weights": False}


def test_multihead_attention_on_the_fast_path_counts_its_projections() -> None:
    mha = nn.MultiheadAttention(E, 4, batch_first=True).eval()
    inputs = _mha_inputs()
    assert dispatched_ops(mha, inputs) == {"aten::_native_multi_head_attention"}

    analytic = _mha_macs()
    assert analytic == 589_824
    count_on_both_backends(mha, inputs, analytic)


def test_multihead_attention_on_the_training_path_counts_what_the_fast_path_counts() -> None:
    mha = nn.MultiheadAttention(E, 4, batch_first=True).train()
    inputs = _mha_inputs()
    ops = dispatched_ops(mha, inputs)
    assert "aten::_native_multi_head_attention" not in ops
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in ops

    count_on_both_backends(mha, inputs, _mha_macs())

    mha.eval()  # in eval, enabling grad is what keeps it off the fast path
    assert "aten::_native_multi_head_attention" not in dispatched_ops(mha, inputs, grad=True)
    count_on_both_backends(mha, inputs, _mha_macs(), grad=True)


def test_a_training_step_through_multihead_attention_counts_its_backward() -> None:
    mha = nn.MultiheadAttention(E, 4, batch_first=True, dropout=0.0)
    forward = _mha_macs()
    backward = (
        3 * B * L * E * E  # in-projection: weight gradient only (the input needs no gradient)
        + 2 * (2 * B * L * L * E)  # attention backward: dV, dP, dQ, dK
        + 2 * B * L * E * E  # out-projection: input and weight gradients
    )
    count = count_model(mha, _mha_inputs(), mode="train")  # the torch backend only
    assert count.backend == "torch"
    assert count.unknown_ops == {}
    assert count.macs == pytest.approx(forward + backward, rel=0.005)


def test_a_transformer_encoder_layer_on_the_fast_path_counts_attention_ffn_and_norms() -> None:
    layer = nn.TransformerEncoderLayer(E, 4, dim_feedforward=256, dropout=0.0, batch_first=True)
    layer.eval()
    x = torch.randn(B, L, E)
    assert dispatched_ops(layer, x) == {"aten::_transformer_encoder_layer_fwd"}

    analytic = (
        _mha_macs()  # self-attention
        + 2 * B * L * E * 256  # linear1, linear2 (ReLU: 0)
        + 2 * 5 * B * L * E  # norm1, norm2: 5 MACs per element
    )
    assert analytic == 1_658_880
    count_on_both_backends(layer, x, analytic)


class SDPA(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


def test_sdpa_counts_both_products_with_keys_longer_and_values_narrower_than_queries() -> None:
    q = torch.randn(2, 4, 16, 32)  # B, H, L, E
    k = torch.randn(2, 4, 24, 32)  # S = 24
    v = torch.randn(2, 4, 24, 16)  # Ev = 16
    analytic = 2 * 4 * 16 * 24 * 32 + 2 * 4 * 16 * 24 * 16  # Q K^T + attn V
    count_on_both_backends(SDPA(causal=False), (q, k, v), analytic)


def test_causal_sdpa_counts_the_full_product_on_the_fused_cpu_kernel() -> None:
    q = torch.randn(2, 4, 16, 32)
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in dispatched_ops(
        SDPA(causal=True), (q, q, q)
    )
    analytic = 2 * 4 * 16 * 16 * (32 + 32)  # the mask does not halve the count
    count_on_both_backends(SDPA(causal=True), (q, q, q), analytic)


# --------------------------------------------------------------------------------------------
# through the plugin

_BERT_PROJECT = """
import pytest, torch
from transformers import BertConfig, BertModel

@pytest.mark.parametrize("backend", ["fvcore", "torch"])
@pytest.mark.flop_budget(macs={budget}, tolerance=0.005)
def test_tiny_bert(flops, backend):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=256, max_position_embeddings=64, attn_implementation="sdpa",
    )
    result = flops(BertModel(config).eval(), {{"input_ids": torch.randint(0, 100, (1, 16))}},
                   backend=backend)
    assert result.backend == backend
    assert result.unknown_ops == {{}}
"""


def test_a_tiny_bert_counted_through_the_fixture_shows_on_both_backends_in_the_table(
    project: pytest.Pytester,
) -> None:
    # the analytic count of test_a_bert_encoder_counts_the_same_with_sdpa_and_with_eager_attention
    L, d, ff = 16, 64, 256
    per_layer = 3 * L * d * d + 2 * L * L * d + L * d * d + 2 * L * d * ff + 2 * 5 * L * d
    budget = 5 * L * d + 2 * per_layer + d * d
    project.makepyfile(_BERT_PROJECT.format(budget=budget))
    result = project.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            "*::test_tiny_bert[[]fvcore[]]  BertModel  1.67 MFLOPs  1.67 MMACs *"
            f"{budget / 10**6:.6f} MMACs  100.0% *marker  fvcore  *ok",
            "*::test_tiny_bert[[]torch[]]   BertModel  1.67 MFLOPs  1.67 MMACs *"
            f"{budget / 10**6:.6f} MMACs  100.0% *marker  torch  *ok",
            "*2 counted: 2 ok*",
        ]
    )
