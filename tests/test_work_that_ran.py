"""Work that ran is counted on both backends: scripted functions, autograd Functions, results
nobody returned, ``out=`` variants; and a module called from two places is attributed alike.

Every expected count is arithmetic written out here. The unit of work is ``x @ w`` with
x (2, 8) and w (8, 16): 2 * 8 * 16 = 256 MACs.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from pytest_flopbudget.counting import formulas
from pytest_flopbudget.counting.counter import count_model

MM = 2 * 8 * 16  # (2, 8) @ (8, 16)
HEAD = 2 * 8 * 4  # Linear(8, 4) on a batch of 2

BACKENDS = pytest.mark.parametrize("backend", ["fvcore", "torch"])


def _scripted_mm(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.mm(torch.relu(x), w)


with warnings.catch_warnings():  # torch.jit is deprecated; models in the wild still use it
    warnings.simplefilter("ignore")
    scripted_mm = torch.jit.script(_scripted_mm)


class CallsAScriptedFunction(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return scripted_mm(x, self.w)


class MatmulFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx: object, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w

    @staticmethod
    def backward(ctx: object, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return grad, grad


class CallsAnAutogradFunction(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return MatmulFn.apply(x, self.w)


class AuxiliaryHeadOnSelf(nn.Module):
    """Returns the main head; the auxiliary head's result is kept on ``self``."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Linear(8, 16, bias=False)
        self.aux = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = torch.relu(self.aux(x))
        return self.main(x)


class ReturnsNothing(nn.Module):
    def __init__(self, result: object = None) -> None:
        super().__init__()
        self.main = nn.Linear(8, 16)
        self.result = result

    def forward(self, x: torch.Tensor) -> object:
        self.stored = self.main(x)
        return self.result


class DiscardsAMatmul(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16))
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _ = x @ self.w  # runs, result unused
        return self.head(x)


class WritesIntoOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(8, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty(2, 16)
        torch.mm(x, self.w.detach(), out=out)
        return out


class ScriptedChild(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.inner = torch.jit.script(nn.Linear(8, 16, bias=False))
        self.head = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.inner(x))


def x() -> torch.Tensor:
    return torch.randn(2, 8)


@BACKENDS
@pytest.mark.parametrize(
    ("make", "macs"),
    [
        (CallsAScriptedFunction, MM),
        (CallsAnAutogradFunction, MM),
        (AuxiliaryHeadOnSelf, MM + HEAD),
        (ReturnsNothing, MM),
        (lambda: ReturnsNothing("done"), MM),
        (DiscardsAMatmul, MM + HEAD),
        (WritesIntoOut, MM),
        (ScriptedChild, MM + 2 * 16 * 4),
    ],
    ids=[
        "scripted-function",
        "autograd-function",
        "aux-head-on-self",
        "returns-none",
        "returns-a-string",
        "discarded-matmul",
        "out-variant",
        "scripted-submodule",
    ],
)
def test_work_that_ran_is_counted(backend: str, make: object, macs: int) -> None:
    count = count_model(make(), x(), backend=backend)  # type: ignore[operator]
    assert (count.macs, dict(count.unknown_ops)) == (macs, {})


def test_an_auxiliary_head_is_attributed_to_its_module_on_both_backends() -> None:
    for backend in ("fvcore", "torch"):
        by_module = count_model(AuxiliaryHeadOnSelf(), x(), backend=backend).by_module
        assert (by_module["main"], by_module["aux"]) == (MM, HEAD)


def test_calls_the_trace_cannot_see_into_are_counted_by_the_torch_backend() -> None:
    count = count_model(CallsAnAutogradFunction(), x(), backend="fvcore")
    assert (count.backend, count.macs) == ("torch", MM)


def test_a_model_whose_results_all_flow_into_its_output_stays_on_fvcore() -> None:
    count = count_model(nn.Sequential(nn.Linear(8, 16), nn.ReLU()), x(), backend="fvcore")
    assert (count.backend, count.macs) == ("fvcore", MM)


@pytest.fixture
def formulas_restored() -> Iterator[None]:
    saved = (dict(formulas.FORMULAS), dict(formulas.FVCORE_HANDLES))
    yield
    for registry, before in zip((formulas.FORMULAS, formulas.FVCORE_HANDLES), saved, strict=True):
        registry.clear()
        registry.update(before)


@pytest.mark.usefixtures("formulas_restored")
@BACKENDS
def test_a_formula_registered_for_an_autograd_function_replaces_its_inside(backend: str) -> None:
    seen: list[tuple[object, object]] = []

    def matmul_fn_macs(inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> int:
        seen.append((inputs, outputs))
        (n, k), (_, m) = inputs
        return 3 * n * k * m  # a made-up cost, to tell it from the inner matmul's

    formulas.register_formula("prim::PythonOp.MatmulFn", matmul_fn_macs)
    count = count_model(CallsAnAutogradFunction(), x(), backend=backend)
    assert (count.macs, count.backend) == (3 * MM, backend)
    assert seen == [([(2, 8), (8, 16)], [(2, 16)])]
    assert "apply" not in MatmulFn.__dict__  # the wrapper is gone after the count


@pytest.mark.usefixtures("formulas_restored")
def test_a_python_op_formula_does_not_match_other_python_ops() -> None:
    formulas.register_formula("prim::PythonOp.SomethingElse", lambda inputs, outputs: 1)
    assert formulas.lookup("prim::PythonOp") is None
    assert count_model(CallsAnAutogradFunction(), x(), backend="fvcore").macs == MM


def test_a_python_op_name_must_be_a_class_name() -> None:
    with pytest.raises(ValueError, match=r"prim::PythonOp\.<ClassName>"):
        formulas.register_formula("prim::PythonOp.", lambda inputs, outputs: 1)


def test_an_unused_result_costs_no_memory_while_tracing() -> None:
    """Anchors are empty tensors: a model returning nothing still counts, and its stored
    result is the model's own (not an anchor)."""
    model = ReturnsNothing()
    count_model(model, x())
    assert model.stored.shape == (2, 16)


# --------------------------------------------------------------------------------------------
# attribution: a module called from two places


class Owner(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared
        self.own = nn.Linear(8, 8, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.own(self.shared(x))


class Borrower(nn.Module):
    def __init__(self, shared: nn.Module) -> None:
        super().__init__()
        self.shared = shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shared(x)


class SharedBetweenTwoParents(nn.Module):
    """``shared`` is registered as ``a.shared`` and ``b.shared``; each parent calls it once."""

    def __init__(self) -> None:
        super().__init__()
        shared = nn.Linear(8, 8, bias=False)
        self.a = Owner(shared)
        self.b = Borrower(shared)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


class CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 8, bias=False)
        self.blocks = nn.ModuleList([nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer(self.layer(x))
        for block in self.blocks:
            x = block(x)
        return x


SQUARE = 2 * 8 * 8  # Linear(8, 8) on a batch of 2


@BACKENDS
def test_a_shared_module_adds_to_the_parent_that_called_it(backend: str) -> None:
    by_module = dict(count_model(SharedBetweenTwoParents(), x(), backend=backend).by_module)
    assert by_module == {
        "a": 2 * SQUARE,  # its own layer and its call of the shared one
        "a.shared": 2 * SQUARE,  # both calls, under the path named_modules() gives it
        "a.own": SQUARE,
        "b": SQUARE,  # its call of the shared layer
    }


@BACKENDS
def test_a_module_called_twice_counts_both_calls(backend: str) -> None:
    by_module = dict(count_model(CalledTwice(), x(), backend=backend).by_module)
    assert by_module == {
        "layer": 2 * SQUARE,
        "blocks": 2 * SQUARE,  # never called itself: the sum of its blocks
        "blocks.0": SQUARE,
        "blocks.1": SQUARE,
    }


def test_a_budget_catches_work_the_model_does_not_return(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest, torch
from torch import nn

class Silent(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(1000, 1000, bias=False)

    def forward(self, x):
        self.features = self.body(x)  # 1,000,000 MACs, returned nowhere

@pytest.mark.flop_budget(flops=1)
def test_silent(flops):
    flops(Silent(), torch.randn(1, 1000))
"""
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Silent: 1,000,000 FLOPs exceeds budget 1 FLOPs*"])


def test_models_stay_picklable_after_counting() -> None:
    model = AuxiliaryHeadOnSelf()
    count_model(model, x())
    del model.aux_logits
    pickle.dumps(model)
