"""Prefill and decode: what serving a prompt and generating tokens costs, phase by phase.

``count_generate(model, inputs, max_new_tokens=N)`` counts greedy, fixed-length generation
with a KV cache on a Hugging Face-style causal LM (``model(input_ids=..., past_key_values=...,
use_cache=True)`` returning ``.past_key_values``), real or abstract:

- ``prefill``: one forward over the ``P`` prompt tokens (its last logits give the first new
  token);
- ``decode``: ``N`` one-token forwards, step ``j`` feeding new token ``j`` at context
  ``P + j`` (cache ``P + j - 1`` plus itself). Each generated token passes the model once, as
  serving cost models count it (``model.generate`` itself stops one forward earlier: the last
  token is returned, never fed back);
- ``decode_last``: the last of those steps, one token at the final context ``P + N``.

Token values never matter (greedy, fixed length): new tokens are zeros.

Counting ``N`` steps one by one would trace the model ``N`` times. A decode step differs from
the next only by the cache length, and its cost is affine in the context (projections and MLPs
are constant per token, attention grows by one key per step). So the first two steps and the
last are counted and the line through the first two must predict the last exactly, for the
total and for every module; the sum over all steps then follows in closed form. The cache for
the last step is lengthened in place with zeros when it is a plain ``DynamicCache``, else made
by one uncounted forward of the tokens in between. If the line misses (a sliding window, a
cost that jumps), the steps in between are counted one by one. Either way the result is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .count import Count, CountError
from .counter import count_model
from .fakes import counting_context, through_fakes
from .inputs import InputError, normalize_inputs

PHASES = ("prefill", "decode", "decode_last")


@dataclass(frozen=True)
class GenerationCount:
    """``flops.generate(...)``: the phases of one generation and the cost per token.

    ``phases`` maps ``"prefill"``, ``"decode"`` (all new tokens) and ``"decode_last"`` (one
    token at the final context) to counts, recorded as ``<name>:prefill`` etc. ``flops`` and
    ``macs`` are prefill plus decode.
    """

    name: str
    prompt_tokens: int
    new_tokens: int
    prefill: Count
    decode: Count
    decode_last: Count
    steps: Mapping[int, Count] = field(default_factory=dict)
    """The decode steps that were counted, by context."""
    affine: bool = False
    """Whether the decode total was summed in closed form from three counted steps."""
    how: str = ""
    """How the decode phase was counted, in words."""

    @property
    def phases(self) -> dict[str, Count]:
        return {"prefill": self.prefill, "decode": self.decode, "decode_last": self.decode_last}

    @property
    def flops(self) -> int:
        return self.prefill.flops + self.decode.flops

    @property
    def macs(self) -> int:
        return self.prefill.macs + self.decode.macs

    @property
    def params(self) -> int:
        return self.prefill.params

    @property
    def active_params(self) -> int:
        return self.prefill.active

    @property
    def final_context(self) -> int:
        return self.prompt_tokens + self.new_tokens

    def per_token_at(self, context: int) -> Count:
        """One decode step at ``context`` (cache ``context - 1`` plus the new token), for any
        context this generation went through (``prompt + 1`` to ``prompt + new``)."""
        first = self.prompt_tokens + 1
        if not first <= context <= self.final_context:
            raise ValueError(
                f"per_token_at({context}): this generation decoded at contexts {first} to "
                f"{self.final_context}; count a longer one for other contexts"
            )
        if context in self.steps:
            return replace(self.steps[context], name=f"{self.name}:decode@{context}")
        a, b = self.steps[first], self.steps[first + 1]
        return _line(a, b, context - first, name=f"{self.name}:decode@{context}")


def count_generate(
    model: object,
    inputs: object,
    *,
    max_new_tokens: int,
    name: str | None = None,
    flops_per_mac: int = 1,
    abstract: bool = False,
) -> GenerationCount:
    """Count prefill and ``max_new_tokens`` decode steps (see the module docstring).

    ``abstract=True`` counts a real model through fake copies of its tensors and the prompt
    (:func:`.fakes.through_fakes`): nothing is computed and the cache takes no memory.
    """
    __tracebackhide__ = True
    if not isinstance(model, torch.nn.Module):
        raise CountError(f"generate() needs a torch.nn.Module, got {type(model).__name__}")
    label = name if name is not None else type(model).__name__
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise CountError(f"{label}: max_new_tokens must be a positive int, got {max_new_tokens!r}")
    prompt = _prompt(inputs, label)
    if abstract:
        with through_fakes(model, (), prompt) as (_, fake_prompt):
            return _generate(model, fake_prompt, label, max_new_tokens, flops_per_mac)
    return _generate(model, prompt, label, max_new_tokens, flops_per_mac)


def _generate(
    model: torch.nn.Module,
    prompt: dict[str, Any],
    label: str,
    max_new_tokens: int,
    flops_per_mac: int,
) -> GenerationCount:
    ids = prompt["input_ids"]
    batch, length = int(ids.shape[0]), int(ids.shape[1])
    count = _Counter(model, label, flops_per_mac, batch)

    prefill, cache = count.step({**prompt, "use_cache": True}, "prefill")
    mask = prompt.get("attention_mask")
    steps: dict[int, Count] = {}

    def feed(cache: Any, tokens: int, mask: Any, counted: bool) -> tuple[Count | None, Any, Any]:
        with _values_known(ids):
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones((batch, tokens))], dim=1)
            new_ids = ids.new_zeros((batch, tokens))
        kwargs = {"input_ids": new_ids, "past_key_values": cache}
        kwargs.update(
            {"use_cache": True} if mask is None else {"use_cache": True, "attention_mask": mask}
        )
        if counted:
            step, cache = count.step(kwargs, "decode")
            return step, cache, mask
        with _values_known(ids):
            if _grow_cache(cache, tokens):
                return None, cache, mask
        return None, count.advance(kwargs), mask

    context = length
    while context < length + min(max_new_tokens, 2):
        step, cache, mask = feed(cache, 1, mask, counted=True)
        context += 1
        steps[context] = step  # type: ignore[assignment]
    final = length + max_new_tokens
    if final > context:
        if final - 1 > context:
            _, cache, mask = feed(cache, final - 1 - context, mask, counted=False)
        step, cache, mask = feed(cache, 1, mask, counted=True)
        steps[final] = step  # type: ignore[assignment]
    first = length + 1
    affine = max_new_tokens <= 2 or _on_line(
        steps[first], steps[first + 1], steps[final], final - first
    )
    if affine:
        decode = _decode_sum(
            steps[first], steps.get(first + 1), steps[final], max_new_tokens, f"{label}:decode"
        )
        how = (
            f"all {max_new_tokens} steps counted"
            if max_new_tokens <= 2
            else f"3 of {max_new_tokens} steps counted, cost affine in the context"
        )
    else:  # count the steps in between one by one, from the second step's cache (uncounted)
        cache = count.advance({**prompt, "use_cache": True})
        mask = prompt.get("attention_mask")
        _, cache, mask = feed(cache, 2, mask, counted=False)
        for context in range(first + 2, final):
            step, cache, mask = feed(cache, 1, mask, counted=True)
            steps[context] = step  # type: ignore[assignment]
        steps = dict(sorted(steps.items()))
        decode = _sum(list(steps.values()), f"{label}:decode")
        how = (
            f"all {max_new_tokens} steps counted one by one: the cost is not affine in the "
            "context (a sliding window, or a cost that jumps)"
        )
    last = replace(steps[final], name=f"{label}:decode_last", counted_in=f"{label}:decode")
    return GenerationCount(
        name=label,
        prompt_tokens=length,
        new_tokens=max_new_tokens,
        prefill=replace(prefill, name=f"{label}:prefill"),
        decode=decode,
        decode_last=last,
        steps=steps,
        affine=affine,
        how=how,
    )


@contextlib.contextmanager
def _values_known(like: torch.Tensor) -> Iterator[None]:
    """New tokens and mask columns made in the prompt's fake mode, with known values."""
    from torch._subclasses.fake_tensor import FakeTensor

    if not isinstance(like, FakeTensor):
        yield
        return
    from .known_values import KnownValues

    with like.fake_mode, KnownValues():
        yield


