"""Counting formulas for ops, one function per op, in MACs (one fused multiply-add = 1).

A formula sees an op's arguments in ATen schema order with every tensor replaced by its shape
(a tuple of ints) and every other value as it is (lists stay lists, ``None`` stays ``None``), and
the outputs the same way. Arguments missing from the end of ``inputs`` mean their schema
defaults: the dispatcher hands over only the arguments the caller passed. Both backends use the
same formulas (fvcore through :func:`fvcore_handle`, the torch backend directly), so switching
backends does not move a budget.

Ops appear under two sets of names. A JIT trace (the fvcore backend) records the op the model
called: ``aten::linear``, ``aten::_convolution``, ``aten::layer_norm``, ``aten::lstm``,
``aten::scaled_dot_product_attention``. The dispatcher (the torch backend) sees what those
decompose into: ``aten::addmm``/``aten::mm``, ``aten::convolution``,
``aten::native_layer_norm``, ``aten::mkldnn_rnn_layer``,
``aten::_scaled_dot_product_flash_attention_for_cpu``. Both sets are here; for every pair the
numbers agree, so a model counts the same whichever set its backend sees.

Conventions, and why:

* fvcore's numbers are kept where fvcore is right (linear/addmm/mm/bmm, convolution including
  grouped, depthwise and transposed, the norms, upsampling, adaptive average pooling), because
  budgets already written against fvcore must not move. Its rough norm rules (4 or 5 MACs per
  element) are reproduced as they are, not improved.
* Attention counts the two matmuls, ``Q K^T`` and ``attn V``: ``B*H*L*S*(E + Ev)``. A causal
  mask (``is_causal=True``) does **not** halve the count: the CPU math path computes the full
  score matrix and masks it (the dispatcher shows two full ``bmm``), FlopCounterMode and
  fvcore-style tools count the full product, and a budget must not depend on which kernel ran.
  An explicit ``attn_mask`` counts the same as none. Grouped-query attention is counted per
  *query* head: every query head is multiplied with its group's keys and values.
* ``einsum`` is counted the way ``torch.einsum`` evaluates it: operands are contracted pairwise,
  left to right (or along ``path`` when opt_einsum supplied one); an index private to one
  operand and needed neither by the output nor by a later operand is summed out first (an
  addition, not a MAC); a pair that shares a summed index costs the product of the sizes of all
  indices of the pair; a pair with no summed index (outer or Hadamard product) is an
  elementwise ``mul``, ignored by convention like ``aten::mul``. For two operands with a summed
  index this is the product of all index sizes.
* RNNs (which fvcore skips) count every weight matrix once per token:
  ``tokens * sum(rows * cols)`` over the 2-D parameters, which is ``4*H*(in + H)`` per step,
  layer and direction for an LSTM, ``3*H*(in + H)`` for a GRU and ``H*(in + H)`` for a plain
  RNN, and includes LSTM projections. Gate nonlinearities are elementwise and ignored.
* RMS norm (``rms_norm``, ``_fused_rms_norm``), which fvcore does not know, follows fvcore's
  layer-norm rule read per element: layer norm's 4 are the mean, the centering, the variance
  and the normalization, and an affine transform adds 1 (scale and shift are one multiply-add).
  RMS norm has no mean and no centering, so it costs ``numel*(3 with a weight, 2 without)``:
  the sum of squares, the normalization and the scale. A norm written out by hand
  (``pow``, ``mean``, ``rsqrt``, ``mul``, as transformers' ``LlamaRMSNorm``) is elementwise
  work and counts 0, exactly as a hand-written layer norm does under fvcore. (With grad
  enabled, autograd decomposes ``rms_norm`` and ``AdaptiveAvgPool2d(1)`` into ignored ops
  before the torch backend's dispatcher mode sees them; that backend counts those two whole
  at the torch-function level, so training steps count them as inference does.)
* Quantized ops (``quantized::linear``, ``conv2d``, ``linear_dynamic``, ``quantized_lstm``
  ...) count their float counterparts' MACs; their packed weights reach the formulas as
  TorchScript objects and are unpacked for the weight shape. ``flex_attention`` (a
  higher-order op, named ``higher_order::flex_attention``) counts as SDPA, the full product
  whatever its block mask skips.
* ``embedding_bag`` is not here: it is a gather followed by a sum (optionally weighted), all of
  which the convention ignores when written out as ``embedding`` + ``sum``, so
  :mod:`.op_policy` lists it as ignored; rewriting a model into the fused op must not change
  its budget.

Backward (training steps, torch backend only; a JIT trace never shows backward ops). The rule:
**the backward of an op is counted exactly when its forward is**, so the ops
:mod:`.op_policy` ignores in the forward (activations, softmax, dropout, max and average
pooling, gathers, slices) have ignored backwards too (``threshold_backward``,
``_softmax_backward_data``, ``max_pool2d_with_indices_backward``, ...).

* A contraction's backward costs one forward per gradient it computes, since each gradient is
  a product of the same size: a linear layer's ``dX = dY W^T`` and ``dW = dY^T X`` (the torch
  backend sees them as ``mm``), a convolution's input gradient (a transposed convolution) and
  weight gradient (a correlation of input and output gradient), each as large as the forward;
  a gradient nobody asked for (``output_mask``) is not computed and not counted. So a
  training step is 3x the forward, or 2x for a first layer whose input needs no gradient.
* Attention's backward is 2x its forward: the four gradient matmuls ``dV = P^T dO``,
  ``dP = dO V^T``, ``dQ = dS K``, ``dK = dS^T Q`` cost ``L*S*(Ev + Ev + E + E)``. This is
  exactly what the same attention written with ``bmm`` and ``softmax`` costs in backward (two
  ``bmm`` per forward ``bmm``), so moving a model between eager and SDPA attention keeps its
  budget. The fused kernels also *recompute* ``Q K^T`` in backward instead of storing it
  (FlopCounterMode counts that fifth product, 2.5x for E = Ev); a recomputation is a
  memory-saving choice of the kernel, and a budget must not depend on which kernel ran, so it
  is not counted. As in the forward, a causal mask does not halve anything, masks and dropout
  count the same as none, and every gradient is counted whatever the kernel's mask says (the
  CPU kernel has no mask and always computes all three).
* An RNN layer's backward (``mkldnn_rnn_layer_backward``) is 2x its forward: per token and
  weight matrix, one product for the gradient of its input (``W^T dgates``) and one for the
  weight (``dgates x^T``). The kernel always computes both, so both are counted.
* fvcore's per-element estimates (layer, batch, group and RMS norm, nearest and bilinear
  upsampling, adaptive average pooling, grid sampling) give their backward the **same number
  as their forward**: the forward is counted, so by the rule above the backward is, and the
  estimate is as rough as fvcore's "5 is just a rough estimate", not refined into a new
  per-gradient factor. Ignoring them instead would leave a norm layer with forward work and
  no backward at all in the same step, and the ``by_module`` numbers of a normalized block
  would no longer scale like its neighbours'. (The upsampling modes and poolings that fvcore
  does not count in the forward stay ignored in the backward.)

Users add formulas for their own ops with :func:`register_formula`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

Shape = tuple[int, ...]
Formula = Callable[[Sequence[Any], Sequence[Any]], int]
"""``formula(inputs, outputs) -> MACs``; tensors appear as shapes."""

FvcoreHandle = Callable[[list[Any], list[Any]], Any]

FORMULAS: dict[str, Formula] = {}
"""Keyed by ATen op name without overload, e.g. ``"aten::scaled_dot_product_attention"``."""

FVCORE_HANDLES: dict[str, FvcoreHandle] = {}
"""The same formulas adapted to fvcore's JIT-value handles, keyed by the same names."""


