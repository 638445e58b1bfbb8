"""The counting formulas, checked against arithmetic written out by hand.

Every expected number below is derived in its comment from the shapes, never copied from the
tool. Models are counted three ways where the op allows: through the fvcore backend (JIT-trace
op names), through a small dispatcher-level counter defined here (the op names the torch
backend sees, with the argument lists the dispatcher really passes), and by calling the
shape-level formulas directly.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from pytest_flopbudget.counting import formulas
from pytest_flopbudget.counting.backends.torch_backend import output_shapes, schema_inputs
from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.formulas import lookup, register_formula
from pytest_flopbudget.counting.op_policy import is_ignored

# --------------------------------------------------------------------------------------------
# helpers


class Call(nn.Module):
    """A functional call as a module: ``Call(lambda x, y: x @ y)``; submodules go in ``mods``."""

    def __init__(self, fn: Callable[..., Any], *mods: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.mods = nn.ModuleList(mods)

    def forward(self, *args: Any) -> Any:
        return self.fn(*self.mods, *args)


def fvcore_macs(model: nn.Module, inputs: Any, grad: bool = False) -> int:
    count = count_model(model, inputs, backend="fvcore", grad=grad)
    assert count.unknown_ops == {}, count.unknown_ops
    return count.macs


class DispatchCounter(TorchDispatchMode):
    """Sum the formulas over the ops the dispatcher runs, arguments put in schema order the way
    the torch backend hands them over (defaults filled in, keyword-only ones included)."""

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = func._schema.name
        formula = lookup(name)
        if formula is not None:
            inputs = schema_inputs(func, args, kwargs)
            outputs = output_shapes(result)
            self.macs += int(formula(inputs, outputs))
            self.ops[name] += 1
        return result


def dispatch_count(
    model: nn.Module, inputs: tuple[Any, ...], grad: bool = False
) -> DispatchCounter:
    counter = DispatchCounter()
    with warnings.catch_warnings(), torch.set_grad_enabled(grad):
        warnings.simplefilter("ignore")
        with counter:
            model(*inputs)
    return counter


def both_backends(model: nn.Module, inputs: tuple[Any, ...], grad: bool = False) -> int:
    """The fvcore count, after checking the dispatcher-level formulas give the same number."""
    traced = fvcore_macs(model, inputs, grad=grad)
    dispatched = dispatch_count(model, inputs, grad=grad).macs
    assert traced == dispatched, f"fvcore {traced} != dispatcher {dispatched}"
    return traced


def r(*shape: int) -> torch.Tensor:
    return torch.randn(*shape)


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = dict(formulas.FORMULAS), dict(formulas.FVCORE_HANDLES)
    yield
    formulas.FORMULAS.clear()
    formulas.FORMULAS.update(saved[0])
    formulas.FVCORE_HANDLES.clear()
    formulas.FVCORE_HANDLES.update(saved[1])


# --------------------------------------------------------------------------------------------
# matrix products


def test_linear_counts_every_input_row_times_in_times_out_features() -> None:
    # (2, 3, 8) -> (2, 3, 16): 2*3 rows * 8 in * 16 out
    assert both_backends(nn.Linear(8, 16), (r(2, 3, 8),)) == 2 * 3 * 8 * 16


def test_linear_on_a_single_vector_counts_in_times_out() -> None:
    assert both_backends(nn.Linear(4, 5), (r(4),)) == 4 * 5


def test_addmm_counts_the_matrix_product_and_not_the_bias() -> None:
    model = Call(lambda b, x, w: torch.addmm(b, x, w))
    # (3, 4) @ (4, 5)
    assert both_backends(model, (r(5), r(3, 4), r(4, 5))) == 3 * 4 * 5


def test_mm_counts_n_times_k_times_m() -> None:
    assert both_backends(Call(torch.mm), (r(3, 4), r(4, 5))) == 3 * 4 * 5


def test_bmm_counts_batch_times_n_times_k_times_m() -> None:
    assert both_backends(Call(torch.bmm), (r(2, 3, 4), r(2, 4, 5))) == 2 * 3 * 4 * 5


def test_baddbmm_counts_the_batched_product() -> None:
    model = Call(lambda c, a, b: torch.baddbmm(c, a, b))
    assert both_backends(model, (r(2, 3, 5), r(2, 3, 4), r(2, 4, 5))) == 2 * 3 * 4 * 5


def test_addbmm_counts_every_batch_product_it_sums() -> None:
    model = Call(lambda c, a, b: torch.addbmm(c, a, b))
    assert both_backends(model, (r(3, 5), r(2, 3, 4), r(2, 4, 5))) == 2 * 3 * 4 * 5


def test_matmul_of_matrix_and_vector_counts_rows_times_k() -> None:
    # fvcore's own matmul handle asserts on a 1-D operand
    assert both_backends(Call(torch.matmul), (r(3, 4), r(4))) == 3 * 4


def test_matmul_of_vector_and_batched_matrix_counts_every_batch() -> None:
    # (4,) @ (2, 4, 5) -> (2, 5): 2 batches of a (1, 4) @ (4, 5) product
    assert both_backends(Call(torch.matmul), (r(4), r(2, 4, 5))) == 2 * 4 * 5


def test_matmul_of_two_vectors_is_a_dot_product() -> None:
    assert both_backends(Call(torch.matmul), (r(4), r(4))) == 4


def test_matmul_counts_the_broadcast_batch_of_both_operands() -> None:
    # (2, 1, 3, 4) @ (5, 4, 6): batch broadcasts to (2, 5); fvcore's handle would say 2*3*4*6
    assert both_backends(Call(torch.matmul), (r(2, 1, 3, 4), r(5, 4, 6))) == 2 * 5 * 3 * 4 * 6


def test_mv_counts_rows_times_columns() -> None:
    assert both_backends(Call(torch.mv), (r(3, 4), r(4))) == 3 * 4


def test_addmv_counts_the_matrix_vector_product() -> None:
    model = Call(lambda c, a, b: torch.addmv(c, a, b))
    assert both_backends(model, (r(3), r(3, 4), r(4))) == 3 * 4


def test_dot_and_vdot_count_one_mac_per_element() -> None:
    assert both_backends(Call(torch.dot), (r(7), r(7))) == 7
    assert both_backends(Call(torch.vdot), (r(7), r(7))) == 7


def test_vecdot_counts_one_mac_per_element_of_the_broadcast_operands() -> None:
    # (3, 4) . (3, 4) along the last dim: 3 dots of length 4. At dispatch level this op is a
    # mul + sum (ignored by convention), so only the trace-level count is checked.
    assert fvcore_macs(Call(torch.linalg.vecdot), (r(3, 4), r(3, 4))) == 3 * 4


def test_bilinear_counts_batch_times_out_times_in1_times_in2() -> None:
    # nn.Bilinear(3, 4, 5) on a batch of 2: x1^T W_o x2 for 5 outputs
    model = Call(lambda m, a, b: m(a, b), nn.Bilinear(3, 4, 5))
    assert both_backends(model, (r(2, 3), r(2, 4))) == 2 * 5 * 3 * 4


def test_tensordot_counts_output_elements_times_contracted_size() -> None:
    model = Call(lambda a, b: torch.tensordot(a, b, dims=([1, 2], [1, 0])))
    # (2, 3, 4) x (4, 3, 5) contracting 3*4 -> (2, 5)
    assert both_backends(model, (r(2, 3, 4), r(4, 3, 5))) == 2 * 5 * 3 * 4


def test_inner_counts_output_elements_times_the_shared_last_dimension() -> None:
    # (2, 3) inner (4, 3) -> (2, 4), each a dot of length 3
    assert both_backends(Call(torch.inner), (r(2, 3), r(4, 3))) == 2 * 4 * 3


def test_multi_dot_counts_the_cheapest_multiplication_order_like_torch() -> None:
    model = Call(lambda a, b, c: torch.linalg.multi_dot([a, b, c]))
    # A (10, 2), B (2, 10), C (10, 2): (AB)C = 10*2*10 + 10*10*2 = 400,
    # A(BC) = 2*10*2 + 10*2*2 = 80, and torch picks A(BC)
    assert both_backends(model, (r(10, 2), r(2, 10), r(10, 2))) == 2 * 10 * 2 + 10 * 2 * 2


def test_cdist_counts_every_pair_times_the_coordinates() -> None:
    # (2, 5, 3) against (2, 4, 3): 2 batches of 5*4 pairs in 3 dimensions
    assert both_backends(Call(torch.cdist), (r(2, 5, 3), r(2, 4, 3))) == 2 * 5 * 4 * 3


# --------------------------------------------------------------------------------------------
# einsum


@pytest.mark.parametrize(
    ("equation", "shapes", "expected"),
    [
        # batched matmul: b*i*j*k
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
        # attention scores: b*h*q*k*d
        ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)], 2 * 2 * 3 * 5 * 4),
        # matrix-vector
        ("ij,j->i", [(3, 4), (4,)], 3 * 4),
        # dot product
        ("i,i->", [(6,), (6,)], 6),
        # implicit output (ik) is a plain matmul
        ("ij,jk", [(3, 4), (4, 5)], 3 * 4 * 5),
        # ellipsis batch dimensions broadcast like matmul's
        ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
        # three operands left to right: (ij,jk->ik) 3*4*5, then (ik,kl->il) 3*5*6
        ("ij,jk,kl->il", [(3, 4), (4, 5), (5, 6)], 3 * 4 * 5 + 3 * 5 * 6),
        # i and k are summed out of their operands first, leaving a dot over j
        ("ij,jk->", [(2, 3), (3, 4)], 3),
        # an outer product sums nothing: it is an elementwise mul, ignored by convention
        ("i,j->ij", [(2,), (3,)], 0),
        # so is a Hadamard product
        ("bi,bi->bi", [(2, 3), (2, 3)], 0),
        # a single operand is at most a sum
        ("ij->i", [(3, 4)], 0),
    ],
)
def test_einsum_counts_the_pairwise_contractions_torch_performs(
    equation: str, shapes: list[tuple[int, ...]], expected: int
) -> None:
    model = Call(lambda *ops: torch.einsum(equation, *ops))
    assert both_backends(model, tuple(r(*shape) for shape in shapes)) == expected


def test_einsum_follows_an_opt_einsum_path_when_one_is_given() -> None:
    # path (1, 2) first: (jk,kl->jl) 4*5*6, then (ij,jl->il) 3*4*6
    inputs = ["ij,jk,kl->il", [(3, 4), (4, 5), (5, 6)], [1, 2, 0, 1]]
    assert lookup("aten::einsum")(inputs, [(3, 6)]) == 4 * 5 * 6 + 3 * 4 * 6  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# convolution


def test_grouped_conv_counts_output_elements_times_in_channels_per_group_times_kernel() -> None:
    # Conv2d(4, 6, 3, groups=2) on (2, 4, 6, 6) -> (2, 6, 4, 4); each output sees 4/2 channels
    expected = (2 * 6 * 4 * 4) * (4 // 2) * 3 * 3
    assert both_backends(nn.Conv2d(4, 6, 3, groups=2), (r(2, 4, 6, 6),)) == expected


def test_depthwise_conv_counts_one_channel_per_output() -> None:
    # Conv2d(4, 4, 3, padding=1, groups=4) on (2, 4, 6, 6) -> (2, 4, 6, 6), 1 channel * 3*3
    model = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    assert both_backends(model, (r(2, 4, 6, 6),)) == (2 * 4 * 6 * 6) * 1 * 3 * 3


def test_conv1d_without_a_batch_dimension_counts_like_a_batch_of_one() -> None:
    # Conv1d(4, 6, 3) on (4, 5) -> (6, 3): 6*3 outputs * 4 channels * 3 taps
    assert both_backends(nn.Conv1d(4, 6, 3), (r(4, 5),)) == 6 * 3 * 4 * 3


def test_conv_transpose1d_counts_input_elements_times_out_channels_times_kernel() -> None:
    # ConvTranspose1d(4, 6, 3) on (2, 4, 5): every input element scatters into 6 channels * 3 taps
    assert both_backends(nn.ConvTranspose1d(4, 6, 3), (r(2, 4, 5),)) == (2 * 4 * 5) * 6 * 3


def test_grouped_strided_conv_transpose2d_counts_out_channels_per_group() -> None:
    # ConvTranspose2d(4, 6, 3, stride=2, groups=2) on (2, 4, 6, 6): each input element
    # feeds 6/2 output channels * 3*3 taps; the stride does not change the count
    model = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
    assert both_backends(model, (r(2, 4, 6, 6),)) == (2 * 4 * 6 * 6) * (6 // 2) * 3 * 3


# --------------------------------------------------------------------------------------------
# norms, resampling, pooling: fvcore's rules


def _fvcore_default_total(model: nn.Module, inputs: tuple[Any, ...]) -> int:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return int(analysis.total())


_X = (2, 4, 3, 3)
_NX = 2 * 4 * 3 * 3


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # fvcore: training batch norm 5 per element with affine, 4 without
        (nn.BatchNorm2d(4), 5 * _NX),
        (nn.BatchNorm2d(4, affine=False), 4 * _NX),
        # eval batch norm is a per-channel scale and shift: 2 per element, 1 without affine
        (nn.BatchNorm2d(4).eval(), 2 * _NX),
        (nn.GroupNorm(2, 4), 5 * _NX),
        (nn.GroupNorm(2, 4, affine=False), 4 * _NX),
        (nn.LayerNorm(3), 5 * _NX),
        (nn.LayerNorm(3, elementwise_affine=False), 4 * _NX),
        (nn.InstanceNorm2d(4, affine=True), 5 * _NX),
        (nn.InstanceNorm2d(4), 4 * _NX),
        # nearest: 1 per output element, output (2, 4, 6, 6)
        (nn.Upsample(scale_factor=2), 2 * 4 * 6 * 6),
        # bilinear: 4 taps per output element, output (2, 4, 5, 7)
        (nn.Upsample(size=(5, 7), mode="bilinear"), 4 * 2 * 4 * 5 * 7),
        # adaptive average pooling: 1 per input element
        (nn.AdaptiveAvgPool2d(2), _NX),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, nn.Module) else None,
)
def test_norms_resampling_and_pooling_keep_fvcores_numbers(model: nn.Module, expected: int) -> None:
    inputs = (r(*_X),)
    assert both_backends(model, inputs) == expected
    assert _fvcore_default_total(model, inputs) == expected


def test_grid_sample_keeps_fvcores_four_taps_per_output_element() -> None:
    model = Call(lambda x, g: F.grid_sample(x, g, align_corners=False))
    # output (1, 2, 3, 3)
    assert both_backends(model, (r(1, 2, 4, 4), torch.rand(1, 3, 3, 2))) == 4 * 1 * 2 * 3 * 3


def test_linear_and_conv_keep_fvcores_numbers() -> None:
    for model, inputs in [
        (nn.Linear(8, 16), (r(2, 3, 8),)),
        (nn.Conv2d(4, 6, 3, groups=2), (r(2, 4, 6, 6),)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2), (r(2, 4, 6, 6),)),
        (Call(torch.bmm), (r(2, 3, 4), r(2, 4, 5))),
    ]:
        assert fvcore_macs(model, inputs) == _fvcore_default_total(model, inputs)


# --------------------------------------------------------------------------------------------
# attention


def _sdpa(**kwargs: Any) -> nn.Module:
    return Call(lambda q, k, v, *mask: F.scaled_dot_product_attention(q, k, v, *mask, **kwargs))


# q (B=2, H=4, L=5, E=8), k (2, 4, S=6, 8), v (2, 4, 6, Ev=3)
_QKV = (2, 4, 5, 8), (2, 4, 6, 8), (2, 4, 6, 3)
_SDPA_MACS = 2 * 4 * 5 * 6 * 8 + 2 * 4 * 5 * 6 * 3  # QK^T B*H*L*S*E + AV B*H*L*S*Ev


def test_attention_counts_the_score_and_value_matmuls() -> None:
    assert both_backends(_sdpa(), tuple(r(*s) for s in _QKV)) == _SDPA_MACS


def test_causal_attention_counts_the_full_score_matrix() -> None:
    assert both_backends(_sdpa(is_causal=True), tuple(r(*s) for s in _QKV)) == _SDPA_MACS


def test_causal_attention_on_the_fused_cpu_kernel_counts_the_full_score_matrix() -> None:
    # E == Ev takes the fused flash kernel on CPU: B*H*L*L*(E + E)
    inputs = (r(1, 2, 5, 8), r(1, 2, 5, 8), r(1, 2, 5, 8))
    counter = dispatch_count(_sdpa(is_causal=True), inputs)
    assert counter.ops["aten::_scaled_dot_product_flash_attention_for_cpu"] == 1
    assert both_backends(_sdpa(is_causal=True), inputs) == 1 * 2 * 5 * 5 * (8 + 8)


def test_attention_with_an_explicit_mask_counts_the_same_as_without() -> None:
    inputs = (*(r(*s) for s in _QKV), torch.zeros(5, 6))
    assert both_backends(_sdpa(), inputs) == _SDPA_MACS
    bool_mask = (r(1, 2, 5, 8), r(1, 2, 5, 8), r(1, 2, 5, 8), torch.ones(5, 5, dtype=torch.bool))
    assert both_backends(_sdpa(), bool_mask) == 1 * 2 * 5 * 5 * (8 + 8)


def test_grouped_query_attention_counts_every_query_head() -> None:
    # 4 query heads share 2 key/value heads: B*Hq*L*S*(E + Ev) = 2*4*5*6*(8 + 8)
    inputs = (r(2, 4, 5, 8), r(2, 2, 6, 8), r(2, 2, 6, 8))
    assert both_backends(_sdpa(enable_gqa=True), inputs) == 2 * 4 * 5 * 6 * (8 + 8)


def test_attention_without_a_head_dimension_counts_the_batch() -> None:
    # (3, 5, 8) x (3, 6, 8) x (3, 6, 8)
    inputs = (r(3, 5, 8), r(3, 6, 8), r(3, 6, 8))
    assert both_backends(_sdpa(), inputs) == 3 * 5 * 6 * (8 + 8)


def _mha_self_attention_macs(batch: int, length: int, embed: int, heads: int) -> int:
    head_dim = embed // heads
    in_projection = batch * length * embed * 3 * embed  # one (E -> 3E) linear
    scores = batch * heads * length * length * head_dim  # QK^T
    values = batch * heads * length * length * head_dim  # attn @ V
    out_projection = batch * length * embed * embed
    return in_projection + scores + values + out_projection


def test_multihead_attention_fast_path_counts_like_hand_arithmetic() -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    model = Call(lambda m, x: m(x, x, x, need_weights=False)[0], mha)
    x = r(2, 5, 8)
    assert dispatch_count(model, (x,)).ops["aten::_native_multi_head_attention"] == 1
    assert both_backends(model, (x,)) == _mha_self_attention_macs(2, 5, 8, 2)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_fast_path_counts_the_same_as_the_training_path(
    need_weights: bool,
) -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    model = Call(lambda m, x: m(x, x, x, need_weights=need_weights)[0], mha)
    x = r(2, 5, 8)
    mha.eval()
    fast = both_backends(model, (x,))
    mha.train()
    slow = both_backends(model, (x,), grad=True)
    assert fast == slow == _mha_self_attention_macs(2, 5, 8, 2)


def test_multihead_cross_attention_counts_key_and_value_projections_at_their_length() -> None:
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    model = Call(lambda m, q, kv: m(q, kv, kv, need_weights=False)[0], mha)
    q, kv = r(2, 5, 8), r(2, 7, 8)
    expected = (
        2 * 5 * 8 * 8  # q projection
        + 2 * 7 * 8 * 8 * 2  # k and v projections
        + 2 * 2 * 5 * 7 * 4 * 2  # QK^T and AV over 2 heads of dim 4
        + 2 * 5 * 8 * 8  # out projection
    )
    mha.eval()
    assert both_backends(model, (q, kv)) == expected
    mha.train()
    assert both_backends(model, (q, kv), grad=True) == expected


def test_transformer_encoder_layer_fast_path_counts_the_same_as_the_training_path() -> None:
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    x = r(2, 5, 8)
    expected = (
        _mha_self_attention_macs(2, 5, 8, 2)
        + 2 * 5 * 8 * 16  # feed-forward up
        + 2 * 5 * 16 * 8  # feed-forward down
        + 2 * (5 * 2 * 5 * 8)  # two layer norms, fvcore's 5 per element
    )
    layer.eval()
    assert dispatch_count(layer, (x,)).ops["aten::_transformer_encoder_layer_fwd"] == 1
    assert both_backends(layer, (x,)) == expected
    layer.train()
    assert both_backends(layer, (x,), grad=True) == expected


# --------------------------------------------------------------------------------------------
# recurrent networks

_SEQ, _BATCH, _IN, _H = 3, 2, 4, 5
_TOKENS = _SEQ * _BATCH


@pytest.mark.parametrize(
    ("rnn", "gates"),
    [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)],
    ids=["LSTM", "GRU", "RNN"],
)
def test_one_layer_rnn_counts_gate_matmuls_per_token(rnn: type[nn.Module], gates: int) -> None:
    model = Call(lambda m, x: m(x)[0], rnn(_IN, _H))
    # per token: gates*H*(in + H)
    expected = _TOKENS * gates * _H * (_IN + _H)
    assert both_backends(model, (r(_SEQ, _BATCH, _IN),)) == expected


@pytest.mark.parametrize(
    ("rnn", "gates"),
    [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)],
    ids=["LSTM", "GRU", "RNN"],
)
def test_two_layer_bidirectional_rnn_counts_every_layer_and_direction(
    rnn: type[nn.Module], gates: int
) -> None:
    model = Call(lambda m, x: m(x)[0], rnn(_IN, _H, num_layers=2, bidirectional=True))
    first = 2 * _TOKENS * gates * _H * (_IN + _H)  # two directions over the input
    second = 2 * _TOKENS * gates * _H * (2 * _H + _H)  # input is both directions' outputs
    assert both_backends(model, (r(_SEQ, _BATCH, _IN),)) == first + second


def test_two_layer_rnn_feeds_the_hidden_size_into_the_second_layer() -> None:
    model = Call(lambda m, x: m(x)[0], nn.RNN(_IN, _H, num_layers=2, batch_first=True))
    expected = _TOKENS * _H * (_IN + _H) + _TOKENS * _H * (_H + _H)
    assert both_backends(model, (r(_BATCH, _SEQ, _IN),)) == expected


def test_lstm_with_projection_counts_the_projection_matrix() -> None:
    # proj_size 3: w_ih (4H, in), w_hh (4H, 3), w_hr (3, H) per token
    model = Call(lambda m, x: m(x)[0], nn.LSTM(_IN, _H, proj_size=3))
    expected = _TOKENS * (4 * _H * _IN + 4 * _H * 3 + 3 * _H)
    assert both_backends(model, (r(_SEQ, _BATCH, _IN),)) == expected


def test_packed_sequence_lstm_counts_only_the_real_tokens() -> None:
    from torch.nn.utils.rnn import pack_padded_sequence

    lstm = nn.LSTM(_IN, _H)
    model = Call(lambda m, x: m(pack_padded_sequence(x, torch.tensor([3, 2])))[0].data, lstm)
    # lengths 3 + 2 = 5 tokens
    assert both_backends(model, (r(3, 2, _IN),)) == 5 * 4 * _H * (_IN + _H)


@pytest.mark.parametrize(
    ("cell", "gates"),
    [(nn.LSTMCell, 4), (nn.GRUCell, 3), (nn.RNNCell, 1)],
    ids=["LSTMCell", "GRUCell", "RNNCell"],
)
def test_rnn_cells_count_gate_matmuls_per_batch_row(cell: type[nn.Module], gates: int) -> None:
    model = Call(lambda m, x: m(x), cell(_IN, _H))
    count = count_model(model, (r(_BATCH, _IN),), backend="fvcore")
    assert count.macs == _BATCH * gates * _H * (_IN + _H)
    assert count.unknown_ops == {}


# --------------------------------------------------------------------------------------------
# embedding bags: ignored by convention


def test_embedding_bag_is_ignored_like_the_embedding_and_sum_it_fuses() -> None:
    bag = nn.EmbeddingBag(10, 3, mode="sum")
    fused = Call(lambda m, i, o: m(i, o), bag)
    count = count_model(fused, (torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2])))
    assert (count.macs, count.unknown_ops) == (0, {})

    table = nn.Embedding(10, 3)
    written_out = Call(lambda m, i: m(i).sum(1), table)
    assert fvcore_macs(written_out, (torch.tensor([[1, 2], [3, 4]]),)) == count.macs


def test_weighted_embedding_bag_is_ignored_too() -> None:
    bag = nn.EmbeddingBag(10, 3, mode="sum")
    model = Call(lambda m, i, o, w: m(i, o, per_sample_weights=w), bag)
    inputs = (torch.tensor([1, 2, 3, 4, 5]), torch.tensor([0, 2]), torch.rand(5))
    count = count_model(model, inputs)
    assert (count.macs, count.unknown_ops) == (0, {})


# --------------------------------------------------------------------------------------------
# shape-level formulas under dispatcher names (what the torch backend calls)


def f(op: str) -> Callable[..., int]:
    formula = lookup(op)
    assert formula is not None, op
    return formula


def test_lookup_ignores_the_overload_suffix() -> None:
    assert lookup("aten::mm.default") is lookup("aten::mm") is not None
    assert lookup("aten::no_such_op") is None


def test_dispatcher_convolution_reads_the_transposed_flag() -> None:
    x, w, out = (2, 4, 6, 6), (4, 3, 3, 3), (2, 6, 13, 13)
    args = [x, w, (6,), [2, 2], [0, 0], [1, 1], True, [0, 0], 2]
    assert f("aten::convolution")(args, [out]) == (2 * 4 * 6 * 6) * 3 * 3 * 3
    args = [x, (6, 2, 3, 3), (6,), [1, 1], [0, 0], [1, 1], False, [0, 0], 2]
    assert f("aten::convolution")(args, [(2, 6, 4, 4)]) == (2 * 6 * 4 * 4) * 2 * 3 * 3


def test_scripted_conv_and_conv_transpose_names_count_like_convolution() -> None:
    assert f("aten::conv2d")([(2, 4, 6, 6), (6, 2, 3, 3)], [(2, 6, 4, 4)]) == 192 * 2 * 9
    assert f("aten::conv1d")([(1, 4, 5), (6, 4, 3)], [(1, 6, 3)]) == 18 * 4 * 3
    # conv_transpose: input numel * Cout/groups * kernel
    assert f("aten::conv_transpose2d")([(2, 4, 6, 6), (4, 3, 3, 3)], [(2, 6, 13, 13)]) == (
        288 * 3 * 9
    )
    assert f("aten::conv_transpose1d")([(2, 4, 5), (4, 6, 3)], [(2, 6, 7)]) == 40 * 6 * 3
    assert f("aten::conv_transpose3d")([(1, 2, 2, 2, 2), (2, 3, 1, 1, 1)], [(1, 3, 2, 2, 2)]) == (
        16 * 3
    )


def test_dispatcher_norm_names_count_like_fvcores_norms() -> None:
    x, c = (2, 4, 3, 3), (4,)
    n = 2 * 4 * 3 * 3
    assert f("aten::native_layer_norm")([x, [3], (3,), (3,), 1e-5], [x]) == 5 * n
    assert f("aten::native_layer_norm")([x, [3], None, None, 1e-5], [x]) == 4 * n
    assert f("aten::native_batch_norm")([x, c, c, c, c, True, 0.1, 1e-5], [x]) == 5 * n
    assert f("aten::native_batch_norm")([x, c, c, c, c, False, 0.1, 1e-5], [x]) == 2 * n
    assert f("aten::native_batch_norm")([x, None, None, c, c, False, 0.1, 1e-5], [x]) == n
    no_training = f("aten::_native_batch_norm_legit_no_training")
    assert no_training([x, c, c, c, c, 0.1, 1e-5], [x]) == 2 * n
    legit = f("aten::_native_batch_norm_legit")
    assert legit([x, c, c, c, c, True, 0.1, 1e-5], [x]) == 5 * n
    assert legit([x, None, None, True, 0.1, 1e-5], [x]) == 4 * n  # no_stats overload
    assert f("aten::native_group_norm")([x, c, c, 2, 4, 9, 2, 1e-5], [x]) == 5 * n


def test_dispatcher_upsample_vec_overloads_count_from_the_output() -> None:
    x, out = (2, 4, 3, 3), (2, 4, 6, 6)
    assert f("aten::upsample_nearest2d")([x, None, [2.0, 2.0]], [out]) == 2 * 4 * 6 * 6
    assert f("aten::upsample_bilinear2d")([x, [6, 6], False, None], [out]) == 4 * 2 * 4 * 6 * 6
    assert f("aten::_adaptive_avg_pool2d")([x, [2, 2]], [(2, 4, 2, 2)]) == 2 * 4 * 3 * 3


def test_cuda_attention_kernels_count_like_the_math_path() -> None:
    q, k, v = _QKV
    # _scaled_dot_product_efficient_attention(q, k, v, attn_bias, compute_log_sumexp, ...)
    assert f("aten::_scaled_dot_product_efficient_attention")([q, k, v, None, False], []) == (
        _SDPA_MACS
    )
    # _scaled_dot_product_flash_attention(q, k, v, dropout_p, is_causal, ...): causal is full
    assert f("aten::_scaled_dot_product_flash_attention")([q, k, v, 0.0, True], []) == _SDPA_MACS
    assert f("aten::_scaled_dot_product_cudnn_attention")([q, k, v, None, True], []) == _SDPA_MACS
    cpu = f("aten::_scaled_dot_product_flash_attention_for_cpu")
    assert cpu([q, k, v, 0.0, False, (5, 6), None], []) == _SDPA_MACS


def test_flash_and_efficient_forward_read_the_sequence_major_layout() -> None:
    # (B=2, L=5, H=4, E=8), keys (2, S=6, Hkv=2, 8), values (2, 6, 2, Ev=3)
    q, k, v = (2, 5, 4, 8), (2, 6, 2, 8), (2, 6, 2, 3)
    expected = 2 * 4 * 5 * 6 * (8 + 3)
    flash = f("aten::_flash_attention_forward")
    assert flash([q, k, v, None, None, 5, 6, 0.0, True, False], []) == expected
    efficient = f("aten::_efficient_attention_forward")
    assert efficient([q, k, v, None, None, None, None, None, 0.0, 0], []) == expected


def test_packed_flash_attention_counts_every_sequence_at_the_longest_length() -> None:
    # 3 sequences (cum_seq of 4 offsets), 10 tokens, longest query 5 and key 6, 4 heads of 8
    q, k, v = (10, 4, 8), (12, 4, 8), (12, 4, 8)
    flash = f("aten::_flash_attention_forward")
    assert flash([q, k, v, (4,), (4,), 5, 6, 0.0, False, False], []) == 3 * 4 * 5 * 6 * 16
    efficient = f("aten::_efficient_attention_forward")
    args = [(1, *q), (1, *k), (1, *v), None, (4,), (4,), 5, 6, 0.0, 0]
    assert efficient(args, []) == 3 * 4 * 5 * 6 * 16


def test_fused_matmul_variants_count_like_mm() -> None:
    assert f("aten::_addmm_activation")([(5,), (3, 4), (4, 5), 1, 1, True], []) == 3 * 4 * 5
    assert f("aten::_int_mm")([(32, 16), (16, 8)], []) == 32 * 16 * 8
    assert f("aten::_scaled_mm")([(32, 16), (16, 8), (), ()], []) == 32 * 16 * 8


def test_dispatcher_rnn_names_count_weights_per_token() -> None:
    w_ih, w_hh, b = (20, 4), (20, 5), (20,)
    layer = f("aten::mkldnn_rnn_layer")
    args = [(3, 2, 4), w_ih, w_hh, b, b, (2, 5), (2, 5), False, [], 2, 5, 1, True, False, False]
    assert layer(args, []) == 6 * (20 * 4 + 20 * 5)
    # lstm.data(data (tokens, in), batch_sizes, hx, params, has_biases, ...): packed input
    packed = [(5, 4), (3,), [(1, 2, 5), (1, 2, 5)], [w_ih, w_hh, b, b], True, 1, 0.0, True, False]
    assert f("aten::lstm")(packed, []) == 5 * (20 * 4 + 20 * 5)
    # gru.data(data, batch_sizes, hx, params, ...)
    gru = [(5, 4), (3,), (1, 2, 5), [(15, 4), (15, 5)], False, 1, 0.0, True, False]
    assert f("aten::gru")(gru, []) == 5 * (15 * 4 + 15 * 5)
    assert f("aten::lstm_cell")([(2, 4), [(2, 5), (2, 5)], w_ih, w_hh, b, b], []) == 2 * 180
    assert f("aten::gru_cell")([(2, 4), (2, 5), (15, 4), (15, 5)], []) == 2 * 15 * 9
    assert f("aten::rnn_relu_cell")([(4,), (5,), (5, 4), (5, 5)], []) == 5 * 9


def test_dispatcher_trilinear_and_cdist_count_like_their_callers() -> None:
    # bilinear's lowering: i1 (2, 3), w (5, 3, 4), i2 (2, 4) -> 2*5*3*4
    args = [(2, 3), (5, 3, 4), (2, 4), [1, 3], [0], [1, 2], [2, 3]]
    assert f("aten::_trilinear")(args, [(2, 5)]) == 2 * 5 * 3 * 4
    assert f("aten::_cdist_forward")([(5, 3), (4, 3), 2.0, None], [(5, 4)]) == 5 * 4 * 3


def test_dispatcher_multi_head_attention_accepts_the_trimmed_argument_list() -> None:
    # the dispatcher passes only the arguments the caller gave (no mask, need_weights, ...)
    x = (2, 5, 8)
    args = [x, x, x, 8, 2, (24, 8), (24,), (8, 8), (8,)]
    assert f("aten::_native_multi_head_attention")(args, []) == _mha_self_attention_macs(2, 5, 8, 2)


def test_tensordot_without_constant_dims_recovers_the_contracted_size() -> None:
    # (2, 3, 4) x (4, 3, 5) -> (2, 5): K^2 = 24 * 60 / 10 = 144, K = 12
    assert f("aten::tensordot")([(2, 3, 4), (4, 3, 5), None, None], [(2, 5)]) == 2 * 5 * 12


def test_rms_norm_counts_layer_norms_rule_without_the_mean_and_centering() -> None:
    # square-and-sum, normalize, scale: 3 per element with a weight, 2 without
    x = (2, 4, 3, 3)
    n = 2 * 4 * 3 * 3
    assert f("aten::rms_norm")([x, [3], (3,), None], [x]) == 3 * n
    assert f("aten::rms_norm")([x, [3], None, None], [x]) == 2 * n
    assert f("aten::_fused_rms_norm")([x, [3, 3], (3, 3), 1e-6], [x, (2, 4, 1, 1)]) == 3 * n


@pytest.mark.parametrize(
    ("model", "expected"),
    [(nn.RMSNorm(3), 3 * _NX), (nn.RMSNorm([3, 3], elementwise_affine=False), 2 * _NX)],
    ids=["weight", "no-weight"],
)
def test_rms_norm_module_counts_the_same_in_both_backends(model: nn.Module, expected: int) -> None:
    # fvcore's trace shows aten::rms_norm; the torch backend sees it whole without grad
    for backend in ("fvcore", "torch"):
        count = count_model(model, r(*_X), backend=backend)
        assert (count.macs, count.unknown_ops) == (expected, {}), backend


# --------------------------------------------------------------------------------------------
# backward formulas (training steps): an op's backward is counted exactly when its forward is

# Conv2d(3 -> 8, 3x3, padding 1) on (2, 3, 16, 16): 2*8*16*16 outputs x 3*3*3 taps
_CONV_X, _CONV_W, _CONV_OUT = (2, 3, 16, 16), (8, 3, 3, 3), (2, 8, 16, 16)
_CONV_MACS = 2 * 8 * 16 * 16 * 27  # 110,592


def _conv_backward_args(mask: list[bool]) -> list[Any]:
    # (grad_output, input, weight, bias_sizes, stride, padding, dilation, transposed,
    #  output_padding, groups, output_mask)
    return [_CONV_OUT, _CONV_X, _CONV_W, [8], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask]


@pytest.mark.parametrize(
    ("mask", "gradients"),
    [
        ([True, True, True], 2),  # input grad (transposed conv) + weight grad (correlation)
        ([False, True, True], 1),  # first layer: the input needs no gradient
        ([True, False, False], 1),  # frozen weight
        ([False, False, True], 0),  # bias only: a sum over grad_output, elementwise
    ],
)
def test_convolution_backward_counts_one_forward_per_gradient(
    mask: list[bool], gradients: int
) -> None:
    backward = f("aten::convolution_backward")
    assert backward(_conv_backward_args(mask), [_CONV_X, _CONV_W, (8,)]) == gradients * _CONV_MACS


def test_transposed_grouped_convolution_backward_counts_like_its_forward() -> None:
    # ConvTranspose2d(4 -> 6, 3x3, stride 2, groups 2) on (2, 4, 6, 6): forward is
    # input numel 2*4*6*6 x Cout/groups 3 x 3*3 taps; both gradients cost that again
    x, w, out = (2, 4, 6, 6), (4, 3, 3, 3), (2, 6, 13, 13)
    args: list[Any] = [out, x, w, [6], [2, 2], [0, 0], [1, 1], True, [0, 0], 2, [True, True, True]]
    assert f("aten::convolution_backward")(args, [x, w, (6,)]) == 2 * (288 * 3 * 9)


# q (B=2, H=4, L=5, E=8), k and v (2, Hkv=2, S=6, E=8 / Ev=3): forward 2*4*5*6*(8 + 3)
_Q, _K, _V = (2, 4, 5, 8), (2, 2, 6, 8), (2, 2, 6, 3)
_ATTENTION_FORWARD = 2 * 4 * 5 * 6 * (8 + 3)
# backward: dV = P^T dO and dP = dO V^T (L*S*Ev each), dQ = dS K and dK = dS^T Q (L*S*E each)
_ATTENTION_BACKWARD = 2 * 4 * (5 * 6 * 3 + 5 * 6 * 3 + 5 * 6 * 8 + 5 * 6 * 8)


def test_attention_backward_counts_the_four_gradient_matmuls() -> None:
    assert _ATTENTION_BACKWARD == 2 * _ATTENTION_FORWARD == 5280
    out, lse = (2, 4, 5, 3), (2, 4, 5)
    # (grad_out, q, k, v, out, logsumexp, dropout_p, is_causal): causal counts the full product
    cpu = f("aten::_scaled_dot_product_flash_attention_for_cpu_backward")
    assert cpu([out, _Q, _K, _V, out, lse, 0.0, True, None, None], []) == _ATTENTION_BACKWARD
    flash = f("aten::_scaled_dot_product_flash_attention_backward")
    args: list[Any] = [out, _Q, _K, _V, out, lse, (), (), 5, 6, 0.0, False, (), ()]
    assert flash(args, []) == _ATTENTION_BACKWARD
    efficient = f("aten::_scaled_dot_product_efficient_attention_backward")
    args = [out, _Q, _K, _V, None, out, lse, (), (), 0.0, [True, True, True, False], True]
    assert efficient(args, []) == _ATTENTION_BACKWARD
    cudnn = f("aten::_scaled_dot_product_cudnn_attention_backward")
    args = [out, _Q, _K, _V, out, lse, (), (), None, None, None, 5, 6, 0.0, False]
    assert cudnn(args, []) == _ATTENTION_BACKWARD
    overrideable = f("aten::_scaled_dot_product_fused_attention_overrideable_backward")
    args = [out, _Q, _K, _V, None, [True] * 4, out, lse, None, None, 5, 6, 0.0, False, (), ()]
    assert overrideable(args, []) == _ATTENTION_BACKWARD


def test_flash_and_efficient_backward_read_the_sequence_major_layout() -> None:
    # (B, L, H, E) layout of the same shapes as above: still 2 x forward
    q, k, v, out = (2, 5, 4, 8), (2, 6, 2, 8), (2, 6, 2, 3), (2, 5, 4, 3)
    flash = f("aten::_flash_attention_backward")
    args: list[Any] = [out, q, k, v, out, (2, 4, 5), None, None, 5, 6, 0.0, True, (), ()]
    assert flash(args, []) == _ATTENTION_BACKWARD
    efficient = f("aten::_efficient_attention_backward")
    args = [out, q, k, v, None, out, None, None, 5, 6, (2, 4, 5), 0.0, (), (), 0, False]
    assert efficient(args, []) == _ATTENTION_BACKWARD
    # packed: 3 sequences (4 offsets), longest 5 queries and 6 keys, 4 heads of 8:
    # forward 3*4*5*6*(8 + 8), backward twice that
    pq, pk = (10, 4, 8), (12, 4, 8)
    args = [pq, pq, pk, pk, pq, (4, 10), (4,), (4,), 5, 6, 0.0, False, (), ()]
    assert flash(args, []) == 2 * 3 * 4 * 5 * 6 * 16


def test_rnn_layer_backward_counts_input_and_weight_gradients_of_every_matrix() -> None:
    # LSTM layer, in 4, hidden 5 (w_ih 20x4, w_hh 20x5), T=3, B=2: forward 6*(80 + 100)
    w_ih, w_hh, b = (20, 4), (20, 5), (20,)
    args: list[Any] = [(3, 2, 4), w_ih, w_hh, b, b, (2, 5), (2, 5), (3, 2, 5), (2, 5), (2, 5)]
    args += [(3, 2, 5), None, None, False, 2, 5, 1, True, True, False, [], False, (10,)]
    assert f("aten::mkldnn_rnn_layer_backward")(args, []) == 2 * 6 * (20 * 4 + 20 * 5)


def test_norm_backward_counts_the_same_per_element_rule_as_the_forward() -> None:
    x, c, mask = (2, 4, 3, 3), (4,), [True, True, True]
    n = 2 * 4 * 3 * 3
    layer = f("aten::native_layer_norm_backward")
    # (grad_out, input, normalized_shape, mean, rstd, weight, bias, output_mask)
    assert layer([x, x, [3], (2, 4, 3, 1), (2, 4, 3, 1), (3,), (3,), mask], []) == 5 * n
    assert layer([x, x, [3], (2, 4, 3, 1), (2, 4, 3, 1), None, None, mask], []) == 4 * n
    batch = f("aten::native_batch_norm_backward")
    # (grad_out, input, weight, running_mean, running_var, save_mean, save_invstd, train, ...)
    assert batch([x, x, c, c, c, c, c, True, 1e-5, mask], []) == 5 * n
    assert batch([x, x, None, None, None, c, c, True, 1e-5, mask], []) == 4 * n
    assert batch([x, x, c, c, c, None, None, False, 1e-5, mask], []) == 2 * n  # running stats
    new_batch = f("aten::batch_norm_backward")
    assert new_batch([x, x, c, c, c, c, c, True, 1e-5, mask, (0,)], []) == 5 * n
    group = f("aten::native_group_norm_backward")
    # (grad_out, input, mean, rstd, weight, N, C, HxW, group, output_mask)
    assert group([x, x, (2, 2), (2, 2), c, 2, 4, 9, 2, mask], []) == 5 * n
    assert group([x, x, (2, 2), (2, 2), None, 2, 4, 9, 2, mask], []) == 4 * n
    rms = f("aten::_fused_rms_norm_backward")
    # (grad_out, input, normalized_shape, rstd, weight, output_mask)
    assert rms([x, x, [3], (2, 4, 3, 1), (3,), [True, True]], []) == 3 * n
    assert rms([x, x, [3], (2, 4, 3, 1), None, [True, False]], []) == 2 * n


def test_resampling_backward_counts_the_same_as_the_forward() -> None:
    x, out = (2, 4, 3, 3), (2, 4, 6, 6)
    # adaptive average pooling: 1 per element of the forward's input
    assert f("aten::_adaptive_avg_pool2d_backward")([(2, 4, 2, 2), x], [x]) == 2 * 4 * 3 * 3
    # nearest (and nearest-exact): 1 per forward output element, the shape of grad_output
    nearest = [out, [6, 6], [2, 4, 3, 3], None, None]
    assert f("aten::upsample_nearest2d_backward")(nearest, [x]) == 2 * 4 * 6 * 6
    assert f("aten::_upsample_nearest_exact2d_backward")(nearest, [x]) == 2 * 4 * 6 * 6
    assert f("aten::_upsample_nearest_exact2d")([x, [6, 6], None, None], [out]) == 2 * 4 * 6 * 6
    bilinear = [out, [6, 6], [2, 4, 3, 3], False, None, None]
    assert f("aten::upsample_bilinear2d_backward")(bilinear, [x]) == 4 * 2 * 4 * 6 * 6
    # grid sampling: 4 taps per output element (output (1, 2, 3, 3))
    grid = [(1, 2, 3, 3), (1, 2, 4, 4), (1, 3, 3, 2), 0, 0, False, [True, True]]
    assert f("aten::grid_sampler_2d_backward")(grid, []) == 4 * 1 * 2 * 3 * 3


@pytest.mark.parametrize(
    ("forward", "backward"),
    [
        ("aten::convolution", "aten::convolution_backward"),
        ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
        ("aten::native_batch_norm", "aten::native_batch_norm_backward"),
        ("aten::native_group_norm", "aten::native_group_norm_backward"),
        ("aten::_fused_rms_norm", "aten::_fused_rms_norm_backward"),
        ("aten::_adaptive_avg_pool2d", "aten::_adaptive_avg_pool2d_backward"),
        ("aten::upsample_nearest2d", "aten::upsample_nearest2d_backward"),
        ("aten::upsample_bilinear2d", "aten::upsample_bilinear2d_backward"),
        ("aten::grid_sampler_2d", "aten::grid_sampler_2d_backward"),
        ("aten::mkldnn_rnn_layer", "aten::mkldnn_rnn_layer_backward"),
        ("aten::_flash_attention_forward", "aten::_flash_attention_backward"),
        ("aten::_efficient_attention_forward", "aten::_efficient_attention_backward"),
        ("aten::relu", "aten::threshold_backward"),
        ("aten::gelu", "aten::gelu_backward"),
        ("aten::silu", "aten::silu_backward"),
        ("aten::tanh", "aten::tanh_backward"),
        ("aten::sigmoid", "aten::sigmoid_backward"),
        ("aten::_softmax", "aten::_softmax_backward_data"),
        ("aten::_log_softmax", "aten::_log_softmax_backward_data"),
        ("aten::native_dropout", "aten::native_dropout_backward"),
        ("aten::max_pool2d_with_indices", "aten::max_pool2d_with_indices_backward"),
        ("aten::avg_pool2d", "aten::avg_pool2d_backward"),
        ("aten::upsample_bicubic2d", "aten::upsample_bicubic2d_backward"),
        ("aten::embedding", "aten::embedding_dense_backward"),
        ("aten::slice", "aten::slice_backward"),
        ("aten::select", "aten::select_backward"),
        ("aten::nll_loss_forward", "aten::nll_loss_backward"),
    ],
)
def test_a_backward_is_counted_exactly_when_its_forward_is(forward: str, backward: str) -> None:
    assert (lookup(forward) is None) == (lookup(backward) is None)
    assert is_ignored(forward) == is_ignored(backward)
    assert (lookup(forward) is None) == is_ignored(forward)


def test_every_formula_has_a_docstring_and_an_fvcore_handle() -> None:
    for op, formula in formulas.FORMULAS.items():
        if op.startswith("aten::"):  # built-ins (users may register formulas without one)
            assert formula.__doc__ and formula.__doc__.strip(), op
    assert set(formulas.FVCORE_HANDLES) == set(formulas.FORMULAS)


# --------------------------------------------------------------------------------------------
# registering formulas for users' own ops

if not hasattr(torch.ops.flopbudget_test, "myop"):

    @torch.library.custom_op("flopbudget_test::myop", mutates_args=())
    def myop(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w

    @myop.register_fake
    def _(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x.new_empty(x.shape[0], w.shape[1])


class UsesMyOp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(4, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.flopbudget_test.myop(x, self.weight)


def _myop_macs(inputs: Any, outputs: Any) -> int:
    """(N, K) @ (K, M): N*K*M MACs."""
    (n, k), (_, m) = inputs[0], inputs[1]
    return n * k * m


@pytest.mark.usefixtures("restore_registry")
def test_a_custom_op_is_unknown_until_a_formula_is_registered() -> None:
    before = count_model(UsesMyOp(), (r(3, 4),))
    assert before.macs == 0
    assert before.unknown_ops == {"flopbudget_test::myop": 1}

    register_formula("flopbudget_test::myop", _myop_macs)

    after = count_model(UsesMyOp(), (r(3, 4),))
    assert after.macs == 3 * 4 * 5
    assert after.unknown_ops == {}
    assert dispatch_count(UsesMyOp(), (r(3, 4),)).macs == 3 * 4 * 5


@pytest.mark.usefixtures("restore_registry")
def test_registering_again_replaces_the_formula_for_every_overload() -> None:
    register_formula("flopbudget_test::myop", _myop_macs)
    register_formula("flopbudget_test::myop.default", lambda inputs, outputs: 7)
    assert lookup("flopbudget_test::myop")([(3, 4), (4, 5)], [(3, 5)]) == 7  # type: ignore[misc]
    assert count_model(UsesMyOp(), (r(3, 4),)).macs == 7


@pytest.mark.usefixtures("restore_registry")
def test_registering_can_override_a_builtin_formula() -> None:
    register_formula("aten::mm", lambda inputs, outputs: 1)
    assert fvcore_macs(Call(torch.mm), (r(3, 4), r(4, 5))) == 1


@pytest.mark.parametrize(
    ("op", "formula", "error"),
    [
        ("myop", _myop_macs, ValueError),
        ("::myop", _myop_macs, ValueError),
        ("mylib::", _myop_macs, ValueError),
        (42, _myop_macs, TypeError),
        ("mylib::myop", "lambda inputs, outputs: 0", TypeError),
        ("mylib::myop", None, TypeError),
    ],
)
@pytest.mark.usefixtures("restore_registry")
def test_register_formula_rejects_bad_names_and_non_callables(
    op: Any, formula: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        register_formula(op, formula)
    assert "mylib::myop" not in formulas.FORMULAS
