"""The torch backend (dispatcher-level counting) and abstract (fake-tensor) counting.

Every expected count is arithmetic written out here, never a number copied from the tool.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils.flop_counter import FlopCounterMode

from pytest_flopbudget.counting.backends import BACKEND_NAMES, get_backend
from pytest_flopbudget.counting.backends.torch_backend import (
    count_training_step_with_torch,
    count_with_torch,
)
from pytest_flopbudget.counting.counter import CountError, count_abstract, count_model
from pytest_flopbudget.counting.fakes import (
    AbstractInputError,
    abstract,
    check_consistent,
    is_abstract,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    transformers = pytest.importorskip("transformers")


class FFN(nn.Module):
    """The seed article's three-layer FFN: 4 -> 1024 -> 1024 -> 2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self.fc3 = nn.Linear(1024, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


FC1, FC2, FC3 = 4 * 1024, 1024 * 1024, 1024 * 2
FFN_MACS = FC1 + FC2 + FC3  # 1,054,720 for one sample


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu(self.bn(self.conv(x)))).flatten(1))


# On a 2 x 3 x 16 x 16 batch:
CNN_CONV = 2 * 8 * 16 * 16 * (3 * 3 * 3)  # outputs x taps per output
CNN_BN = 2 * (2 * 8 * 16 * 16)  # fvcore's eval rule: 2 per element with an affine transform
CNN_FC = 2 * (8 * 8 * 8) * 10  # ReLU and max-pooling are free by convention


class Attention(nn.Module):
    """Single-head self-attention written with matmul, softmax and layer norm."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        return x + self.out(weights @ v)


def tiny_llama_config() -> object:
    return transformers.LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=100,
    )


def tiny_llama() -> nn.Module:
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(tiny_llama_config()).eval()


def tiny_llama_macs(seq: int) -> int:
    """Projections, MLP, attention scores and their weighted sum, lm_head, rotary angles."""
    d, ff, layers, vocab, head_dim = 64, 128, 2, 100, 16
    per_layer = 4 * d * d * seq + 3 * d * ff * seq + 2 * seq * seq * d
    rotary = (head_dim // 2) * seq  # inv_freq (8 x 1) @ positions (1 x seq)
    return layers * per_layer + d * vocab * seq + rotary


@functools.cache
def mystery_op() -> object:
    """A custom op no formula knows: it must be listed, never counted as a silent 0."""

    @torch.library.custom_op("flopbudget_tests::mystery", mutates_args=())
    def mystery(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    return mystery


class WithMystery(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mystery_op()(self.fc(x))


def test_torch_is_a_registered_backend() -> None:
    assert "torch" in BACKEND_NAMES
    assert get_backend("torch") is count_with_torch


def test_the_ffn_costs_its_three_matrix_products() -> None:
    count = count_model(FFN(), torch.randn(1, 4), backend="torch")
    assert count.macs == FFN_MACS == 1_054_720
    assert count.by_module == {"fc1": FC1, "fc2": FC2, "fc3": FC3}
    assert count.unknown_ops == {}


def test_a_cnn_counts_conv_batch_norm_and_linear_by_fvcores_rules() -> None:
    count = count_model(SmallCNN().eval(), torch.randn(2, 3, 16, 16), backend="torch")
    assert count.macs == CNN_CONV + CNN_BN + CNN_FC == 129_024
    assert count.by_module == {
        "conv": CNN_CONV,
        "bn": CNN_BN,
        "relu": 0,
        "pool": 0,
        "fc": CNN_FC,
    }


def test_a_config_built_llama_costs_what_its_shapes_say() -> None:
    count = count_model(tiny_llama(), torch.randint(0, 100, (1, 16)), backend="torch")
    assert count.macs == tiny_llama_macs(16)


@pytest.mark.parametrize(
    ("make_model", "make_input"),
    [
        (FFN, lambda: torch.randn(2, 5, 4)),
        (lambda: SmallCNN().eval(), lambda: torch.randn(2, 3, 16, 16)),
        (Attention, lambda: torch.randn(2, 10, 32)),
        (tiny_llama, lambda: torch.randint(0, 100, (1, 16))),
    ],
    ids=["ffn-3d", "cnn", "attention", "llama"],
)
def test_both_backends_agree(make_model: object, make_input: object) -> None:
    model, inputs = make_model(), make_input()  # type: ignore[operator]
    by_torch = count_model(model, inputs, backend="torch")
    by_fvcore = count_model(model, inputs, backend="fvcore")
    assert by_torch.macs == pytest.approx(by_fvcore.macs, rel=0.01)
    assert by_torch.unknown_ops == by_fvcore.unknown_ops == {}


def test_an_op_without_a_formula_is_reported_not_counted_as_zero() -> None:
    count = count_model(WithMystery(), torch.randn(3, 8), backend="torch")
    assert count.unknown_ops == {"flopbudget_tests::mystery": 1}
    assert count.macs == 3 * 8 * 4


@pytest.mark.parametrize("make_model", [SmallCNN, tiny_llama], ids=["cnn", "llama"])
def test_by_module_is_keyed_by_the_models_own_paths(make_model: object) -> None:
    model = make_model()  # type: ignore[operator]
    inputs = (
        torch.randn(2, 3, 16, 16) if isinstance(model, SmallCNN) else torch.randint(0, 100, (1, 8))
    )
    raw = count_with_torch(model, (inputs,), {})
    assert set(raw.by_module_macs) == {path for path, _ in model.named_modules()}
    assert raw.by_module_macs[""] == raw.macs


def test_a_training_step_counts_forward_and_both_gradients() -> None:
    """Backward of y = x W: grad-input (dy W^T) and grad-weight (x^T dy), each as big as the
    forward. The first layer's grad-input is skipped: the input does not require grad."""
    raw = count_training_step_with_torch(FFN(), (torch.randn(1, 4),), {})
    forward, weight_grads, input_grads = FFN_MACS, FFN_MACS, FC2 + FC3
    assert raw.macs == forward + weight_grads + input_grads == 3_160_064
    assert raw.by_module_macs == {"": raw.macs, "fc1": 2 * FC1, "fc2": 3 * FC2, "fc3": 3 * FC3}


