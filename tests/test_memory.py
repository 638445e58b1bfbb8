"""Bytes moved and peak memory on the count, against hand arithmetic (fp32: 4 bytes a value)."""

from __future__ import annotations

import pytest
import torch
from conftest import FFN_PARAMS
from torch import nn
from torch.nn import functional as F

from pytest_flopbudget.counting.count import Count, CountError, OpCost
from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.fakes import abstract

F32 = 4
HIDDEN = 1024
# The seed FFN at batch 1; each Linear reads its input, weight and bias and writes its output.
FC1_BYTES = (4 + HIDDEN * 4 + HIDDEN + HIDDEN) * F32  # x 1x4, W 1024x4, b, out 1x1024: 24,592
RELU_BYTES = (HIDDEN + HIDDEN) * F32  # reads 1x1024, writes 1x1024: 8,192
FC2_BYTES = (HIDDEN + HIDDEN * HIDDEN + HIDDEN + HIDDEN) * F32  # 4,206,592
FC3_BYTES = (HIDDEN + 2 * HIDDEN + 2 + 2) * F32  # 12,304
FFN_BYTES = FC1_BYTES + 2 * RELU_BYTES + FC2_BYTES + FC3_BYTES  # 4,259,872
FFN_PARAM_BYTES = FFN_PARAMS * F32  # 1,056,770 parameters: 4,227,080 bytes
INPUT_BYTES = 4 * F32
# Inference peak: parameters, the input, and while fc2 runs relu(fc1(x)) and fc2's output.
FFN_PEAK = FFN_PARAM_BYTES + INPUT_BYTES + 2 * HIDDEN * F32  # 4,235,288
# Training peak (forward + backward of the sum of outputs): when fc1's weight gradient is
# made, every gradient (as large as the parameters) is live, with the parameters, the input,
# the gradient reaching fc1's output (1x1024), the loss and its seed gradient (one value each).
FFN_TRAIN_PEAK = 2 * FFN_PARAM_BYTES + INPUT_BYTES + HIDDEN * F32 + 2 * F32  # 8,458,280
# Adam keeps two moments per parameter and a float32 step per parameter tensor (6 tensors);
# on CPU torch's per-tensor Adam makes exp_avg_sq.sqrt() / c, two temporaries as large as
# the largest parameter (fc2.weight), after the backward, when only the loss remains.
ADAM_STATE = 2 * FFN_PARAM_BYTES + 6 * F32
ADAM_STEP = 2 * (HIDDEN * HIDDEN * F32)
FFN_ADAM_PEAK = 2 * FFN_PARAM_BYTES + ADAM_STATE + INPUT_BYTES + F32 + ADAM_STEP


