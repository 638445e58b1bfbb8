"""Choosing how models are counted: backend, training steps, abstract models, unknown ops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import FFN_MACS, FFN_PARAMS


def test_the_torch_backend_is_chosen_in_pyproject_and_overridden_by_a_marker(
    project: pytest.Pytester,
) -> None:
    project.makefile(".toml", pyproject='[tool.flopbudget]\nbackend = "torch"\n')
    project.makepyfile(
        f"""
import pytest
from models import FFN, ffn_input

def test_from_pyproject(flops):
    result = flops(FFN(), ffn_input())
    assert (result.backend, result.macs) == ("torch", {FFN_MACS})

@pytest.mark.flop_budget(backend="fvcore")
def test_from_marker(flops):
    assert flops(FFN(), ffn_input()).backend == "fvcore"

def test_from_the_call(flops):
    assert flops(FFN(), ffn_input(), backend="fvcore").backend == "fvcore"
"""
    )
    result = project.runpytest("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*test_from_pyproject*torch*no budget*"])


def test_a_training_step_counts_forward_and_backward(project: pytest.Pytester) -> None:
    # Linear(8, 16) then Linear(16, 4) on a batch of 2:
    forward = 2 * 8 * 16 + 2 * 16 * 4  # 384
    weight_grads = 2 * 8 * 16 + 2 * 16 * 4  # dW = x^T dy for both layers
    input_grad = 2 * 16 * 4  # dx of the second layer; the input needs no gradient
    project.makepyfile(
        f"""
import pytest, torch
from torch import nn

def net():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

@pytest.mark.flop_budget(macs={forward + weight_grads + input_grad}, mode="train")
def test_train_step(flops):
    model = net().eval()
    result = flops(model, torch.randn(2, 8))
    assert (result.mode, result.backend) == ("train", "torch")
    assert not model.training
    assert all(p.grad is None for p in model.parameters())

def test_inference(flops):
    assert flops(net(), torch.randn(2, 8)).macs == {forward}
"""
    )
    project.runpytest().assert_outcomes(passed=2)


def test_a_training_step_leaves_an_eval_models_statistics_alone(project: pytest.Pytester) -> None:
    project.makepyfile(
        """
import torch
from torch import nn

def test_batchnorm_kept(flops):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flops(model, torch.randn(2, 3, 8, 8) * 5 + 3, mode="train")
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
"""
    )
    project.runpytest().assert_outcomes(passed=1)


def test_abstract_models_count_without_memory_and_fake_mode_does_not_leak(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        f"""
import torch
from torch._subclasses.fake_tensor import FakeTensor
from models import FFN

def test_abstract(flops):
    with flops.abstract():
        model = FFN()
        x = torch.empty(1, 4)
    assert isinstance(x, FakeTensor)
    assert not isinstance(torch.empty(1), FakeTensor)
    result = flops(model, x)
    assert (result.macs, result.params) == ({FFN_MACS}, {FFN_PARAMS})
    assert result.backend == "torch" and result.abstract

def test_real_model_with_fake_inputs(flops):
    with flops.abstract():
        x = torch.empty(1, 4)
    flops(FFN(), x)
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E   *CountError: FFN: parameter 'fc1.weight' is a real tensor on cpu but input args[[]0[]] is a fake tensor*"
        ]
    )


CUSTOM_OP = """
import pytest, torch
from torch import nn

@torch.library.custom_op("{namespace}::heavy", mutates_args=())
def heavy(x: torch.Tensor) -> torch.Tensor:
    return x @ x.T

@heavy.register_fake
def _(x):
    return x.new_empty(x.shape[0], x.shape[0])

class Custom(nn.Module):
    def forward(self, x):
        return heavy(x)

{marker}
def test_custom(flops):
    flops(Custom(), torch.randn(4, 8), backend="{backend}")
"""