def test_a_training_step_with_an_input_that_needs_grad_is_three_forwards() -> None:
    raw = count_training_step_with_torch(FFN(), (torch.randn(1, 4, requires_grad=True),), {})
    assert raw.macs == 3 * FFN_MACS


def test_a_training_step_leaves_the_model_and_its_gradients_as_found() -> None:
    model = FFN().eval()
    model.fc1.weight.requires_grad_(False)
    earlier_grad = torch.ones_like(model.fc2.weight)
    model.fc2.weight.grad = earlier_grad
    x = torch.randn(1, 4, requires_grad=True)
    raw = count_training_step_with_torch(model, (x,), {})
    assert raw.macs == FFN_MACS + (FFN_MACS - FC1) + FFN_MACS  # frozen fc1: no weight grad
    assert not any(module.training for module in model.modules())
    assert model.fc2.weight.grad is earlier_grad
    assert torch.equal(earlier_grad, torch.ones_like(earlier_grad))
    assert model.fc1.weight.grad is None and x.grad is None
    assert not model.fc1.weight.requires_grad


def test_forward_with_grad_enabled_counts_dispatcher_ops_the_same() -> None:
    """With grad on, autograd splits linear into t + addmm and batch_norm into
    native_batch_norm before the mode sees them; the formulas agree across the two levels."""
    model, x = SmallCNN().eval(), torch.randn(2, 3, 16, 16)
    assert count_model(model, x, backend="torch", grad=True).macs == CNN_CONV + CNN_BN + CNN_FC


def test_a_training_step_through_a_convolution() -> None:
    """Conv backward: grad-weight as big as the forward, grad-input skipped (no grad needed)."""
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    raw = count_training_step_with_torch(conv, (torch.randn(2, 3, 16, 16),), {})
    assert raw.macs == 2 * CNN_CONV == 221_184
    assert raw.unknown_ops == {}


def test_a_convolution_whose_input_needs_grad_costs_three_forwards() -> None:
    """Forward 110,592, grad-weight (a correlation of input and grad-output) 110,592 and
    grad-input (a transposed convolution of grad-output) 110,592."""
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    raw = count_training_step_with_torch(conv, (torch.randn(2, 3, 16, 16, requires_grad=True),), {})
    assert CNN_CONV == 2 * 8 * 16 * 16 * 27 == 110_592
    assert raw.macs == 3 * CNN_CONV == 331_776
    # FlopCounterMode (2 FLOPs per MAC) agrees on convolution backward
    flops = FlopCounterMode(display=False)
    with flops:
        conv(torch.randn(2, 3, 16, 16, requires_grad=True)).sum().backward()
    assert flops.get_total_flops() == 2 * raw.macs


