"""Counting leaves the model as it found it: no hooks, every buffer, no fake mode left on."""

from __future__ import annotations

import io
import pickle

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor

from pytest_flopbudget.counting.count import CountError
from pytest_flopbudget.counting.counter import count_model
from pytest_flopbudget.counting.fakes import AbstractInputError, abstract, close_open_scopes


class FailsInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) @ torch.randn(5, 5)  # shapes do not match


def hooks_on(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("backend", ["fvcore", "torch"])
def test_a_failed_count_leaves_no_hooks_and_the_model_can_be_saved(backend: str) -> None:
    model = FailsInForward()
    for _ in range(3):
        with pytest.raises(CountError):
            count_model(model, torch.randn(2, 4), backend=backend)
    assert hooks_on(model) == 0
    pickle.dumps(model)
    torch.save(model, io.BytesIO())


def test_the_users_own_hooks_stay() -> None:
    model = FailsInForward()
    calls: list[str] = []
    model.block.register_forward_hook(lambda *args: calls.append("hook"))
    with pytest.raises(CountError):
        count_model(model, torch.randn(2, 4))
    assert hooks_on(model) == 1
    model.block(torch.randn(2, 4))
    assert calls[-1] == "hook"


class StepCounter(nn.Module):
    """Writes its buffers in eval mode too: a step counter and a cache filled on first use."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("cache", torch.zeros(4))
        self.register_buffer("untouched", torch.arange(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.steps += 1
        self.cache.data.copy_(x[0].detach())  # a write the version counter does not see
        return self.fc(x)


@pytest.mark.parametrize("backend", ["fvcore", "torch"])
@pytest.mark.parametrize("training", [False, True])
def test_buffers_a_forward_writes_are_restored_in_every_mode(backend: str, training: bool) -> None:
    model = StepCounter().train(training)
    untouched = model.untouched
    count_model(model, torch.randn(2, 4), backend=backend)
    assert model.steps.item() == 0
    assert torch.equal(model.cache, torch.zeros(4))
    assert model.untouched is untouched
    assert torch.equal(untouched, torch.arange(3.0))


class ReplacesItsBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("state", torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.state = self.state * 2
        return x * self.state.sum()


def test_a_buffer_replaced_by_the_forward_is_put_back() -> None:
    model = ReplacesItsBuffer()
    original = model.state
    count_model(model, torch.randn(2, 2), backend="fvcore")
    assert model.state is original
    assert torch.equal(original, torch.ones(2))


def test_batch_norm_statistics_of_an_eval_model_and_a_train_model_stay() -> None:
    for training in (False, True):
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).train(training)
        before = {key: value.clone() for key, value in model.state_dict().items()}
        count_model(model, torch.randn(2, 3, 8, 8) * 5 + 3)
        after = model.state_dict()
        assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_counted_model_still_trains_and_updates_its_buffers() -> None:
    model = nn.BatchNorm1d(3).train()
    count_model(model, torch.randn(4, 3))
    model(torch.randn(4, 3) + 10)
    assert model.running_mean.min() > 0.5  # momentum 0.1 of a mean near 10
    assert int(model.num_batches_tracked) == 1


# --------------------------------------------------------------------------------------------
# abstract scopes


def test_a_scope_cannot_be_entered_while_it_is_active() -> None:
    scope = abstract()
    with scope, pytest.raises(AbstractInputError, match="already active"):
        scope.__enter__()
    assert type(torch.empty(1)) is torch.Tensor


def test_scopes_do_not_nest() -> None:
    with abstract(), pytest.raises(AbstractInputError, match="do not nest"), abstract():
        pass
    assert type(torch.empty(1)) is torch.Tensor


def test_a_scope_that_is_not_active_cannot_be_exited() -> None:
    with pytest.raises(AbstractInputError, match="not active"):
        abstract().__exit__(None, None, None)


def test_a_scope_left_open_is_closed_on_request() -> None:
    scope = abstract()
    scope.__enter__()
    assert isinstance(torch.empty(1), FakeTensor)
    assert close_open_scopes() == 1
    assert type(torch.empty(1)) is torch.Tensor
    assert not scope.close()


def test_a_scope_left_open_in_a_test_fails_that_test_not_the_next(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import torch

def test_leaves_it_open(flops):
    flops.abstract().__enter__()
    assert type(torch.empty(1)).__name__ == "FakeTensor"

def test_next_is_real():
    assert type(torch.empty(1)) is torch.Tensor

def test_with_block_is_fine(flops):
    with flops.abstract():
        model = torch.nn.Linear(4, 4)
        x = torch.empty(2, 4)
    assert flops(model, x).macs == 2 * 4 * 4
"""
    )
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*1 abstract() scope(s) entered in this test were never exited*"])
    assert type(torch.empty(1)) is torch.Tensor
