"""Abstract counting: build a model and its inputs without memory, count them like real ones.

Inside an :class:`AbstractScope` (PyTorch's ``FakeTensorMode``) every tensor created has a
shape, a dtype and a device but no storage, and ops only compute output shapes. A model
built there from a config (``LlamaForCausalLM(LlamaConfig(...))``) costs no weight memory and
no initialisation time, and its inputs are made the usual way::

    with abstract():
        model = LlamaForCausalLM(config)
        input_ids = torch.randint(0, config.vocab_size, (1, 2048))
    count = count_model(model, (input_ids,))

``torch.empty(1, 2048, dtype=torch.long)`` would do as well: token values are never read.

"Shapes instead of tensors" needs nothing extra: ``torch.empty(shape, dtype=...)`` inside the
scope is exactly a shape and a dtype. The scope's fake mode is active only between enter and
exit; tensors made inside stay fake afterwards, and counting them re-enters their own mode (so
ops inside ``forward`` that create fresh tensors, like ``torch.arange``, are fake too). To
run the model yourself, enter the scope again: ``with scope: model(input_ids)``.

Meta tensors (``torch.device("meta")``) are abstract too and are counted as they are; fake is
preferred, since models that branch on the device type (autocast, for instance) fail on meta.
Counting is done by the torch backend only: a JIT trace needs real data.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
)
from torch.utils import _pytree as pytree


class AbstractInputError(ValueError):
    """Abstract (fake or meta) tensors mixed with real ones, or with another scope's."""


class AbstractScope:
    """``with AbstractScope():`` tensors and models created inside allocate nothing.

    Re-enterable: ``with scope:`` again to create more tensors (or run the model) in the same
    fake mode. Exiting always deactivates it, also when the block raises. One scope is active
    at a time: entering a scope that is already active, or a second one inside it, is an
    error (tensors of two scopes cannot be counted together anyway), as is exiting a scope
    that is not active. :meth:`close` deactivates a scope left open; the ``flops`` fixture
    closes its test's scopes at teardown, so fake mode never leaks into later tests.
    """

    def __init__(self) -> None:
        self.fake_mode = FakeTensorMode()
        self.active = False
        self._helpers: list[contextlib.ExitStack] = []

    def __enter__(self) -> AbstractScope:
        if self.active:
            raise AbstractInputError(
                "this abstract() scope is already active; `with scope:` it again only after "
                "its block has ended"
            )
        if _active_fake_mode() is not None:
            raise AbstractInputError(
                "another abstract() scope (or fake mode) is active; abstract() scopes do not "
                "nest: build the model and its inputs in one scope"
            )
        self.fake_mode.__enter__()
        self._enter_building_helpers()
        self.active = True
        _OPEN.add(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self.active:
            raise AbstractInputError("this abstract() scope is not active; it cannot be exited")
        self.active = False
        _OPEN.discard(self)
        self._exit_building_helpers(*exc_info)
        self.fake_mode.__exit__(*exc_info)

    def close(self) -> bool:
        """Deactivate the scope if it is still active; whether it was (left open)."""
        if not self.active:
            return False
        self.__exit__(None, None, None)
        return True

    def _enter_building_helpers(self) -> None:
        """Known values and no value-reading weight init (:mod:`.known_values`)."""
        from .known_values import building

        stack = contextlib.ExitStack()
        stack.enter_context(building())
        self._helpers.append(stack)

    def _exit_building_helpers(self, *exc_info: Any) -> None:
        if self._helpers:
            self._helpers.pop().__exit__(*exc_info)


_OPEN: weakref.WeakSet[AbstractScope] = weakref.WeakSet()
"""Scopes active now, mirroring torch's own (process-wide) fake-mode state."""


def close_open_scopes() -> int:
    """Deactivate every abstract scope left open; how many there were."""
    return sum(scope.close() for scope in list(_OPEN))


def _active_fake_mode() -> object:
    key = getattr(torch._C, "_TorchDispatchModeKey", None)
    if key is None:
        return None
    return torch._C._get_dispatch_mode(key.FAKE)


def abstract() -> AbstractScope:
    """A new scope for building an abstract model and its inputs (see the module docstring)."""
    return AbstractScope()


def is_abstract(obj: object) -> bool:
    """Whether a tensor, a module (any parameter or buffer) or a nest of tensors is abstract.

    Abstract means fake (made in an :class:`AbstractScope`) or on the meta device: there is no
    data, so only a backend that never reads data (the torch backend) can count it. Every real
    count asks this, so it walks the tensors without labelling them.
    """
    if isinstance(obj, torch.nn.Module):
        tensors: Iterable[Any] = itertools.chain(obj.parameters(), obj.buffers())
    elif isinstance(obj, torch.Tensor):
        tensors = (obj,)
    elif _plain_tensor_call(obj):
        tensors = obj[0]  # type: ignore[index]
    else:
        tensors = pytree.tree_leaves(obj)
    return any(
        isinstance(tensor, torch.Tensor) and (isinstance(tensor, FakeTensor) or tensor.is_meta)
        for tensor in tensors
    )


def _plain_tensor_call(obj: object) -> bool:
    """``((tensor, ...), {})``: the common inputs, checked without flattening."""
    return (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], tuple)
        and isinstance(obj[1], dict)
        and not obj[1]
        and all(isinstance(arg, torch.Tensor) for arg in obj[0])
    )