def _grow_cache(cache: Any, tokens: int) -> bool:
    """Lengthen a Hugging Face ``DynamicCache`` by ``tokens`` positions without a forward.

    An uncounted forward over the tokens between two counted steps only appends their keys and
    values to every layer; their values never matter to a count, so zeros of the same shape
    do. Only a plain ``DynamicCache`` of plain ``DynamicLayer``s (what causal LMs make by
    default) is lengthened this way: sliding-window, quantized, offloaded or static layers keep
    their own rules, so for them (and any other cache) this returns False and the forward runs.
    """
    if not type(cache).__module__.startswith("transformers."):
        return False
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:  # pragma: no cover - transformers without the layered cache
        return False
    layers = getattr(cache, "layers", None)
    if type(cache) is not DynamicCache or not layers:
        return False
    if any(
        type(layer) is not DynamicLayer
        or not getattr(layer, "is_initialized", False)
        or not isinstance(layer.keys, torch.Tensor)
        or layer.keys.dim() != 4
        or not isinstance(layer.values, torch.Tensor)
        or layer.values.dim() != 4
        for layer in layers
    ):
        return False
    for layer in layers:
        for attr in ("keys", "values"):
            old = getattr(layer, attr)
            extra = old.new_zeros((*old.shape[:2], tokens, old.shape[3]))
            setattr(layer, attr, torch.cat([old, extra], dim=-2))
    return True


