"""The peak-memory estimate is within 10% of the real CPU peak (docs/memory.md, small sizes).

The real peak is measured by ``bench/memory_accuracy.py`` independently of the estimator: the
profiler's allocator events summed in time order, plus the tensors that existed before.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from pytest_flopbudget.counting.fakes import abstract

_PATH = Path(__file__).resolve().parents[1] / "bench" / "memory_accuracy.py"
_SPEC = importlib.util.spec_from_file_location("memory_accuracy", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
accuracy = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("memory_accuracy", accuracy)
_SPEC.loader.exec_module(accuracy)

MODELS = accuracy.models()


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("mode", "optimizer"), accuracy.CASES)
def test_estimated_peak_is_within_ten_percent_of_the_measured_one(name, mode, optimizer) -> None:
    make_model, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model, inputs = make_model(), make_inputs()
    estimate = accuracy.estimated_peak(model, inputs, mode, optimizer, "torch")
    measured = accuracy.measured_peak(model, inputs, mode, optimizer)
    assert abs(estimate - measured) <= 0.10 * measured, (estimate, measured)


@pytest.mark.parametrize("name", list(MODELS))
def test_backends_and_abstract_models_estimate_the_same_inference_peak(name) -> None:
    make_model, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model, inputs = make_model().eval(), make_inputs()
    torch_peak = accuracy.estimated_peak(model, inputs, "inference", None, "torch")
    with abstract():
        fake_model, fake_inputs = make_model(), make_inputs()
    fake_peak = accuracy.estimated_peak(fake_model.eval(), fake_inputs, "inference", None, "torch")
    assert fake_peak == torch_peak
