"""Which counted ops a total includes: the ``ops`` convention (``"fvcore"`` or ``"dense"``).

Counters agree on what a convolution or a matrix product costs; they disagree on which ops
count at all. Two conventions are in use, and users compare budgets with both:

* ``"fvcore"`` (the default, what budgets written so far mean): every op with a formula in
  :mod:`.formulas` counts: convolutions, matrix products, attention, RNNs, and fvcore's
  per-element estimates for batch, layer, group, instance and RMS norm, nearest and bilinear
  upsampling, adaptive average pooling and grid sampling. ResNet-50 is 4.112 GMACs.
* ``"dense"``: convolutions, matrix products and attention only (:data:`DENSE_OPS`). This is
  the convention of torchvision's published per-weight figures (``meta["_ops"]``, which are
  MACs), of ``torch.utils.flop_counter.FlopCounterMode`` (halved: it counts 2 FLOPs per MAC)
  and of most papers' tables. ResNet-50 is 4.089 GMACs: its batch norms (17.6 M) and its final
  average pooling (0.1 M) are left out.

The convention chooses *which* ops count; the formulas say *how much* each costs, so an op
counted under both conventions counts the same under both. RNN and LSTM layers are matrix
products and count under ``"dense"`` (FlopCounterMode misses the CPU kernels; papers count
their weights). ``cdist`` is computed as a matrix product and counts too. Ops outside the
``aten`` and ``quantized`` namespaces (users' own ops, ``prim::PythonOp.<Name>``) count under
both conventions whenever a formula is registered for them: the plugin cannot classify them,
and a user who wrote a formula wants the op counted. An op of the ``aten`` or ``quantized``
namespaces outside :data:`DENSE_OPS` is left out of a ``"dense"`` count even when a user
registered a formula for it.

Ops left out this way are *ignored by convention*, like elementwise ops: listed with the
backend's ignored ops, never as unknown. Ops without any formula stay unknown under both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

OPS_CONVENTIONS = ("fvcore", "dense")
DEFAULT_OPS = "fvcore"

DESCRIPTIONS = {
    "fvcore": 'ops = "fvcore" (convolutions, matrix products, attention, norms, pooling, resampling)',
    "dense": 'ops = "dense" (convolutions, matrix products and attention only)',
}
"""What the report header says about each convention."""

_MATRIX_PRODUCTS = """
addmm _addmm_activation mm _int_mm _scaled_mm _grouped_mm _scaled_grouped_mm bmm baddbmm addbmm
matmul mv addmv dot vdot linalg_vecdot linear mkldnn_linear bilinear _trilinear tensordot inner
linalg_multi_dot chain_matmul einsum cdist _cdist_forward
"""

_CONVOLUTIONS = """
convolution _convolution conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
mkldnn_convolution cudnn_convolution cudnn_convolution_transpose _slow_conv2d_forward
slow_conv3d_forward slow_conv_transpose2d slow_conv_transpose3d thnn_conv2d
_conv_depthwise2d conv_depthwise3d
"""

_ATTENTION = """
scaled_dot_product_attention _scaled_dot_product_attention_math
_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_flash_attention
_scaled_dot_product_efficient_attention _scaled_dot_product_cudnn_attention
_scaled_dot_product_fused_attention_overrideable _flash_attention_forward
_efficient_attention_forward _native_multi_head_attention _transformer_encoder_layer_fwd
"""

_RECURRENT = """
lstm gru rnn_tanh rnn_relu lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell mkldnn_rnn_layer
quantized_lstm quantized_gru quantized_lstm_cell quantized_gru_cell quantized_rnn_relu_cell
quantized_rnn_tanh_cell
"""

_BACKWARD = """
convolution_backward _scaled_dot_product_flash_attention_for_cpu_backward
_scaled_dot_product_flash_attention_backward _scaled_dot_product_efficient_attention_backward
_scaled_dot_product_cudnn_attention_backward
_scaled_dot_product_fused_attention_overrideable_backward _flash_attention_backward
_efficient_attention_backward mkldnn_rnn_layer_backward
"""

_QUANTIZED = """
linear linear_relu linear_dynamic linear_relu_dynamic linear_dynamic_fp16
linear_relu_dynamic_fp16 linear_with_input_q_dq_qweight_dq_output_fp32 conv1d conv2d conv3d
conv1d_relu conv2d_relu conv3d_relu conv_transpose1d conv_transpose2d conv_transpose3d
matmul bmm conv1d_dynamic conv2d_dynamic conv3d_dynamic conv2d_add conv2d_add_relu
conv_transpose1d_dynamic conv_transpose2d_dynamic conv_transpose3d_dynamic
linear_dynamic_fp16_unpacked_weight linear_leaky_relu linear_tanh
linear_with_input_q_dq_qweight_dq_relu_output_fp32 quantized_lstm_cell_dynamic
quantized_gru_cell_dynamic quantized_rnn_relu_cell_dynamic quantized_rnn_tanh_cell_dynamic
"""

DENSE_OPS: frozenset[str] = frozenset(
    [
        *(
            f"aten::{name}"
            for name in (
                _MATRIX_PRODUCTS + _CONVOLUTIONS + _ATTENTION + _RECURRENT + _BACKWARD
            ).split()
        ),
        *(f"quantized::{name}" for name in _QUANTIZED.split()),
    ]
)
"""The ops counted under ``ops = "dense"``: convolutions, matrix products, attention, RNNs
(matrix products too), and their backward kernels. Names without overload."""

CLASSIFIED_NAMESPACES = frozenset({"aten", "quantized"})
"""Namespaces whose ops :data:`DENSE_OPS` classifies; other ops count under both conventions."""


def check_ops(ops: object) -> str:
    """``ops`` if it names a convention; a ValueError naming the choices otherwise."""
    if ops not in OPS_CONVENTIONS:
        allowed = " or ".join(f'"{name}"' for name in OPS_CONVENTIONS)
        raise ValueError(f"ops must be {allowed}, got {ops!r}")
    return str(ops)


def counts_under(ops: str, op: str) -> bool:
    """Whether ``op`` (``aten::mm`` or ``aten::mm.default``), when it has a formula, adds to
    a count made under the ``ops`` convention."""
    if ops == "fvcore":
        return True
    base = op.split(".", 1)[0]
    namespace = base.partition("::")[0]
    return namespace not in CLASSIFIED_NAMESPACES or base in DENSE_OPS


Formula = Callable[[Sequence[Any], Sequence[Any]], int]


def dense_part(op: str, formula: Formula) -> Formula:
    """The part of ``formula`` that a dense count keeps, for fused ops that contain norms.

    ``_transformer_encoder_layer_fwd`` (``nn.TransformerEncoderLayer``'s fast path) runs
    attention, the feed-forward network and two layer norms as one op: its formula includes
    the norms at fvcore's 5 MACs per element (4 without a weight), which a dense count leaves
    out, exactly as it leaves out the two ``layer_norm`` ops the slow path runs.
    """
    if op.split(".", 1)[0] != "aten::_transformer_encoder_layer_fwd":
        return formula

    def without_norms(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
        src = inputs[0]
        elements = 1
        for size in src:
            elements *= int(size)
        norms = elements * (_norm_factor(inputs, 10) + _norm_factor(inputs, 12))
        return int(formula(inputs, outputs)) - norms

    without_norms.__name__ = f"dense_{getattr(formula, '__name__', 'formula')}"
    return without_norms


def _norm_factor(inputs: Sequence[Any], index: int) -> int:
    weight = inputs[index] if index < len(inputs) else None
    return 5 if weight is not None else 4
