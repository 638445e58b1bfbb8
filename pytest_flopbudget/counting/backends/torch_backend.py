"""The torch backend: ATen ops seen at the dispatcher, counted with :mod:`..formulas`.

No JIT trace: the model runs eagerly under a ``TorchDispatchMode`` that sees every ATen op,
so it works on fake and meta tensors (see :mod:`..fakes`), takes any output structure
(dicts, dataclasses, ``ModelOutput``, cache objects) and can follow ``backward()``.

Which level is counted. An op with a formula is counted once and run with the mode
suspended, so the ops it is made of are never seen (no double counting). An op without a
formula that is a composite (``CompositeImplicitAutograd``) is decomposed under the mode and
its parts are looked at instead. Anything else is *uncounted* and goes through
:func:`..op_policy.split_uncounted`: ignored by convention, or unknown (never a silent 0).

Forward-only counts run below the autograd dispatch keys when the caller disabled grad (the
default in :func:`..counter.count_model`). Autograd then does not decompose composite ops
before the mode sees them, so ``linear``, ``matmul``, ``batch_norm``, ``layer_norm``,
``lstm``, ``adaptive_avg_pool2d`` ... arrive whole, which is the level fvcore's trace counts
at: both backends apply the same formula to the same op, and switching backends does not
move a budget. With grad enabled (``grad=True`` or a training step) autograd decomposes them
first and the dispatcher-level ops (``addmm``, ``native_layer_norm``, ...) are counted.

Module attribution (``by_module_macs``): forward hooks on the model's own modules keep the set
of running module paths, named exactly as ``model.named_modules()`` names them; each op's MACs
go to every running module (inclusive counts). ``""`` holds the total. In a training step a
backward op is attributed to the module calls whose forward created the autograd node it runs
in (autograd sequence numbers, see :class:`_Tally`). Backward work outside any module (the
loss reduction) is only in the total.

Training steps: :data:`count_training_step_with_torch` (``count_with_torch(..., train=True)``)
has the registry signature, for a ``mode = "train"`` entry. Backward kernels are counted with
formulas under their own names (``aten::convolution_backward``, ...); those without one are
listed as uncounted like any other op.

Limits: a module's work is attributed only when it is called (``module(x)``, not
``module.forward(x)``), as with fvcore; a module registered under two paths is reported under
the first, as ``named_modules()`` does. Higher-order ops are seen whole: ``flex_attention``
and its backward have formulas, any other (``torch.cond``, ``while_loop``, compiled regions)
runs and is listed as unknown under ``higher_order::<name>``.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.autograd import _get_sequence_nr
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from ..count import RawCount
from ..formulas import PYTHON_OP, Formula, lookup, python_op_formulas
from ..inputs import InputError, output_tensors
from ..memory import MemoryTracker
from ..op_conventions import counts_under, dense_part
from ..op_policy import is_ignored, split_uncounted
from . import fill_containers

_METADATA_QUERIES = frozenset(
    {
        "aten::size",
        "aten::sym_size",
        "aten::stride",
        "aten::sym_stride",
        "aten::numel",
        "aten::sym_numel",
        "aten::dim",
        "aten::storage_offset",
        "aten::sym_storage_offset",
        "aten::is_contiguous",
        "aten::sym_is_contiguous",
        "aten::is_strides_like_format",
        "aten::is_non_overlapping_and_dense",
        "prim::layout",
        "prim::device",
    }
)
"""Questions about a tensor's metadata, not work. Only tensor subclasses route them through the
dispatcher; fvcore's trace never shows them, so they are neither counted nor listed."""


class FormulaError(RuntimeError):
    """A formula failed on an op's arguments; the message names the op and the shapes."""


def count_with_torch(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    train: bool = False,
    ops: str = "fvcore",
    memory: bool = False,
    optimizer: str | None = None,
) -> RawCount:
    """Count ``model(*args, **kwargs)``; with ``train=True`` a whole training step.

    This is the registry's ``(model, args, kwargs)`` backend. Fake inputs are counted under
    the fake mode they were made in (:func:`..fakes.counting_context` checks they are not
    mixed with real tensors first). ``ops`` is the convention of :mod:`..op_conventions`.
    ``memory`` also measures bytes moved and peak memory (:mod:`..memory`), with the state
    of ``optimizer`` in a training step.
    """
    from ..fakes import counting_context

    with counting_context(model, args, kwargs):
        tracker = (
            MemoryTracker(model, args, kwargs, train=train, optimizer=optimizer) if memory else None
        )
        if train:
            return _count_training_step(model, args, kwargs, ops, tracker)
        return _count_forward(model, args, kwargs, ops, tracker)


