"""The peak-memory estimate against the real peak of the same pass on CPU: ``docs/memory.md``.

``python bench/memory_accuracy.py`` prints the Markdown table of docs/memory.md. The real peak
is measured independently of the estimator: what exists before the pass (parameters,
buffers, inputs, optimizer state) is summed over distinct storages by data pointer, and the
pass itself runs under ``torch.profiler.profile(profile_memory=True)``, whose allocator events
(every allocation and free of the CPU allocator, with its size and time) are summed in time
order into a running total; the real peak is the baseline plus the running total's maximum.
The estimate is ``count_model(...).peak_memory`` of the same model and inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_flopbudget.counting.counter import count_model


class SmallCNN(nn.Module):
    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(4 * width),
            nn.ReLU(),
        )
        self.head = nn.Linear(4 * width, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


class Block(nn.Module):
    """A pre-norm transformer block: multi-head attention (SDPA) and an MLP."""

    def __init__(self, dim: int = 256, heads: int = 4, hidden: int = 1024) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, dim = x.shape
        q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
        q, k, v = (t.view(batch, seq, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(attended.transpose(1, 2).reshape(batch, seq, dim))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


def tiny_llama() -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=2000,
        max_position_embeddings=256,
        use_cache=False,
    )
    return LlamaForCausalLM(config)


def models(scale: int = 1) -> dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]]:
    """Name -> (model factory, inputs factory). ``scale`` multiplies the batch."""
    return {
        "CNN": (SmallCNN, lambda: torch.randn(4 * scale, 3, 64, 64)),
        "Transformer block": (Block, lambda: torch.randn(2 * scale, 128, 256)),
        "Llama (transformers, 2 layers)": (
            tiny_llama,
            lambda: torch.randint(0, 2000, (scale, 128)),
        ),
    }


def _loss(output: Any) -> torch.Tensor:
    logits = getattr(output, "logits", output)
    return logits.sum()


def _existing_bytes(tensors: list[torch.Tensor]) -> int:
    storages: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _allocator_peak(run: Callable[[], None]) -> int:
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = [
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    ]
    running = peak = 0
    for _, size in sorted(events):
        running += size
        peak = max(peak, running)
    return peak


def measured_peak(model: nn.Module, inputs: torch.Tensor, mode: str, optimizer: str | None) -> int:
    """The real peak of one inference forward, or of one steady-state training step
    (``zero_grad(set_to_none=True)``, forward, loss, backward, ``optimizer.step()``)."""
    if mode == "inference":
        model.eval()

        def forward() -> None:
            with torch.no_grad():
                output = model(inputs)
            del output

        existing = [*model.parameters(), *model.buffers(), inputs]
        return _existing_bytes(existing) + _allocator_peak(forward)
    model.train()
    step = None
    if optimizer == "adam":
        step = torch.optim.Adam(model.parameters(), lr=1e-4)
        _loss(model(inputs)).backward()  # the first step creates the optimizer's state
        step.step()
    model.zero_grad(set_to_none=True)
    state = [
        value
        for values in (step.state.values() if step else [])
        for value in values.values()
        if torch.is_tensor(value)
    ]

    def training_step() -> None:
        output = model(inputs)
        loss = _loss(output)
        del output
        loss.backward()
        if step is not None:
            step.step()

    existing = [*model.parameters(), *model.buffers(), inputs, *state]
    try:
        return _existing_bytes(existing) + _allocator_peak(training_step)
    finally:
        model.zero_grad(set_to_none=True)


def estimated_peak(
    model: nn.Module, inputs: torch.Tensor, mode: str, optimizer: str | None, backend: str
) -> int:
    if mode == "inference":
        model.eval()
    count = count_model(model, inputs, mode=mode, optimizer=optimizer, backend=backend)
    assert count.peak_memory is not None
    return count.peak_memory


CASES = (("inference", None), ("train", None), ("train", "adam"))


def rows(scale: int = 1) -> list[dict[str, Any]]:
    found = []
    for name, (make_model, make_inputs) in models(scale).items():
        torch.manual_seed(0)
        model, inputs = make_model(), make_inputs()
        for mode, optimizer in CASES:
            estimate = estimated_peak(model, inputs, mode, optimizer, "torch")
            real = measured_peak(model, inputs, mode, optimizer)
            found.append(
                {
                    "model": name,
                    "mode": mode + (f", {optimizer}" if optimizer else ""),
                    "estimate": estimate,
                    "measured": real,
                    "error": (estimate - real) / real,
                }
            )
    return found


def markdown(found: list[dict[str, Any]]) -> str:
    lines = [
        "| model | mode | estimate (MiB) | measured (MiB) | error |",
        "|---|---|---:|---:|---:|",
    ]
    for row in found:
        lines.append(
            f"| {row['model']} | {row['mode']} | {row['estimate'] / 2**20:.2f} "
            f"| {row['measured'] / 2**20:.2f} | {row['error']:+.1%} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(markdown(rows(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
