"""What serving costs: a 7B decoder's prompt and its tokens, and a mixture of experts' size.

Both models are built inside ``flops.abstract()`` (fake tensors: no weights, nothing
allocated), so this file runs in a few seconds on a laptop. Budgets live in pyproject.toml,
keyed by the names the counts are recorded under: ``flops.generate(..., name="Llama-2-7B")``
records ``Llama-2-7B:prefill``, ``Llama-2-7B:decode`` (all new tokens) and
``Llama-2-7B:decode_last`` (one token at the final context).
"""

from __future__ import annotations

import torch
import transformers

D, LAYERS, HEADS, FF, VOCAB = 4096, 32, 32, 11008, 32000
PROMPT, NEW = 2048, 2048  # prefill at 2,048 tokens; the last new token sees 4,096

# Per token, in MACs: the weight matmuls are N = 32 (4 d^2 + 3 d ff) + d V = 6,607,077,376
# (every parameter but the embedding table and the norms, once), rotary position angles 64,
# and attention over a context of c tokens 2 c d per layer (QK^T and A.V, d each):
#   prefill at L = 2048    L N + 64 L + 32 * 2 L^2 d          = 14,630,806,224,896  (14.63 TMACs)
#   one token at c = 4096  N + 64 + 32 * 2 c d                =      7,680,819,264  (7.681 GMACs)
#   all new tokens         sum over c = 2049 .. 4096          = 15,180,830,474,240
# In FLOPs (2 per MAC) the decode step is 2N + 4 n_layer c d: the usual 2N + 2 n_layer n_ctx
# d_attn counts QK^T alone.
N = LAYERS * (4 * D**2 + 3 * D * FF) + D * VOCAB
PREFILL_MACS = PROMPT * N + 64 * PROMPT + LAYERS * 2 * PROMPT**2 * D
DECODE_LAST_MACS = N + 64 + LAYERS * 2 * (PROMPT + NEW) * D
DECODE_MACS = sum(N + 64 + LAYERS * 2 * c * D for c in range(PROMPT + 1, PROMPT + NEW + 1))


def test_llama_7b_prefill_and_decode(flops):
    config = transformers.LlamaConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=FF,
        vocab_size=VOCAB,
        max_position_embeddings=PROMPT + NEW,
    )
    with flops.abstract():
        model = transformers.LlamaForCausalLM(config).eval()
        prompt = torch.randint(0, VOCAB, (1, PROMPT))
    result = flops.generate(model, {"input_ids": prompt}, max_new_tokens=NEW, name="Llama-2-7B")
    assert result.prefill.macs == PREFILL_MACS == 14_630_806_224_896
    assert result.decode_last.macs == DECODE_LAST_MACS == 7_680_819_264
    assert result.decode.macs == DECODE_MACS == 15_180_830_474_240


# Mixtral 8x7B: 8 experts per layer, each token routed to 2 of them.
#   one expert     3 * 4096 * 14336                               =    176,160,768
#   shared/layer   attention 2 d^2 + 2 d * 1024 (8 KV heads), router 8 d, norms 2 d
#                                                                 =     41,984,000
#   outside        embedding and head 2 * 32000 d, final norm d    =    262,148,096
#   total          32 (41,984,000 + 8 experts) + outside          = 46,702,792,704  (46.7B)
#   active         32 (41,984,000 + 2 experts) + outside          = 12,879,925,248  (12.9B)
MIXTRAL_PARAMS = 32 * (41_984_000 + 8 * 176_160_768) + 262_148_096
MIXTRAL_ACTIVE = 32 * (41_984_000 + 2 * 176_160_768) + 262_148_096


def test_mixtral_8x7b_active_parameters(flops):
    config = transformers.MixtralConfig(
        hidden_size=D,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=8,
        intermediate_size=14336,
        vocab_size=VOCAB,
        num_local_experts=8,
        num_experts_per_tok=2,
    )
    with flops.abstract():
        model = transformers.MixtralForCausalLM(config).eval()
        input_ids = torch.randint(0, VOCAB, (1, 16))
    result = flops(model, {"input_ids": input_ids}, name="Mixtral-8x7B")
    assert result.params == MIXTRAL_PARAMS == 46_702_792_704
    assert result.active_params == MIXTRAL_ACTIVE == 12_879_925_248
