"""Budget checks on the example models: run `python -m pytest` in examples/."""

from __future__ import annotations

import pytest
import torch
from models import FFN, SmallCNN, TransformerBlock


def test_ffn_matches_the_seed_article(flops):
    # budget: "FFN" in pyproject.toml; the count is exact: 4*1024 + 1024*1024 + 1024*2 MACs
    result = flops(FFN(), torch.randn(1, 4))
    assert result.macs == 1_054_720


@pytest.mark.parametrize("resolution", [64, 128])
def test_cnn_at_each_resolution(flops, resolution):
    # budgets per parametrized node id in pyproject.toml
    flops(SmallCNN().eval(), torch.randn(1, 3, resolution, resolution))


@pytest.mark.flop_budget(mmacs=10.5, mparams=0.1, name="classifier")
def test_cnn_budget_in_the_marker(flops):
    flops(SmallCNN().eval(), torch.randn(1, 3, 64, 64), name="classifier")


def test_transformer_block(flops):
    # budget: "TransformerBlock" in pyproject.toml, in warn mode (see there)
    flops(TransformerBlock().eval(), torch.randn(1, 128, 256))


def test_ffn_training_step_fits_in_memory(flops):
    # budget: "FFN:train" in pyproject.toml, on the peak memory of one training step with Adam:
    # weights, gradients and Adam's two moments are 4 x 1,056,770 x 4 bytes = 16.1 MiB; the
    # activations and the optimizer step's temporaries bring the peak to 24.1 MiB
    result = flops(FFN(), torch.randn(1, 4), name="FFN:train", mode="train", optimizer="adam")
    assert result.param_bytes == 1_056_770 * 4