@pytest.mark.parametrize("backend", ["fvcore", "torch"])
@pytest.mark.parametrize(
    ("policy", "outcome"), [("warn", "passed"), ("fail", "failed"), ("ignore", "passed")]
)
def test_unknown_ops_are_listed_failed_or_ignored(
    project: pytest.Pytester, backend: str, policy: str, outcome: str
) -> None:
    namespace = f"unknown_{policy}_{backend}"
    project.makefile(".toml", pyproject=f'[tool.flopbudget]\nunknown_ops = "{policy}"\n')
    project.makepyfile(CUSTOM_OP.format(namespace=namespace, marker="", backend=backend))
    result = project.runpytest()
    result.assert_outcomes(**{outcome: 1})
    listed = f"*not counted (unknown ops): {namespace}::heavy x1*"
    if policy == "ignore":
        assert "unknown ops" not in result.stdout.str()
    else:
        result.stdout.fnmatch_lines([listed])


def test_a_marker_sets_the_unknown_ops_policy_of_its_test(project: pytest.Pytester) -> None:
    project.makepyfile(
        CUSTOM_OP.format(
            namespace="unknown_marker",
            marker='@pytest.mark.flop_budget(unknown_ops="fail")',
            backend="torch",
        )
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*register a formula with pytest_flopbudget.register_formula()*"])


@pytest.fixture
def formulas_restored() -> Iterator[None]:
    """Registered formulas are process-wide; pytester runs in this process."""
    from pytest_flopbudget.counting import formulas

    saved = (dict(formulas.FORMULAS), dict(formulas.FVCORE_HANDLES))
    yield
    for registry, before in zip((formulas.FORMULAS, formulas.FVCORE_HANDLES), saved, strict=True):
        registry.clear()
        registry.update(before)


@pytest.mark.usefixtures("formulas_restored")
@pytest.mark.parametrize("backend", ["fvcore", "torch"])
def test_a_registered_formula_counts_a_custom_op(project: pytest.Pytester, backend: str) -> None:
    namespace = f"registered_{backend}"
    project.makeconftest(
        f"""
import pytest_flopbudget

def heavy_macs(inputs, outputs):
    (rows, inner), = inputs[:1]
    return rows * inner * rows  # x @ x.T

pytest_flopbudget.register_formula("{namespace}::heavy", heavy_macs)
"""
    )
    project.makefile(".toml", pyproject='[tool.flopbudget]\nunknown_ops = "fail"\n')
    project.makepyfile(
        CUSTOM_OP.format(
            namespace=namespace, marker="@pytest.mark.flop_budget(macs=4 * 8 * 4)", backend=backend
        )
    )
    project.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ('backend="jax"', 'backend must be "fvcore" or "torch", got \'jax\''),
        ('mode="eval"', 'mode must be "inference" or "train", got \'eval\''),
        ('unknown_ops="sometimes"', 'unknown_ops must be "warn" or "fail" or "ignore"'),
        ('name="x"', "no budget given"),
        ('name="x", backend="torch"', "name, tolerance and on_exceed need a budget unit too"),
    ],
)
def test_bad_counting_options_in_a_marker_error_the_test(
    project: pytest.Pytester, marker: str, problem: str
) -> None:
    project.makepyfile(
        f"""
import pytest

@pytest.mark.flop_budget({marker})
def test_bad(flops):
    pass
"""
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*test_bad: @pytest.mark.flop_budget: {problem}*"])


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('backend = "tvm"', 'backend: must be "fvcore" or "torch", got \'tvm\''),
        ('mode = "eval"', 'mode: must be "inference" or "train"'),
        ("unknown_ops = 1", 'unknown_ops: must be "warn" or "fail" or "ignore", got 1'),
    ],
)
def test_bad_counting_options_in_pyproject_are_usage_errors(
    project: pytest.Pytester, body: str, problem: str
) -> None:
    project.makefile(".toml", pyproject=f"[tool.flopbudget]\n{body}\n")
    project.makepyfile("def test_nothing():\n    pass\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*pyproject.toml: [[]tool.flopbudget[]] {problem}*"])
