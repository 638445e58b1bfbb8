"""Quantized models (torch.ao eager mode) count the MACs of their float counterparts.

Every expected number is written out from the layer shapes. fvcore's JIT trace cannot take
packed quantized weights as inputs, so a quantized model is counted by the torch backend
whichever backend is asked for (the count says so), the same way abstract models are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.formulas import lookup

BACKENDS = ("fvcore", "torch")
# torch.ao's eager quantization warns that it moves to torchao; it is what users run today
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@contextlib.contextmanager
def engine(name: str) -> Iterator[None]:
    if name not in torch.backends.quantized.supported_engines:
        pytest.fail(f"quantized engine {name} is not available on this machine")
    saved = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = saved


def quantize_static(model: nn.Module, sample: torch.Tensor, engine_name: str) -> nn.Module:
    model.eval()
    model.qconfig = tq.get_default_qconfig(engine_name)
    tq.prepare(model, inplace=True)
    model(sample)  # calibration
    tq.convert(model, inplace=True)
    return model


class StaticCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.bn2 = nn.BatchNorm2d(8)
        self.skip = FloatFunctional()
        self.bn3 = nn.BatchNorm2d(8)
        self.act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.norm = nn.LayerNorm(8)
        self.fc = nn.Linear(8, 4)
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.conv1(self.quant(x)))
        z = self.skip.add(self.bn2(self.conv2(y)), y)
        z = self.pool(self.act(self.bn3(z))).flatten(1)
        return self.dequant(self.fc(self.norm(z)))


def static_cnn() -> nn.Module:
    model = StaticCNN().eval()
    tq.fuse_modules(model, [["conv1", "relu1"], ["conv2", "bn2"]], inplace=True)
    return quantize_static(model, torch.randn(2, 3, 8, 8), "fbgemm")


# batch 2, 8x8 images, padding 1 keeps 8x8: 2*8*8*8 = 1,024 output elements per conv
STATIC_CNN_MACS = (
    1024 * 3 * 9  # conv1 (3 -> 8, 3x3) fused with ReLU: out_numel * Cin * 9 = 27,648
    + 1024 * 4 * 9  # conv2 (8 -> 8, groups 2) with bn2 folded in: Cin/groups = 4, 36,864
    + 1024 * 2  # bn3, quantized batch norm uses running statistics: 2 per element
    + 1024  # adaptive average pooling: 1 per input element
    + 2 * 8 * 5  # LayerNorm(8) on (2, 8), affine: 5 per element
    + 2 * 8 * 4  # fc: 2 rows x 8 x 4
)  # the skip add, hardswish, (de)quantization: elementwise, 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_statically_quantized_cnn_counts_its_float_layers_macs(backend: str) -> None:
    with engine("fbgemm"):
        model = static_cnn()
        count = count_model(model, torch.randn(2, 3, 8, 8), backend=backend)
    assert STATIC_CNN_MACS == 67_728
    assert (count.macs, count.unknown_ops, count.backend) == (STATIC_CNN_MACS, {}, "torch")
    assert count.by_module["conv1"] == 27_648
    assert count.by_module["conv2"] == 36_864
    assert count.by_module["fc"] == 64


class DynamicNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 4)
        self.lstm = nn.LSTM(4, 5, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(10, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc2(torch.relu(self.fc1(x)))
        return self.gru(self.lstm(x)[0])[0]


# input (T=3, B=2, 8): 6 tokens
DYNAMIC_NET_MACS = (
    6 * 8 * 16  # fc1: 768
    + 6 * 16 * 4  # fc2: 384
    + 6 * 2 * 4 * 5 * (4 + 5)  # LSTM layer 1, two directions, 4 gates of 5: 2,160
    + 6 * 2 * 4 * 5 * (10 + 5)  # LSTM layer 2 reads both directions (10): 3,600
    + 6 * 3 * 6 * (10 + 6)  # GRU, 3 gates of 6 on the LSTM's 10 features: 1,728
)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.float16], ids=["int8", "fp16"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_dynamically_quantized_mlp_and_rnn_count_their_float_macs(
    backend: str, dtype: torch.dtype
) -> None:
    torch.manual_seed(0)
    with engine("fbgemm"):
        model = tq.quantize_dynamic(DynamicNet().eval(), {nn.Linear, nn.LSTM, nn.GRU}, dtype=dtype)
        count = count_model(model, torch.randn(3, 2, 8), backend=backend)
    assert DYNAMIC_NET_MACS == 8_640
    assert (count.macs, count.unknown_ops, count.backend) == (DYNAMIC_NET_MACS, {}, "torch")
    assert count.by_module["lstm"] == 2_160 + 3_600


def test_dynamically_quantized_rnn_cells_count_their_gate_matmuls() -> None:
    class Cells(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTMCell(4, 5)
            self.gru = nn.GRUCell(5, 3)
            self.rnn = nn.RNNCell(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.rnn(self.gru(self.lstm(x)[0]))

    with engine("fbgemm"):
        model = tq.quantize_dynamic(Cells().eval(), {nn.LSTMCell, nn.GRUCell, nn.RNNCell})
        count = count_model(model, torch.randn(2, 4))
    # batch 2: LSTM 4 gates x 5 x (4 + 5), GRU 3 x 3 x (5 + 3), RNN 1 x 2 x (3 + 2)
    expected = 2 * (4 * 5 * 9 + 3 * 3 * 8 + 1 * 2 * 5)
    assert (count.macs, count.unknown_ops) == (expected, {}) == (524, {})


def test_a_quantized_transposed_convolution_counts_input_elements_times_its_kernel() -> None:
    class Up(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
            self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.dequant(self.up(self.quant(x)))

    with engine("qnnpack"):
        model = quantize_static(Up(), torch.randn(1, 4, 5, 5), "qnnpack")
        count = count_model(model, torch.randn(1, 4, 5, 5))
    # every one of 1*4*5*5 input elements is scattered through Cout/groups = 3 x 3x3 taps
    assert (count.macs, count.unknown_ops) == (100 * 3 * 9, {})


def test_a_quantized_matmul_counts_like_its_float_form() -> None:
    qa = torch.quantize_per_tensor(torch.randn(2, 3, 4), 0.1, 0, torch.qint8)
    qb = torch.quantize_per_tensor(torch.randn(2, 4, 5), 0.1, 0, torch.qint8)
    formula = lookup("quantized::matmul")
    assert formula is not None
    assert formula([tuple(qa.shape), tuple(qb.shape), 0.1, 0], [(2, 3, 5)]) == 2 * 3 * 4 * 5


def test_the_linear_formula_reads_the_output_features_from_the_packed_weight() -> None:
    packed = torch.ops.quantized.linear_prepack(
        torch.quantize_per_tensor(torch.randn(7, 3), 0.1, 0, torch.qint8), None
    )
    formula = lookup("quantized::linear")
    assert formula is not None
    inputs: list[Any] = [(5, 2, 3), packed, 1.0, 0]
    assert formula(inputs, [(5, 2, 7)]) == 5 * 2 * 3 * 7
