"""Active parameters: the parameters one token's forward uses.

A dense model uses every parameter for every token, so its active parameters are its
parameters. A top-k mixture-of-experts block (an ``experts`` list and a ``top_k`` or
``num_experts_per_tok`` attribute, as in :func:`.known_values.moe_shape`) sends each token to
``k`` of its ``E`` experts: a token uses the block's shared parameters (router, norms) and
``k`` experts, so the other ``E - k`` experts are not active. Where experts differ in size, the
``k`` largest are taken (the most one token can use), so a budget on active parameters holds
for every routing. Embedding tables and the output head count whole, as published figures do
(Mixtral 8x7B: 46.7B parameters, 12.9B active).

Parameters are counted once however many modules share them; a parameter an expert shares
with the rest of the model is always active.
"""

from __future__ import annotations

import torch

from .known_values import moe_shape


def active_params(model: torch.nn.Module) -> int:
    """The parameters one token's forward uses; ``sum(p.numel())`` for a dense model."""
    unique = {id(param): param for param in model.parameters()}
    total = sum(param.numel() for param in unique.values())
    inactive: set[int] = set()
    for module in model.modules():
        shape = moe_shape(module)
        if shape is None:
            continue
        _, top_k = shape
        experts = list(module.experts)  # type: ignore[arg-type]
        in_experts = {id(m) for expert in experts for m in expert.modules()}
        outside = {
            id(p)
            for m in model.modules()
            if id(m) not in in_experts
            for p in m.parameters(recurse=False)
        }
        own = [
            {
                id(p): p
                for p in expert.parameters()
                if id(p) not in outside and id(p) not in inactive
            }
            for expert in experts
        ]
        ranked = sorted(own, key=lambda params: sum(p.numel() for p in params.values()))
        for params in ranked[: len(experts) - top_k]:
            inactive.update(params)
    return total - sum(unique[key].numel() for key in inactive if key in unique)
