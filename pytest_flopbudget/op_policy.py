"""What is not counted, and whether that matters.

Ops no formula covers fall in two groups. Cheap elementwise and data-movement ops are
*ignored by convention*: fvcore and the papers' tables leave them out, so counting them would
move every budget. Anything else is *unknown*: it may be heavy (a custom kernel, a new ATen
op), so it is listed wherever the count is shown.
"""

from __future__ import annotations

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
"""

IGNORED_BY_CONVENTION: frozenset[str] = frozenset(
    f"aten::{name}" for name in (_ELEMENTWISE + _DATA_MOVEMENT).split()
)


def is_ignored(op: str) -> bool:
    """``op`` is an ATen name such as ``aten::add`` (overload suffixes are dropped)."""
    base = op.split(".", 1)[0]
    return base in IGNORED_BY_CONVENTION or (
        not base.startswith("aten::") and base.startswith("prim::")
    )


def split_uncounted(ops: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Split uncounted ops into (unknown, ignored by convention), keeping occurrence counts."""
    unknown: dict[str, int] = {}
    ignored: dict[str, int] = {}
    for op, times in sorted(ops.items()):
        (ignored if is_ignored(op) else unknown)[op] = int(times)
    return unknown, ignored
