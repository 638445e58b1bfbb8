"""``abstract=True``: a model built with real weights counted through fake copies of its tensors.

The count must equal running the model (the same MACs per module, parameters and active
parameters), cost nothing that grows with the batch, and leave the model exactly as it was:
its parameter and buffer objects and values, its hooks and its training flags. The option is
set on the call, the marker or in pyproject.toml, the closest winning, like ``backend``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import transformers as T
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor

from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.generate import count_generate

D, FF, LAYERS, HEADS, VOCAB, SEQ = 32, 64, 2, 2, 100, 8
DECODER = {
    "hidden_size": D,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": HEADS,
    "intermediate_size": FF,
    "vocab_size": VOCAB,
}


def _bert_inputs() -> dict[str, torch.Tensor]:
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, 5:] = 0  # padding: the model reads the mask's values (known: it was real)
    return {"input_ids": torch.randint(0, VOCAB, (2, SEQ)), "attention_mask": mask}


Case = tuple[Callable[[], nn.Module], Callable[[], Any]]
CASES: dict[str, Case] = {
    "conv-bn": (
        lambda: nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten()
        ),
        lambda: torch.randn(4, 3, 16, 16),
    ),
    "resnet": (
        lambda: T.ResNetForImageClassification(
            T.ResNetConfig(embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], num_labels=10)
        ),
        lambda: torch.randn(2, 3, 32, 32),
    ),
    "bert-with-padding": (
        lambda: T.BertModel(
            T.BertConfig(
                hidden_size=D,
                num_hidden_layers=LAYERS,
                num_attention_heads=HEADS,
                intermediate_size=FF,
                vocab_size=VOCAB,
            )
        ),
        _bert_inputs,
    ),
    "gpt2-tied-head": (
        lambda: T.GPT2LMHeadModel(
            T.GPT2Config(n_embd=D, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB)
        ),
        lambda: {"input_ids": torch.randint(0, VOCAB, (2, SEQ))},
    ),
    "llama": (
        lambda: T.LlamaForCausalLM(T.LlamaConfig(**DECODER)),
        lambda: {"input_ids": torch.randint(0, VOCAB, (2, SEQ))},
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_real_model_counted_abstractly_counts_what_running_it_counts(case: str) -> None:
    torch.manual_seed(0)
    build, inputs = CASES[case]
    model, x = build().eval(), inputs()
    real = count_model(model, x, backend="torch")
    fake = count_model(model, x, abstract=True)
    assert (fake.macs, fake.params, fake.active) == (real.macs, real.params, real.active)
    assert dict(fake.by_module) == dict(real.by_module)
    assert fake.abstract and not real.abstract
    assert fake.backend == "torch"


def test_a_training_step_counted_abstractly_counts_what_running_it_counts() -> None:
    torch.manual_seed(0)
    build, inputs = CASES["resnet"]
    model, x = build().train(), inputs()
    real = count_model(model, x, mode="train")
    fake = count_model(model, x, mode="train", abstract=True)
    assert fake.macs == real.macs and dict(fake.by_module) == dict(real.by_module)


def test_batch_64_costs_64_times_batch_1_by_hand_without_running_it() -> None:
    model = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 10))
    one = count_model(model, torch.randn(1, 512), abstract=True)
    many = count_model(model, torch.randn(64, 512), abstract=True)
    assert one.macs == 512 * 1024 + 1024 * 10
    assert many.macs == 64 * one.macs


class StepCounter(nn.Module):
    """Writes its buffers in eval mode too (as in test_model_state.py), and ties two weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.out = nn.Linear(4, 4)
        self.out.weight = self.fc.weight
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache", torch.zeros(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        self.cache.copy_(x[0].detach())
        return self.out(self.fc(x))


def _state(model: nn.Module) -> dict[str, Any]:
    return {
        "tensors": [(name, id(t)) for name, t in model.state_dict(keep_vars=True).items()],
        "values": {name: t.detach().clone() for name, t in model.state_dict().items()},
        "hooks": sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()),
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
    }


