"""Values an abstract tensor has without data, so value-reading checks run abstractly.

Models read tensor values in places that do not change what they compute: a padding check
(``if pad_token_id in input_ids``), a shortcut (``if torch.all(attention_mask == 1)``), a
drop-path schedule built at construction (``torch.linspace(0, rate, n).tolist()``). A fake
tensor has no values, so these reads used to end the count. Many values are known without any
data, though: ``torch.ones(...)`` is ones, ``torch.arange(8)`` is 0..7, and what is computed
from known values is known. :class:`KnownValues` is a dispatch mode on top of the fake mode
that carries them along:

- filled tensors (``ones``, ``zeros``, ``full``, their ``_like``/``new_`` forms, ``fill_``)
  are *uniform*: one value, any size, no memory; elementwise ops, views, copies and
  ``all``/``any``/``amax``/``amin`` of uniform tensors are uniform again;
- small tensors (at most :data:`SMALL_NUMEL` elements) made from constants (``arange``,
  ``linspace``, ``torch.tensor([...])``) or computed from known values are computed for real,
  which costs microseconds;
- a write into a tensor (or into any view of it: the version counter is shared) forgets what
  was known unless the written values are known too.

A read of a known value (``.item()``, ``bool()``, ``.tolist()``, indexing a list with a
tensor) answers exactly what a real run answers, so the model takes the same branch and the
count is the same. A read of an unknown value (the values of random input ids, of weights)
fails with an :class:`AbstractValueError` naming the model's line and what to change, never a
fake-tensor traceback.

Two places where values decide the computation are given a documented assumption instead:

- **top-k mixture-of-experts routing**. Inside a module with an ``experts`` list and a
  ``top_k`` (or ``num_experts_per_tok``) attribute, the data-dependent ``nonzero`` calls of the
  usual loop (``expert_hit = (...).nonzero()``, ``torch.where(expert_mask[e])``) return the
  *expected* routing: every expert is hit and expert ``e`` of ``E`` receives its even share of
  the ``tokens * k`` assignments (``tokens * k // E``, one more for the first
  ``tokens * k % E`` experts). Every token goes to exactly ``k`` experts in any routing, so
  when the experts are alike and their cost is linear in their tokens (MLP experts) the total
  is exact, not only in expectation; the per-expert split is the average one;
- **padding warnings** (``warn_if_padding_and_no_attention_mask`` of Hugging Face models)
  only warn, so they are skipped while an abstract model is counted.

Weight initialisation that inspects values (``nn.init.trunc_normal_`` resamples until no value
is out of range) is skipped on fake tensors while an abstract scope is open, as torch itself
does for meta tensors: fake weights have no values to initialise.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    unset_fake_temporarily,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.hooks import RemovableHandle

from .count import CountError

SMALL_NUMEL = 1 << 16
"""Largest tensor whose known values are computed for real (64 Ki elements: microseconds)."""

_ATTR = "_flopbudget_known"
_aten = torch.ops.aten


class AbstractValueError(CountError, ValueError):
    """An abstract model read a tensor value that is not known without data."""


@dataclass(frozen=True)
class _Known:
    """``value`` is 0-d for a uniform tensor, else the full real tensor. ``version`` is the
    fake tensor's version counter when recorded: any later write makes the entry stale."""

    value: torch.Tensor
    uniform: bool
    version: int

    def materialized(self, shape: Sequence[int]) -> torch.Tensor:
        return self.value.expand(tuple(shape)) if self.uniform else self.value


def _known(tensor: torch.Tensor) -> _Known | None:
    if not isinstance(tensor, FakeTensor):
        if tensor.is_meta:
            return None
        return _Known(tensor, uniform=False, version=0)  # a real tensor is its own value
    entry = tensor.__dict__.get(_ATTR)
    if entry is not None and entry.version == tensor._version:
        return entry  # type: ignore[no-any-return]
    constant = tensor.constant
    if constant is not None:
        return _Known(constant, uniform=False, version=0)
    return None


def known_value(tensor: torch.Tensor) -> torch.Tensor | None:
    """The real values of ``tensor`` if they are known (see the module docstring), else None."""
    entry = _known(tensor)
    return None if entry is None else entry.materialized(tensor.shape)


def _record(tensor: object, value: torch.Tensor, *, uniform: bool, bump: int = 0) -> None:
    if not isinstance(tensor, FakeTensor):
        return
    if not uniform and tuple(value.shape) != tuple(tensor.shape):
        return
    with unset_fake_temporarily():
        value = value.to(tensor.dtype)
    tensor.__dict__[_ATTR] = _Known(value, uniform, tensor._version + bump)