def check_consistent(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> FakeTensorMode | None:
    """The fake mode to count under (None for real or meta tensors), or a clear error.

    Every parameter, buffer and input tensor must be of one kind: all real, all meta, or all
    fake from one scope. A mixture would fail deep inside the model with an error about
    "FakeTensors" or devices; here it names the first offending tensor and the fix.
    """
    tensors = [*_labelled_tensors(model), *_labelled_tensors((args, kwargs))]
    kinds = {_kind(tensor) for _, tensor in tensors}
    if len(kinds) > 1:
        raise AbstractInputError(_mixed_message(tensors))
    if kinds != {"fake"}:
        return None
    fakes = [tensor for _, tensor in tensors if isinstance(tensor, FakeTensor)]
    modes = {id(tensor.fake_mode): tensor.fake_mode for tensor in fakes}
    if len(modes) > 1:
        first, other = _first_of_each_mode(tensors)
        raise AbstractInputError(
            f"{first} and {other} were made in two different abstract() scopes; build the "
            "model and its inputs in one scope (it can be entered again: `with scope:`)"
        )
    return next(iter(modes.values()))


@contextlib.contextmanager
def counting_context(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Iterator[None]:
    """Check the tensors (:func:`check_consistent`) and, if fake, re-enter their fake mode.

    A model that reads a tensor's values (``.item()``, ``if mask.all():``, ``nonzero``)
    cannot run on fake tensors; that surfaces here as an :class:`AbstractInputError` that says
    so, instead of fake-tensor internals.
    """
    fake_mode = check_consistent(model, args, kwargs)
    if fake_mode is None:
        yield
        return
    from .known_values import AbstractValueError, abstract_forward

    try:
        with fake_mode, abstract_forward(model):
            yield
    except AbstractValueError as error:
        raise AbstractInputError(str(error)) from None
    except (DataDependentOutputException, DynamicOutputShapeException) as error:
        raise AbstractInputError(
            f"the model reads tensor values ({getattr(error, 'func', error)}: .item(), bool() or "
            "a data-dependent shape) that abstract tensors do not know; make such inputs with "
            "torch.ones/zeros/full/arange (their values are known) or count real tensors"
        ) from error


_Labelled = tuple[str, torch.Tensor]
"""A tensor and a name a user recognises: ``("parameter 'fc.weight'", tensor)``."""


def _labelled_tensors(obj: object) -> list[_Labelled]:
    """Every tensor in ``obj`` with a name a user recognises (``parameter 'fc.weight'``)."""
    if isinstance(obj, torch.nn.Module):
        found: list[_Labelled] = [(f"parameter {path!r}", p) for path, p in obj.named_parameters()]
        found += [(f"buffer {path!r}", b) for path, b in obj.named_buffers() if b is not None]
        return found
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], dict):
        args, kwargs = obj
        return _labelled_leaves(args, "args") + _labelled_leaves(kwargs, "kwargs")
    return _labelled_leaves(obj, "input")