count_training_step_with_torch = functools.partial(count_with_torch, train=True)
"""``(model, args, kwargs) -> RawCount`` for one training step: forward plus backward."""


def _count_forward(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ops: str = "fvcore",
    tracker: MemoryTracker | None = None,
) -> RawCount:
    tally = _Tally(model, tracker)
    mode = _CountingMode(tally, ops)
    with (
        _composites_whole(),
        _eager_flex_attention(),
        _ModuleScopes(model, tally),
        _WholeWithGrad(tally, ops),
        _python_ops(mode),
        tracker.tracking() if tracker is not None else contextlib.nullcontext(),
        mode,
    ):
        outputs = model(*args, **kwargs)
    del outputs  # freed only after the pass (the peak includes them)
    return tally.result()


@contextlib.contextmanager
def _eager_flex_attention() -> Iterator[None]:
    """Eager ``flex_attention`` wraps its higher-order op in ``torch.compile``, which refuses to
    run under a dispatch mode; torch's debug switch calls the op directly instead (the same
    unfused computation), so the mode sees it. Only a model that imported it can call it."""
    module = sys.modules.get("torch.nn.attention.flex_attention")
    flag = "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG"
    if module is None or not hasattr(module, flag):
        yield
        return
    saved = getattr(module, flag)
    setattr(module, flag, True)
    try:
        yield
    finally:
        setattr(module, flag, saved)


def _composites_whole() -> contextlib.AbstractContextManager[Any]:
    """Without grad, let composite ops reach the mode before autograd decomposes them.

    Skipping the autograd dispatch keys is what ``inference_mode`` does too, but it would
    leave inference tensors behind (a cache a model builds lazily in its first forward) that
    break the user's later training step; below autograd, new tensors are ordinary ones. With
    grad enabled the keys must stay: the caller wants the forward to be differentiable.
    """
    below_autograd = getattr(torch._C, "_AutoDispatchBelowAutograd", None)
    if torch.is_grad_enabled() or below_autograd is None:
        return contextlib.nullcontext()
    return below_autograd()


def _whole_functions() -> dict[Callable[..., Any], tuple[str, tuple[str, ...]]]:
    """Composites that autograd decomposes into ops the convention ignores, so that with grad
    enabled they would count 0 (or, for 1-d pooling, more than fvcore's 0): function ->
    (formula name, or an ignored op's name, and parameter names in schema order).
    ``AdaptiveAvgPool2d(1)`` becomes a ``mean``, ``nn.RMSNorm`` ``pow``/``mean``/``rsqrt``/``mul``.
    """
    import torch.nn.functional as F

    pool = ("aten::adaptive_avg_pool2d", ("input", "output_size"))
    rms = ("aten::rms_norm", ("input", "normalized_shape", "weight", "eps"))
    ignored = ("aten::adaptive_avg_pool1d", ("input", "output_size"))  # fvcore's 0, not 2d's
    return {
        torch.adaptive_avg_pool1d: ignored,
        F.adaptive_avg_pool2d: pool,
        torch._C._nn.adaptive_avg_pool2d: pool,
        F.rms_norm: rms,
        torch.rms_norm: rms,
    }


class _WholeWithGrad(TorchFunctionMode):
    """With grad enabled, count the composites of :func:`_whole_functions` whole, as without.

    The call is counted with the op's formula at the torch-function level; the ATen ops it runs
    are its parts and are neither counted nor listed, in the forward (``tally.quiet``) and in
    the backward (autograd nodes the call created, ``tally.quiet_nodes``). Its backward counts
    the forward's number, the rule for per-element estimates (``rms_norm_backward``,
    ``_adaptive_avg_pool2d_backward``), once the output's gradient arrives. So a train-mode
    forward counts what inference counts and the backward what the whole op's backward would.
    """

    def __init__(self, tally: _Tally, ops: str = "fvcore") -> None:
        super().__init__()
        self._tally = tally
        self._ops = ops
        self._functions = _whole_functions()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        entry = self._functions.get(func)
        if entry is None or not torch.is_grad_enabled():
            return func(*args, **kwargs)
        name, parameters = entry
        start = _get_sequence_nr()
        self._tally.quiet += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self._tally.quiet -= 1
        end = _get_sequence_nr()
        values = [*args, *(kwargs[p] for p in parameters[len(args) :] if p in kwargs)]
        inputs = [as_shapes(value) for value in values]
        formula = lookup(name)
        if formula is not None and not counts_under(self._ops, name):
            self._tally.left_out[name] += 1
            formula = None
        macs = int(formula(inputs, output_shapes(out))) if formula is not None else 0
        self._tally.add(macs)
        if end > start and isinstance(out, torch.Tensor) and out.requires_grad:
            self._tally.quiet_nodes.append((start, end))
            out.register_hook(functools.partial(self._backward, macs))
        return out

    def _backward(self, macs: int, grad: torch.Tensor) -> None:
        self._tally.add(macs)


