"""Hooks other plugins and ``conftest.py`` files implement to extend pytest-flopbudget.

Declared as pytest-xdist and pytest-html declare theirs: module-level specs registered from
``pytest_addhooks``. Implement them in a plugin or in a ``conftest.py``; each implementation is
called once per session (on every xdist worker too, where conftest files load as well), and
what it contributes lasts for that session only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from .counting.formulas import Formula


@pytest.hookspec
def pytest_flopbudget_register_formulas(
    register: Callable[[str, Formula], None], config: pytest.Config
) -> None:
    """Count ops no built-in formula covers, for this session only.

    Call ``register(op, formula)`` as you would :func:`pytest_flopbudget.register_formula`
    (``"mylib::op"`` or ``"prim::PythonOp.<ClassName>"``; ``formula(inputs, outputs)`` returns
    MACs). The formulas apply to every count of the session and are removed when it ends; a
    formula a hook registers replaces a built-in or process-wide one for that time.
    """


@pytest.hookspec
def pytest_flopbudget_hardware(config: pytest.Config) -> Mapping[str, Mapping[str, Any]] | None:
    """Devices for ``hardware = [...]`` and ``--flop-budget-hardware`` (``Settings.devices``).

    Return ``{name: {"peaks": {"fp32": FLOP/s, "fp16": ..., "bf16": ...}, "bandwidth": bytes/s,
    "source": "where the figures come from"}}`` (``fp32`` required; dense peaks, 2 FLOPs per
    MAC), or None. Called at start-up, before ``[tool.flopbudget]`` is read, so implement it
    in a plugin or in a ``conftest.py`` pytest loads at start-up (the rootdir's, or one beside
    the tests named on the command line).
    """