def _labelled_leaves(obj: object, prefix: str) -> list[_Labelled]:
    leaves, _ = pytree.tree_flatten_with_path(obj)
    return [
        (f"input {prefix}{pytree.keystr(path)}", leaf)
        for path, leaf in leaves
        if isinstance(leaf, torch.Tensor)
    ]


def _kind(tensor: torch.Tensor) -> str:
    if isinstance(tensor, FakeTensor):
        return "fake"
    if tensor.is_meta:
        return "meta"
    return "real"


def _describe(item: _Labelled) -> str:
    label, tensor = item
    kind = _kind(tensor)
    where = f" on {tensor.device}" if kind == "real" else ""
    return f"{label} is a {kind} tensor{where}"


def _mixed_message(tensors: list[_Labelled]) -> str:
    """Name one tensor of each kind and say how to make them agree."""
    by_kind: dict[str, _Labelled] = {}
    for item in tensors:
        by_kind.setdefault(_kind(item[1]), item)
    if "meta" in by_kind:
        other = next(item for kind, item in by_kind.items() if kind != "meta")
        return (
            f"{_describe(by_kind['meta'])} but {_describe(other)}: meta tensors can only be "
            "counted with other meta tensors; build the model and its inputs inside "
            "abstract() instead"
        )
    fake, real = by_kind["fake"], by_kind["real"]
    if real[0].startswith("input"):
        fix = (
            "create the inputs inside the same abstract() scope as the model "
            "(torch.empty(shape, dtype=...) there allocates nothing)"
        )
    else:
        fix = (
            "build the model inside the abstract() scope too; a model built outside (or "
            "moved to a real device) has real weights"
        )
    return f"{_describe(real)} but {_describe(fake)} (abstract): {fix}"


def _first_of_each_mode(tensors: list[_Labelled]) -> tuple[str, str]:
    first_label, first = tensors[0]
    mode = first.fake_mode  # type: ignore[attr-defined]
    other = next(label for label, tensor in tensors if tensor.fake_mode is not mode)  # type: ignore[attr-defined]
    return first_label, other


@contextlib.contextmanager
def through_fakes(
    model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Count a real model abstractly: fake copies of its parameters, buffers and inputs.

    Inside the block the model's parameters and buffers are fake tensors of one new
    :class:`AbstractScope` (made with ``FakeTensorMode.from_tensor``: shape, dtype, device and
    ``requires_grad`` copied, no data), and the yielded inputs are fake copies of ``args`` and
    ``kwargs``. A forward then costs no activation memory and no arithmetic, so batch 64 costs
    what batch 1 does. Shared tensors stay shared (tied weights are one fake). Small inputs and
    buffers keep their values as known values (:mod:`.known_values`), so a model that reads a
    mask or a position table takes the branch a real run takes. On exit the model's own
    tensors are put back, whatever happened inside; nothing of the model is copied or written.
    A model that is already abstract, or real inputs of a fake model, are left as they are.
    """
    if is_abstract(model) or is_abstract((args, kwargs)):
        yield args, kwargs
        return
    from torch.nn.utils.stateless import _reparametrize_module

    from .known_values import SMALL_NUMEL, _record

    scope = AbstractScope()
    fakes: dict[int, torch.Tensor] = {}

    def fake(tensor: torch.Tensor, *, known: bool) -> torch.Tensor:
        found = fakes.get(id(tensor))
        if found is None:
            found = scope.fake_mode.from_tensor(tensor)
            if known and tensor.numel() <= SMALL_NUMEL and not tensor.is_meta:
                _record(found, tensor.detach(), uniform=False)
            fakes[id(tensor)] = found
        return found

    swapped = {
        name: fake(tensor, known=False)
        for name, tensor in model.named_parameters(remove_duplicate=False)
    }
    swapped.update(
        {
            name: fake(tensor, known=True)
            for name, tensor in model.named_buffers(remove_duplicate=False)
            if tensor is not None
        }
    )
    fake_args, fake_kwargs = pytree.tree_map_only(
        torch.Tensor, lambda tensor: fake(tensor, known=True), (args, kwargs)
    )
    with _reparametrize_module(model, swapped):
        yield fake_args, fake_kwargs