_FILLS = {
    _aten.ones: lambda a, k: 1,
    _aten.ones_like: lambda a, k: 1,
    _aten.new_ones: lambda a, k: 1,
    _aten.zeros: lambda a, k: 0,
    _aten.zeros_like: lambda a, k: 0,
    _aten.new_zeros: lambda a, k: 0,
    _aten.zero_: lambda a, k: 0,
    _aten.full: lambda a, k: a[1] if len(a) > 1 else k["fill_value"],
    _aten.full_like: lambda a, k: a[1] if len(a) > 1 else k["fill_value"],
    _aten.new_full: lambda a, k: a[2] if len(a) > 2 else k["fill_value"],
    _aten.fill_: lambda a, k: a[1],
    _aten.fill: lambda a, k: a[1],
    _aten.scalar_tensor: lambda a, k: a[0],
}
"""Ops whose result is one value whatever their tensor arguments hold."""

_UNIFORM_KEEPING = frozenset(
    {
        _aten.view,
        _aten._unsafe_view,
        _aten.reshape,
        _aten.expand,
        _aten.slice,
        _aten.select,
        _aten.unsqueeze,
        _aten.squeeze,
        _aten.permute,
        _aten.transpose,
        _aten.t,
        _aten.clone,
        _aten.contiguous,
        _aten._to_copy,
        _aten.alias,
        _aten.detach,
        _aten.index,
        _aten.repeat,
        _aten.flatten,
        _aten.as_strided,
        _aten.narrow,
        _aten.unbind,
        _aten.split,
        _aten.split_with_sizes,
        _aten.chunk,
        _aten.all,
        _aten.any,
        _aten.amax,
        _aten.amin,
        _aten.lift_fresh,
        _aten.lift_fresh_copy,
    }
)
"""Ops that keep a uniform tensor uniform with the same value (cast to the output dtype)."""

_VALUE_FREE = frozenset({_aten.empty, _aten.empty_like, _aten.new_empty, _aten.empty_strided})


