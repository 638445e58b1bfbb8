"""pytest-flopbudget: compute budgets (FLOPs, MACs, parameters) for PyTorch models in pytest."""

from __future__ import annotations

from typing import Any

from .budgets.verdict import FlopBudgetWarning
from .counting.count import Count, CountError
from .fixture import FlopCounter

__all__ = [
    "Count",
    "CountError",
    "FlopBudgetWarning",
    "FlopCounter",
    "abstract",
    "count_model",
    "register_formula",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # these import torch; the plugin itself must not, or every pytest run would pay for it
    if name == "register_formula":
        from .counting.formulas import register_formula

        return register_formula
    if name == "count_model":
        from .counting.counter import count_model

        return count_model
    if name == "abstract":
        from .counting.fakes import abstract

        return abstract
    raise AttributeError(f"module 'pytest_flopbudget' has no attribute {name!r}")
