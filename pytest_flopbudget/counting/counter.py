"""Counting one model: leave it as it was found, silence the tracer, call the backend."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .active import active_params
from .backends import get_backend
from .count import OPTIMIZER_NAMES, Count, CountError, RawCount
from .fakes import AbstractInputError, is_abstract
from .inputs import InputError, normalize_inputs, private_copies
from .op_conventions import check_ops


def count_model(
    model: object,
    inputs: object,
    *,
    name: str | None = None,
    flops_per_mac: int = 1,
    backend: str = "fvcore",
    mode: str = "inference",
    grad: bool = False,
    ops: str = "fvcore",
    optimizer: str | None = None,
    memory: bool = True,
) -> Count:
    """Count ``model(inputs)`` and return the result in the given convention.

    ``ops`` says which ops count: ``"fvcore"`` (fvcore's convention: convolutions, matrix
    products, attention, norms, pooling, resampling) or ``"dense"`` (convolutions, matrix
    products and attention only, as torchvision's published figures and FlopCounterMode).

    Abstract models and inputs (fake or meta tensors), training steps (``mode="train"``) and
    quantized models are counted by the torch backend whatever ``backend`` says: a JIT trace
    needs real data, sees no backward pass and cannot take packed quantized weights. The
    count's ``backend`` says which one counted.

    Bytes moved and peak memory are measured too (see :mod:`.memory` for what they include);
    ``optimizer`` (``"sgd"``, ``"sgd_momentum"``, ``"adam"``, ``"adamw"``, ``"adagrad"``,
    ``"rmsprop"``) adds its state to a training step's peak. ``memory=False`` leaves the memory
    fields None (the benchmarks measure what tracking costs with it).
    """
    __tracebackhide__ = True
    if not isinstance(model, torch.nn.Module):
        raise CountError(f"flops() needs a torch.nn.Module, got {type(model).__name__}")
    label = name if name is not None else type(model).__name__
    if not isinstance(label, str) or not label:
        raise CountError(f"flops(name=...) must be a non-empty string, got {name!r:.80}")
    if not label.isprintable() or _unencodable(label):
        # names reach terminals, Markdown and XML: control characters and lone surrogates
        # would corrupt all three
        raise CountError(f"flops(name=...) must be printable text, got {label!r:.80}")
    try:
        ops = check_ops(ops)
    except ValueError as error:
        raise CountError(f"{label}: flops(ops=...): {error}") from None
    try:
        args, kwargs = private_copies(*normalize_inputs(inputs))
    except InputError as error:
        raise CountError(f"{label}: {error}") from None
    train = mode == "train"
    if optimizer is not None:
        if not train:
            raise CountError(
                f'{label}: flops(optimizer={optimizer!r:.80}) needs mode="train" (optimizer '
                f"state is memory of a training step), got mode={mode!r:.80}"
            )
        if optimizer not in OPTIMIZER_NAMES:
            allowed = ", ".join(f'"{name}"' for name in OPTIMIZER_NAMES)
            raise CountError(
                f"{label}: flops(optimizer=...) must be one of {allowed}, got {optimizer!r:.80}"
            )
    state = _ModelState.of(model)
    abstract = state.abstract or is_abstract((args, kwargs))
    if abstract or train or _packs_weights(model):
        backend = "torch"
    count_backend = get_backend(backend, train=train, ops=ops, memory=memory, optimizer=optimizer)
    try:
        with _quiet(), torch.set_grad_enabled(grad or train):
            raw = count_backend(model, args, kwargs)
    except Exception as error:  # the tracer's own errors are many and undocumented
        if isinstance(error, (AbstractInputError, CountError)):
            raise CountError(f"{label}: {error}") from None
        raise CountError(
            f"{label}: {backend} could not count this model: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None
    finally:
        state.restore()
    return Count(
        name=label,
        flops=raw.macs * flops_per_mac,
        macs=raw.macs,
        params=state.params,
        flops_per_mac=flops_per_mac,
        backend=raw.backend or backend,
        by_module={path: macs * flops_per_mac for path, macs in raw.by_module_macs.items() if path},
        unknown_ops=dict(raw.unknown_ops),
        mode=mode,
        abstract=abstract,
        ops=ops,
        active_params=active_params(model),
        **_memory_fields(raw),
    )


def _memory_fields(raw: RawCount) -> dict[str, Any]:
    measured = raw.memory
    if measured is None:
        return {}
    return {
        "param_bytes": measured.param_bytes,
        "bytes_moved": measured.bytes_moved,
        "bytes_by_module": {k: v for k, v in measured.bytes_by_module.items() if k},
        "bytes_by_dtype": dict(measured.bytes_by_dtype),
        "peak_memory": measured.peak_memory,
        "peak_by_module": {k: v for k, v in measured.peak_by_module.items() if k},
        "op_costs": measured.op_costs,
    }


def _packs_weights(model: torch.nn.Module) -> bool:
    """Quantized modules hold packed weights (TorchScript objects) that fvcore's trace refuses
    as inputs ("Only tensors ... can be inputs to traced functions")."""
    return any(
        isinstance(value, torch.ScriptObject)
        for module in model.modules()
        for value in vars(module).values()
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "(no message)"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Counting is the plugin's own work: torch/fvcore deprecation and tracer warnings stay
    inside it, so ``-W error`` runs do not break on them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@dataclass
class _ModelState:
    """What counting must leave as it found, read in one walk over the modules.

    Every buffer is kept, in every mode: an eval-mode forward may write one too (a step
    counter, a cache filled on first use). Keeping costs no copy: each buffer gets a lazy
    (copy-on-write) clone, which takes memory only if the forward writes into the buffer, and
    only buffers that were written (their version counter moved, or their storage was
    materialised) or replaced are put back. Hooks a tracer added and did not remove (fvcore
    leaves its scope hooks behind when the trace fails) are removed, so the model can still be
    pickled and saved.
    """

    modes: list[tuple[torch.nn.Module, bool]] = field(default_factory=list)
    requires_grad: dict[int, tuple[torch.nn.Parameter, bool]] = field(default_factory=dict)
    buffers: list[_SavedBuffer] = field(default_factory=list)
    hooks: list[tuple[torch.nn.Module, dict[str, frozenset[int]]]] = field(default_factory=list)
    abstract: bool = False

    @classmethod
    def of(cls, model: torch.nn.Module) -> _ModelState:
        state = cls()
        for module in model.modules():
            state.modes.append((module, module.training))
            state.hooks.append((module, _hook_keys(module)))
            for param in module._parameters.values():
                if param is not None:
                    state.requires_grad[id(param)] = (param, param.requires_grad)
                    state.abstract = state.abstract or _is_abstract(param)
            for name, buffer in module._buffers.items():
                if buffer is None:
                    continue
                if _is_abstract(buffer):
                    state.abstract = True
                else:
                    state.buffers.append(_SavedBuffer.of(module, name, buffer))
        return state

    @property
    def params(self) -> int:
        return sum(param.numel() for param, _ in self.requires_grad.values())

    def restore(self) -> None:
        for module, training in self.modes:
            if module.training != training:
                module.training = training
        for param, flag in self.requires_grad.values():
            if param.requires_grad != flag:
                param.requires_grad_(flag)
        for module, keys in self.hooks:
            _remove_new_hooks(module, keys)
        with torch.no_grad():
            for saved in self.buffers:
                saved.restore()
        self.buffers.clear()  # drops the lazy clones


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_hooks")
_HOOK_SIDE_DICTS = (
    "_forward_pre_hooks_with_kwargs",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
)


def _hook_keys(module: torch.nn.Module) -> dict[str, frozenset[int]]:
    return {name: frozenset(getattr(module, name, {})) for name in _HOOK_DICTS}


def _remove_new_hooks(module: torch.nn.Module, keys: dict[str, frozenset[int]]) -> None:
    for name, before in keys.items():
        hooks = getattr(module, name, None)
        if hooks is None or len(hooks) <= len(before):
            continue
        for key in [key for key in hooks if key not in before]:
            del hooks[key]
            for side in _HOOK_SIDE_DICTS:
                getattr(module, side, {}).pop(key, None)


@dataclass
class _SavedBuffer:
    """One buffer as it was: the tensor object, its version counter and a lazy clone."""

    module: torch.nn.Module
    name: str
    tensor: torch.Tensor
    version: int
    copy: torch.Tensor

    @classmethod
    def of(cls, module: torch.nn.Module, name: str, tensor: torch.Tensor) -> _SavedBuffer:
        return cls(module, name, tensor, tensor._version, _lazy_clone(tensor))

    def written(self) -> bool:
        if self.tensor._version != self.version:
            return True
        is_cow = getattr(torch._C, "_is_cow_tensor", None)
        return is_cow is not None and self.copy is not self.tensor and not is_cow(self.tensor)

    def restore(self) -> None:
        if self.module._buffers.get(self.name) is not self.tensor:
            self.module._buffers[self.name] = self.tensor
        if self.written():
            self.tensor.copy_(self.copy)


def _lazy_clone(tensor: torch.Tensor) -> torch.Tensor:
    """A copy-on-write clone where torch has them (CPU and CUDA), else a plain clone."""
    lazy = getattr(torch, "_lazy_clone", None)
    if lazy is not None:
        try:
            return lazy(tensor.detach())
        except Exception:  # a device or layout without copy-on-write storage
            pass
    return tensor.detach().clone()


def _is_abstract(tensor: torch.Tensor) -> bool:
    return tensor.is_meta or type(tensor).__name__ == "FakeTensor"


def count_abstract(
    model: torch.nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    train: bool = False,
    grad: bool = False,
) -> RawCount:
    """Count an abstract model on abstract inputs with the torch backend.

    ``train`` counts a training step (forward and backward); ``grad`` runs a forward-only
    count with grad enabled, as ``count_model(..., grad=True)`` does. Raises
    :class:`AbstractInputError` when nothing is abstract (this function is for fake or meta
    tensors; real ones are counted by ``count_model``) or when kinds are mixed.
    """
    from .backends.torch_backend import count_with_torch

    if not (is_abstract(model) or is_abstract((args, kwargs))):
        raise AbstractInputError(
            "count_abstract() got only real tensors: build the model and its inputs inside "
            "abstract(), or count real tensors with count_model()"
        )
    with torch.set_grad_enabled(grad):
        return count_with_torch(model, args, kwargs, train=train)


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
