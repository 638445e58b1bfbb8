"""Counting one model: leave it as it was found, silence the tracer, call the backend."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .backends import get_backend
from .count import Count, CountError, RawCount
from .fakes import AbstractInputError, is_abstract
from .inputs import InputError, normalize_inputs, private_copies


def count_model(
    model: object,
    inputs: object,
    *,
    name: str | None = None,
    flops_per_mac: int = 1,
    backend: str = "fvcore",
    mode: str = "inference",
    grad: bool = False,
) -> Count:
    """Count ``model(inputs)`` and return the result in the given convention.

    Abstract models and inputs (fake or meta tensors) and training steps (``mode="train"``)
    are counted by the torch backend whatever ``backend`` says: a JIT trace needs real data
    and sees no backward pass. The count's ``backend`` says which one counted.
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
        args, kwargs = private_copies(*normalize_inputs(inputs))
    except InputError as error:
        raise CountError(f"{label}: {error}") from None
    train = mode == "train"
    state = _ModelState.of(model, all_buffers=train)
    abstract = state.abstract or is_abstract((args, kwargs))
    if abstract or train:
        backend = "torch"
    count_backend = get_backend(backend, train=train)
    try:
        with _quiet(), torch.set_grad_enabled(grad or train):
            raw = count_backend(model, args, kwargs)
    except Exception as error:  # the tracer's own errors are many and undocumented
        if type(error).__name__ == "AbstractInputError":
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
        backend=backend,
        by_module={path: macs * flops_per_mac for path, macs in raw.by_module_macs.items() if path},
        unknown_ops=dict(raw.unknown_ops),
        mode=mode,
        abstract=abstract,
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

    Buffers are saved for modules in training mode only: that is when forward passes update
    them (running statistics); in eval mode they are read, not written. A training-step count
    switches every module to training mode, so then every buffer is saved.
    """

    modes: list[tuple[torch.nn.Module, bool]] = field(default_factory=list)
    requires_grad: dict[int, tuple[torch.nn.Parameter, bool]] = field(default_factory=dict)
    buffers: list[tuple[torch.nn.Module, str, torch.Tensor]] = field(default_factory=list)
    abstract: bool = False

    @classmethod
    def of(cls, model: torch.nn.Module, *, all_buffers: bool = False) -> _ModelState:
        state = cls()
        for module in model.modules():
            state.modes.append((module, module.training))
            for param in module._parameters.values():
                if param is not None:
                    state.requires_grad[id(param)] = (param, param.requires_grad)
                    state.abstract = state.abstract or _is_abstract(param)
            for name, buffer in module._buffers.items():
                if buffer is None:
                    continue
                if _is_abstract(buffer):
                    state.abstract = True
                elif module.training or all_buffers:
                    state.buffers.append((module, name, buffer.detach().clone()))
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
        with torch.no_grad():
            for module, name, saved in self.buffers:
                buffer = module._buffers.get(name)
                if buffer is not None and buffer.shape == saved.shape:
                    buffer.copy_(saved)


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
