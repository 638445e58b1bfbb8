"""An LLM-sized budget: a Llama-2-7B-shaped decoder, counted abstractly in about a second.

The model is built from a config inside ``flops.abstract()``: its 6.7 billion parameters and
the input ids are fake tensors (shapes and dtypes, no memory), so nothing is downloaded,
initialised or allocated, and the count runs the forward on shapes only (torch backend).
"""

from __future__ import annotations

import pytest
import torch
import transformers  # the examples' one extra: pip install -e ".[examples]"

HIDDEN = 4096  # d
LAYERS = 32
HEADS = 32
INTERMEDIATE = 11008  # ff
VOCAB = 32000  # V
SEQUENCE = 2048  # L

# Forward MACs at batch 1, sequence L = 2048 (1 MAC per multiply-add):
#   per layer   Q, K, V, O projections  4 * d^2 * L      =   137,438,953,472
#               gate, up, down (MLP)    3 * d * ff * L   =   277,025,390,592
#               attention QK^T and AV   2 * L^2 * d      =    34,359,738,368
#               one layer                                =   448,824,082,432
#   32 layers                           x 32             = 14,362,370,637,824
#   lm_head                             d * V * L        =    268,435,456,000
#   rotary inv_freq @ positions         (d/heads/2) * L  =            131,072
#   total                                                = 14,630,806,224,896  (14.63 TMACs)
# Norms, softmax, SiLU and residual adds are elementwise: not counted, by convention.
EXPECTED_MACS = (
    LAYERS
    * (4 * HIDDEN**2 * SEQUENCE + 3 * HIDDEN * INTERMEDIATE * SEQUENCE + 2 * SEQUENCE**2 * HIDDEN)
    + HIDDEN * VOCAB * SEQUENCE
    + (HIDDEN // HEADS // 2) * SEQUENCE
)
# Parameters: embeddings and lm_head V * d each, per layer 4 d^2 + 3 d ff + 2 d (norms),
# plus the final norm d: 6,738,415,616 (6.74 B).
EXPECTED_PARAMS = (
    2 * VOCAB * HIDDEN + LAYERS * (4 * HIDDEN**2 + 3 * HIDDEN * INTERMEDIATE + 2 * HIDDEN) + HIDDEN
)


@pytest.mark.flop_budget(tmacs=14.7, mparams=6800)
def test_llama_7b_at_sequence_2048(flops):
    config = transformers.LlamaConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        vocab_size=VOCAB,
        max_position_embeddings=4096,
    )
    with flops.abstract():  # fake tensors: no weights in memory, nothing initialised
        model = transformers.LlamaForCausalLM(config).eval()
        input_ids = torch.randint(0, VOCAB, (1, SEQUENCE))
    result = flops(model, {"input_ids": input_ids})
    assert result.abstract
    assert result.macs == EXPECTED_MACS == 14_630_806_224_896
    assert result.params == EXPECTED_PARAMS == 6_738_415_616