def _count_training_step(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    ops: str = "fvcore",
    tracker: MemoryTracker | None = None,
) -> RawCount:
    """Forward in training mode with grad, a scalar from the outputs, backward.

    Modules are switched to ``train()`` as a training loop would (BatchNorm uses batch
    statistics, dropout is active) and switched back afterwards. Inputs are taken as given: an
    input that does not require grad gets no gradient, as in a real step, so the first layer's
    gradient with respect to its input is not computed and not counted. Frozen parameters
    (``requires_grad=False``) get no weight gradient either. The optimizer update is not part
    of the step (elementwise, ignored by convention anyway).
    """
    tally = _Tally(model, tracker)
    leaves = [*model.parameters(), *_leaf_inputs(args, kwargs)]
    mode = _CountingMode(tally, ops)
    with (
        _training_flags(model),
        _gradients_left_as_found(leaves),
        torch.enable_grad(),
        _eager_flex_attention(),
        _ModuleScopes(model, tally),
        _WholeWithGrad(tally, ops),
        _python_ops(mode),
        tracker.tracking() if tracker is not None else contextlib.nullcontext(),
        mode,
    ):
        outputs = model(*args, **kwargs)
        loss = _scalar_loss(outputs)
        del outputs  # a training loop keeps only the loss
        loss.backward()
        if tracker is not None:
            tracker.backward_done()
    return tally.result()


def _scalar_loss(outputs: object) -> torch.Tensor:
    """Sum of every floating output that carries a gradient: each gets a gradient of ones.

    A real loss differs from this one only by elementwise ops (ignored by convention); every
    matmul and convolution of the backward runs as it would under the real loss. Outputs that
    feed no loss in practice (a KV cache) only add gradient additions.
    """
    tensors = [
        tensor
        for tensor in output_tensors(outputs)
        if tensor.is_floating_point() and tensor.requires_grad
    ]
    if not tensors:
        raise InputError(
            "train mode needs an output that requires grad; none of the model's floating "
            "outputs does (are all parameters frozen?)"
        )
    return functools.reduce(torch.add, (tensor.sum() for tensor in tensors))


def _leaf_inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    return [
        tensor
        for tensor in output_tensors((args, kwargs))
        if tensor.requires_grad and tensor.is_leaf
    ]


@contextlib.contextmanager
def _gradients_left_as_found(leaves: list[torch.Tensor]) -> Iterator[None]:
    """The step's gradients must neither add into nor stay on the user's ``.grad``."""
    saved = [(leaf, leaf.grad) for leaf in leaves]
    for leaf, _ in saved:
        leaf.grad = None
    try:
        yield
    finally:
        for leaf, grad in saved:
            leaf.grad = grad


@contextlib.contextmanager
def _training_flags(model: torch.nn.Module) -> Iterator[None]:
    flags = {module: module.training for module in model.modules()}
    model.train()
    try:
        yield
    finally:
        for module, training in flags.items():
            module.training = training


