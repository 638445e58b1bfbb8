"""pytest-flopbudget: compute budgets (FLOPs, MACs, parameters) for PyTorch models in pytest."""

from __future__ import annotations

from .count import Count, CountError
from .fixture import FlopCounter

__all__ = ["Count", "CountError", "FlopCounter"]
__version__ = "0.1.0"