def _prompt(inputs: object, label: str) -> dict[str, Any]:
    try:
        args, kwargs = normalize_inputs(inputs)
    except InputError as error:
        raise CountError(f"{label}: {error}") from None
    if args:
        if len(args) != 1 or kwargs:
            raise CountError(f"{label}: generate() takes input ids or a dict with 'input_ids'")
        kwargs = {"input_ids": args[0]}
    ids = kwargs.get("input_ids")
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2:
        raise CountError(
            f"{label}: generate() needs input ids of shape (batch, prompt length), as a tensor "
            "or as inputs['input_ids']"
        )
    return kwargs


class _Counter:
    """Counts one forward and keeps its cache (the counted call works on a private copy)."""

    def __init__(self, model: torch.nn.Module, label: str, flops_per_mac: int, batch: int) -> None:
        self.model, self.label, self.flops_per_mac = model, label, flops_per_mac

    def step(self, kwargs: dict[str, Any], phase: str) -> tuple[Count, Any]:
        outputs: list[Any] = []
        handle = self.model.register_forward_hook(lambda module, args, out: outputs.append(out))
        try:
            counted = count_model(
                self.model,
                kwargs,
                name=f"{self.label}:{phase}",
                flops_per_mac=self.flops_per_mac,
                backend="torch",
            )
        finally:
            handle.remove()
        return counted, self._cache(outputs[-1] if outputs else None)

    def advance(self, kwargs: dict[str, Any]) -> Any:
        with (
            counting_context(self.model, (), kwargs),
            torch.no_grad(),
            contextlib.suppress(Warning),
        ):
            return self._cache(self.model(**kwargs))

    def _cache(self, outputs: Any) -> Any:
        cache = getattr(outputs, "past_key_values", None)
        if cache is None and isinstance(outputs, Mapping):
            cache = outputs.get("past_key_values")
        if cache is None:
            raise CountError(
                f"{self.label}: generate() needs a model that returns past_key_values when "
                "called with use_cache=True (a Hugging Face causal LM); this one returned "
                f"{type(outputs).__name__}"
            )
        return cache


_LINEAR_INTS = ("macs", "bytes_moved")
_LINEAR_MAPS = ("by_module", "bytes_by_module", "bytes_by_dtype")
"""Fields that add up over ops, hence affine in the context where the MACs are."""


def _on_line(a: Count, b: Count, last: Count, steps: int) -> bool:
    """Whether ``last`` (``steps`` contexts after ``a``) lies on the line through a and b."""
    predicted = _line(a, b, steps, name=last.name)
    return (
        all(getattr(predicted, key) == getattr(last, key) for key in _LINEAR_INTS)
        and all(dict(getattr(predicted, key)) == dict(getattr(last, key)) for key in _LINEAR_MAPS)
        and dict(a.unknown_ops) == dict(b.unknown_ops) == dict(last.unknown_ops)
    )


def _combine(counts: list[Count], weights: list[int], *, name: str, **changes: Any) -> Count:
    """``sum(weight * count)`` over the additive fields; the rest is the first count's.

    Per-op costs cannot be combined this way (an attention op's cost changes with the
    context), so a combination leaves them out rather than carry the first step's.
    """
    first = counts[0]
    values: dict[str, Any] = {}
    for key in _LINEAR_INTS:
        parts = [getattr(count, key) for count in counts]
        values[key] = (
            None
            if any(part is None for part in parts)
            else sum(w * part for w, part in zip(weights, parts, strict=True))
        )
    for key in _LINEAR_MAPS:
        maps = [getattr(count, key) for count in counts]
        keys = set().union(*maps)
        values[key] = {
            k: sum(w * m.get(k, 0) for w, m in zip(weights, maps, strict=True)) for k in keys
        }
    values["flops"] = values["macs"] * first.flops_per_mac
    values["op_costs"] = first.op_costs if len(counts) == 1 and weights == [1] else ()
    return replace(first, name=name, **values, **changes)


def _line(a: Count, b: Count, steps: int, *, name: str) -> Count:
    """The step ``steps`` contexts after ``a``, on the line through ``a`` and ``b``."""
    return _combine([a, b], [1 - steps, steps], name=name, peak_memory=None)


def _decode_sum(first: Count, second: Count | None, last: Count, steps: int, name: str) -> Count:
    """Σ over ``steps`` steps of an affine cost: ``steps * first + slope * steps(steps-1)/2``."""
    if second is None:
        return replace(first, name=name)
    peaks = (first.peak_memory, last.peak_memory)
    weight = steps * (steps - 1) // 2
    return _combine(
        [first, second],
        [steps - weight, weight],
        name=name,
        unknown_ops={op: times * steps for op, times in first.unknown_ops.items()},
        peak_memory=None if None in peaks else max(peaks),  # type: ignore[type-var]
    )


def _sum(counts: list[Count], name: str) -> Count:
    unknown: dict[str, int] = {}
    for count in counts:
        for op, times in count.unknown_ops.items():
            unknown[op] = unknown.get(op, 0) + times
    peaks = [count.peak_memory for count in counts]
    return _combine(
        counts,
        [1] * len(counts),
        name=name,
        unknown_ops=unknown,
        peak_memory=None if None in peaks else max(peaks),  # type: ignore[type-var]
    )