def _tensor_leaves(args: Sequence[Any], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(item for item in value if isinstance(item, torch.Tensor))
    return found


def _may_know(func: torch._ops.OpOverload, args: Sequence[Any], kwargs: dict[str, Any]) -> bool:
    """A quick look: a fill, a factory, or an input that may have known values."""
    if func.overloadpacket in _FILLS:
        return True
    tensors = _tensor_leaves(args, kwargs)
    return not tensors or any(
        _ATTR in tensor.__dict__ or tensor.constant is not None
        if isinstance(tensor, FakeTensor)
        else not tensor.is_meta
        for tensor in tensors
    )


def _outputs(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [item for item in out if isinstance(item, torch.Tensor)]
    return []


def _substituted(value: object, table: dict[int, torch.Tensor]) -> object:
    if isinstance(value, torch.Tensor):
        return table[id(value)]
    if isinstance(value, (list, tuple)):
        return type(value)(_substituted(item, table) for item in value)
    return value


@dataclass
class _MoeCall:
    experts: int
    top_k: int
    tokens: int
    next_expert: int = 0


class KnownValues(TorchDispatchMode):
    """The dispatch mode of the module docstring; sits directly above a fake mode."""

    def __init__(self) -> None:
        super().__init__()
        self.moe: list[_MoeCall] = []

    def __torch_dispatch__(
        self,
        func: torch._ops.OpOverload,
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is _aten._local_scalar_dense.default or func is _aten.equal.default:
            answer = self._read(func, args, kwargs)
            if answer is not None:
                return answer
        try:
            out = func(*args, **kwargs)
        except (DataDependentOutputException, DynamicOutputShapeException) as error:
            return self._value_dependent(func, args, kwargs, error)
        if _may_know(func, args, kwargs):
            with (
                contextlib.suppress(Exception),
                unset_fake_temporarily(),
            ):  # a help, never a failure
                self._propagate(func, args, kwargs, out)
        return out

    def _read(self, func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
        tensors = _tensor_leaves(args, kwargs)
        entries = [_known(tensor) for tensor in tensors]
        if not tensors or any(entry is None for entry in entries):
            return None
        with unset_fake_temporarily():
            reals = [e.materialized(t.shape) for e, t in zip(entries, tensors, strict=True)]  # type: ignore[union-attr]
            if func is _aten.equal.default:
                return bool(torch.equal(reals[0], reals[1]))
            return reals[0].reshape(()).item()

    def _propagate(
        self, func: torch._ops.OpOverload, args: Sequence[Any], kwargs: dict[str, Any], out: Any
    ) -> None:
        packet = func.overloadpacket
        outputs = _outputs(out)
        if not outputs or packet in _VALUE_FREE or torch.Tag.nondeterministic_seeded in func.tags:
            return
        written = _written_argument(func, args)
        bump = 1 if written is not None else 0
        fill = _FILLS.get(packet)
        if fill is not None:
            value = fill(args, kwargs)
            if isinstance(value, torch.Tensor):
                entry = _known(value)
                if entry is None or not (entry.uniform or value.numel() == 1):
                    return
                value = entry.value.reshape(())
            with unset_fake_temporarily():
                scalar = torch.tensor(value)
            for tensor in outputs:
                _record(tensor, scalar, uniform=True, bump=bump)
            return
        tensors = _tensor_leaves(args, kwargs)
        if not tensors:
            if any(t.numel() > SMALL_NUMEL for t in outputs):
                return
            with unset_fake_temporarily():
                result = func(*args, **kwargs)  # arange, linspace: constants only
            for tensor, real in zip(outputs, _outputs(result), strict=False):
                _record(tensor, real, uniform=False)
            return
        first = _known(tensors[0])
        if packet in _UNIFORM_KEEPING and first is not None and first.uniform:
            if tensors[0].numel() > 0:  # all() of nothing is True whatever the fill
                for tensor in outputs:
                    _record(tensor, first.value, uniform=True, bump=bump)
            return
        if packet is _aten.copy_ and len(tensors) > 1:
            source = _known(tensors[1])
            if source is not None and (source.uniform or tensors[1].shape == tensors[0].shape):
                _record(tensors[0], source.value, uniform=source.uniform, bump=1)
            return
        entries = [_known(tensor) for tensor in tensors]
        if any(entry is None for entry in entries):
            return
        known = [entry for entry in entries if entry is not None]
        uniform = all(entry.uniform for entry in known)
        if (
            packet is _aten.cat
            and uniform
            and all(bool(torch.equal(e.value, known[0].value)) for e in known)
        ):
            _record(outputs[0], known[0].value, uniform=True)
            return
        if uniform and torch.Tag.pointwise in func.tags:
            table = {id(t): e.value.clone() for t, e in zip(tensors, known, strict=True)}
            with unset_fake_temporarily():
                result = func(*_substituted(args, table), **_substituted(kwargs, table))  # type: ignore[arg-type, misc]
            for tensor in outputs:
                _record(tensor, result.reshape(()), uniform=True, bump=bump)
            return
        if any(tensor.numel() > SMALL_NUMEL for tensor in outputs):
            return
        table = {
            id(t): e.materialized(t.shape).clone() if written is t else e.materialized(t.shape)
            for t, e in zip(tensors, known, strict=True)
        }
        with unset_fake_temporarily():
            result = func(*_substituted(args, table), **_substituted(kwargs, table))  # type: ignore[arg-type, misc]
        if written is not None:
            _record(written, table[id(written)], uniform=False, bump=1)
            return
        for tensor, real in zip(outputs, _outputs(result), strict=False):
            _record(tensor, real, uniform=False)

    def _value_dependent(
        self,
        func: torch._ops.OpOverload,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        error: Exception,
    ) -> Any:
        if func is _aten.nonzero.default and self.moe:
            return self._expected_routing(args[0], self.moe[-1])
        with self:
            decomposed = func.decompose(*args, **kwargs)
        if decomposed is not NotImplemented:
            return decomposed
        raise AbstractValueError(_value_read_message(func, error)) from None

    def _expected_routing(self, mask: torch.Tensor, call: _MoeCall) -> torch.Tensor:
        if mask.numel() == call.experts:  # which experts any token chose: all of them
            with unset_fake_temporarily():
                real = torch.ones(mask.shape, dtype=torch.bool).nonzero()
            hit = torch.empty(real.shape, dtype=torch.long, device=mask.device)
            _record(hit, real, uniform=False)
            return hit
        assignments = call.tokens * call.top_k
        if mask.numel() == assignments:  # the tokens one expert receives: its even share
            share, extra = divmod(assignments, call.experts)
            rows = share + (1 if call.next_expert < extra else 0)
            call.next_expert += 1
            return torch.empty((rows, mask.dim()), dtype=torch.long, device=mask.device)
        raise AbstractValueError(
            f"{_model_line()}: a mixture-of-experts block selects tokens with a mask of shape "
            f"{tuple(mask.shape)}, neither one entry per expert ({call.experts}) nor one per "
            f"token and choice ({call.tokens} x {call.top_k}); abstract counting assumes the "
            "usual top-k loop over experts (Mixtral, Qwen-MoE, OLMoE): count this model with "
            "real tensors"
        )


def _written_argument(func: torch._ops.OpOverload, args: Sequence[Any]) -> torch.Tensor | None:
    schema = func._schema
    if not schema.arguments or not args:
        return None
    alias = schema.arguments[0].alias_info
    if alias is not None and alias.is_write and isinstance(args[0], torch.Tensor):
        return args[0]
    return None


_INTERNALS = (
    os.path.dirname(torch.__file__),
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
)


def _model_line() -> str:
    """The innermost frame outside torch and this plugin: the model's own line."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_INTERNALS) and "<" not in frame.filename[:1]:
            code = f": `{frame.line.strip()}`" if frame.line else ""
            return f"{os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}{code}"
    return "the model"


def _value_read_message(func: object, error: Exception) -> str:
    where = _model_line()
    if isinstance(error, DynamicOutputShapeException):
        return (
            f"{where}: the model's shapes depend on tensor values ({func}), which abstract "
            "tensors do not have. Top-k mixture-of-experts blocks (an `experts` list and a "
            "`top_k` attribute) are counted with the expected routing; for other "
            "value-dependent shapes count the model with real tensors"
        )
    return (
        f"{where}: the model reads tensor values ({func}) that abstract tensors do not "
        "know. Values made without data are known (torch.ones/zeros/full/arange and what "
        "is computed from them), so make such inputs that way (an attention_mask of "
        "torch.ones(...) is fine), or count the model with real tensors if its values steer "
        "the computation"
    )


@contextlib.contextmanager
def _trunc_normal_skips_fakes() -> Iterator[None]:
    """``nn.init.trunc_normal_`` leaves a fake tensor as it is, as torch does for a meta one:
    fake weights have no values, and it would read them to resample the out-of-range ones.

    Its helper is replaced for the scope's lifetime (as ``transformers.no_init_weights``
    replaces the init functions); real tensors still go to the original, so other code running
    meanwhile is unaffected.
    """
    init = torch.nn.init
    original = init._no_grad_trunc_normal_
    if getattr(original, "_skips_fakes", False):
        yield
        return

    def trunc_normal(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if isinstance(tensor, FakeTensor):
            tensor.__dict__.pop(_ATTR, None)
            return tensor
        return original(tensor, *args, **kwargs)

    trunc_normal._skips_fakes = True  # type: ignore[attr-defined]
    init._no_grad_trunc_normal_ = trunc_normal
    try:
        yield
    finally:
        init._no_grad_trunc_normal_ = original


@contextlib.contextmanager
def building() -> Iterator[None]:
    """What an abstract scope adds on top of its fake mode while it is open."""
    with _trunc_normal_skips_fakes(), KnownValues():
        yield


@contextlib.contextmanager
def abstract_forward(model: torch.nn.Module) -> Iterator[None]:
    """Known values, expected MoE routing and no padding warnings, for one abstract count."""
    mode = KnownValues()
    handles: list[RemovableHandle] = []
    silenced: list[torch.nn.Module] = []
    for module in model.modules():
        shape = moe_shape(module)
        if shape is not None:
            handles.extend(_routing_hooks(module, mode, *shape))
        warns = getattr(module, "warn_if_padding_and_no_attention_mask", None)
        if callable(warns) and "warn_if_padding_and_no_attention_mask" not in module.__dict__:
            module.__dict__["warn_if_padding_and_no_attention_mask"] = _no_warning
            silenced.append(module)
    try:
        with mode:
            yield
    finally:
        for handle in handles:
            handle.remove()
        for module in silenced:
            module.__dict__.pop("warn_if_padding_and_no_attention_mask", None)


def _no_warning(*args: object, **kwargs: object) -> None:
    return None


def moe_shape(module: torch.nn.Module) -> tuple[int, int] | None:
    """``(experts, top_k)`` of a top-k mixture-of-experts block, None for other modules."""
    experts = getattr(module, "experts", None)
    top_k = getattr(module, "top_k", getattr(module, "num_experts_per_tok", None))
    if not isinstance(experts, torch.nn.ModuleList) or not experts:
        return None
    if isinstance(top_k, int) and not isinstance(top_k, bool) and 0 < top_k <= len(experts):
        return len(experts), top_k
    return None


def _routing_hooks(
    module: torch.nn.Module, mode: KnownValues, experts: int, top_k: int
) -> list[RemovableHandle]:
    def enter(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else next(iter(kwargs.values()), None)
        tokens = 0
        if isinstance(hidden, torch.Tensor) and hidden.dim() > 0 and hidden.shape[-1] > 0:
            tokens = hidden.numel() // hidden.shape[-1]
        mode.moe.append(_MoeCall(experts, top_k, tokens))

    def leave(module: torch.nn.Module, args: Any, output: Any) -> None:
        if mode.moe:
            mode.moe.pop()

    return [
        module.register_forward_pre_hook(enter, with_kwargs=True),
        module.register_forward_hook(leave, always_call=True),
    ]
