"""Bytes moved and peak memory of a counted pass: one job, tracking bytes and live storage.

A :class:`MemoryTracker` watches the ops of the pass that counts FLOPs, on real and on fake
tensors alike (fake tensors have storages with sizes but no data, so an abstract model's
memory is estimated without running anything): on the torch backend, the counting dispatch
mode shows it every ATen op it runs (:meth:`MemoryTracker.observe`; a composite counted whole
arrives whole, a decomposed one as its parts); on the fvcore backend through a ``TorchFunctionMode``
while the JIT trace runs the model (under a dispatch mode the tracer would not record some
ops, convolutions among them). Both see the same ops for ordinary models, and the tests hold
them to the same numbers.

Conventions (what the count's fields mean):

* **Bytes moved** by an op: the bytes of the tensors it reads plus the tensors it writes, each
  in its own dtype (``numel * element_size``; a tensor passed twice is read once). View and
  metadata ops (``view``, ``reshape`` that needs no copy, ``transpose``, ``expand``,
  slicing, ``detach``, ...) move nothing, nor do ops that return no tensor.
  ``bytes_by_module`` attributes an op's bytes to every module whose forward is running (a
  parent includes its children, like ``by_module``; in a training step a backward op goes to
  the modules whose forward it differentiates); ``bytes_by_dtype`` splits the total by dtype.
* **Peak memory**: the most bytes live at once during the counted pass. Live means a storage
  something still references: parameters and buffers, the inputs, every activation until its
  last reference goes (views share their base's storage; a storage counts once, at its full
  size), and in ``mode = "train"`` the activations autograd saved for the backward and the
  gradients: the tracker follows storages through the backward, so a training step needs no
  separate model of them. With an ``optimizer``, its state is live throughout (a
  steady-state step, after the first) and its update's temporaries after the backward (see
  :data:`OPTIMIZERS`). While a convolution runs on CPU, a copy of what it reads is live too
  (oneDNN's blocked layout; docs/memory.md). Not included: the allocator's caching and
  fragmentation, other kernels' workspaces, the framework's own memory, Python objects. A
  JIT trace keeps some results alive to its end; on the fvcore backend those end at their
  last use, as in an eager run.
* ``peak_by_module``: the bytes live at the peak by the module that holds them (its
  parameters, buffers, gradients, optimizer state and update temporaries; the module whose
  forward produced an activation, or whose backward produced a gradient), inclusive like
  ``by_module``. What the root's own forward made and the inputs are in ``peak_memory`` only.
* ``op_costs``: ``(macs, bytes)`` per op, grouped by equal pairs, for a roofline. On the fvcore
  backend the ops with a formula are priced from the trace's typed values and the other ops'
  bytes are one zero-MAC entry (a zero-MAC op's roofline time is linear in its bytes, so
  grouping them changes nothing).
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch.autograd import _get_sequence_nr
from torch.overrides import TorchFunctionMode
from torch.utils.hooks import RemovableHandle

from .count import OPTIMIZER_NAMES, MemoryCount, OpCost

OPTIMIZERS: dict[str, tuple[int, bool, int, int]] = {
    "sgd": (0, False, 0, 0),
    "sgd_momentum": (1, False, 0, 0),
    "adam": (2, True, 1, 2),
    "adamw": (2, True, 1, 2),
    "adagrad": (1, True, 2, 1),
    "rmsprop": (1, True, 1, 1),
}
"""Optimizer -> (state tensors per parameter, in the parameter's dtype as ``torch.optim`` makes
them with ``zeros_like``; whether each parameter also keeps a float32 ``step`` scalar; the
step's temporaries in parameter-sized lists with the foreach implementation, the default on
CUDA-like devices (Adam's ``_foreach_sqrt`` of its second moment, Adagrad's square root and
scaled gradient); the same with the per-tensor implementation, the default on CPU, in
multiples of the largest parameter (Adam's ``exp_avg_sq.sqrt() / c``)). Only trainable
parameters (``requires_grad``) have state. torch's defaults otherwise: no AMSGrad, no
``maximize``, RMSprop neither centered nor with momentum, SGD after its first step (the
momentum buffer exists)."""
assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES

_ALIASING = frozenset({"aten::_unsafe_view", "aten::lift_fresh", "aten::alias"})
_CPU_WORKSPACE = frozenset(
    {
        "aten::conv1d",
        "aten::conv2d",
        "aten::conv3d",
        "aten::convolution",
        "aten::convolution_backward",
        "conv1d",
        "conv2d",
        "conv3d",
    }
)
"""Ops whose CPU kernels (oneDNN) work on copies of their operands in a blocked layout: while
one runs, a copy of each tensor it reads is live besides its outputs (measured in
docs/memory.md; without it a CNN's peak is underestimated by a fifth)."""
_FOREACH_DEVICES = frozenset({"cuda", "xpu", "mtia", torch._C._get_privateuse1_backend_name()})


def optimizer_state_bytes(
    model: torch.nn.Module, optimizer: str
) -> tuple[dict[str, int], dict[str, int]]:
    """The optimizer's state, and its step's temporaries, by the module holding each
    parameter (which implementation torch picks by default depends on the device: the
    per-tensor one's temporaries are the largest parameter's, held by its module)."""
    per_param, step_scalar, foreach_lists, per_tensor = OPTIMIZERS[optimizer]
    state: dict[str, int] = {}
    lists: dict[str, int] = {}
    largest, largest_path = 0, ""
    foreach = True
    for path, param in _named_parameters(model):
        if not param.requires_grad:
            continue
        size = _logical_bytes(param)
        if size > largest:
            largest, largest_path = size, path
        foreach = foreach and param.device.type in _FOREACH_DEVICES
        state[path] = state.get(path, 0) + per_param * size + (4 if step_scalar else 0)
        lists[path] = lists.get(path, 0) + foreach_lists * size
    if foreach:
        return state, {path: size for path, size in lists.items() if size}
    return state, {largest_path: per_tensor * largest} if per_tensor and largest else {}


def _named_parameters(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """(owning module path, parameter), each parameter once, as ``named_parameters`` has them."""
    seen: set[int] = set()
    for path, module in model.named_modules():
        for param in module._parameters.values():
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                yield path, param


class MemoryTracker:
    """Bytes moved and live storages of one count; lives for one call.

    Use :meth:`tracking` around the pass, :meth:`observe` for each op a dispatch mode runs
    (for a trace, :meth:`tracking` enters a function mode that records them),
    :meth:`add_macs` right after an op is counted, :meth:`result` at the end.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        train: bool = False,
        optimizer: str | None = None,
        traced: bool = False,
    ) -> None:
        self._model = model
        self._traced = traced
        self._graph_bytes = 0
        self._log: list[tuple[int, str]] | None = [] if traced else None
        self._last_read: dict[int, int] = {}
        self._returned: set[int] = set()
        self._at_end: list[tuple[int, int, str]] = []
        self._log_end = 0
        self.moved = 0
        self._by_scope: Counter[tuple[str, ...]] = Counter()
        self._by_dtype: Counter[torch.dtype] = Counter()
        self._costs: Counter[tuple[int, int]] = Counter()
        self._pending: int | None = None  # the last op's bytes, until its MACs are known
        self.live = 0
        self.peak = 0
        self._live: dict[int, tuple[int, str, Any]] = {}  # storage -> (bytes, owner, weakref)
        self._by_owner: Counter[str] = Counter()
        self._peak_owners: dict[str, int] = {}
        self._peak_dirty = False
        self._stack: list[str] = []
        self._scope: tuple[str, ...] = ()
        self._calls: list[tuple[int, int, tuple[str, ...]]] = []
        self._starts: list[int] = []
        self._node_scopes: dict[int, tuple[str, ...]] = {}
        self.param_bytes = 0
        self._step_temporaries: dict[str, int] = {}
        for path, param in _named_parameters(model):
            self.param_bytes += _logical_bytes(param)
            self._hold(param, path)
        for path, module in model.named_modules():
            for buffer in module._buffers.values():
                if buffer is not None:
                    self._hold(buffer, path)
        for tensor in _tensors((*args, *kwargs.values())):
            self._hold(tensor, "")
        if optimizer is not None:
            state, self._step_temporaries = optimizer_state_bytes(model, optimizer)
            for path, size in state.items():
                self._allocate(size, path)
        self.train = train

    # -- storages ---------------------------------------------------------------------------

    def _hold(self, tensor: torch.Tensor, owner: str) -> None:
        """A tensor that exists before the pass (parameter, buffer, input): live throughout."""
        try:
            storage = tensor.untyped_storage()
        except Exception:  # layouts without a storage (sparse, quantized packed)
            self._allocate(_logical_bytes(tensor), owner)
            return
        key = storage._cdata
        if key not in self._live:
            size = storage.nbytes()
            self._live[key] = (size, owner, None)
            self._add_live(size, owner)

    def _allocate(self, size: int, owner: str) -> None:
        self._add_live(size, owner)

    def _add_live(self, size: int, owner: str) -> None:
        if self._log is not None:
            self._log.append((size, owner))
        self.live += size
        self._by_owner[owner] += size
        if self.live > self.peak:
            self.peak = self.live
            self._peak_dirty = True

    def _remove_live(self, size: int, owner: str) -> None:
        if self._log is not None:
            self._log.append((-size, owner))
        if self._peak_dirty:
            self._peak_owners = dict(self._by_owner)
            self._peak_dirty = False
        self.live -= size
        self._by_owner[owner] -= size

    def _track(self, tensor: torch.Tensor) -> None:
        try:
            storage = tensor.untyped_storage()
        except Exception:
            return
        key = storage._cdata
        if key in self._live:
            return
        size = storage.nbytes()
        owner = self._scope[-1] if self._scope else ""
        ref = weakref.ref(storage, functools_partial_free(self, key))
        self._live[key] = (size, owner, ref)
        self._add_live(size, owner)
        if self._log is not None:
            self._last_read[key] = len(self._log)

    def _free(self, key: int) -> None:
        entry = self._live.pop(key, None)
        if entry is not None:
            self._remove_live(entry[0], entry[1])

    # -- ops -------------------------------------------------------------------------------

    def observe(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any], out: Any) -> None:
        """An ATen op (or higher-order op) that ran, as a dispatch mode sees it."""
        if isinstance(func, torch._ops.HigherOrderOperator):
            name, view = f"higher_order::{func.name()}", False
        else:
            name = func._schema.name
            view = func.is_view or name in _ALIASING
            if view and not _may_copy(func):
                return  # a plain view: its storage is its input's, already tracked
        outputs = _tensors(out if isinstance(out, (tuple, list)) else (out,))
        if outputs:
            self.record(name, args, kwargs, outputs, view)

    def record(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        outputs: list[torch.Tensor],
        view: bool,
    ) -> None:
        """One op that ran: ``view`` says it moved nothing (its outputs alias its inputs)."""
        if self._backward_scope():
            self._scope = self._node_scope()
        for tensor in outputs:
            self._track(tensor)
        if view:
            return
        moved = 0
        by_dtype = self._by_dtype
        seen: set[int] = set()
        for tensor in (*_tensors(args), *_tensors(kwargs.values())):
            if id(tensor) in seen:
                continue
            seen.add(id(tensor))
            size = tensor.nbytes
            moved += size
            by_dtype[tensor.dtype] += size
        if name in _CPU_WORKSPACE and outputs and outputs[0].device.type == "cpu":
            read = moved
            owner = self._scope[-1] if self._scope else ""
            self._add_live(read, owner)
            self._remove_live(read, owner)
        if self._log is not None:
            self._mark_reads((*_tensors(args), *_tensors(kwargs.values())))
        for tensor in outputs:
            size = tensor.nbytes
            moved += size
            by_dtype[tensor.dtype] += size
        self.moved += moved
        self._by_scope[self._scope] += moved
        if self._traced:
            return
        if self._pending is not None:
            self._costs[(0, self._pending)] += 1
        self._pending = moved

    def _mark_reads(self, tensors: Sequence[torch.Tensor]) -> None:
        assert self._log is not None
        for tensor in tensors:
            with contextlib.suppress(Exception):
                self._last_read[tensor.untyped_storage()._cdata] = len(self._log)

    def returned(self, tensors: Sequence[torch.Tensor]) -> None:
        """The traced call's outputs: live to the end of the pass."""
        for tensor in tensors:
            with contextlib.suppress(Exception):
                self._returned.add(tensor.untyped_storage()._cdata)

    def _replay(self) -> None:
        """A JIT trace keeps some results alive to its end (convolutions' outputs) that an
        eager run frees: storages still live at the end that are not returned end at their
        last use instead; the peak is recomputed over the pass's events."""
        assert self._log is not None
        ends: dict[int, list[tuple[int, str]]] = {}
        for key, size, owner in self._at_end:
            if key not in self._returned and key in self._last_read:
                ends.setdefault(self._last_read[key], []).append((-size, owner))
        log, self._log = self._log[: self._log_end], None
        self.live = self.peak = 0
        self._by_owner = Counter()
        self._peak_dirty = False
        for index in range(len(log) + 1):
            for size, owner in ends.get(index, ()):
                self._remove_live(-size, owner)
            if index < len(log):
                size, owner = log[index]
                if size >= 0:
                    self._add_live(size, owner)
                else:
                    self._remove_live(-size, owner)

    def add_macs(self, macs: int) -> None:
        """The MACs of the op recorded last (the counting mode counts right after running it)."""
        if self._pending is not None:
            self._costs[(macs, self._pending)] += 1
            self._pending = None
        elif macs:
            self._costs[(macs, 0)] += 1

    def add_cost(self, macs: int, moved: int) -> None:
        """An op priced elsewhere (a trace node): its MACs and bytes."""
        self._costs[(macs, moved)] += 1
        self._graph_bytes += moved

    def backward_done(self) -> None:
        """The optimizer step follows: its temporaries are live on top of what is live now."""
        for path, size in self._step_temporaries.items():
            self._add_live(size, path)
        for path, size in self._step_temporaries.items():
            self._remove_live(size, path)

    # -- module scopes ---------------------------------------------------------------------

    def _backward_scope(self) -> bool:
        return self.train and not self._stack and _current_autograd_node() is not None

    def _node_scope(self) -> tuple[str, ...]:
        node = _current_autograd_node()
        if node is None:
            return ()
        sequence_nr = node._sequence_nr()
        scope = self._node_scopes.get(sequence_nr)
        if scope is None:
            found: tuple[str, ...] = ()
            for start, end, call_scope in self._calls:
                if start <= sequence_nr < end and len(call_scope) > len(found):
                    found = call_scope
            scope = self._node_scopes[sequence_nr] = found
        return scope

    @contextlib.contextmanager
    def tracking(self) -> Iterator[None]:
        """Module hooks (and for a trace, the function mode that shows the tracker every op)
        for the pass; everything removed on exit. Without a trace, the counting dispatch mode
        calls :meth:`observe` for each op it runs (a second Python mode would add its own
        dispatch cost to every op)."""
        handles: list[RemovableHandle] = []
        try:
            for path, module in self._model.named_modules():
                if isinstance(module, torch.jit.ScriptModule):
                    continue
                handles.append(module.register_forward_pre_hook(self._enter(path)))
                handles.append(module.register_forward_hook(self._leave()))
            with _MemoryFunctionMode(self) if self._traced else contextlib.nullcontext():
                yield
            self._scope = ()
            if self._log is not None:
                self._at_end = [
                    (key, size, owner)
                    for key, (size, owner, ref) in self._live.items()
                    if ref is not None
                ]
                self._log_end = len(self._log)
        finally:
            for handle in handles:
                handle.remove()

    def _enter(self, path: str) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any) -> None:
            self._stack.append(path)
            self._scope = tuple(self._stack)
            self._starts.append(_get_sequence_nr())

        return hook

    def _leave(self) -> Callable[..., None]:
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            scope = self._scope
            start = self._starts.pop()
            end = _get_sequence_nr()
            if end > start:
                self._calls.append((start, end, scope))
            self._stack.pop()
            self._scope = tuple(self._stack)

        return hook

    # -- result ----------------------------------------------------------------------------

    def result(self) -> MemoryCount:
        if self._pending is not None:
            self._costs[(0, self._pending)] += 1
            self._pending = None
        if self._log is not None:
            self._replay()
        if self._traced and self.moved > self._graph_bytes:
            self._costs[(0, self.moved - self._graph_bytes)] += 1
            self._graph_bytes = self.moved
        if self._peak_dirty:
            self._peak_owners = dict(self._by_owner)
            self._peak_dirty = False
        by_module: Counter[str] = Counter({path: 0 for path, _ in self._model.named_modules()})
        for scope, moved in self._by_scope.items():
            for path in set(scope):
                by_module[path] += moved
        by_module[""] = self.moved
        peak_by_module: Counter[str] = Counter()
        for owner, size in self._peak_owners.items():
            if size:
                for path in _ancestors(owner):
                    peak_by_module[path] += size
        peak_by_module[""] = self.peak
        return MemoryCount(
            param_bytes=self.param_bytes,
            bytes_moved=self.moved,
            bytes_by_module=dict(by_module),
            bytes_by_dtype={
                str(dtype).removeprefix("torch."): n for dtype, n in self._by_dtype.items()
            },
            peak_memory=self.peak,
            peak_by_module=dict(peak_by_module),
            op_costs=tuple(
                OpCost(macs, moved, calls) for (macs, moved), calls in sorted(self._costs.items())
            ),
        )


def priced_handle(
    handle: Callable[[list[Any], list[Any]], Any], tracker: MemoryTracker
) -> Callable[[list[Any], list[Any]], Any]:
    """An fvcore op handle that also gives the tracker the node's MACs and bytes, read from
    the trace's typed values (inputs once each, plus outputs)."""

    def wrapped(inputs: list[Any], outputs: list[Any]) -> Any:
        result = handle(inputs, outputs)
        macs = sum(result.values()) if isinstance(result, Counter) else result
        seen: set[int] = set()
        moved = 0
        for value in inputs:
            if id(value) not in seen:
                seen.add(id(value))
                moved += _value_bytes(value)
        moved += sum(_value_bytes(value) for value in outputs)
        tracker.add_cost(int(macs), moved)
        return result

    return wrapped


def _value_bytes(value: Any) -> int:
    """Bytes of a JIT value of complete tensor type (0 for anything else)."""
    kind = value.type()
    if not isinstance(kind, torch._C.TensorType):
        return 0
    sizes = kind.sizes()
    dtype = kind.dtype()
    if sizes is None or dtype is None:
        return 0
    numel = 1
    for size in sizes:
        numel *= int(size)
    return numel * dtype.itemsize


def functools_partial_free(tracker: MemoryTracker, key: int) -> Callable[[Any], None]:
    def free(_: Any) -> None:
        tracker._free(key)

    return free


class _MemoryFunctionMode(TorchFunctionMode):
    """Shows the tracker every torch function, for a JIT trace: under a dispatch mode the
    tracer does not record some ops (convolutions), and torch functions are above it. An op
    whose every output shares a storage with an input, and whose name is not in-place
    (``add_``, ``__iadd__``), is a view and moves nothing."""

    def __init__(self, tracker: MemoryTracker) -> None:
        super().__init__()
        self._tracker = tracker

    def __torch_function__(
        self,
        func: Any,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if getattr(func, "__name__", "") == "__get__":
            return out  # attributes: views (``.T``) or, under a trace, sizes as tensors
        if isinstance(out, torch.Tensor):
            outputs = [out]
        elif isinstance(out, (tuple, list)):
            outputs = [item for item in out if isinstance(item, torch.Tensor)]
        else:
            return out
        if outputs:
            name = getattr(func, "__name__", "")
            self._tracker.record(name, args, kwargs, outputs, _aliases(name, args, kwargs, outputs))
        return out


def _aliases(
    name: str, args: Sequence[Any], kwargs: dict[str, Any], outputs: list[torch.Tensor]
) -> bool:
    if (
        (name.endswith("_") and not name.endswith("__"))
        or name.startswith("__i")
        or "out" in kwargs
    ):
        return False
    try:
        read = {tensor.untyped_storage()._cdata for tensor in _tensors((*args, *kwargs.values()))}
        return all(tensor.untyped_storage()._cdata in read for tensor in outputs)
    except Exception:  # layouts without a storage
        return False


@functools.lru_cache(maxsize=1024)
def _may_copy(func: Any) -> bool:
    """A view op that is a composite (``reshape``, ``flatten``) copies when it must; its
    output's storage is then new and is tracked."""
    try:
        return bool(
            torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd")
        )
    except Exception:
        return True


def _current_autograd_node() -> Any:
    current = getattr(torch._C, "_current_autograd_node", None)
    return current() if current is not None else None


def _ancestors(path: str) -> list[str]:
    if not path:
        return []
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _tensors(values: Any) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in values:
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, torch.Tensor))
    return found


def _logical_bytes(tensor: torch.Tensor) -> int:
    return tensor.nbytes