class _Tally:
    """Running totals of one count. Lives for one call, so no state outlives a count.

    ``running`` holds the paths of the model's modules whose forward is running now.
    ``calls`` holds, per finished module call, the range of autograd sequence numbers its
    forward created: a backward op runs inside one autograd node, and the node's sequence
    number says which module calls created it. That attributes backward work to exactly the
    modules whose forward it differentiates.
    """

    def __init__(self, model: torch.nn.Module, memory: MemoryTracker | None = None) -> None:
        self.memory = memory
        self.total = 0
        self.by_module: dict[str, int] = {path: 0 for path, _ in model.named_modules()}
        self.uncounted: Counter[str] = Counter()
        self.left_out: Counter[str] = Counter()
        self.running: Counter[str] = Counter()
        self.calls: list[tuple[int, int, str]] = []
        self._node_paths: dict[int, list[str]] = {}
        self.quiet = 0
        self.quiet_nodes: list[tuple[int, int]] = []

    def is_quiet(self) -> bool:
        """Inside a composite counted whole (:class:`_WholeWithGrad`): its forward, or the
        backward of an autograd node it created."""
        if self.quiet:
            return True
        if not self.quiet_nodes:
            return False
        node = _current_autograd_node()
        if node is None:
            return False
        sequence_nr = node._sequence_nr()
        return any(start <= sequence_nr < end for start, end in self.quiet_nodes)

    def add(self, macs: int) -> None:
        if self.memory is not None:
            self.memory.add_macs(macs)
        self.total += macs
        for path in self._current_paths():
            self.by_module[path] += macs

    def _current_paths(self) -> list[str]:
        node = _current_autograd_node()
        if node is None:
            return [path for path, depth in self.running.items() if depth > 0]
        sequence_nr = node._sequence_nr()
        if sequence_nr not in self._node_paths:
            self._node_paths[sequence_nr] = list(
                {path for start, end, path in self.calls if start <= sequence_nr < end}
            )
        return self._node_paths[sequence_nr]

    def result(self) -> RawCount:
        by_module = fill_containers(self.by_module)
        by_module[""] = self.total
        unknown, ignored = split_uncounted(self.uncounted)
        ignored.update(self.left_out)
        return RawCount(
            macs=self.total,
            by_module_macs=by_module,
            unknown_ops=unknown,
            ignored_ops=ignored,
            memory=self.memory.result() if self.memory is not None else None,
        )


def _current_autograd_node() -> Any:
    """The autograd node executing now, None outside backward (or on a torch without the API,
    where backward work is then only in the total)."""
    current = getattr(torch._C, "_current_autograd_node", None)
    return current() if current is not None else None


