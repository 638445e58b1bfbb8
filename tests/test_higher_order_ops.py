"""Higher-order ops on the torch backend: flex_attention is counted, others are named unknown.

Eager ``flex_attention`` runs on CPU (torch's unfused implementation). Expected counts are
SDPA's rule written out: Q K^T plus attn V, B*H*L*S*(E + Ev), the full product whatever the
block mask skips. Its backward does not run on CPU in torch 2.13 ("FlexAttention does not
support backward on CPU"), so the backward formula is checked on shapes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.formulas import lookup

# flex_attention warns once that it runs unfused without torch.compile
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _causal(b: int, h: int, q: int, kv: int) -> bool:
    return q >= kv  # type: ignore[return-value]


class Flex(nn.Module):
    def __init__(self, block_mask: object = None, gqa: bool = False) -> None:
        super().__init__()
        self.block_mask = block_mask
        self.gqa = gqa

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return flex_attention(  # type: ignore[return-value]
            q, k, v, block_mask=self.block_mask, enable_gqa=self.gqa
        )


def test_flex_attention_counts_the_score_and_value_products() -> None:
    q, k, v = torch.randn(2, 4, 128, 16), torch.randn(2, 4, 256, 16), torch.randn(2, 4, 256, 8)
    count = count_model(Flex(), (q, k, v), backend="torch")
    # B=2, H=4, L=128, S=256: Q K^T 2*4*128*256*16 + attn V 2*4*128*256*8
    assert (count.macs, count.unknown_ops) == (2 * 4 * 128 * 256 * (16 + 8), {})


def test_flex_attention_with_a_causal_block_mask_counts_the_full_product() -> None:
    mask = create_block_mask(_causal, B=None, H=None, Q_LEN=256, KV_LEN=256, device="cpu")
    q = k = v = torch.randn(1, 2, 256, 16)
    count = count_model(Flex(block_mask=mask), (q, k, v), backend="torch")
    assert (count.macs, count.unknown_ops) == (1 * 2 * 256 * 256 * (16 + 16), {})


def test_grouped_query_flex_attention_counts_every_query_head() -> None:
    q, k, v = torch.randn(1, 4, 128, 8), torch.randn(1, 2, 128, 8), torch.randn(1, 2, 128, 8)
    count = count_model(Flex(gqa=True), (q, k, v), backend="torch")
    assert (count.macs, count.unknown_ops) == (1 * 4 * 128 * 128 * (8 + 8), {})


def test_counting_flex_attention_leaves_torchs_compile_switch_as_it_was() -> None:
    import torch.nn.attention.flex_attention as module

    before = module._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG
    q = k = v = torch.randn(1, 1, 128, 8)
    count_model(Flex(), (q, k, v), backend="torch")
    assert before == module._FLEX_ATTENTION_DISABLE_COMPILE_DEBUG


def test_flex_attention_backward_is_twice_its_forward_like_sdpa() -> None:
    backward = lookup("higher_order::flex_attention_backward")
    assert backward is not None
    q, k, v, out, lse = (2, 4, 5, 8), (2, 2, 6, 8), (2, 2, 6, 3), (2, 4, 5, 3), (2, 4, 5)
    # dV, dP (L*S*Ev each) and dQ, dK (L*S*E each) over B*H = 8 query heads
    assert backward([q, k, v, out, lse, out, None], []) == 8 * 5 * 6 * (3 + 3 + 8 + 8)


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cond(x.sum() > 0, lambda y: y @ y, lambda y: y + 1, (self.fc(x),))


def test_another_higher_order_op_is_named_unknown_and_the_rest_is_counted() -> None:
    count = count_model(Branchy(), torch.randn(4, 4), backend="torch")
    # the Linear outside the cond: 4 rows x 4 x 4; the branch it takes is not seen
    assert count.macs == 64
    assert count.unknown_ops == {"higher_order::cond": 1}