@pytest.mark.parametrize("training", [False, True])
def test_the_model_is_left_exactly_as_it_was(training: bool) -> None:
    model = StepCounter().train(training)
    model.fc.register_forward_hook(lambda *args: None)
    model.out.bias.requires_grad_(False)
    before = _state(model)
    count = count_model(model, torch.randn(3, 4), abstract=True)
    after = _state(model)
    assert count.macs == 2 * 3 * 4 * 4 and count.params == 4 * 4 + 4 + 4
    assert after["tensors"] == before["tensors"]
    assert all(torch.equal(after["values"][k], v) for k, v in before["values"].items())
    assert (after["hooks"], after["training"], after["requires_grad"]) == (
        before["hooks"],
        before["training"],
        before["requires_grad"],
    )
    assert model.out.weight is model.fc.weight
    assert not any(isinstance(t, FakeTensor) for t in model.state_dict().values())
    assert model(torch.ones(1, 4)).shape == (1, 4)  # still runs for real


def test_a_failed_abstract_count_leaves_the_real_tensors_in_place() -> None:
    class Fails(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) @ torch.ones(5, 5)

    model = Fails()
    weight = model.fc.weight
    from pytest_flopbudget import CountError

    with pytest.raises(CountError, match="Fails"):
        count_model(model, torch.randn(2, 4), abstract=True)
    assert model.fc.weight is weight and not isinstance(weight, FakeTensor)


def test_generation_of_a_real_model_counted_abstractly_matches_the_real_one() -> None:
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(T.LlamaConfig(**DECODER)).eval()
    prompt = torch.randint(0, VOCAB, (2, SEQ))
    real = count_generate(model, prompt, max_new_tokens=5)
    fake = count_generate(model, prompt, max_new_tokens=5, abstract=True)
    for phase in ("prefill", "decode", "decode_last"):
        assert fake.phases[phase].macs == real.phases[phase].macs
        assert fake.phases[phase].abstract
    assert not any(isinstance(p, FakeTensor) for p in model.parameters())


OPTION_TEST = """
import pytest, torch
from torch import nn

def model():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

{marker}
def test_count(flops):
    result = flops(model(), torch.randn(4, 8){call})
    print("ABSTRACT", result.abstract, result.macs)
"""


@pytest.mark.parametrize(
    ("pyproject", "marker", "call", "expected"),
    [
        ("abstract = true", "", "", True),
        ("", "@pytest.mark.flop_budget(abstract=True)", "", True),
        ("", "", ", abstract=True", True),
        ("abstract = true", "@pytest.mark.flop_budget(abstract=False)", "", False),
        ("", "@pytest.mark.flop_budget(abstract=True)", ", abstract=False", False),
        ("abstract = false", "", "", False),
    ],
)
def test_the_option_comes_from_the_call_else_the_marker_else_pyproject(
    pytester: pytest.Pytester, pyproject: str, marker: str, call: str, expected: bool
) -> None:
    pytester.makepyprojecttoml(f"[tool.flopbudget]\n{pyproject}\n")
    pytester.makepyfile(test_option=OPTION_TEST.format(marker=marker, call=call))
    result = pytester.runpytest("-s", "-v", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    # 4 x (8 x 16 + 16 x 2) = 640 MACs either way
    result.stdout.fnmatch_lines([f"*ABSTRACT {expected} 640*"])
    backend = "torch (abstract)" if expected else "fvcore"
    assert backend in result.stdout.str()


def test_the_header_says_real_models_are_counted_abstractly(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.flopbudget]\nabstract = true\n")
    pytester.makepyfile(test_option=OPTION_TEST.format(marker="", call=""))
    result = pytester.runpytest("-p", "no:randomly")
    result.stdout.fnmatch_lines(["*abstract=true (real models counted through fake copies)*"])


def test_a_pyproject_abstract_that_is_not_a_bool_names_the_file_and_key(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nabstract = "yes"\n')
    pytester.makepyfile(test_option=OPTION_TEST.format(marker="", call=""))
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: [[]tool.flopbudget[]] abstract: must be true or false*"]
    )
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_a_marker_abstract_that_is_not_a_bool_is_an_error_naming_the_marker(
    pytester: pytest.Pytester,
) -> None:
    marker = '@pytest.mark.flop_budget(abstract="yes")'
    pytester.makepyfile(test_option=OPTION_TEST.format(marker=marker, call=""))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*flop_budget: abstract must be True or False, got 'yes'*"])


def test_a_call_abstract_that_is_not_a_bool_is_a_count_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_option=OPTION_TEST.format(marker="", call=', abstract="yes"'))
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*flops(abstract=...) must be True or False, got 'yes'*"])
