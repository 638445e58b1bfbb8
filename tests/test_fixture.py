"""The flops fixture: input forms, the result, the model left as found, and models it cannot count."""

from __future__ import annotations

import pytest
from conftest import CONV_MACS, FFN_MACS, FFN_PARAMS


def test_the_result_carries_flops_macs_params_and_modules(project: pytest.Pytester) -> None:
    project.makepyfile(
        f"""
from models import FFN, ffn_input

def test_result(flops):
    result = flops(FFN(), ffn_input())
    assert (result.flops, result.macs, result.params) == ({FFN_MACS}, {FFN_MACS}, {FFN_PARAMS})
    assert result.by_module["fc1"] == 4 * 1024
    assert result.by_module["fc2"] == 1024 * 1024
    assert result.by_module["fc3"] == 1024 * 2
    assert result.name == "FFN"
    assert [c.name for c in flops.counts] == ["FFN"]
"""
    )
    project.runpytest().assert_outcomes(passed=1)


def test_inputs_may_be_a_tensor_a_tuple_or_keyword_arguments(project: pytest.Pytester) -> None:
    # Linear(16, 32) on (2, 5, 16): 2 * 5 positions x 16 x 32
    one_pass = 2 * 5 * 16 * 32
    project.makepyfile(
        f"""
import torch
from models import KeywordModel, TinyConv

def test_tensor(flops):
    assert flops(TinyConv(), torch.randn(1, 3, 8, 8)).macs == {CONV_MACS}

def test_tuple(flops):
    assert flops(KeywordModel(), (torch.randn(2, 5, 16),)).macs == {one_pass}

def test_keywords_with_flags_and_a_dict_output(flops):
    x = torch.randn(2, 5, 16)
    assert flops(KeywordModel(), {{"input_ids": x, "scale": 2.0}}).macs == {one_pass}
    assert flops(KeywordModel(), {{"input_ids": x, "extra": x}}).macs == {2 * one_pass}
"""
    )
    project.runpytest().assert_outcomes(passed=3)


def test_counting_leaves_the_model_as_it_was(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import torch
from torch import nn

def test_state_is_kept(flops):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    model[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flops(model, torch.randn(2, 3, 8, 8) * 10 + 3)
    assert model.training and all(m.training for m in model.modules())
    assert model[0].weight.requires_grad is False and model[0].bias.requires_grad is True
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "BatchNorm statistics moved"

def test_eval_mode_stays(flops):
    model = nn.Linear(3, 3).eval()
    flops(model, torch.randn(1, 3))
    assert not model.training

def test_no_autograd_graph_is_built(flops):
    seen = []
    class Probe(nn.Module):
        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return x * 2
    flops(Probe(), torch.randn(2))
    flops(Probe(), torch.randn(2), grad=True)
    assert seen == [False, True]
"""
    )
    project.runpytest().assert_outcomes(passed=3)


def test_a_model_that_cannot_be_counted_fails_its_test_with_a_clear_message(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        """
import torch
from torch import nn

class WrongShape(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
    def forward(self, x):
        return self.fc(x)

class NoTensors(nn.Module):
    def forward(self, x):
        return "done"

def test_wrong_shape(flops):
    flops(WrongShape(), torch.randn(2, 3))

def test_no_tensor_output(flops):
    flops(NoTensors(), {"x": torch.randn(2, 3)})

def test_not_a_module(flops):
    flops(lambda x: x, torch.randn(2))

def test_bad_inputs(flops):
    flops(WrongShape(), 3.0)
"""
    )
    result = project.runpytest()
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "E   *CountError: WrongShape: fvcore could not count this model: RuntimeError: *",
            "E   *CountError: NoTensors: fvcore could not count this model: *returned no tensors*",
            "E   *CountError: flops() needs a torch.nn.Module, got function",
            "E   *CountError: WrongShape: inputs must be a tensor, a tuple of positional arguments*",
        ]
    )
    output = result.stdout.str()
    assert "INTERNALERROR" not in output
    assert "jit_analysis.py" not in output and "counter.py" not in output


def test_counting_survives_warnings_as_errors(project: pytest.Pytester) -> None:
    # a fresh process: torch and fvcore emit their deprecation warnings on first import
    project.makepyfile(
        f"""
import torch
from torch import nn
from models import FFN, ffn_input

def test_fvcore(flops):
    assert flops(FFN(), ffn_input()).macs == {FFN_MACS}

def test_torch_backend_training_step(flops):
    assert flops(nn.Linear(4, 2), torch.randn(3, 4), mode="train").macs == 2 * 3 * 4 * 2
"""
    )
    result = project.runpytest_subprocess("-W", "error", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_fixture_requested_at_run_time_is_still_checked(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
from models import FFN, ffn_input

def test_plain():
    pass

def test_dynamic(request):
    flops = request.getfixturevalue("flops")
    flops(FFN(), ffn_input())
"""
    )
    project.makefile(".toml", pyproject='[tool.flopbudget.budgets]\n"FFN" = "1 MMACs"\n')
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)  # judged when the call report is made
    result.stdout.fnmatch_lines(["*_ test_dynamic _*", "FFN: 1.05 MMACs exceeds budget 1 MMACs*"])