# fvcore's own handles give exactly these formulas' numbers (tests check it) and cost less:
# the fvcore backend keeps them unless a user registers a formula of their own.
_FVCORE_NATIVE = frozenset(
    f"aten::{name}"
    for name in [
        "addmm",
        "bmm",
        "mm",
        "linear",
        "_convolution",
        "batch_norm",
        "group_norm",
        "layer_norm",
        "instance_norm",
        "upsample_nearest2d",
        "upsample_bilinear2d",
        "adaptive_avg_pool2d",
        "grid_sampler",
    ]
)
_USER_REGISTERED: set[str] = set()


def fvcore_overrides() -> dict[str, FvcoreHandle]:
    """The handles the fvcore backend adds to fvcore's: missing ops, fixed ops, users' ops."""
    return {
        op: handle
        for op, handle in FVCORE_HANDLES.items()
        if op not in _FVCORE_NATIVE or op in _USER_REGISTERED
    }


def lookup(op: str) -> Formula | None:
    """The formula for ``op`` (``aten::mm`` or ``aten::mm.default``), or None."""
    return FORMULAS.get(_base_name(op))


PYTHON_OP = "prim::PythonOp."
"""A custom ``torch.autograd.Function`` is the op ``prim::PythonOp.<class name>``."""


def python_op_formulas() -> dict[str, Formula]:
    """Formulas registered for custom ``torch.autograd.Function``s, keyed by class name."""
    return {
        key[len(PYTHON_OP) :]: formula
        for key, formula in FORMULAS.items()
        if key.startswith(PYTHON_OP)
    }


def register_formula(op: str, formula: Formula) -> None:
    """Count ``op`` (``"namespace::name"``, any overload) with ``formula`` in both backends.

    Registering an op again replaces its formula, including the built-in ones. The formula is
    called as ``formula(inputs, outputs)`` with tensors given as shape tuples (see the module
    docstring) and must return MACs.

    A custom ``torch.autograd.Function`` is named ``"prim::PythonOp.<ClassName>"``, as fvcore's
    trace and the unknown-op lists name it (``"prim::PythonOp.MyFn"`` for ``class MyFn``;
    every Function class of that name). Its formula sees the Function's tensor arguments and
    tensor results, in order, as shapes (other arguments are not passed: fvcore's trace keeps
    them apart), and replaces the count of the ops inside it on both backends.
    """
    key = formula_key(op, formula)
    FORMULAS[key] = formula
    FVCORE_HANDLES[key] = fvcore_handle(formula)
    _USER_REGISTERED.add(key)


def formula_key(op: str, formula: Formula) -> str:
    """The registry key of ``op`` (``mylib::op.default`` -> ``mylib::op``), or the error
    :func:`register_formula` raises for an op name or formula it cannot use."""
    if not isinstance(op, str):
        raise TypeError(f"register_formula: op must be a string such as 'mylib::op', got {op!r}")
    if op.startswith(PYTHON_OP):
        if not op[len(PYTHON_OP) :].isidentifier():
            raise ValueError(
                f"register_formula: a Python op is 'prim::PythonOp.<ClassName>', got {op!r}"
            )
        if not callable(formula):
            raise TypeError(f"register_formula: formula for {op!r} must be callable")
        return op
    namespace, sep, name = _base_name(op).partition("::")
    if not sep or not namespace or not name:
        raise ValueError(f"register_formula: op must look like 'namespace::name', got {op!r}")
    if not callable(formula):
        raise TypeError(f"register_formula: formula for {op!r} must be callable, got {formula!r}")
    return f"{namespace}::{name}"


def install_formulas(formulas: Sequence[tuple[str, Formula]]) -> Callable[[], None]:
    """Register ``formulas`` (op, formula) for a while: what plugins' hooks contribute to one
    pytest session. The returned function puts back what each op had before (a built-in
    formula, an earlier ``register_formula``, or nothing), except where the op's formula was
    registered again meanwhile, which it leaves alone."""
    saved: list[tuple[str, Formula | None, FvcoreHandle | None, bool, Formula]] = []
    for op, formula in formulas:
        key = formula_key(op, formula)
        saved.append(
            (key, FORMULAS.get(key), FVCORE_HANDLES.get(key), key in _USER_REGISTERED, formula)
        )
        register_formula(op, formula)

    def restore() -> None:
        for key, formula, handle, user, installed in reversed(saved):
            if FORMULAS.get(key) is not installed:
                continue
            if formula is None:
                FORMULAS.pop(key, None)
            else:
                FORMULAS[key] = formula
            if handle is None:
                FVCORE_HANDLES.pop(key, None)
            else:
                FVCORE_HANDLES[key] = handle
            if not user:
                _USER_REGISTERED.discard(key)

    return restore


def _base_name(op: str) -> str:
    """``aten::mm.default`` -> ``aten::mm``: formulas cover every overload of an op."""
    return op.split(".", 1)[0]


# --------------------------------------------------------------------------------------------
# helpers


def _arg(inputs: Sequence[Any], index: int, default: Any = None) -> Any:
    """``inputs[index]``, or the schema default when the caller left it out."""
    return inputs[index] if index < len(inputs) else default


def _numel(shape: Iterable[int]) -> int:
    return math.prod(int(size) for size in shape)


def _is_shape(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(size, int) for size in value)


def _broadcast(*shapes: Sequence[int]) -> Shape:
    """Right-aligned broadcast of batch shapes; the larger size wins, so grouped heads
    (4 query heads against 2 key heads) resolve to the query's."""
    rank = max((len(shape) for shape in shapes), default=0)
    result = [1] * rank
    for shape in shapes:
        for offset, size in enumerate(shape):
            position = rank - len(shape) + offset
            result[position] = max(result[position], int(size))
    return tuple(result)


