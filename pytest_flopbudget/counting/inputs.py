"""Model inputs in any shape users pass them, made traceable.

Tracers take positional tensors and return tensors. Users pass a tensor, a tuple of arguments
or a dict of keyword arguments, and models return dicts, dataclasses or cache objects.
:class:`TensorCall` bridges the two without the user writing a wrapper.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils import _pytree as pytree


class InputError(TypeError):
    """Inputs the counter cannot pass to the model."""


def normalize_inputs(inputs: object) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A tensor, a tuple/list of positional arguments, or a dict of keyword arguments."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, tuple):
        return inputs, {}
    if isinstance(inputs, list):
        return tuple(inputs), {}
    if isinstance(inputs, Mapping):
        bad = [key for key in inputs if not isinstance(key, str)]
        if bad:
            raise InputError(f"keyword inputs need string keys, got {bad[0]!r}")
        return (), dict(inputs)
    raise InputError(
        "inputs must be a tensor, a tuple of positional arguments or a dict of keyword "
        f"arguments, got {type(inputs).__name__}"
    )


_IMMUTABLE = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device)


def private_copies(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Copies of the non-tensor objects among the inputs, which models may change in place.

    A Hugging Face cache passed as ``past_key_values`` grows by the new tokens on every
    forward: counting a decoding step twice with one cache would count two different steps.
    Tensors are passed as they are (models do not write into their inputs).
    """
    if not kwargs and all(isinstance(arg, torch.Tensor) for arg in args):
        return args, kwargs  # the common case, nothing to copy
    leaves, spec = pytree.tree_flatten((args, kwargs))
    copied = []
    for leaf in leaves:
        if isinstance(leaf, (torch.Tensor, *_IMMUTABLE)):
            copied.append(leaf)
            continue
        try:
            copied.append(copy.deepcopy(leaf, _abstract_tensors_kept(leaf)))
        except Exception:  # an object that cannot be copied is passed as it is
            copied.append(leaf)
    return pytree.tree_unflatten(copied, spec)


def _abstract_tensors_kept(obj: object) -> dict[int, Any]:
    """A deepcopy memo that keeps abstract tensors as they are: a deep-copied fake tensor
    lands in a new fake mode and no longer mixes with the model's, and has no values to
    protect anyway."""
    return {
        id(tensor): tensor
        for tensor in output_tensors(obj)
        if tensor.is_meta or type(tensor).__name__ == "FakeTensor"
    }


def output_tensors(output: object, _depth: int = 0) -> list[torch.Tensor]:
    """Every tensor in a model's output: tuples, dicts, dataclasses, cache objects."""
    if isinstance(output, torch.Tensor):
        return [output]
    if _depth > 6 or output is None or isinstance(output, (str, bytes, int, float, bool)):
        return []
    if isinstance(output, Mapping):
        values: Any = output.values()
    elif isinstance(output, (list, tuple, set)):
        values = output
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        values = [getattr(output, f.name) for f in dataclasses.fields(output)]
    elif hasattr(output, "__dict__"):
        values = vars(output).values()
    else:
        return []
    found: list[torch.Tensor] = []
    for value in values:
        found.extend(output_tensors(value, _depth + 1))
    return found


class TensorCall(torch.nn.Module):
    """Calls ``model(*args, **kwargs)`` from tensors alone and returns a tuple of tensors.

    Non-tensor leaves of the inputs (flags, ints, None) are bound as constants. The model is
    registered as the only child under ``PREFIX`` so module paths can be mapped back.
    """

    PREFIX = "model"

    def __init__(self, model: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]):
        super().__init__()
        self.model = model
        leaves, self._spec = pytree.tree_flatten((args, kwargs))
        self._tensor_positions = [
            i for i, leaf in enumerate(leaves) if isinstance(leaf, torch.Tensor)
        ]
        self._leaves = leaves
        self.tensors = tuple(leaves[i] for i in self._tensor_positions)

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        found = self.call(*tensors)
        if not found:
            raise InputError("the model returned no tensors; nothing can be traced")
        return tuple(found)

    def call(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Run the model on these tensors; every tensor of its output, possibly none."""
        leaves = list(self._leaves)
        for position, tensor in zip(self._tensor_positions, tensors, strict=True):
            leaves[position] = tensor
        args, kwargs = pytree.tree_unflatten(leaves, self._spec)
        return output_tensors(self.model(*args, **kwargs))


def strip_prefix(by_module: Mapping[str, int], prefix: str) -> dict[str, int]:
    """Map the wrapper's module paths (``model.layer1``) back to the user's (``layer1``)."""
    result: dict[str, int] = {}
    for path, value in by_module.items():
        if path == prefix:
            result[""] = int(value)
        elif path.startswith(prefix + "."):
            result[path[len(prefix) + 1 :]] = int(value)
    return result
