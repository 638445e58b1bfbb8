"""Budgets: what a test or a named model may cost, read from a marker or from pyproject.toml.

A budget holds quantities in the unit its author wrote (so messages can speak that unit back);
comparing it with a count under a given convention is the verdict's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..counting.op_conventions import OPS_CONVENTIONS
from .units import (
    ACTIVE_PARAM_UNITS,
    COMPUTE_UNITS,
    MAX_TOLERANCE,
    PARAM_UNITS,
    Quantity,
    UnitError,
    as_number,
    check_quantity,
    parse_quantities,
    shown,
)

MARKER_NAME = "flop_budget"
ENTRY_OPTION_KEYS = ("tolerance", "on_exceed")
ON_EXCEED_CHOICES = ("fail", "warn")
COUNT_OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("fvcore", "torch"),
    "unknown_ops": ("warn", "fail", "ignore"),
    "mode": ("inference", "train"),
    "ops": OPS_CONVENTIONS,
}
OPTION_KEYS = ("name", "tolerance", "on_exceed", *COUNT_OPTION_CHOICES)


class BudgetError(ValueError):
    """A budget that cannot be read. The message names its place and the problem."""


@dataclass(frozen=True)
class Budget:
    """One budget: a compute limit and/or a parameter limit, with where it came from."""

    compute: Quantity | None
    params: Quantity | None
    tolerance: float | None
    name: str | None
    origin: str
    pyproject_key: str | None = None
    on_exceed: str | None = None
    pyproject_file: str | None = None  # the pyproject.toml holding the entry (monorepos)
    active_params: Quantity | None = None
    """A limit on the parameters one token's forward uses (mixture-of-experts models)."""

    @property
    def source(self) -> str:
        """``marker``, ``pyproject:nodeid`` or ``pyproject:name``."""
        if self.pyproject_key is None:
            return "marker"
        return "pyproject:name" if self.name is not None else "pyproject:nodeid"


def check_tolerance(value: object, where: str) -> float:
    try:
        number = as_number(value, "tolerance")
    except UnitError:
        raise BudgetError(
            f"{where}: tolerance must be a number such as 0.02, got {shown(value)}"
        ) from None
    if number < 0:
        raise BudgetError(f"{where}: tolerance must not be negative, got {shown(value)}")
    if number > MAX_TOLERANCE:
        raise BudgetError(
            f"{where}: tolerance must be at most {MAX_TOLERANCE} ({MAX_TOLERANCE:.0%}), "
            f"got {shown(value)}"
        )
    return number


def is_utf8(text: str) -> bool:
    """False for text with lone surrogates, which no file or terminal can hold."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_choice(value: object, choices: Iterable[str]) -> bool:
    """``value in choices`` for any value: arrays and odd objects compare as not a choice."""
    return isinstance(value, str) and value in choices


def _from_arguments(
    arguments: Mapping[str, Any],
    where: str,
    *,
    allowed_options: Iterable[str],
    extra: Iterable[Quantity] = (),
) -> tuple[Quantity | None, Quantity | None, Quantity | None, dict[str, Any]]:
    kinds: dict[str, list[Quantity]] = {"compute": [], "params": [], "active_params": []}
    options: dict[str, Any] = {}
    allowed = set(allowed_options)

    def family(quantity: Quantity) -> list[Quantity]:
        kind = quantity.unit.kind
        return kinds[kind] if kind in ("params", "active_params") else kinds["compute"]

    for quantity in extra:
        family(quantity).append(quantity)
    for key, value in arguments.items():
        unit = COMPUTE_UNITS.get(key) or PARAM_UNITS.get(key) or ACTIVE_PARAM_UNITS.get(key)
        if unit is not None:
            try:
                quantity = check_quantity(value, unit, f"{key}")
            except UnitError as error:
                raise BudgetError(f"{where}: {error}") from None
            family(quantity).append(quantity)
        elif key in allowed:
            options[key] = value
        else:
            known = ", ".join([*COMPUTE_UNITS, *PARAM_UNITS, *ACTIVE_PARAM_UNITS, *sorted(allowed)])
            raise BudgetError(f"{where}: unknown argument {key!r} (known: {known})")
    compute, params, active = kinds["compute"], kinds["params"], kinds["active_params"]
    if len(compute) > 1:
        units = ", ".join(q.unit.key for q in compute)
        raise BudgetError(f"{where}: give exactly one compute unit, got {len(compute)} ({units})")
    if len(params) > 1:
        raise BudgetError(f"{where}: give at most one of params / kparams / mparams / bparams")
    if len(active) > 1:
        raise BudgetError(
            f"{where}: give at most one of active_params / kactive_params / mactive_params / "
            "bactive_params"
        )
    if not compute and not params and not active and not (set(options) & set(COUNT_OPTION_CHOICES)):
        raise BudgetError(
            f"{where}: no budget given; add one compute unit (e.g. gflops=4.1 or gmacs=2) "
            "and/or params / mparams / bparams / bactive_params"
        )
    return (
        (compute[0] if compute else None),
        (params[0] if params else None),
        (active[0] if active else None),
        options,
    )


def _read_options(
    options: Mapping[str, Any], where: str
) -> tuple[str | None, float | None, str | None]:
    on_exceed = options.get("on_exceed")
    if on_exceed is not None and not is_choice(on_exceed, ON_EXCEED_CHOICES):
        raise BudgetError(f'{where}: on_exceed must be "fail" or "warn", got {shown(on_exceed)}')
    name = options.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise BudgetError(f"{where}: name must be a non-empty string, got {shown(name)}")
    if name is not None and not (name.isprintable() and is_utf8(name)):
        raise BudgetError(f"{where}: name must be printable text, got {shown(name)}")
    tolerance = options.get("tolerance")
    if tolerance is not None:
        tolerance = check_tolerance(tolerance, where)
    return name, tolerance, on_exceed


def count_options_from_marker(kwargs: Mapping[str, Any], where: str) -> dict[str, str]:
    """``backend=``, ``unknown_ops=``, ``mode=`` and ``ops=``: how the test's models are counted."""
    options: dict[str, str] = {}
    for key, choices in COUNT_OPTION_CHOICES.items():
        if key in kwargs:
            value = kwargs[key]
            if not is_choice(value, choices):
                allowed = " or ".join(f'"{choice}"' for choice in choices)
                raise BudgetError(f"{where}: {key} must be {allowed}, got {shown(value)}")
            options[key] = value
    return options