def test_a_cnn_training_step_counts_conv_and_linear_gradients_and_norms_twice() -> None:
    """conv: forward + grad-weight (its input needs no grad); batch norm in training mode:
    fvcore's 5 per element forward and the same again for its backward; ReLU, max-pooling
    (and their backward) free; fc: forward + grad-weight + grad-input."""
    raw = count_training_step_with_torch(SmallCNN(), (torch.randn(2, 3, 16, 16),), {})
    conv, bn, fc = 2 * CNN_CONV, 2 * (5 * 2 * 8 * 16 * 16), 3 * CNN_FC
    assert raw.macs == conv + bn + fc == 221_184 + 40_960 + 30_720
    assert raw.by_module_macs == {
        "": raw.macs,
        "conv": conv,
        "bn": bn,
        "relu": 0,
        "pool": 0,
        "fc": fc,
    }
    assert raw.unknown_ops == {}


@pytest.mark.parametrize(
    ("norm", "per_element"),
    [
        (nn.LayerNorm(3), 5),
        (nn.LayerNorm(3, elementwise_affine=False), 4),
        (nn.BatchNorm2d(4), 5),
        (nn.GroupNorm(2, 4), 5),
        (nn.Upsample(scale_factor=2), 4),  # nearest: 1 per output element, 4x the input's
        (nn.Upsample(scale_factor=2, mode="bilinear"), 16),  # 4 taps per output element
        (nn.AdaptiveAvgPool2d(2), 1),  # 1 per input element
    ],
    ids=lambda value: repr(value) if isinstance(value, nn.Module) else None,
)
def test_per_element_rules_count_their_backward_like_their_forward(
    norm: nn.Module, per_element: int
) -> None:
    """fvcore's per-element estimates: the backward gets the forward's number again. The input
    needs grad so that a parameter-free layer has a backward at all."""
    x = torch.randn(2, 4, 3, 3, requires_grad=True)
    raw = count_training_step_with_torch(norm, (x,), {})
    assert raw.macs == 2 * per_element * (2 * 4 * 3 * 3)
    assert raw.unknown_ops == {}


class SelfAttention(nn.Module):
    def __init__(self, causal: bool) -> None:
        super().__init__()
        self.causal = causal

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_fused_attention_backward_is_twice_its_forward(causal: bool) -> None:
    """(B=2, H=4, L=S=6, E=Ev=8) on the fused CPU kernel: forward QK^T + AV = 2*4*6*6*(8 + 8);
    backward dV, dP, dQ, dK = twice that. A causal mask halves nothing."""
    q, k, v = (torch.randn(2, 4, 6, 8, requires_grad=True) for _ in range(3))
    raw = count_training_step_with_torch(SelfAttention(causal), (q, k, v), {})
    forward = 2 * 4 * 6 * 6 * (8 + 8)
    assert raw.macs == forward + 2 * forward == 13_824
    assert raw.unknown_ops == {}


def test_fused_and_eager_attention_cost_the_same_training_step() -> None:
    """The SDPA backward convention (2 x forward, no recomputation of Q K^T) is what eager
    attention's bmm backward costs, so switching implementations keeps a training budget."""
    ids = torch.randint(0, 100, (1, 16))
    fused = count_training_step_with_torch(tiny_llama(), (ids,), {})
    config = tiny_llama_config()
    config._attn_implementation = "eager"  # type: ignore[attr-defined]
    torch.manual_seed(0)
    eager = count_training_step_with_torch(transformers.LlamaForCausalLM(config), (ids,), {})
    assert "aten::_softmax" in eager.ignored_ops and "aten::_softmax" not in fused.ignored_ops
    assert fused.macs == eager.macs


def test_a_tiny_llama_training_step_is_three_forwards_except_the_rotary_angles() -> None:
    """Every projection, the MLP, lm_head and attention: forward + two gradients. The rotary
    angles (inv_freq @ positions, 8*16 MACs) involve no parameter: forward only. The
    hand-written RMS norms are elementwise and count 0 either way."""
    raw = count_training_step_with_torch(tiny_llama(), (torch.randint(0, 100, (1, 16)),), {})
    rotary = 8 * 16
    assert raw.macs == 3 * (tiny_llama_macs(16) - rotary) + rotary
    assert raw.unknown_ops == {}


