"""Counting one model: leave it as it was found, silence the tracer, call the backend."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from .backends import get_backend
from .count import Count, CountError
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
        raise CountError(f"flops(name=...) must be a non-empty string, got {name!r}")
    try:
        args, kwargs = private_copies(*normalize_inputs(inputs))
    except InputError as error:
        raise CountError(f"{label}: {error}") from None
    from .abstract import is_abstract

    abstract = is_abstract(model) or is_abstract((args, kwargs))
    train = mode == "train"
    if abstract or train:
        backend = "torch"
    count_backend = get_backend(backend, train=train)
    try:
        with _model_left_as_found(model), _quiet(), torch.set_grad_enabled(grad or train):
            raw = count_backend(model, args, kwargs)
    except Exception as error:  # the tracer's own errors are many and undocumented
        if type(error).__name__ == "AbstractInputError":
            raise CountError(f"{label}: {error}") from None
        raise CountError(
            f"{label}: {backend} could not count this model: {type(error).__name__}: "
            f"{_first_line(error)}"
        ) from None
    params = sum(p.numel() for p in model.parameters())
    return Count(
        name=label,
        flops=raw.macs * flops_per_mac,
        macs=raw.macs,
        params=int(params),
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


@contextlib.contextmanager
def _model_left_as_found(model: torch.nn.Module) -> Iterator[None]:
    """Restore train/eval flags, requires_grad and buffers (BatchNorm statistics) afterwards.

    Buffers are saved for modules in training mode only: that is when forward passes update
    them (running statistics); in eval mode they are read, not written.
    """
    modes = {module: module.training for module in model.modules()}
    requires_grad = {param: param.requires_grad for param in model.parameters()}
    buffers: dict[str, Any] = {}
    for module_path, module in model.named_modules():
        if not module.training:
            continue
        for name, buffer in module.named_buffers(recurse=False):
            if buffer is not None and not _is_fake(buffer):
                path = f"{module_path}.{name}" if module_path else name
                buffers[path] = buffer.detach().clone()
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)
        if buffers:
            current = dict(model.named_buffers())
            with torch.no_grad():
                for path, saved in buffers.items():
                    buffer = current.get(path)
                    if buffer is not None and buffer.shape == saved.shape:
                        buffer.copy_(saved)


def _is_fake(tensor: torch.Tensor) -> bool:
    return tensor.device.type == "meta" or type(tensor).__name__ == "FakeTensor"
