"""With grad enabled (``grad=True``, training steps) composites count what inference counts.

Autograd decomposes ``nn.RMSNorm`` and ``AdaptiveAvgPool2d(1)`` into elementwise ops before
the torch backend's dispatcher mode sees them; they are counted whole at the torch-function
level instead. Expected numbers are the per-element rules of the formulas module, on
(2, 4, 6, 6) inputs: 288 elements. A training step adds the same number again for the
backward (the rule for per-element estimates), so it is 2x the forward here: the only other
op, scaling the input by a parameter, is elementwise.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_flopbudget.counting.counter import count_model

N = 2 * 4 * 6 * 6  # 288


class Scaled(nn.Module):
    """``inner(x * w)``: the parameter makes the input of ``inner`` need a gradient."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * self.w)


@pytest.mark.parametrize(
    ("make", "forward"),
    [
        (lambda: nn.AdaptiveAvgPool2d(1), N),  # 1 per input element
        (lambda: nn.AdaptiveAvgPool2d(3), N),
        (lambda: nn.RMSNorm(6), 3 * N),  # sum of squares, normalization, scale
        (lambda: nn.RMSNorm([6, 6], elementwise_affine=False), 2 * N),
        (lambda: nn.LayerNorm(6), 5 * N),
        (lambda: nn.GroupNorm(2, 4), 5 * N),
        (lambda: nn.Upsample(scale_factor=2), 4 * N),  # 1 per output element
        (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), 4 * 4 * N),
    ],
    ids=[
        "adaptive-pool-1",
        "adaptive-pool-3",
        "rms-norm",
        "rms-norm-no-weight",
        "layer-norm",
        "group-norm",
        "upsample-nearest",
        "upsample-bilinear",
    ],
)
def test_forward_with_grad_and_training_steps_count_like_inference(make, forward: int) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(2, 4, 6, 6)
    counts = [
        count_model(Scaled(make()), x, backend=backend, **options)
        for backend, options in [
            ("fvcore", {}),
            ("torch", {}),
            ("torch", {"grad": True}),
            ("torch", {"mode": "train"}),
        ]
    ]
    assert [(c.macs, c.unknown_ops) for c in counts] == [
        (forward, {}),
        (forward, {}),
        (forward, {}),
        (2 * forward, {}),
    ]
    assert counts[3].by_module["inner"] == 2 * forward


def test_one_dimensional_adaptive_pooling_stays_at_fvcores_zero_in_every_mode() -> None:
    x = torch.randn(2, 3, 8)
    for options in ({}, {"grad": True}, {"mode": "train"}):
        count = count_model(Scaled(nn.AdaptiveAvgPool1d(2)), x, backend="torch", **options)
        assert (count.macs, count.unknown_ops) == (0, {}), options
    assert count_model(Scaled(nn.AdaptiveAvgPool1d(2)), x).macs == 0


def test_a_training_step_attributes_rms_norm_and_its_backward_to_the_norm() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.norm = nn.RMSNorm(8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.norm(self.fc(x))

    step = count_model(Block(), torch.randn(4, 8), mode="train")
    # fc: forward 4*8*8 = 256 and its weight gradient 256 (the input needs none);
    # norm: 3 per element of (4, 8) forward and again backward
    assert step.by_module == {"fc": 2 * 256, "norm": 2 * 3 * 32}
    assert (step.macs, step.unknown_ops) == (2 * 256 + 2 * 96, {})
