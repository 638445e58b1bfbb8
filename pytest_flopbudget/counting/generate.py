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
last are counted (the cache for the last is made by one uncounted forward of the tokens in
between) and the line through the first two must predict the last exactly, for the total and
for every module; the sum over all steps then follows in closed form. If it does not (a
sliding window, a cost that jumps), every step is counted. Either way the result is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .count import Count, CountError
from .counter import count_model
from .fakes import counting_context
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
    affine: bool = False

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
) -> GenerationCount:
    """Count prefill and ``max_new_tokens`` decode steps (see the module docstring)."""
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
    if not affine:  # count every step: go back to the second step's cache
        steps = {first: steps[first]}
        _, cache = count.step({**prompt, "use_cache": True}, "prefill")
        mask = prompt.get("attention_mask")
        for context in range(first, final + 1):
            step, cache, mask = feed(cache, 1, mask, counted=True)
            steps[context] = step  # type: ignore[assignment]
        decode = _sum(list(steps.values()), f"{label}:decode")
    else:
        decode = _decode_sum(steps[first], steps.get(first + 1), max_new_tokens, f"{label}:decode")
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


def _on_line(a: Count, b: Count, last: Count, steps: int) -> bool:
    """Whether ``last`` (``steps`` contexts after ``a``) lies on the line through a and b."""
    predicted = _line(a, b, steps, name=last.name)
    return (
        predicted.macs == last.macs
        and dict(predicted.by_module) == dict(last.by_module)
        and dict(a.unknown_ops) == dict(b.unknown_ops) == dict(last.unknown_ops)
    )


def _line(a: Count, b: Count, steps: int, *, name: str) -> Count:
    keys = set(a.by_module) | set(b.by_module)
    by_module = {
        key: a.by_module.get(key, 0) + steps * (b.by_module.get(key, 0) - a.by_module.get(key, 0))
        for key in keys
    }
    macs = a.macs + steps * (b.macs - a.macs)
    return replace(a, name=name, macs=macs, flops=macs * a.flops_per_mac, by_module=by_module)


def _decode_sum(first: Count, second: Count | None, steps: int, name: str) -> Count:
    """Σ over ``steps`` steps of an affine cost: ``steps * first + slope * steps(steps-1)/2``."""
    if second is None:
        return replace(first, name=name)
    weight = steps * (steps - 1) // 2
    keys = set(first.by_module) | set(second.by_module)

    def total(a: int, b: int) -> int:
        return steps * a + weight * (b - a)

    macs = total(first.macs, second.macs)
    return replace(
        first,
        name=name,
        macs=macs,
        flops=macs * first.flops_per_mac,
        by_module={
            key: total(first.by_module.get(key, 0), second.by_module.get(key, 0)) for key in keys
        },
        unknown_ops={op: times * steps for op, times in first.unknown_ops.items()},
    )


def _sum(counts: list[Count], name: str) -> Count:
    by_module: dict[str, int] = {}
    unknown: dict[str, int] = {}
    for count in counts:
        for key, value in count.by_module.items():
            by_module[key] = by_module.get(key, 0) + value
        for op, times in count.unknown_ops.items():
            unknown[op] = unknown.get(op, 0) + times
    macs = sum(count.macs for count in counts)
    return replace(
        counts[0],
        name=name,
        macs=macs,
        flops=macs * counts[0].flops_per_mac,
        by_module=by_module,
        unknown_ops=unknown,
    )