def _matmul_macs(a: Shape, b: Shape) -> int:
    """``torch.matmul`` semantics: a 1-D left operand is a row, a 1-D right operand a column,
    leading dimensions broadcast."""
    a = (1, *a) if len(a) == 1 else tuple(a)
    b = (*b, 1) if len(b) == 1 else tuple(b)
    n, k = a[-2], a[-1]
    m = b[-1]
    return _numel(_broadcast(a[:-2], b[:-2])) * n * k * m


def _attention_macs(q: Shape, k: Shape, v: Shape) -> int:
    """(..., L, E) x (..., S, E) x (..., S, Ev): QK^T ``batch*L*S*E`` + AV ``batch*L*S*Ev``."""
    batch = _numel(_broadcast(q[:-2], k[:-2], v[:-2]))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def _affine_factor(weight: Any, with_affine: int, without: int) -> int:
    return with_affine if weight is not None else without


# --------------------------------------------------------------------------------------------
# matrix products


def addmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """addmm(self, mat1 (N, K), mat2 (K, M)): N*K*M MACs; adding ``self`` is elementwise."""
    n, k = inputs[1]
    return n * k * inputs[2][-1]


def addmm_activation(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_addmm_activation(self, mat1 (N, K), mat2 (K, M), ...): the fused addmm, N*K*M MACs."""
    return addmm(inputs, outputs)


def mm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """mm(self (N, K), mat2 (K, M)): N*K*M MACs (also _int_mm, _scaled_mm: same product)."""
    n, k = inputs[0]
    return n * k * inputs[1][-1]


def bmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """bmm(self (B, N, K), mat2 (B, K, M)): B*N*K*M MACs."""
    b, n, k = inputs[0]
    return b * n * k * inputs[1][-1]


def baddbmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """baddbmm(self, batch1 (B, N, K), batch2 (B, K, M)): the bmm, B*N*K*M MACs."""
    return bmm(inputs[1:3], outputs)


def addbmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """addbmm(self, batch1 (B, N, K), batch2 (B, K, M)): B*N*K*M MACs (summing the B products
    into one (N, M) is part of the accumulation)."""
    return bmm(inputs[1:3], outputs)


def matmul(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """matmul(a (..., N, K), b (..., K, M)): broadcast(batch)*N*K*M MACs; 1-D operands count
    as one row/column (fvcore asserts on them and ignores batch broadcasting of ``b``)."""
    return _matmul_macs(inputs[0], inputs[1])


def mv(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """mv(self (N, K), vec (K,)): N*K MACs."""
    n, k = inputs[0]
    return n * k


def addmv(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """addmv(self, mat (N, K), vec (K,)): the mv, N*K MACs."""
    return mv(inputs[1:3], outputs)


def dot(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """dot(self (K,), tensor (K,)): K MACs (also vdot)."""
    return _numel(inputs[0])


def linalg_vecdot(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """linalg_vecdot(x, y, dim): one MAC per element of broadcast(x, y) (a batch of dots)."""
    return _numel(_broadcast(inputs[0], inputs[1]))


def linear(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """linear(input (..., in), weight (out, in), bias): numel(input)*out MACs."""
    weight = inputs[1]
    out_features = weight[0] if len(weight) == 2 else 1
    return _numel(inputs[0]) * out_features


def bilinear(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """bilinear(x1 (..., in1), x2 (..., in2), weight (out, in1, in2), bias):
    batch*out*in1*in2 MACs, one per term of ``x1^T W_o x2``."""
    out_features, in1, in2 = inputs[2]
    return _numel(inputs[0][:-1]) * out_features * in1 * in2


def trilinear(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_trilinear(i1, i2, i3, expand1, expand2, expand3, sumdim): one MAC per point of the
    broadcast product ``i1*i2*i3`` (what bilinear lowers to: batch*out*in1*in2)."""
    sizes: list[int] | None = None
    for tensor, expand in zip(inputs[0:3], inputs[3:6], strict=True):
        shape = list(tensor)
        for dim in sorted(expand):
            shape.insert(dim, 1)
        sizes = shape if sizes is None else [max(a, b) for a, b in zip(sizes, shape, strict=True)]
    return _numel(sizes or ())


def tensordot(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """tensordot(a, b, dims_a, dims_b): numel(out)*K MACs, K the contracted size. Without the
    dims (computed at run time) K follows from numel(a)*numel(b) = numel(out)*K^2."""
    a, b, dims_a = inputs[0], inputs[1], _arg(inputs, 2)
    out = _numel(outputs[0])
    if isinstance(dims_a, list) and all(isinstance(d, int) for d in dims_a):
        return out * _numel(a[d] for d in dims_a)
    if out == 0:
        return 0
    return out * math.isqrt(_numel(a) * _numel(b) // out)


def inner(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """inner(a (..., K), b (..., K)): numel(out)*K MACs; with a 0-d operand it is a scaling,
    an elementwise mul."""
    a, b = inputs[0], inputs[1]
    if not a or not b:
        return 0
    return _numel(outputs[0]) * a[-1]


def multi_dot(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """linalg_multi_dot([A1 (p0, p1), ..., An (pn-1, pn)]): torch multiplies in the order with
    the fewest MACs (matrix-chain order); that minimum is the count. 1-D ends are a row/column.
    (Also chain_matmul.)"""
    shapes = [tuple(shape) for shape in inputs[0]]
    if len(shapes) < 2:
        return 0
    if len(shapes[0]) == 1:
        shapes[0] = (1, *shapes[0])
    if len(shapes[-1]) == 1:
        shapes[-1] = (*shapes[-1], 1)
    dims = [shapes[0][0]] + [shape[-1] for shape in shapes]
    count = len(shapes)
    cost = [[0] * count for _ in range(count)]
    for span in range(1, count):
        for i in range(count - span):
            j = i + span
            cost[i][j] = min(
                cost[i][s] + cost[s + 1][j] + dims[i] * dims[s + 1] * dims[j + 1]
                for s in range(i, j)
            )
    return cost[0][count - 1]


def cdist(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """cdist(x1 (..., P, M), x2 (..., R, M), p): batch*P*R*M MACs, one per coordinate of
    every pair (the matmul form for p=2 costs the same)."""
    x1, x2 = inputs[0], inputs[1]
    return _numel(_broadcast(x1[:-2], x2[:-2])) * x1[-2] * x2[-2] * x1[-1]


def pdist(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """pdist/_pdist_forward(input (N, M), p): N*(N-1)/2 pairs x M coordinates, cdist's rule
    for the pairs above the diagonal."""
    n, m = inputs[0][-2], inputs[0][-1]
    return n * (n - 1) // 2 * m


def affine_grid_generator(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """affine_grid_generator(theta (N, 2, 3) | (N, 3, 4), size, align_corners): every output
    point (N, H, W, 2) is theta (2x3) times its homogeneous base point, numel(out)*3 MACs
    (numel(out)*4 in 3-D), the bmm it runs as with grad enabled."""
    return _numel(outputs[0]) * inputs[0][-1]


def conv_tbc(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """conv_tbc(input (T, B, Cin), weight (K, Cin, Cout), bias, pad): a 1-D convolution in
    time-batch-channel layout, numel(out)*K*Cin MACs."""
    kernel, in_channels = inputs[1][0], inputs[1][1]
    return _numel(outputs[0]) * kernel * in_channels


# --------------------------------------------------------------------------------------------
# einsum


def einsum(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """einsum(equation, tensors, path): sum over the pairwise contractions torch performs of
    prod(sizes of the pair's indices), for pairs that sum an index (see module docstring)."""
    equation, shapes, path = inputs[0], list(inputs[1]), _arg(inputs, 2)
    operands, output, sizes = _parse_einsum(equation, shapes)
    if len(operands) < 2:
        return 0
    pending = list(operands)
    steps = list(path) if isinstance(path, list) and path else None
    total = 0
    while len(pending) > 1:
        if steps:
            i, j = sorted((steps.pop(0), steps.pop(0)))
        else:
            i, j = 0, 1
        a, b = pending[i], pending[j]
        rest = pending[:i] + pending[i + 1 : j] + pending[j + 1 :]
        needed = set(output).union(*rest)
        a = {label for label in a if label in b or label in needed}
        b = {label for label in b if label in a or label in needed}
        pair = a | b
        if (a & b) - needed:
            total += _numel(sizes[label] for label in pair)
        result = pair & needed
        pending = [*rest, result] if steps is not None else [result, *rest]
    return total


def _parse_einsum(
    equation: str, shapes: list[Shape]
) -> tuple[list[set[str]], set[str], dict[str, int]]:
    """Operand index sets (size-1 broadcast dimensions dropped), output indices and sizes.

    Ellipsis dimensions get the labels ``...0`` (last), ``...1``, ... counted from the right,
    so they line up across operands the way broadcasting does.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    sizes: dict[str, int] = {}
    operands: list[set[str]] = []
    counts: dict[str, int] = {}
    ellipsis_rank = 0
    for term, shape in zip(terms, shapes, strict=True):
        labels: list[str] = []
        if "..." in term:
            before, after = term.split("...")
            rank = len(shape) - len(before) - len(after)
            ellipsis_rank = max(ellipsis_rank, rank)
            labels = [*before, *(f"...{rank - 1 - i}" for i in range(rank)), *after]
        else:
            labels = list(term)
        present: set[str] = set()
        for label, size in zip(labels, shape, strict=True):
            sizes[label] = max(sizes.get(label, 1), int(size))
            if size != 1:
                present.add(label)
        for label in set(labels):
            counts[label] = counts.get(label, 0) + 1
        operands.append(present)
    ellipsis = {f"...{i}" for i in range(ellipsis_rank)}
    if arrow:
        output = {label for label in rhs.replace("...", "") if label.isalpha()}
        if "..." in rhs:
            output |= ellipsis
    else:
        output = {label for label, n in counts.items() if n == 1 and label.isalpha()}
        output |= ellipsis
    return operands, output, sizes


# --------------------------------------------------------------------------------------------
# convolution


def _conv_macs(x: Shape, w: Shape, out: Shape, transposed: bool) -> int:
    """out_numel*(Cin/groups)*kernel, or for a transposed conv in_numel*(Cout/groups)*kernel:
    ``w[1:]`` is (Cin/groups, *kernel) resp. (Cout/groups, *kernel). Equal to fvcore's
    ``batch * prod(w) * prod(spatial)``."""
    return _numel(x if transposed else out) * _numel(w[1:])


def convolution(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """convolution/_convolution(input, weight, bias, stride, padding, dilation, transposed, ...):
    out_numel*(Cin/groups)*kernel MACs, transposed in_numel*(Cout/groups)*kernel."""
    transposed = bool(_arg(inputs, 6, False))
    return _conv_macs(inputs[0], inputs[1], outputs[0], transposed)


def conv(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """conv1d/2d/3d(input, weight (Cout, Cin/groups, *k), ...): out_numel*(Cin/groups)*k MACs."""
    return _conv_macs(inputs[0], inputs[1], outputs[0], transposed=False)


def conv_transpose(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """conv_transpose1d/2d/3d(input, weight (Cin, Cout/groups, *k), ...):
    in_numel*(Cout/groups)*k MACs (every input element is scattered through its kernel)."""
    return _conv_macs(inputs[0], inputs[1], outputs[0], transposed=True)


# --------------------------------------------------------------------------------------------
# normalization, resampling, pooling (fvcore's rules, kept as they are)


def _batch_norm_macs(x: Shape, weight: Any, training: bool) -> int:
    if training:
        return _numel(x) * _affine_factor(weight, 5, 4)
    return _numel(x) * _affine_factor(weight, 2, 1)


def batch_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """batch_norm/native_batch_norm(input, weight, bias, mean, var, training, ...): fvcore's
    rule, numel*(5 affine, 4 not) when training, numel*(2 affine, 1 not) in eval."""
    return _batch_norm_macs(inputs[0], inputs[1], bool(inputs[5]))


def batch_norm_no_training(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_native_batch_norm_legit_no_training(input, weight, ...): eval batch_norm,
    numel*(2 affine, 1 not)."""
    return _batch_norm_macs(inputs[0], inputs[1], training=False)


def batch_norm_legit(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_native_batch_norm_legit(input, weight, bias, mean, var, training, ...) or its no_stats
    overload (input, weight, bias, training, ...): batch_norm's rule."""
    training = inputs[3] if isinstance(inputs[3], bool) else inputs[5]
    return _batch_norm_macs(inputs[0], inputs[1], bool(training))


def group_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """group_norm(input, num_groups, weight, ...): fvcore's numel*(5 affine, 4 not)."""
    return _numel(inputs[0]) * _affine_factor(_arg(inputs, 2), 5, 4)


def native_group_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """native_group_norm(input, weight, bias, N, C, HxW, group, eps): group_norm's rule,
    numel*(5 affine, 4 not)."""
    return _numel(inputs[0]) * _affine_factor(inputs[1], 5, 4)


def layer_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """layer_norm/native_layer_norm(input, normalized_shape, weight, ...): fvcore's
    numel*(5 affine, 4 not)."""
    return _numel(inputs[0]) * _affine_factor(_arg(inputs, 2), 5, 4)


def rms_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """rms_norm/_fused_rms_norm(input, normalized_shape, weight, eps): layer norm's rule without
    its mean and centering, numel*(3 with a weight, 2 without) (module docstring)."""
    return _numel(inputs[0]) * _affine_factor(_arg(inputs, 2), 3, 2)


def instance_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """instance_norm(input, weight, ...): fvcore's numel*(5 affine, 4 not). (The dispatcher
    runs it as a training-mode native_batch_norm, which counts the same.)"""
    return _numel(inputs[0]) * _affine_factor(_arg(inputs, 1), 5, 4)


def upsample_nearest2d(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """upsample_nearest2d/_upsample_nearest_exact2d: fvcore's one MAC per output element
    (nearest-exact is nearest with another rounding of the source index)."""
    return _numel(outputs[0])


def upsample_bilinear2d(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """upsample_bilinear2d: fvcore's 4 MACs per output element (4 taps)."""
    return 4 * _numel(outputs[0])


def adaptive_avg_pool2d(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """adaptive_avg_pool2d/_adaptive_avg_pool2d: fvcore's one MAC per input element."""
    return _numel(inputs[0])


def grid_sampler(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """grid_sampler/grid_sampler_2d: fvcore's 4 MACs per output element (bilinear taps)."""
    return 4 * _numel(outputs[0])


# --------------------------------------------------------------------------------------------
# attention


def scaled_dot_product_attention(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """(B, H, L, E) x (B, Hkv, S, E) x (B, Hkv, S, Ev): QK^T B*H*L*S*E + AV B*H*L*S*Ev MACs.

    The same for every ATen variant that takes (..., H, L, E) query/key/value first (math,
    flash, flash for CPU, efficient, cudnn, overrideable). Causal and explicit masks count the
    full product; grouped-query attention counts H query heads (module docstring).
    """
    return _attention_macs(inputs[0], inputs[1], inputs[2])


def _varlen_attention_macs(
    q: Shape, k: Shape, v: Shape, cu_seqlens: Any, max_q: Any, max_k: Any
) -> int:
    """(B, L, H, E) layout, or packed sequences (..., total, H, E) with cumulative lengths:
    then every sequence is taken at the longest length, the upper bound FlopCounterMode uses."""
    heads, e, ev = q[-2], q[-1], v[-1]
    if _is_shape(cu_seqlens) and isinstance(max_q, int) and isinstance(max_k, int):
        sequences = max(_numel(cu_seqlens) - 1, 0)
        return sequences * heads * max_q * max_k * (e + ev)
    batch = _numel(_broadcast(q[:-3], k[:-3], v[:-3]))
    return batch * heads * q[-3] * k[-3] * (e + ev)


def flash_attention_forward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_flash_attention_forward(q (B, L, H, E), k (B, S, Hkv, E), v (B, S, Hkv, Ev),
    cum_seq_q, cum_seq_k, max_q, max_k, ...): B*H*L*S*(E + Ev) MACs. Note the sequence-major
    layout; packed (varlen) input counts every sequence at max_q x max_k."""
    q, k, v = inputs[0], inputs[1], inputs[2]
    return _varlen_attention_macs(q, k, v, _arg(inputs, 3), _arg(inputs, 5), _arg(inputs, 6))


def efficient_attention_forward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_efficient_attention_forward(q (B, L, H, E), k (B, S, Hkv, E), v (B, S, Hkv, Ev), bias,
    cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, ...): B*H*L*S*(E + Ev) MACs;
    packed input counts every sequence at max_seqlen_q x max_seqlen_k."""
    q, k, v = inputs[0], inputs[1], inputs[2]
    return _varlen_attention_macs(q, k, v, _arg(inputs, 4), _arg(inputs, 6), _arg(inputs, 7))


def flex_attention(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """higher_order::flex_attention(q (B, H, L, E), k (B, Hkv, S, E), v (B, Hkv, S, Ev),
    score_mod, block_mask, scale, ...): SDPA's B*H*L*S*(E + Ev). A block mask skips blocks
    at run time and a score mod adds elementwise work; both count as the full product, as an
    explicit ``attn_mask`` does, so a budget does not depend on the mask's sparsity."""
    return _attention_macs(inputs[0], inputs[1], inputs[2])


def flex_attention_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """higher_order::flex_attention_backward(q, k, v, out, logsumexp, grad_out, ...):
    SDPA's backward, 2 x the forward's B*H*L*S*(E + Ev) (dQ, dK, dV and dP)."""
    return 2 * _attention_macs(inputs[0], inputs[1], inputs[2])


def _mha_macs(q: Shape, k: Shape, v: Shape) -> int:
    """In-projections (Tq+Tk+Tv)*E*E, QK^T and AV batch*L*S*E each (summed over the heads,
    H*D = E), out-projection Tq*E*E. T = tokens = numel/E."""
    embed = q[-1]
    tokens_q = _numel(q[:-1])
    projections = (tokens_q + _numel(k[:-1]) + _numel(v[:-1])) * embed * embed
    attention = _numel(q[:-2]) * q[-2] * k[-2] * embed * 2
    return projections + attention + tokens_q * embed * embed


def native_multi_head_attention(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_native_multi_head_attention(q (B, L, E), k (B, S, E), v (B, S, E), embed_dim, heads,
    qkv_weight, qkv_bias, proj_weight, ...): (B*L + 2*B*S)*E*E in-projection + 2*B*L*S*E
    attention + B*L*E*E out-projection MACs, what the slow path's linear/bmm count."""
    return _mha_macs(inputs[0], inputs[1], inputs[2])


def transformer_encoder_layer_fwd(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_transformer_encoder_layer_fwd(src (B, L, E), embed_dim, heads, qkv_weight, qkv_bias,
    proj_weight, proj_bias, use_gelu, norm_first, eps, norm_w1, norm_b1, norm_w2, norm_b2,
    ffn_w1 (F, E), ffn_b1, ffn_w2 (E, F), ...): self-attention (see MHA) + B*L*E*F*2 feed-forward
    + 2 layer norms at fvcore's 5 MACs per element, what the slow path counts."""
    src = inputs[0]
    ffn = _numel(src[:-1]) * (_numel(inputs[14]) + _numel(inputs[16]))
    norms = _numel(src) * (_affine_factor(inputs[10], 5, 4) + _affine_factor(inputs[12], 5, 4))
    return _mha_macs(src, src, src) + ffn + norms


# --------------------------------------------------------------------------------------------
# recurrent networks


def _weight_macs(params: Iterable[Any]) -> int:
    """rows*cols summed over the 2-D weights (biases are 1-D and elementwise)."""
    return sum(_numel(p) for p in params if _is_shape(p) and len(p) == 2)


def rnn(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """lstm/gru/rnn_tanh/rnn_relu(input (T, B, in) | packed data (tokens, in), ..., params, ...):
    tokens * sum(rows*cols of every weight) MACs = T*B*4H(in+H) per LSTM layer and direction,
    3H(in+H) for GRU, H(in+H) for RNN. ``.input`` has params at 2, ``.data`` (packed) at 3."""
    packed = not isinstance(inputs[3], bool)
    params = inputs[3] if packed else inputs[2]
    return _numel(inputs[0][:-1]) * _weight_macs(params)


def rnn_cell(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """lstm_cell/gru_cell/rnn_tanh_cell/rnn_relu_cell(input (B, in), hx, w_ih (G*H, in),
    w_hh (G*H, H), ...): B*G*H*(in + H) MACs, G = 4, 3, 1 gates."""
    return _numel(inputs[0][:-1]) * _weight_macs(inputs[2:4])


def mkldnn_rnn_layer(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """mkldnn_rnn_layer(input (T, B, in), w_ih (G*H, in), w_hh (G*H, H), b_ih, b_hh, ...): one
    layer and direction of the CPU LSTM, T*B*G*H*(in + H) MACs."""
    return _numel(inputs[0][:-1]) * _weight_macs(inputs[1:3])


# --------------------------------------------------------------------------------------------
# quantized ops (torch.ao eager-mode static and dynamic quantization)


def _packed(value: Any) -> bool:
    """A packed weight (``LinearPackedParamsBase``, ``Conv2dPackedParamsBase`` ...): a
    TorchScript object, handed to formulas as it is."""
    return hasattr(value, "_method_names")


def _unpacked_weight(packed: Any) -> Shape:
    """The float-layout weight shape inside a packed weight: (out, in) for a linear one,
    (Cout, Cin/groups, *k) for a convolution, (Cin, Cout/groups, *k) for a transposed one.
    A backend that already turned it into a shape passes that through."""
    if _is_shape(packed):
        return tuple(packed)
    import torch

    if "weight" in packed._method_names():
        return tuple(int(size) for size in packed.weight().shape)
    try:
        weight = torch.ops.quantized.linear_unpack(packed)[0]
    except RuntimeError:  # fp16 packing has its own unpack
        weight = torch.ops.quantized.linear_unpack_fp16(packed)[0]
    return tuple(int(size) for size in weight.shape)


def _packed_argument(inputs: Sequence[Any], outputs: Sequence[Any]) -> Shape:
    for value in inputs[1:]:
        if _packed(value):
            return _unpacked_weight(value)
    return inputs[1]  # an unpacked weight tensor (linear_dynamic_fp16_unpacked_weight)


def quantized_linear(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::linear/linear_relu/linear_dynamic/...(X (..., in), W_prepack (out, in), ...):
    the float linear's numel(X)*out MACs, ``out`` read from the unpacked weight; the fused
    activation and the (de)quantization around the product are elementwise."""
    return _numel(inputs[0]) * _packed_argument(inputs, outputs)[0]


def quantized_conv(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::conv1d/2d/3d[_relu|_add|_add_relu|_dynamic](qx, [qaccum,] packed_weight, ...):
    the float convolution's out_numel*(Cin/groups)*kernel MACs, the weight shape read from the
    packed weight; a fused add or ReLU is elementwise."""
    return _conv_macs(inputs[0], _packed_argument(inputs, outputs), outputs[0], transposed=False)


def quantized_conv_transpose(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::conv_transpose1d/2d/3d[_dynamic](qx, packed_weight (Cin, Cout/groups, *k), ...):
    the float transposed convolution's in_numel*(Cout/groups)*kernel MACs."""
    return _conv_macs(inputs[0], _packed_argument(inputs, outputs), outputs[0], transposed=True)


def quantized_matmul(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::matmul(qa (..., N, K), qb (..., K, M), scale, zero_point): matmul's
    broadcast(batch)*N*K*M MACs."""
    return _matmul_macs(inputs[0], inputs[1])


def quantized_batch_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::batch_norm*/aten::quantized_batch_norm(qx, weight, bias, mean, var, eps, ...):
    quantized batch norm only runs with running statistics, the eval rule numel*(2 affine, 1
    not)."""
    return _batch_norm_macs(inputs[0], inputs[1], training=False)


def _cell_weights(cell: Any) -> list[Shape]:
    """The weight matrices of an RNN layer's ``CellParamsBase``: its state holds the float
    tensors and the packed linear weights (dynamic quantization packs both matrices)."""
    import torch

    shapes: list[Shape] = []
    if _is_shape(cell):
        return [cell]

    def visit(value: Any) -> None:
        if isinstance(value, torch.Tensor):
            shapes.append(tuple(int(size) for size in value.shape))
        elif _packed(value):
            shapes.append(_unpacked_weight(value))
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(cell.__getstate__())
    return shapes


def quantized_rnn(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized_lstm/quantized_gru(input (T, B, in) | packed data (tokens, in), [batch_sizes,]
    hx, params (one CellParamsBase per layer and direction), ...): the float RNN's
    tokens * sum(rows*cols) over every layer's weight matrices."""
    params = next(
        value
        for value in inputs[1:]
        if isinstance(value, list)
        and value
        and not _is_shape(value[0])
        and not isinstance(value[0], list)
    )
    return _numel(inputs[0][:-1]) * _weight_macs(
        shape for cell in params for shape in _cell_weights(cell)
    )


def quantized_rnn_cell_dynamic(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """quantized::quantized_lstm_cell_dynamic/gru/rnn_relu/rnn_tanh(input (B, in), hx,
    w_ih packed (G*H, in), w_hh packed (G*H, H), ...): the float cell's B*G*H*(in + H) MACs."""
    weights = [_unpacked_weight(w) for w in inputs[2:4]]
    return _numel(inputs[0][:-1]) * _weight_macs(weights)


# --------------------------------------------------------------------------------------------
# backward (training steps; see "Backward" in the module docstring)


def _mask(value: Any, index: int) -> bool:
    """``output_mask[index]``; a mask that is missing means every gradient is computed."""
    if isinstance(value, (list, tuple)) and index < len(value):
        return bool(value[index])
    return True


def convolution_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """convolution_backward(grad_output, input, weight, bias_sizes, stride, padding, dilation,
    transposed, output_padding, groups, output_mask): forward MACs x (output_mask[0] +
    output_mask[1]), since the input gradient is a transposed convolution and the weight
    gradient a correlation of input and grad_output, each with the forward's MACs; the bias
    gradient is a sum (elementwise)."""
    grad_output, x, w = inputs[0], inputs[1], inputs[2]
    mask = _arg(inputs, 10)
    forward = _conv_macs(x, w, grad_output, bool(_arg(inputs, 7, False)))
    return forward * (int(_mask(mask, 0)) + int(_mask(mask, 1)))


def scaled_dot_product_attention_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_scaled_dot_product_*_attention_backward(grad_out, q (B, H, L, E), k (B, Hkv, S, E),
    v (B, Hkv, S, Ev), ...): 2 x forward = 2*B*H*L*S*(E + Ev), the four gradient matmuls dV,
    dP (L*S*Ev each), dQ, dK (L*S*E each); the kernel's recomputation of Q K^T is not
    counted, causal masks count the full product (module docstring)."""
    return 2 * _attention_macs(inputs[1], inputs[2], inputs[3])


def flash_attention_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_flash_attention_backward/_efficient_attention_backward(grad_out, q (B, L, H, E),
    k (B, S, Hkv, E), v (B, S, Hkv, Ev), ..., cu_seqlens_q, cu_seqlens_k, max_q, max_k, ...):
    2 x the forward's B*H*L*S*(E + Ev) for dQ, dK, dV and dP; the sequence-major layout and
    packed sequences are read as in the forward."""
    q, k, v = inputs[1], inputs[2], inputs[3]
    cu_seqlens, max_q, max_k = _arg(inputs, 6), _arg(inputs, 8), _arg(inputs, 9)
    return 2 * _varlen_attention_macs(q, k, v, cu_seqlens, max_q, max_k)


def mkldnn_rnn_layer_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """mkldnn_rnn_layer_backward(input (T, B, in), w_ih (G*H, in), w_hh (G*H, H), ...):
    2 x forward = 2*T*B*G*H*(in + H), per weight one product for its input's gradient
    (W^T dgates) and one for its own (dgates x^T)."""
    return 2 * _numel(inputs[0][:-1]) * _weight_macs(inputs[1:3])


def layer_norm_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """native_layer_norm_backward(grad_out, input, normalized_shape, mean, rstd, weight, bias,
    output_mask): the forward's numel*(5 affine, 4 not), the same number as the forward."""
    return _numel(inputs[1]) * _affine_factor(_arg(inputs, 5), 5, 4)


def batch_norm_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """native_batch_norm_backward/batch_norm_backward(grad_out, input, weight, running_mean,
    running_var, save_mean, save_invstd, train, eps, output_mask, ...): the forward's rule,
    numel*(5 affine, 4 not) with batch statistics, numel*(2, 1) with running ones."""
    return _batch_norm_macs(inputs[1], inputs[2], bool(_arg(inputs, 7, True)))


def group_norm_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """native_group_norm_backward(grad_out, input, mean, rstd, weight, N, C, HxW, group,
    output_mask): the forward's numel*(5 affine, 4 not)."""
    return _numel(inputs[1]) * _affine_factor(inputs[4], 5, 4)


def cdist_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_cdist_backward(grad (..., P, R), x1 (..., P, M), x2, p, cdist): the gradient of x1, one
    product per coordinate of every pair, the forward's batch*P*R*M (one call per operand that
    needs a gradient)."""
    return _numel(inputs[0]) * inputs[1][-1]


def pdist_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_pdist_backward(grad, self (N, M), p, pdist): the forward's N*(N-1)/2*M."""
    return pdist(inputs[1:], outputs)


def affine_grid_generator_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """affine_grid_generator_backward(grad (N, H, W, 2), size, align_corners): the gradient of
    theta, a product of the same size as the forward, numel(grad)*(3 in 2-D, 4 in 3-D)."""
    return _numel(inputs[0]) * (inputs[0][-1] + 1)


def conv_tbc_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """conv_tbc_backward(grad (T', B, Cout), input, weight (K, Cin, Cout), bias, pad): input and
    weight gradients, each the forward's numel(grad)*K*Cin."""
    kernel, in_channels = inputs[2][0], inputs[2][1]
    return 2 * _numel(inputs[0]) * kernel * in_channels


def rms_norm_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_fused_rms_norm_backward(grad_out, input, normalized_shape, rstd, weight, output_mask):
    the forward's numel*(3 with a weight, 2 without)."""
    return _numel(inputs[1]) * _affine_factor(_arg(inputs, 4), 3, 2)


def adaptive_avg_pool2d_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """_adaptive_avg_pool2d_backward(grad_output, self): the forward's one MAC per element of
    the forward's input ``self``."""
    return _numel(inputs[1])


def upsample_nearest2d_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """upsample_nearest2d_backward/_upsample_nearest_exact2d_backward(grad_output, output_size,
    input_size, ...): the forward's one MAC per element of its output, grad_output's shape."""
    return _numel(inputs[0])


def upsample_bilinear2d_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """upsample_bilinear2d_backward(grad_output, output_size, input_size, align_corners, ...):
    the forward's 4 MACs per output element (each tap's gradient), grad_output's shape."""
    return 4 * _numel(inputs[0])


def grid_sampler_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> int:
    """grid_sampler_2d_backward(grad_output, input, grid, ...): the forward's 4 MACs per output
    element, grad_output's shape."""
    return 4 * _numel(inputs[0])


# --------------------------------------------------------------------------------------------
# fvcore adapter


def fvcore_handle(formula: Formula) -> FvcoreHandle:
    """Wrap ``formula`` as an fvcore op handle: JIT values become shapes and plain values."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return int(formula([_jit_value(v) for v in inputs], [_jit_value(v) for v in outputs]))

    handle.__name__ = getattr(formula, "__name__", "formula")
    handle.__doc__ = formula.__doc__
    handle.__wrapped__ = formula  # type: ignore[attr-defined]
    return handle


def _jit_value(value: Any) -> Any:
    """A ``torch._C.Value`` as a formula sees it: complete tensors as shape tuples, lists built
    in the graph (``prim::ListConstruct``) element by element, constants as their value, and
    anything known only at run time (or a tensor of unknown shape) as None."""
    import torch  # already imported by the tracer calling this; a cheap lookup

    if value.isCompleteTensor():
        return tuple(int(size) for size in value.type().sizes())
    node = value.node()
    if node.kind() == "prim::ListConstruct":
        return [_jit_value(item) for item in node.inputs()]
    try:
        constant = value.toIValue()
    except Exception:  # values computed at run time raise, depending on their type
        return None
    if isinstance(constant, torch.Tensor):
        return tuple(int(size) for size in constant.shape)
    return constant


# --------------------------------------------------------------------------------------------
# registry

_BUILTIN: dict[Formula, tuple[str, ...]] = {
    addmm: ("addmm", "addmm_"),
    addmm_activation: ("_addmm_activation",),
    mm: ("mm", "_int_mm", "_scaled_mm"),
    bmm: ("bmm",),
    baddbmm: ("baddbmm", "baddbmm_"),
    addbmm: ("addbmm", "addbmm_"),
    matmul: ("matmul",),
    mv: ("mv",),
    addmv: ("addmv", "addmv_"),
    dot: ("dot", "vdot"),
    linalg_vecdot: ("linalg_vecdot",),
    linear: ("linear", "mkldnn_linear"),
    bilinear: ("bilinear",),
    trilinear: ("_trilinear",),
    tensordot: ("tensordot",),
    inner: ("inner",),
    multi_dot: ("linalg_multi_dot", "chain_matmul"),
    cdist: ("cdist", "_cdist_forward"),
    pdist: ("pdist", "_pdist_forward"),
    affine_grid_generator: ("affine_grid_generator",),
    conv_tbc: ("conv_tbc",),
    einsum: ("einsum",),
    convolution: ("convolution", "_convolution"),
    conv: ("conv1d", "conv2d", "conv3d"),
    conv_transpose: ("conv_transpose1d", "conv_transpose2d", "conv_transpose3d"),
    batch_norm: ("batch_norm", "native_batch_norm"),
    batch_norm_no_training: ("_native_batch_norm_legit_no_training",),
    batch_norm_legit: ("_native_batch_norm_legit",),
    group_norm: ("group_norm",),
    native_group_norm: ("native_group_norm",),
    layer_norm: ("layer_norm", "native_layer_norm"),
    rms_norm: ("rms_norm", "_fused_rms_norm"),
    instance_norm: ("instance_norm",),
    upsample_nearest2d: ("upsample_nearest2d", "_upsample_nearest_exact2d"),
    upsample_bilinear2d: ("upsample_bilinear2d",),
    adaptive_avg_pool2d: ("adaptive_avg_pool2d", "_adaptive_avg_pool2d"),
    grid_sampler: ("grid_sampler", "grid_sampler_2d"),
    scaled_dot_product_attention: (
        "scaled_dot_product_attention",
        "_scaled_dot_product_attention_math",
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_cudnn_attention",
        "_scaled_dot_product_fused_attention_overrideable",
    ),
    flash_attention_forward: ("_flash_attention_forward",),
    efficient_attention_forward: ("_efficient_attention_forward",),
    native_multi_head_attention: ("_native_multi_head_attention",),
    transformer_encoder_layer_fwd: ("_transformer_encoder_layer_fwd",),
    rnn: ("lstm", "gru", "rnn_tanh", "rnn_relu"),
    rnn_cell: (
        "lstm_cell",
        "gru_cell",
        "rnn_tanh_cell",
        "rnn_relu_cell",
        "quantized_lstm_cell",
        "quantized_gru_cell",
        "quantized_rnn_tanh_cell",
        "quantized_rnn_relu_cell",
    ),
    mkldnn_rnn_layer: ("mkldnn_rnn_layer",),
    quantized_rnn: ("quantized_lstm", "quantized_gru"),
    quantized_batch_norm: ("quantized_batch_norm",),
    convolution_backward: ("convolution_backward",),
    scaled_dot_product_attention_backward: (
        "_scaled_dot_product_flash_attention_for_cpu_backward",
        "_scaled_dot_product_flash_attention_backward",
        "_scaled_dot_product_efficient_attention_backward",
        "_scaled_dot_product_cudnn_attention_backward",
        "_scaled_dot_product_fused_attention_overrideable_backward",
    ),
    flash_attention_backward: ("_flash_attention_backward", "_efficient_attention_backward"),
    mkldnn_rnn_layer_backward: ("mkldnn_rnn_layer_backward",),
    layer_norm_backward: ("native_layer_norm_backward",),
    batch_norm_backward: ("native_batch_norm_backward", "batch_norm_backward"),
    group_norm_backward: ("native_group_norm_backward",),
    rms_norm_backward: ("_fused_rms_norm_backward",),
    cdist_backward: ("_cdist_backward",),
    pdist_backward: ("_pdist_backward",),
    affine_grid_generator_backward: ("affine_grid_generator_backward",),
    conv_tbc_backward: ("conv_tbc_backward",),
    adaptive_avg_pool2d_backward: ("_adaptive_avg_pool2d_backward",),
    upsample_nearest2d_backward: (
        "upsample_nearest2d_backward",
        "_upsample_nearest_exact2d_backward",
    ),
    upsample_bilinear2d_backward: ("upsample_bilinear2d_backward",),
    grid_sampler_backward: ("grid_sampler_2d_backward",),
}

_QUANTIZED: dict[Formula, tuple[str, ...]] = {
    quantized_linear: (
        "linear",
        "linear_relu",
        "linear_leaky_relu",
        "linear_tanh",
        "linear_dynamic",
        "linear_relu_dynamic",
        "linear_dynamic_fp16",
        "linear_relu_dynamic_fp16",
        "linear_dynamic_fp16_unpacked_weight",
        "linear_with_input_q_dq_qweight_dq_output_fp32",
        "linear_with_input_q_dq_qweight_dq_relu_output_fp32",
    ),
    quantized_conv: (
        "conv1d",
        "conv2d",
        "conv3d",
        "conv1d_relu",
        "conv2d_relu",
        "conv3d_relu",
        "conv2d_add",
        "conv2d_add_relu",
        "conv1d_dynamic",
        "conv2d_dynamic",
        "conv3d_dynamic",
    ),
    quantized_conv_transpose: (
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "conv_transpose1d_dynamic",
        "conv_transpose2d_dynamic",
        "conv_transpose3d_dynamic",
    ),
    quantized_matmul: ("matmul",),
    quantized_batch_norm: (
        "batch_norm",
        "batch_norm_relu",
        "batch_norm1d",
        "batch_norm1d_relu",
        "batch_norm2d",
        "batch_norm2d_relu",
        "batch_norm3d",
        "batch_norm3d_relu",
    ),
    layer_norm: ("layer_norm",),
    group_norm: ("group_norm",),
    instance_norm: ("instance_norm",),
    quantized_rnn_cell_dynamic: (
        "quantized_lstm_cell_dynamic",
        "quantized_gru_cell_dynamic",
        "quantized_rnn_relu_cell_dynamic",
        "quantized_rnn_tanh_cell_dynamic",
    ),
}

_HIGHER_ORDER: dict[Formula, tuple[str, ...]] = {
    flex_attention: ("flex_attention",),
    flex_attention_backward: ("flex_attention_backward",),
}

for _namespace, _table in (
    ("aten", _BUILTIN),
    ("quantized", _QUANTIZED),
    ("higher_order", _HIGHER_ORDER),
):
    for _formula, _names in _table.items():
        for _name in _names:
            register_formula(f"{_namespace}::{_name}", _formula)
del _namespace, _table, _formula, _names, _name
_USER_REGISTERED.clear()  # the built-ins above are not users' formulas