def test_an_lstm_training_step_is_three_forwards() -> None:
    """LSTM(4, 8) on T=5, B=2: forward 10 tokens x 4*8*(4 + 8); the CPU kernel's backward
    computes every input and weight gradient, 2 x forward."""
    raw = count_training_step_with_torch(nn.LSTM(4, 8), (torch.randn(5, 2, 4),), {})
    assert raw.macs == 3 * (10 * 4 * 8 * (4 + 8)) == 11_520
    assert raw.unknown_ops == {}


class ActivationsMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(4, 16),
            nn.GELU(),
            nn.Linear(16, 16),
            nn.SiLU(),
            nn.Linear(16, 16),
            nn.Tanh(),
            nn.Linear(16, 16),
            nn.Sigmoid(),
            nn.Dropout(0.1),
            nn.Linear(16, 3),
            nn.LogSoftmax(-1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _hf_model(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "gpt2":
        config = transformers.GPT2Config(n_embd=32, n_layer=1, n_head=4, vocab_size=100)
        return transformers.GPT2LMHeadModel(config)
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        vocab_size=100,
    )
    return transformers.BertModel(config)


@pytest.mark.parametrize(
    ("make_model", "make_inputs"),
    [
        (ActivationsMLP, lambda: (torch.randn(2, 4),)),
        (SmallCNN, lambda: (torch.randn(2, 3, 16, 16),)),
        (
            lambda: nn.TransformerEncoderLayer(32, 4, 64, batch_first=True),
            lambda: (torch.randn(2, 5, 32),),
        ),
        (lambda: nn.LSTM(4, 8, num_layers=2, bidirectional=True), lambda: (torch.randn(5, 2, 4),)),
        (tiny_llama, lambda: (torch.randint(0, 100, (2, 8)),)),
        (lambda: _hf_model("gpt2"), lambda: (torch.randint(0, 100, (2, 8)),)),
        (lambda: _hf_model("bert"), lambda: (torch.randint(0, 100, (2, 8)),)),
    ],
    ids=["mlp", "cnn", "transformer-layer", "lstm", "llama", "gpt2", "bert"],
)
def test_training_steps_list_no_unknown_ops(make_model: object, make_inputs: object) -> None:
    raw = count_training_step_with_torch(make_model(), make_inputs(), {})  # type: ignore[operator]
    assert raw.unknown_ops == {}
    assert raw.macs > 0


def test_a_training_step_with_a_loss_inside_the_model_lists_no_unknown_ops() -> None:
    """transformers computes the cross entropy when given labels: log_softmax, nll_loss and
    their backward are elementwise work, ignored by convention."""
    ids = torch.randint(0, 100, (1, 8))
    raw = count_training_step_with_torch(tiny_llama(), (ids,), {"labels": ids})
    assert raw.unknown_ops == {}
    assert "aten::nll_loss_backward" in raw.ignored_ops


def test_a_training_step_attributes_backward_to_the_modules_it_differentiates() -> None:
    model = tiny_llama()
    raw = count_training_step_with_torch(model, (torch.randint(0, 100, (1, 16)),), {})
    projection = 16 * 64 * 64
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert raw.by_module_macs[f"model.layers.1.self_attn.{name}"] == 3 * projection
    assert raw.by_module_macs["model.layers.0"] == raw.by_module_macs["model.layers.1"]


def test_a_llama_built_abstractly_counts_exactly_like_a_real_one() -> None:
    with torch.no_grad():
        real = count_with_torch(tiny_llama(), (torch.randint(0, 100, (1, 16)),), {})
    with abstract():
        model = transformers.LlamaForCausalLM(tiny_llama_config()).eval()
        input_ids = torch.empty(1, 16, dtype=torch.long)
    assert isinstance(model.lm_head.weight, FakeTensor)
    fake = count_abstract(model, (input_ids,), {})
    assert fake == real
    assert fake.macs == tiny_llama_macs(16)


def test_abstract_training_steps_count_like_real_ones() -> None:
    real = count_training_step_with_torch(FFN(), (torch.randn(1, 4),), {})
    with abstract():
        model, x = FFN(), torch.empty(1, 4)
    assert count_abstract(model, (x,), {}, train=True) == real


def test_count_model_takes_abstract_models_and_inputs() -> None:
    with abstract():
        model, x = FFN(), torch.empty(1, 4)
    assert count_model(model, x, backend="torch").macs == FFN_MACS


def test_counting_inside_the_scope_works_too() -> None:
    with abstract():
        model, x = FFN(), torch.empty(2, 4)
        assert count_model(model, x, backend="torch").macs == 2 * FFN_MACS


def test_meta_tensors_are_counted_as_they_are() -> None:
    with torch.device("meta"):
        model, x = SmallCNN().eval(), torch.empty(2, 3, 16, 16)
    assert is_abstract(model)
    assert count_model(model, x, backend="torch").macs == CNN_CONV + CNN_BN + CNN_FC


def test_the_abstract_scope_does_not_leak() -> None:
    scope = abstract()
    with scope:
        inside = torch.empty(2)
    assert isinstance(inside, FakeTensor)
    assert type(torch.empty(2)) is torch.Tensor
    with pytest.raises(ZeroDivisionError), scope:
        _ = 1 / 0
    assert type(torch.empty(2)) is torch.Tensor
    count_abstract(nn.Linear(2, 2).to("meta"), (torch.empty(1, 2, device="meta"),), {})
    assert type(torch.zeros(2)) is torch.Tensor


def test_a_scope_can_be_entered_again_to_make_more_inputs() -> None:
    scope = abstract()
    with scope:
        model = FFN()
    with scope:
        x = torch.empty(3, 4)
    assert count_abstract(model, (x,), {}).macs == 3 * FFN_MACS


def test_is_abstract_looks_at_tensors_modules_and_nests() -> None:
    with abstract():
        fake = torch.empty(2)
        fake_model = nn.Linear(2, 2)
    assert is_abstract(fake)
    assert is_abstract(fake_model)
    assert is_abstract({"ids": [torch.ones(1), fake]})
    assert is_abstract(torch.empty(2, device="meta"))
    assert not is_abstract(torch.empty(2))
    assert not is_abstract(nn.Linear(2, 2))
    assert not is_abstract(((torch.ones(1),), {"flag": True}))


def test_a_real_model_with_abstract_inputs_is_a_clear_error() -> None:
    with abstract():
        x = torch.empty(1, 4)
    with pytest.raises(CountError) as info:
        count_model(FFN(), x, backend="torch")
    message = str(info.value)
    assert "FFN: parameter 'fc1.weight' is a real tensor on cpu" in message
    assert "build the model inside the abstract() scope" in message


def test_a_real_input_to_an_abstract_model_is_a_clear_error() -> None:
    with abstract():
        model = FFN()
    with pytest.raises(AbstractInputError, match=r"input args\[0\] is a real tensor"):
        check_consistent(model, (torch.randn(1, 4),), {})
    with pytest.raises(AbstractInputError, match=r"input kwargs\['x'\] is a real tensor"):
        check_consistent(model, (), {"x": torch.randn(1, 4)})


def test_tensors_from_two_scopes_do_not_mix() -> None:
    with abstract():
        model = FFN()
    with abstract():
        x = torch.empty(1, 4)
    with pytest.raises(AbstractInputError, match="two different abstract"):
        count_abstract(model, (x,), {})


def test_count_abstract_refuses_real_tensors() -> None:
    with pytest.raises(AbstractInputError, match="only real tensors"):
        count_abstract(FFN(), (torch.randn(1, 4),), {})


class ValueDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if bool((x > 0).any()) else x


def test_a_model_that_reads_values_is_a_clear_error_when_abstract() -> None:
    with abstract():
        x = torch.empty(3)
    with pytest.raises(AbstractInputError, match="reads tensor values"):
        count_abstract(ValueDependent(), (x,), {})
    assert type(torch.empty(2)) is torch.Tensor


class LazyCache(nn.Module):
    """Builds a constant on its first forward, as rotary-embedding caches often do."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale is None:
            self.scale = torch.arange(4.0)
        return self.fc(x * self.scale)


def test_a_count_leaves_no_tensor_that_breaks_training_afterwards() -> None:
    model = LazyCache()
    assert count_model(model, torch.randn(2, 4), backend="torch").macs == 2 * 4 * 4
    model(torch.randn(2, 4, requires_grad=True)).sum().backward()
    assert model.fc.weight.grad is not None