class FFN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = nn.Linear(HIDDEN, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class Attention(nn.Module):
    """Two heads of 4 over 4 tokens of width 8: qkv projection, attention, output projection."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = (t.view(1, 4, 2, 4).transpose(1, 2) for t in self.qkv(x).chunk(3, dim=-1))
        attended = F.scaled_dot_product_attention(q, k, v)
        return self.proj(attended.transpose(1, 2).reshape(1, 4, 8))


# qkv: x (32 values), W 24x8, b 24, out 96; attention: q, k, v (32 each), out 32; proj: in 32,
# W 8x8, b 8, out 32. Views (chunk, view, transpose, reshape of a contiguous result): nothing.
ATTENTION_BYTES = ((32 + 192 + 24 + 96) + (3 * 32 + 32) + (32 + 64 + 8 + 32)) * F32  # 2,432


def _both_backends_real_and_abstract(make_model, make_input, **options):
    counts = []
    for backend in ("fvcore", "torch"):
        counts.append(count_model(make_model().eval(), make_input(), backend=backend, **options))
    with abstract():
        model, x = make_model(), make_input()
    counts.append(count_model(model.eval(), x, **options))
    return counts


@pytest.fixture(scope="module")
def ffn_counts() -> dict[str, Count]:
    kinds = ("fvcore", "torch", "abstract")
    return dict(zip(kinds, _both_backends_real_and_abstract(FFN, _ffn_input), strict=True))


@pytest.mark.parametrize("kind", ["fvcore", "torch", "abstract"])
def test_ffn_bytes_are_each_linear_reading_input_weight_bias_and_writing_output(
    kind, ffn_counts
) -> None:
    count = ffn_counts[kind]
    assert count.param_bytes == FFN_PARAM_BYTES == 4_227_080
    assert count.bytes_moved == FFN_BYTES == 4_259_872
    assert count.bytes_by_module == {"fc1": FC1_BYTES, "fc2": FC2_BYTES, "fc3": FC3_BYTES}
    assert count.bytes_by_dtype == {"float32": FFN_BYTES}
    assert sum(cost.bytes * cost.calls for cost in count.op_costs) == FFN_BYTES
    assert sum(cost.macs * cost.calls for cost in count.op_costs) == count.macs


def test_ffn_op_costs_pair_each_linear_s_macs_with_its_bytes() -> None:
    count = count_model(FFN(), _ffn_input(), backend="torch")
    assert set(count.op_costs) == {
        OpCost(4 * HIDDEN, FC1_BYTES, 1),
        OpCost(HIDDEN * HIDDEN, FC2_BYTES, 1),
        OpCost(2 * HIDDEN, FC3_BYTES, 1),
        OpCost(0, RELU_BYTES, 2),
    }


@pytest.mark.parametrize("kind", ["fvcore", "torch", "abstract"])
def test_ffn_inference_peak_is_parameters_input_and_two_live_activations(kind, ffn_counts) -> None:
    count = ffn_counts[kind]
    assert count.peak_memory == FFN_PEAK == 4_235_288
    # The peak is first reached while relu runs on fc1's output: fc1 holds its parameters
    # and that output, the root holds relu's output (made in its own forward) and the input.
    assert count.peak_by_module == {
        "fc1": (4 * HIDDEN + HIDDEN) * F32 + HIDDEN * F32,
        "fc2": (HIDDEN * HIDDEN + HIDDEN) * F32,
        "fc3": (2 * HIDDEN + 2) * F32,
    }


@pytest.mark.parametrize("abstract_model", [False, True])
def test_ffn_training_peak_holds_parameters_and_gradients(abstract_model) -> None:
    if abstract_model:
        with abstract():
            model, x = FFN(), _ffn_input()
    else:
        model, x = FFN(), _ffn_input()
    count = count_model(model, x, mode="train")
    assert count.backend == "torch"
    assert count.peak_memory == FFN_TRAIN_PEAK == 8_458_280


@pytest.mark.parametrize("abstract_model", [False, True])
def test_adam_adds_two_moments_a_step_each_and_its_update_s_temporaries(abstract_model) -> None:
    if abstract_model:
        with abstract():
            model, x = FFN(), _ffn_input()
    else:
        model, x = FFN(), _ffn_input()
    count = count_model(model, x, mode="train", optimizer="adam")
    assert count.peak_memory == FFN_ADAM_PEAK
    plain = count_model(model, x, mode="train", optimizer="sgd")
    assert plain.peak_memory == FFN_TRAIN_PEAK  # SGD keeps no state and updates in place


def test_frozen_parameters_get_no_gradient_and_no_optimizer_state() -> None:
    model = FFN()
    model.fc2.requires_grad_(False)
    count = count_model(model, _ffn_input(), mode="train", optimizer="adamw")
    trainable = (4 * HIDDEN + HIDDEN + 2 * HIDDEN + 2) * F32  # fc1 and fc3: 28,680
    state = 2 * trainable + 4 * F32  # two moments, a step for each of 4 tensors
    # after the backward: parameters, fc1's and fc3's gradients, the state, the input, the
    # loss, and AdamW's two temporaries as large as fc1.weight (the largest trainable one)
    step = 2 * (HIDDEN * 4 * F32)
    assert count.peak_memory == FFN_PARAM_BYTES + trainable + state + INPUT_BYTES + F32 + step


def test_conv_reads_input_weight_bias_and_keeps_a_cpu_working_copy() -> None:
    def make() -> nn.Module:
        return nn.Conv2d(3, 8, 3, padding=1)

    def make_input() -> torch.Tensor:
        return torch.randn(1, 3, 8, 8)

    read = (3 * 8 * 8 + 8 * 3 * 3 * 3 + 8) * F32  # input 3x8x8, weight 8x3x3x3, bias 8
    written = 8 * 8 * 8 * F32  # output 8x8x8
    params = (8 * 3 * 3 * 3 + 8) * F32
    for count in _both_backends_real_and_abstract(make, make_input):
        assert count.bytes_moved == read + written == 3712
        # oneDNN copies the operands into its blocked layout while the convolution runs
        assert count.peak_memory == params + 3 * 8 * 8 * F32 + written + read == 5376


def test_attention_block_bytes_on_both_backends_real_and_abstract() -> None:
    def make_input() -> torch.Tensor:
        return torch.randn(1, 4, 8)

    for count in _both_backends_real_and_abstract(Attention, make_input):
        assert count.bytes_moved == ATTENTION_BYTES == 2432
        assert count.bytes_by_module == {
            "qkv": (32 + 192 + 24 + 96) * F32,
            "proj": (32 + 64 + 8 + 32) * F32,
        }


def test_views_move_nothing_and_share_their_storage() -> None:
    class Views(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            y = x + 1
            return y.view(4, 4), y.t(), y[1:], y.unsqueeze(0).expand(3, 16), y.detach()

    for backend in ("fvcore", "torch"):
        count = count_model(Views(), torch.randn(16), backend=backend)
        assert count.bytes_moved == 2 * 16 * F32  # the add: reads x, writes y
        assert count.peak_memory == 2 * 16 * F32  # x and y: five views of y add nothing


def test_half_precision_bytes_are_counted_in_their_dtype() -> None:
    model = FFN().to(torch.bfloat16)
    count = count_model(model, _ffn_input().to(torch.bfloat16), backend="torch")
    assert count.param_bytes == FFN_PARAMS * 2
    assert count.bytes_by_dtype == {"bfloat16": FFN_BYTES // 2}


def test_memory_false_leaves_the_fields_unmeasured_and_the_macs_unchanged() -> None:
    for backend in ("fvcore", "torch"):
        on = count_model(FFN(), _ffn_input(), backend=backend)
        off = count_model(FFN(), _ffn_input(), backend=backend, memory=False)
        assert off.macs == on.macs
        assert off.peak_memory is None and off.bytes_moved is None and off.op_costs == ()


def test_an_optimizer_outside_train_mode_is_an_error_naming_the_call() -> None:
    with pytest.raises(CountError, match=r'FFN: flops\(optimizer=\'adam\'\) needs mode="train"'):
        count_model(FFN(), _ffn_input(), optimizer="adam")


def test_an_unknown_optimizer_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(CountError, match=r'must be one of "sgd", "sgd_momentum", "adam"'):
        count_model(FFN(), _ffn_input(), mode="train", optimizer="lion")


def _ffn_input() -> torch.Tensor:
    return torch.randn(1, 4)
