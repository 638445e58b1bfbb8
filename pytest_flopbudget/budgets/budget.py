"""Budgets: what a test or a named model may cost, read from a marker or from pyproject.toml.

A budget holds quantities in the unit its author wrote (so messages can speak that unit back);
comparing it with a count under a given convention is the verdict's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..counting.count import OPTIMIZER_NAMES
from ..counting.op_conventions import OPS_CONVENTIONS
from .units import (
    ACTIVE_PARAM_UNITS,
    COMPUTE_UNITS,
    MAX_TOLERANCE,
    MEMORY_UNITS,
    PARAM_UNITS,
    TIME_UNITS,
    Quantity,
    UnitError,
    as_number,
    check_quantity,
    parse_quantities,
    shown,
)

MARKER_NAME = "flop_budget"
ENTRY_OPTION_KEYS = ("tolerance", "on_exceed", "device")
ON_EXCEED_CHOICES = ("fail", "warn")
COUNT_OPTION_CHOICES: dict[str, tuple[str, ...]] = {
    "backend": ("fvcore", "torch"),
    "unknown_ops": ("warn", "fail", "ignore"),
    "mode": ("inference", "train"),
    "ops": OPS_CONVENTIONS,
    "optimizer": OPTIMIZER_NAMES,
}
COUNT_FLAG_OPTIONS = ("abstract",)
"""Counting options that are true or false (``abstract=True``: real models through fakes)."""
OPTION_KEYS = (
    "name",
    "tolerance",
    "on_exceed",
    "device",
    *COUNT_OPTION_CHOICES,
    *COUNT_FLAG_OPTIONS,
)


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
    memory: Quantity | None = None
    """A limit on the peak memory of the counted pass (``gib=16``, ``"512 MiB"``)."""
    time: Quantity | None = None
    """A limit on the roofline lower bound on ``device`` (``ms=2.0``)."""
    device: str | None = None
    """The device spec a time budget is priced on (``"A100:fp16"``), checked when read."""

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
    kinds: dict[str, list[Quantity]] = {
        "compute": [],
        "params": [],
        "active_params": [],
        "memory": [],
        "time": [],
    }
    options: dict[str, Any] = {}
    allowed = set(allowed_options)

    def family(quantity: Quantity) -> list[Quantity]:
        kind = quantity.unit.kind
        if kind in ("params", "active_params", "memory", "time"):
            return kinds[kind]
        return kinds["compute"]

    for quantity in extra:
        family(quantity).append(quantity)
    for key, value in arguments.items():
        unit = (
            COMPUTE_UNITS.get(key)
            or PARAM_UNITS.get(key)
            or ACTIVE_PARAM_UNITS.get(key)
            or MEMORY_UNITS.get(key)
            or TIME_UNITS.get(key)
        )
        if unit is not None:
            try:
                quantity = check_quantity(value, unit, f"{key}")
            except UnitError as error:
                raise BudgetError(f"{where}: {error}") from None
            family(quantity).append(quantity)
        elif key in allowed:
            options[key] = value
        else:
            known = ", ".join(
                [
                    *COMPUTE_UNITS,
                    *PARAM_UNITS,
                    *ACTIVE_PARAM_UNITS,
                    *MEMORY_UNITS,
                    *TIME_UNITS,
                    *sorted(allowed),
                ]
            )
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
    counting = set(COUNT_OPTION_CHOICES) | set(COUNT_FLAG_OPTIONS)
    for family_name, keys in (("memory", MEMORY_UNITS), ("time", TIME_UNITS)):
        if len(kinds[family_name]) > 1:
            given = ", ".join(q.unit.key for q in kinds[family_name])
            raise BudgetError(
                f"{where}: give at most one {family_name} unit ({' / '.join(keys)}), got {given}"
            )
    resources = kinds["memory"] + kinds["time"]
    if (
        not compute
        and not params
        and not active
        and not resources
        and not (set(options) & counting)
    ):
        raise BudgetError(
            f"{where}: no budget given; add one compute unit (e.g. gflops=4.1 or gmacs=2) "
            "and/or params / mparams / bparams / bactive_params / gib / ms"
        )
    options["_memory"] = kinds["memory"][0] if kinds["memory"] else None
    options["_time"] = kinds["time"][0] if kinds["time"] else None
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


def _read_device(
    time: Quantity | None, device: object, where: str, devices: Mapping[str, Any] | None = None
) -> str | None:
    """A time budget needs the device it is priced on, and a device needs a time budget.

    The device is read here, where its place is known: an unknown device, a dtype the device
    has no peak for, or a device without a memory bandwidth (no roofline) is an error now,
    not a budget that can never be checked.
    """
    if device is None:
        if time is not None:
            raise BudgetError(
                f"{where}: {time.unit.key}= needs the device its lower bound is computed on, "
                'e.g. device="A100:fp16"'
            )
        return None
    if time is None:
        raise BudgetError(
            f"{where}: device={shown(device)} needs a time budget (ms=, us= or s=) to apply to"
        )
    if not isinstance(device, str) or not device.strip():
        raise BudgetError(
            f'{where}: device must be a device spec such as "A100:fp16", got {shown(device)}'
        )
    from .hardware import HardwareError
    from .timing import check_device

    try:
        check_device(device, devices)
    except HardwareError as error:
        raise BudgetError(f"{where}: device: {error}") from None
    return device.strip()


def count_options_from_marker(kwargs: Mapping[str, Any], where: str) -> dict[str, str | bool]:
    """``backend=``, ``unknown_ops=``, ``mode=``, ``ops=`` and ``abstract=``: how the test's
    models are counted."""
    options: dict[str, str | bool] = {}
    for key in COUNT_FLAG_OPTIONS:
        if key in kwargs:
            value = kwargs[key]
            if not isinstance(value, bool):
                raise BudgetError(f"{where}: {key} must be True or False, got {shown(value)}")
            options[key] = value
    for key, choices in COUNT_OPTION_CHOICES.items():
        if key in kwargs:
            value = kwargs[key]
            if not is_choice(value, choices):
                allowed = " or ".join(f'"{choice}"' for choice in choices)
                raise BudgetError(f"{where}: {key} must be {allowed}, got {shown(value)}")
            options[key] = value
    return options


def budget_from_marker(
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    where: str,
    devices: Mapping[str, Any] | None = None,
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
    memory, time = options.pop("_memory"), options.pop("_time")
    name, tolerance, on_exceed = _read_options(options, where)
    device = _read_device(time, options.get("device"), where, devices)
    count_options_from_marker(kwargs, where)
    if compute is None and params is None and active is None and memory is None and time is None:
        if name is not None or tolerance is not None or on_exceed is not None:
            raise BudgetError(f"{where}: name, tolerance and on_exceed need a budget unit too")
        return None
    return Budget(
        compute,
        params,
        tolerance,
        name,
        origin=where,
        on_exceed=on_exceed,
        active_params=active,
        memory=memory,
        time=time,
        device=device,
    )


def budget_from_entry(
    key: str,
    value: object,
    where: str,
    *,
    is_nodeid: bool,
    devices: Mapping[str, Any] | None = None,
) -> Budget:
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
    memory, time = options.pop("_memory"), options.pop("_time")
    _, tolerance, on_exceed = _read_options(options, where)
    if time is not None and isinstance(value, str):
        raise BudgetError(
            f"{where}: a time budget needs the device it is computed on, which a string cannot "
            f'carry; write a table: {{ {time.unit.key} = {time.value:g}, device = "A100:fp16" }}'
        )
    device = _read_device(time, options.get("device"), where, devices)
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
        memory=memory,
        time=time,
        device=device,
    )


def looks_like_nodeid(key: str) -> bool:
    """Node ids name a file (``tests/test_x.py::test_y``); anything else is a recorded name."""
    return "::" in key or key.endswith(".py")
