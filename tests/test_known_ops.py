"""Ops that cost nothing (or are counted elsewhere) are known, so ``unknown_ops = "fail"``
does not fail on them; the models of this test suite and of the examples list no unknown op.

Each expected count is hand arithmetic on the one Linear or product in the model; the op under
test is elementwise or data movement, 0 by fvcore's convention, on both backends.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
import transformers
from torch import nn

from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.fakes import abstract

WAYS = [("fvcore", {}), ("torch", {}), ("torch", {"grad": True})]
WAY_IDS = ["fvcore", "torch", "torch-grad"]


class Then(nn.Module):
    """Linear(8, 8) followed by ``fn``: on (2, 8) the Linear is 2*8*8 = 128 MACs."""

    def __init__(self, fn: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> Any:
        return self.fn(self.fc(x))


LINEAR_MACS = 2 * 8 * 8


def _counts(model: nn.Module, inputs: Any) -> list[tuple[int, dict[str, int]]]:
    return [
        (count.macs, count.unknown_ops)
        for count in (count_model(model, inputs, backend=b, **o) for b, o in WAYS)
    ]


@pytest.mark.parametrize(
    "activation",
    [
        nn.Hardswish(inplace=True),
        nn.Hardtanh(inplace=True),
        nn.ReLU6(inplace=True),
        nn.Hardsigmoid(inplace=True),
        nn.LeakyReLU(inplace=True),
        nn.ELU(inplace=True),
        nn.SELU(inplace=True),
        nn.CELU(inplace=True),
        nn.Mish(inplace=True),
        nn.RReLU(inplace=True).eval(),
    ],
    ids=lambda module: type(module).__name__,
)
def test_in_place_activations_are_ignored_like_their_out_of_place_forms(
    activation: nn.Module,
) -> None:
    model = nn.Sequential(nn.Linear(8, 8), activation)
    assert _counts(model, torch.randn(2, 8)) == [(LINEAR_MACS, {})] * 3


def test_in_place_elementwise_math_is_ignored() -> None:
    def chain(x: torch.Tensor) -> torch.Tensor:
        y = x.clone().log_().floor_().ceil_().sin_().cos_().erf_().reciprocal_().round_()
        return y.trunc_().sign_().square_()

    assert _counts(Then(chain), torch.randn(2, 8)) == [(LINEAR_MACS, {})] * 3


@pytest.mark.parametrize(
    "fn",
    [
        lambda y: torch.tensor_split(y, 2, dim=1)[0] * 2,
        lambda y: torch.meshgrid(y[0], y[1], indexing="ij")[0] + 1,
        lambda y: y * torch._shape_as_tensor(y)[0],
        lambda y: F.one_hot(y.argmax(-1), 8).float() + y,
    ],
    ids=["tensor_split", "meshgrid", "_shape_as_tensor", "one_hot"],
)
def test_splitting_grids_shapes_and_one_hot_are_data_movement(fn: Callable[..., Any]) -> None:
    assert _counts(Then(fn), torch.randn(2, 8)) == [(LINEAR_MACS, {})] * 3


@pytest.mark.filterwarnings("ignore:.*weight_norm is deprecated:FutureWarning")
@pytest.mark.parametrize(
    "wrap",
    [torch.nn.utils.weight_norm, torch.nn.utils.parametrizations.weight_norm],
    ids=["weight_norm", "parametrizations.weight_norm"],
)
def test_weight_norm_is_ignored_and_its_linear_counted(wrap: Callable[..., nn.Module]) -> None:
    model = wrap(nn.Linear(8, 4))
    # the Linear: 2 rows x 8 x 4; rescaling the weight by its norm is elementwise
    assert _counts(model, torch.randn(2, 8)) == [(2 * 8 * 4, {})] * 3
    step = count_model(model, torch.randn(2, 8), mode="train")
    # forward + the weight gradient (the input needs none): 2 x 64
    assert (step.macs, step.unknown_ops) == (2 * 64, {})


def test_data_parallel_on_cpu_lists_no_profiler_ops() -> None:
    model = nn.DataParallel(nn.Linear(8, 4))
    assert _counts(model, torch.randn(2, 8)) == [(2 * 8 * 4, {})] * 3


def test_in_place_addmm_counts_its_product() -> None:
    class InPlace(nn.Module):
        def forward(self, c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return c.clone().addmm_(a, b)

    inputs = (torch.randn(3, 5), torch.randn(3, 4), torch.randn(4, 5))
    assert _counts(InPlace(), inputs) == [(3 * 4 * 5, {})] * 3


def test_affine_grid_counts_theta_times_every_base_point() -> None:
    model = Then(lambda y: F.affine_grid(y[:, :6].reshape(2, 2, 3), [2, 1, 4, 4]))
    # 2 x 4 x 4 output points, each (2x3) @ (3,): 2*4*4*2*3 = 192, plus the Linear
    assert _counts(model, torch.randn(2, 8)) == [(LINEAR_MACS + 192, {})] * 3


# --------------------------------------------------------------------------------------------
# the models of this test suite and of the examples list no unknown op, on every way of counting

D, VOCAB = 32, 100


def _bert(attn: str) -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        attn_implementation=attn,
    )
    return transformers.BertModel(config)


def _vit() -> nn.Module:
    config = transformers.ViTConfig(
        hidden_size=D,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=8,
        attn_implementation="sdpa",
    )
    return transformers.ViTModel(config)


def _gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_embd=D, n_layer=1, n_head=4, n_positions=64
    )
    return transformers.GPT2LMHeadModel(config)


def _llama_config() -> Any:
    return transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )


def _ids() -> dict[str, torch.Tensor]:
    return {"input_ids": torch.randint(0, VOCAB, (1, 8))}


def _examples() -> Any:
    """examples/models.py, under its own name: pytester projects write a ``models`` module."""
    path = Path(__file__).parents[1] / "examples" / "models.py"
    spec = importlib.util.spec_from_file_location("flopbudget_examples_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


EXAMPLES = _examples()

MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], Any]]] = {
    "bert-sdpa": (lambda: _bert("sdpa"), _ids),
    "bert-eager": (lambda: _bert("eager"), _ids),
    "vit": (_vit, lambda: {"pixel_values": torch.randn(1, 3, 16, 16)}),
    "gpt2": (_gpt2, _ids),
    "gpt2-with-labels": (_gpt2, lambda: {**_ids(), "labels": _ids()["input_ids"]}),
    "llama": (lambda: transformers.LlamaForCausalLM(_llama_config()), _ids),
    "llama-eager": (
        lambda: transformers.LlamaForCausalLM(
            transformers.LlamaConfig(
                **{**_llama_config().to_dict(), "_attn_implementation": "eager"}
            )
        ),
        _ids,
    ),
    "examples.FFN": (EXAMPLES.FFN, lambda: torch.randn(1, 4)),
    "examples.SmallCNN": (EXAMPLES.SmallCNN, lambda: torch.randn(1, 3, 32, 32)),
    "examples.TransformerBlock": (
        lambda: EXAMPLES.TransformerBlock(dim=32, heads=4, hidden=64),
        lambda: torch.randn(1, 8, 32),
    ),
}


@pytest.mark.parametrize(
    ("backend", "options"),
    [*WAYS, ("torch", {"mode": "train"})],
    ids=[*WAY_IDS, "torch-train"],
)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_suites_and_examples_models_list_no_unknown_ops(
    name: str, backend: str, options: dict[str, Any]
) -> None:
    make_model, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model = make_model().eval()
    count = count_model(model, make_inputs(), backend=backend, **options)
    assert count.unknown_ops == {}
    assert count.macs > 0


def test_the_examples_abstract_llama_lists_no_unknown_ops() -> None:
    with abstract():
        model = transformers.LlamaForCausalLM(_llama_config()).eval()
        ids = torch.randint(0, VOCAB, (1, 8))
    count = count_model(model, {"input_ids": ids})
    assert (count.abstract, count.unknown_ops) == (True, {})