class _CountingMode(TorchDispatchMode):
    """Sees each ATen op once: counts it with its formula, decomposes it, or lists it.

    Higher-order ops (``flex_attention``, ``cond``, ...) come here too, under the name
    ``higher_order::<name>``: counted when a formula has that name, else run and listed as
    unknown (their body runs without the mode, so nothing inside them is seen).

    An op with a formula that the ``ops`` convention leaves out runs whole and adds 0 (it is
    not decomposed: its parts are the elementwise work the formula stood for).
    """

    supports_higher_order_operators = True

    def __init__(self, tally: _Tally, ops: str = "fvcore") -> None:
        super().__init__()
        self._tally = tally
        self._ops = ops
        self.paused = False

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if isinstance(func, torch._ops.HigherOrderOperator):
            return self._higher_order(func, args, kwargs)
        if self.paused or self._tally.is_quiet():  # inside a Python op counted whole
            return self._run(func, args, kwargs)
        name = func._schema.name
        formula = lookup(name)
        if formula is None:
            if name not in _METADATA_QUERIES:
                if not is_ignored(name):  # an ignored op's parts must not count either
                    with self:
                        decomposed = func.decompose(*args, **kwargs)
                    if decomposed is not NotImplemented:
                        return decomposed
                self._tally.uncounted[name] += 1
            return self._run(func, args, kwargs)
        if not counts_under(self._ops, name):
            self._tally.left_out[name] += 1
            return self._run(func, args, kwargs)
        if self._ops != "fvcore":
            formula = dense_part(name, formula)
        out = self._run(func, args, kwargs)
        inputs = schema_inputs(func, args, kwargs)
        outputs = output_shapes(out)
        try:
            macs = int(formula(inputs, outputs))
        except Exception as error:
            raise FormulaError(f"the formula for {name} failed on {inputs!r}: {error}") from error
        self._tally.add(macs)
        return out

    def _run(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        """Run an op, and show it to the memory tracker (here, not in a mode of its own: a
        second Python mode would add its dispatch cost to every op)."""
        out = func(*args, **kwargs)
        if self._tally.memory is not None:
            self._tally.memory.observe(func, args, kwargs, out)
        return out

    def _higher_order(
        self, func: torch._ops.HigherOrderOperator, args: Sequence[Any], kwargs: dict[str, Any]
    ) -> Any:
        name = f"higher_order::{func.name()}"
        formula = lookup(name)
        out = self._run(func, args, kwargs)
        if formula is not None and not counts_under(self._ops, name):
            self._tally.left_out[name] += 1
            return out
        if formula is None:
            self._tally.uncounted[name] += 1
            return out
        inputs = [as_shapes(value) for value in (*args, *kwargs.values())]
        try:
            macs = int(formula(inputs, output_shapes(out)))
        except Exception as error:
            raise FormulaError(f"the formula for {name} failed on {inputs!r}: {error}") from error
        self._tally.add(macs)
        return out


@contextlib.contextmanager
def _python_ops(mode: _CountingMode) -> Iterator[None]:
    """Count custom autograd Functions that have a registered formula with that formula.

    The dispatcher sees only the ops inside a Function; while counting, ``apply`` of every
    Function class named in a ``prim::PythonOp.<Name>`` formula counts the call with the
    formula and pauses the mode for the ops inside, as fvcore's trace does. Nothing is wrapped
    when no such formula is registered (the usual case).
    """
    formulas = python_op_formulas()
    patched: list[tuple[type, Any]] = []
    if formulas:
        for cls in _function_classes():
            formula = formulas.get(cls.__name__)
            if formula is not None:
                patched.append((cls, cls.__dict__.get("apply")))
                setattr(cls, "apply", _counted_apply(cls, formula, mode))  # noqa: B010
    try:
        yield
    finally:
        for cls, original in reversed(patched):
            if original is None:
                delattr(cls, "apply")
            else:
                setattr(cls, "apply", original)  # noqa: B010


def _function_classes() -> list[type]:
    found: list[type] = []
    pending: list[type] = [torch.autograd.Function]
    while pending:
        cls = pending.pop()
        sub: type
        for sub in cls.__subclasses__():
            if sub not in found:
                found.append(sub)
                pending.append(sub)
    return found


def _counted_apply(cls: type, formula: Formula, mode: _CountingMode) -> Callable[..., Any]:
    original = cls.apply  # type: ignore[attr-defined]
    op = PYTHON_OP + cls.__name__

    def apply(*args: Any, **kwargs: Any) -> Any:
        if mode.paused:
            return original(*args, **kwargs)
        mode.paused = True
        try:
            out = original(*args, **kwargs)
        finally:
            mode.paused = False
        inputs = [as_shapes(arg) for arg in (*args, *kwargs.values()) if torch.is_tensor(arg)]
        results = out if isinstance(out, (tuple, list)) else (out,)
        outputs = [as_shapes(result) for result in results if torch.is_tensor(result)]
        try:
            macs = int(formula(inputs, outputs))
        except Exception as error:
            raise FormulaError(f"the formula for {op} failed on {inputs!r}: {error}") from error
        mode._tally.add(macs)
        return out

    return apply


def schema_inputs(
    func: torch._ops.OpOverload, args: Sequence[Any], kwargs: dict[str, Any]
) -> list[Any]:
    """The op's arguments in schema order (keywords and defaults filled in), tensors as shapes.

    This is the formula interface of :mod:`..formulas`, the same order fvcore's trace uses.
    """
    values: list[Any] = []
    for index, argument in enumerate(func._schema.arguments):
        if not argument.kwarg_only and index < len(args):
            value = args[index]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        elif argument.has_default_value():
            value = argument.default_value
        else:
            value = None
        values.append(as_shapes(value))
    return values


def output_shapes(out: Any) -> list[Any]:
    """The op's results in schema order, tensors as shapes."""
    if isinstance(out, (tuple, list)):
        return [as_shapes(value) for value in out]
    return [as_shapes(out)]


def as_shapes(value: Any) -> Any:
    """A tensor becomes its shape (a tuple of ints); lists of tensors become lists of shapes."""
    if isinstance(value, torch.Tensor):
        return tuple(int(size) for size in value.shape)
    if isinstance(value, (tuple, list)):
        return type(value)(as_shapes(item) for item in value)
    return value


class _ModuleScopes:
    """Keeps ``tally.running`` and ``tally.calls`` with hooks on the model's own modules.

    Hooks on each module of the model rather than global ones, so other models and threads
    are untouched; every hook is removed on exit.
    """

    def __init__(self, model: torch.nn.Module, tally: _Tally) -> None:
        self._paths = {module: path for path, module in model.named_modules()}
        self._tally = tally
        self._starts: list[int] = []
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> _ModuleScopes:
        for module, path in self._paths.items():
            if isinstance(module, torch.jit.ScriptModule):
                continue  # no hooks on them: their work goes to the module that called them
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(path)))
            self._handles.append(module.register_forward_hook(self._post_hook(path)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._tally.running.clear()

    def _pre_hook(self, path: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._tally.running[path] += 1
            self._starts.append(_get_sequence_nr())

        return hook

    def _post_hook(self, path: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            self._tally.running[path] -= 1
            start = self._starts.pop()
            end = _get_sequence_nr()
            if end > start:
                self._tally.calls.append((start, end, path))

        return hook