def budget_from_marker(
    args: tuple[Any, ...], kwargs: Mapping[str, Any], where: str
) -> Budget | None:
    """``@pytest.mark.flop_budget(gflops=4.1, mparams=25.6, name="ResNet", tolerance=0.02)``.

    One positional string is accepted too: ``flop_budget("4.1 GFLOPs, 25.6M params")``.
    A marker with only counting options (``flop_budget(backend="torch")``) sets no budget.
    """
    if len(args) > 1 or (args and not isinstance(args[0], str)):
        raise BudgetError(
            f"{where}: positional arguments are not accepted (got {shown(args)}); "
            "write e.g. flop_budget(gflops=4.1) or flop_budget('4.1 GFLOPs')"
        )
    extra: list[Quantity] = []
    if args:
        try:
            extra = parse_quantities(args[0])
        except UnitError as error:
            raise BudgetError(f"{where}: {error}") from None
    compute, params, active, options = _from_arguments(
        kwargs, where, allowed_options=OPTION_KEYS, extra=extra
    )
    name, tolerance, on_exceed = _read_options(options, where)
    count_options_from_marker(kwargs, where)
    if compute is None and params is None and active is None:
        if name is not None or tolerance is not None or on_exceed is not None:
            raise BudgetError(f"{where}: name, tolerance and on_exceed need a budget unit too")
        return None
    return Budget(
        compute, params, tolerance, name, origin=where, on_exceed=on_exceed, active_params=active
    )


def budget_from_entry(key: str, value: object, where: str, *, is_nodeid: bool) -> Budget:
    """A ``[tool.flopbudget.budgets]`` entry: a string (``"4.1 GFLOPs"``) or a table of units."""
    if isinstance(value, str):
        try:
            quantities = parse_quantities(value)
        except UnitError as error:
            raise BudgetError(f"{where}: {error}") from None
        compute, params, active, options = _from_arguments(
            {}, where, allowed_options=(), extra=quantities
        )
    elif isinstance(value, Mapping):
        compute, params, active, options = _from_arguments(
            value, where, allowed_options=ENTRY_OPTION_KEYS
        )
    else:
        raise BudgetError(
            f'{where}: expected a string such as "4.1 GFLOPs" or a table such as '
            f"{{ gflops = 4.1, mparams = 25.6 }}, got {type(value).__name__} {shown(value)}"
        )
    _, tolerance, on_exceed = _read_options(options, where)
    name = None if is_nodeid else key
    return Budget(
        compute,
        params,
        tolerance,
        name,
        origin=where,
        pyproject_key=key,
        on_exceed=on_exceed,
        active_params=active,
    )


def looks_like_nodeid(key: str) -> bool:
    """Node ids name a file (``tests/test_x.py::test_y``); anything else is a recorded name."""
    return "::" in key or key.endswith(".py")
