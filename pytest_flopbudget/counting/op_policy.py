"""What is not counted, and whether that matters.

Ops no formula covers fall in two groups. Cheap elementwise and data-movement ops are
*ignored by convention*: fvcore and the papers' tables leave them out, so counting them would
move every budget. Anything else is *unknown*: it may be heavy (a custom kernel, a new ATen
op), so it is listed wherever the count is shown.

In a training step the backward of an ignored op is ignored too (``threshold_backward``,
``_softmax_backward_data``, ``max_pool2d_with_indices_backward``, ``embedding_dense_backward``
...): the rule of :mod:`.formulas` is that an op's backward is counted exactly when its forward
is. Loss functions are elementwise work followed by a reduction, so they and their backward
are ignored like the ``log_softmax``/``mean`` they are made of.

Three rules cover ops not listed by name, so that what costs nothing never fails a
``unknown_ops = "fail"`` test:

* the in-place form of an ignored op (``hardswish_``, ``hardtanh_``, ``log_``) is ignored like
  its out-of-place form (fvcore's convention names the op, not where its result goes);
* an ATen op that torch itself tags ``pointwise`` is elementwise by torch's definition;
* ``profiler::`` ops (the record-function markers ``nn.DataParallel`` and user code emit) and
  ``prim::`` ops are bookkeeping, not work.

Quantized models: ``quantize_per_tensor``/``dequantize``, fake quantization (QAT) and the
elementwise ``quantized::`` ops (``add``, ``mul``, ``cat``, activations) are ignored like their
float forms; ``quantized::linear``, ``quantized::conv2d`` ... have formulas. Weight norm
(``_weight_norm``) rescales a weight by its norm: elementwise work on a parameter, ignored like
the ``norm``/``div``/``mul`` it is made of.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

_ELEMENTWISE = """
abs add add_ addcdiv addcmul bitwise_and bitwise_or ceil clamp clamp_min clamp_max cos cumsum
div div_ elu erf exp expm1 fill_ floor gelu gelu_ hardsigmoid hardswish hardtanh leaky_relu
log log_softmax logical_and logical_not logical_or lt le gt ge eq ne maximum minimum mish mul
mul_ neg pow reciprocal relu relu_ relu6 round rsqrt sigmoid sign silu silu_ sin softmax
softplus sqrt square sub sub_ tanh tanh_ where masked_fill masked_fill_ rsub triu tril
mean sum max min amax amin argmax argmin any all norm var std prod logsumexp sort topk
dropout dropout_ feature_dropout alpha_dropout native_dropout _softmax _log_softmax
max_pool1d max_pool2d max_pool3d max_pool2d_with_indices avg_pool1d avg_pool2d avg_pool3d
adaptive_max_pool1d adaptive_max_pool2d adaptive_avg_pool1d adaptive_avg_pool3d
upsample_nearest1d upsample_nearest3d upsample_linear1d upsample_trilinear3d upsample_bicubic2d
sigmoid_ _safe_softmax outer ger embedding_bag _embedding_bag _embedding_bag_forward_only
prelu _prelu_kernel celu selu glu hardshrink softshrink threshold threshold_
log_sigmoid_forward logit sgn xlogy lerp lerp_ nan_to_num log1p log2 log10 exp2 erfc erfinv
tan atan atan2 asin acos sinh cosh asinh acosh atanh trunc frac fmod hypot copysign heaviside
clamp_ clamp_min_ clamp_max_ abs_ neg_ exp_ sqrt_ rsqrt_ pow_ addcmul_ addcdiv_ cumsum_
linalg_vector_norm frobenius_norm nansum nanmean var_mean std_mean count_nonzero
lt_ le_ gt_ ge_ eq_ ne_ logical_and_ logical_or_ logical_not_ bitwise_and_ bitwise_or_
max_pool3d_with_indices adaptive_max_pool3d _masked_softmax
_upsample_nearest_exact1d _upsample_nearest_exact3d
rrelu rrelu_with_noise aminmax kron addr cosine_similarity pairwise_distance _weight_norm _weight_norm_interface norm_except_dim
quantize_per_tensor quantize_per_tensor_dynamic quantize_per_channel dequantize
q_scale q_zero_point q_per_channel_scales q_per_channel_zero_points int_repr
_make_per_tensor_quantized_tensor _make_per_channel_quantized_tensor
fake_quantize_per_tensor_affine fake_quantize_per_channel_affine
_fake_quantize_per_tensor_affine_cachemask_tensor_qparams fake_quantize_per_tensor_affine_cachemask
fake_quantize_per_channel_affine_cachemask _fake_quantize_learnable_per_tensor_affine
_fake_quantize_learnable_per_channel_affine fused_moving_avg_obs_fake_quant
_fused_moving_avg_obs_fq_helper _choose_qparams_per_tensor choose_qparams_optimized
quantized_max_pool1d quantized_max_pool2d quantized_max_pool3d
"""

_LOSSES = """
nll_loss nll_loss_nd nll_loss_forward nll_loss2d nll_loss2d_forward cross_entropy_loss
mse_loss l1_loss smooth_l1_loss huber_loss binary_cross_entropy binary_cross_entropy_with_logits
kl_div soft_margin_loss margin_ranking_loss hinge_embedding_loss poisson_nll_loss
nll_loss_backward nll_loss2d_backward mse_loss_backward smooth_l1_loss_backward
huber_loss_backward binary_cross_entropy_backward soft_margin_loss_backward
ctc_loss _ctc_loss _ctc_loss_backward cosine_embedding_loss triplet_margin_loss
multi_margin_loss multilabel_margin_loss multilabel_margin_loss_forward
multi_margin_loss_backward multilabel_margin_loss_backward
"""

_BACKWARD = """
threshold_backward gelu_backward silu_backward sigmoid_backward tanh_backward hardtanh_backward
hardsigmoid_backward hardswish_backward leaky_relu_backward elu_backward softplus_backward
mish_backward log_sigmoid_backward glu_backward _prelu_kernel_backward softshrink_backward
hardshrink_backward rrelu_with_noise_backward logit_backward native_dropout_backward
_softmax_backward_data _log_softmax_backward_data _masked_softmax_backward
max_pool2d_with_indices_backward max_pool3d_with_indices_backward avg_pool2d_backward
avg_pool3d_backward adaptive_max_pool2d_backward adaptive_max_pool3d_backward
_adaptive_avg_pool3d_backward adaptive_avg_pool3d_backward
upsample_nearest1d_backward upsample_nearest3d_backward upsample_linear1d_backward
upsample_trilinear3d_backward upsample_bicubic2d_backward _upsample_nearest_exact1d_backward
_upsample_nearest_exact3d_backward
slice_backward select_backward index_select_backward diagonal_backward unfold_backward
embedding_dense_backward embedding_backward _embedding_bag_backward
_embedding_bag_dense_backward _embedding_bag_sparse_backward
_embedding_bag_per_sample_weights_backward
rrelu_with_noise_backward _weight_norm_interface_backward _weight_norm_differentiable_backward
fake_quantize_per_tensor_affine_cachemask_backward fake_quantize_per_channel_affine_cachemask_backward
_fake_quantize_learnable_per_tensor_affine_backward
_fake_quantize_learnable_per_channel_affine_backward
"""

_DATA_MOVEMENT = """
alias as_strided cat chunk clone contiguous copy copy_ detach embedding empty empty_like
expand expand_as flatten flip full full_like gather index index_select index_put index_put_
lift_fresh masked_select narrow new_empty new_full new_ones new_zeros ones ones_like pad
permute repeat repeat_interleave reshape resize_ roll scatter scatter_ scatter_add select
slice split split_with_sizes squeeze stack t to transpose type_as unbind unflatten unfold
unsqueeze view view_as zero_ zeros zeros_like arange scalar_tensor _to_copy _unsafe_view
constant_pad_nd reflection_pad1d reflection_pad2d replication_pad2d pixel_shuffle
channel_shuffle size numel dim item Int ScalarImplicit floor_divide remainder
_reshape_alias lift contiguous_format bernoulli bernoulli_ rand rand_like randn randn_like
_assert_async _assert_tensor_metadata sym_size sym_stride sym_numel isin is_nonzero
nonzero bitwise_not __and__ __or__ linspace logical_xor diff cumprod movedim
unsafe_chunk unsafe_split diagonal _pack_padded_sequence _pad_packed_sequence _local_scalar_dense
detach_ transpose_ t_ squeeze_ unsqueeze_ as_strided_ new_empty_strided empty_strided
expand_copy view_copy permute_copy _reshape_copy pixel_unshuffle im2col col2im
_unsafe_index _unsafe_index_put _unsafe_masked_index index_add index_add_ index_fill
index_fill_ index_copy index_copy_ masked_scatter masked_scatter_ as_strided_scatter
select_scatter slice_scatter diagonal_scatter
tensor_split meshgrid _shape_as_tensor one_hot hsplit vsplit dsplit split_copy unbind_copy
atleast_1d atleast_2d atleast_3d broadcast_to broadcast_tensors view_as_real view_as_complex
diag_embed diag diagflat _linalg_check_errors
"""

_QUANTIZED_ELEMENTWISE = """
add add_out add_relu add_relu_out add_scalar add_scalar_out add_scalar_relu add_scalar_relu_out
mul mul_out mul_relu mul_relu_out mul_scalar mul_scalar_out mul_scalar_relu mul_scalar_relu_out
cat cat_out cat_relu cat_relu_out celu clamp elu hardswish leaky_relu prelu relu6 sigmoid
softmax threshold dropout max_pool1d max_pool2d
embedding_byte embedding_4bit embedding_bag_byte embedding_bag_4bit
embedding_bag_byte_rowwise_offsets embedding_bag_4bit_rowwise_offsets
embedding_bag_2bit_rowwise_offsets
"""

_QUANTIZED_PACKING = """
linear_prepack linear_prepack_fp16 linear_prepack_legacy linear_prepack_fp16_legacy
linear_unpack linear_unpack_fp16 conv_prepack conv_unpack conv2d_unpack_sizes
make_quantized_cell_params make_quantized_cell_params_dynamic make_quantized_cell_params_fp16
embedding_bag_prepack embedding_bag_unpack embedding_bag_byte_prepack embedding_bag_byte_unpack
embedding_bag_4bit_prepack embedding_bag_4bit_unpack embedding_bag_2bit_prepack
embedding_bag_2bit_unpack embedding_bag_byte_prepack_with_rowwise_min_max
embedding_bag_4bit_prepack_with_rowwise_min_max embedding_bag_2bit_prepack_with_rowwise_min_max
""" + "".join(
    f" {conv}_{what}"
    for conv in (
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    )
    for what in (
        "prepack",
        "unpack",
        "stride",
        "padding",
        "output_padding",
        "dilation",
        "groups",
        "transpose",
    )
)
"""Reading or writing packed weights: done once per weight, not per input; accessor ops."""

IGNORED_BY_CONVENTION: frozenset[str] = frozenset(
    f"aten::{name}" for name in (_ELEMENTWISE + _LOSSES + _BACKWARD + _DATA_MOVEMENT).split()
) | frozenset(
    f"quantized::{name}" for name in (_QUANTIZED_ELEMENTWISE + _QUANTIZED_PACKING).split()
)


def is_ignored(op: str) -> bool:
    """``op`` is an ATen name such as ``aten::add`` (overload suffixes are dropped)."""
    base = op.split(".", 1)[0]
    if base in IGNORED_BY_CONVENTION or base.startswith(("prim::", "profiler::")):
        return True
    if base.endswith("_") and not base.endswith("__") and base[:-1] in IGNORED_BY_CONVENTION:
        return True
    return base.startswith("aten::") and _tagged_pointwise(base.removeprefix("aten::"))


@functools.cache
def _tagged_pointwise(name: str) -> bool:
    """Torch tags its elementwise ATen ops ``pointwise``; any overload so tagged counts."""
    import torch

    packet = getattr(torch.ops.aten, name, None) if name.isidentifier() else None
    if packet is None:
        return False
    try:
        overloads = [getattr(packet, overload) for overload in packet.overloads()]
    except (AttributeError, RuntimeError):
        return False
    return any(torch.Tag.pointwise in overload.tags for overload in overloads)


def split_uncounted(ops: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Split uncounted ops into (unknown, ignored by convention), keeping occurrence counts."""
    unknown: dict[str, int] = {}
    ignored: dict[str, int] = {}
    for op, times in sorted(ops.items()):
        (ignored if is_ignored(op) else unknown)[op] = int(times)
    return unknown, ignored
