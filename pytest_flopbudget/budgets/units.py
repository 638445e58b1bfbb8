"""Units of compute and model size: parsing budget values and printing counts.

Budgets name their unit explicitly (``gflops=4.1``, ``"300 MMACs"``, ``"25.6M params"``).
A FLOPs-family value depends on the convention in force (``flops_per_mac``); a MACs-family
value does not, which is why both families exist.
"""

from __future__ import annotations

import math
import numbers
import re
import reprlib
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from . import resources
from .resources import MEMORY_KEYS, MEMORY_SCALES, MEMORY_SYMBOLS, TIME_KEYS, TIME_SCALES

Kind = Literal["flops", "macs", "params", "active_params", "memory", "time"]

PREFIXES: dict[str, float] = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_DISPLAY_PREFIX = {"": "", "k": "K", "m": "M", "g": "G", "t": "T"}
# Parameter counts say billions the way model names do (Llama-2-7B): ``B``, read as ``g`` too.
_PARAM_DISPLAY_PREFIX = {"": "", "k": "K", "m": "M", "g": "B"}
_KIND_DISPLAY = {
    "flops": "FLOPs",
    "macs": "MACs",
    "params": "params",
    "active_params": "active params",
    "memory": "bytes",
    "time": "seconds",
}
RESOURCE_KINDS = ("memory", "time")  # the unit's symbol is its prefix: "gib", "ms"
PARAM_KINDS = ("params", "active_params")

# The range every number the plugin reads must lie in, so that arithmetic on it stays finite
# and every report stays valid JSON. 1e30 is 10^17 times a 7B model's training step.
MAX_QUANTITY = 10**30  # budgets and counts, in FLOPs, MACs or parameters
MIN_BUDGET = 1  # a budget below one FLOP, MAC or parameter can only be met by nothing
MAX_TOLERANCE = 100  # relative slack: 100 = 10,000%

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = _SHOWN.maxlong = 60


@dataclass(frozen=True)
class Unit:
    """A named unit such as GFLOPs: its kind and its multiplier."""

    kind: Kind
    prefix: str

    @property
    def scale(self) -> float:
        if self.kind == "memory":
            return MEMORY_SCALES[self.prefix]
        if self.kind == "time":
            return TIME_SCALES[self.prefix]
        return PREFIXES[self.prefix]

    @property
    def key(self) -> str:
        """The marker / pyproject argument name of this unit (``gflops``, ``mparams``, ``gib``;
        ``bparams``: billions of parameters are written ``b``, ``gparams`` is read the same)."""
        if self.kind in RESOURCE_KINDS:
            return self.prefix
        if self.kind in PARAM_KINDS and self.prefix == "g":
            return f"b{self.kind}"
        return f"{self.prefix}{self.kind}"

    @property
    def label(self) -> str:
        if self.kind == "memory":
            return MEMORY_SYMBOLS[self.prefix]
        if self.kind == "time":
            return self.prefix
        if self.kind in PARAM_KINDS:
            return f"{_PARAM_DISPLAY_PREFIX[self.prefix]} {_KIND_DISPLAY[self.kind]}".strip()
        return f"{_DISPLAY_PREFIX[self.prefix]}{_KIND_DISPLAY[self.kind]}"


COMPUTE_UNITS: dict[str, Unit] = {
    f"{p}{kind}": Unit(kind, p)
    for kind in ("flops", "macs")
    for p in PREFIXES  # type: ignore[arg-type]
}
# ``b`` (billions, as LLM sizes are written) and ``g`` name the same unit for parameters.
_PARAM_KEY_PREFIXES = {"": "", "k": "k", "m": "m", "b": "g", "g": "g"}
PARAM_UNITS: dict[str, Unit] = {
    f"{key}params": Unit("params", p) for key, p in _PARAM_KEY_PREFIXES.items()
}
ACTIVE_PARAM_UNITS: dict[str, Unit] = {
    f"{key}active_params": Unit("active_params", p) for key, p in _PARAM_KEY_PREFIXES.items()
}
"""Parameters one token's forward uses (see :mod:`..counting.active`): ``bactive_params=12.9``."""
MEMORY_UNITS: dict[str, Unit] = {key: Unit("memory", key) for key in MEMORY_KEYS}
"""Peak memory of the counted pass: ``gib=16``, ``mib=512`` (binary), ``gb=16`` (decimal)."""
TIME_UNITS: dict[str, Unit] = {key: Unit("time", key) for key in TIME_KEYS}
"""Roofline lower bound on a named device: ``ms=2.0, device="A100:fp16"``."""
ALL_UNITS: dict[str, Unit] = {**COMPUTE_UNITS, **PARAM_UNITS, **ACTIVE_PARAM_UNITS}
BUDGET_UNITS: dict[str, Unit] = {**ALL_UNITS, **MEMORY_UNITS, **TIME_UNITS}
"""Every key a marker or an inline table may carry a budget under."""

_QUANTITY = re.compile(
    r"^\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*"
    r"(?P<prefix>[kmgtb])?\s*(?P<kind>flops?|macs?|(?:active\s+)?params?)\s*$",
    re.IGNORECASE,
)
_RESOURCE = re.compile(
    r"^\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*(?P<symbol>[a-zµμ]+)\s*$",
    re.IGNORECASE,
)


class UnitError(ValueError):
    """A budget value that cannot be read; the message says why, the caller says where."""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: Unit
    written: Decimal | None = field(default=None, compare=False)
    """The number as its author wrote it (``Decimal("4.10")`` for ``"4.10 GFLOPs"``,
    ``Decimal("4.1")`` for ``gflops=4.1``): reports show a budget with these figures."""

    @property
    def base_value(self) -> float:
        """The value in the unit's base (FLOPs, MACs or parameters).

        Multiplied in decimal, so ``"1.001 KFLOPs"`` is exactly 1001 FLOPs: a float product
        (1000.9999999999999) would fail the count of 1,001 the update wrote it for.
        """
        return float(Decimal(repr(self.value)) * Decimal(repr(self.unit.scale)))


def shown(value: object) -> str:
    """A value's repr for an error message: a huge number, string or array is abbreviated."""
    try:
        return _SHOWN.repr(value)
    except Exception:  # a repr that raises must not hide the error being reported
        return f"<{type(value).__name__}>"


def as_number(value: object, what: str) -> float:
    """``value`` as a float: a Python or NumPy int or float, never a bool, NaN or an array.

    An integer too large for a float becomes an infinity of its sign, so that the caller's
    range check names the limit instead of an ``OverflowError`` escaping.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UnitError(f"{what} must be a number, got {shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (ValueError, TypeError):
        raise UnitError(f"{what} must be a number, got {shown(value)}") from None
    if math.isnan(number):
        raise UnitError(f"{what} must be a number, got {shown(value)}")
    return number


def check_positive(value: object, what: str) -> float:
    """``value`` as a float above zero; an infinity for an integer too large (callers bound it)."""
    number = as_number(value, what)
    if number <= 0:
        raise UnitError(f"{what} must be a positive number, got {shown(value)}")
    return number


def check_quantity(value: object, unit: Unit, what: str) -> Quantity:
    """A budget value in ``unit``: positive, and between one and 1e30 in the unit's base."""
    quantity = Quantity(check_positive(value, what), unit, written_number(value))
    if unit.kind == "time":
        seconds = quantity.base_value
        if not resources.MIN_SECONDS <= seconds <= resources.MAX_SECONDS:
            raise UnitError(
                f"{what} must lie between 1 ns and 1e9 s, got {shown(value)} ({seconds:.3g} s)"
            )
        return quantity
    base = _KIND_DISPLAY[unit.kind]
    if quantity.base_value > MAX_QUANTITY * (1 + 1e-9):  # 1e21 GFLOPs is 1.0000000000000001e30
        raise UnitError(
            f"{what} must be at most 1e30 {base}, got {shown(value)} "
            f"({quantity.base_value:.3g} {base})"
        )
    if quantity.base_value < MIN_BUDGET:
        raise UnitError(
            f"{what} must be at least one {base.rstrip('s')} (only a model that costs nothing "
            f"could meet less), got {shown(value)} ({quantity.base_value:.3g} {base})"
        )
    return quantity


def check_count(value: object, what: str) -> int:
    """A count read from a file (baseline, report): an integer from 0 to 1e30."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUANTITY:
        raise UnitError(f"{what} must be an integer from 0 to 1e30, got {shown(value)}")
    return value


def parse_quantities(text: str) -> list[Quantity]:
    """Parse ``"4.1 GFLOPs"`` or ``"4.1 GFLOPs, 25.6M params"`` into quantities."""
    if not isinstance(text, str):
        raise UnitError(f"expected a string such as '4.1 GFLOPs', got {shown(text)}")
    parts = [part for part in text.split(",")]
    if not text.strip() or any(not part.strip() for part in parts):
        raise UnitError(
            f"cannot read {shown(text)}: expected e.g. '4.1 GFLOPs', '300 MMACs', '25.6M params'"
        )
    quantities = []
    for part in parts:
        match = _QUANTITY.match(part)
        resource = _resource_quantity(part) if match is None else None
        if resource is not None:
            quantities.append(resource)
            continue
        if match is None:
            raise UnitError(
                f"cannot read {shown(part.strip())}: expected a number and a unit, e.g. '4.1 GFLOPs', "
                "'300 MMACs', '7B params' (prefixes K, M, G, T; B for parameters), '16 GiB', "
                "'512 MiB' (memory; GB is decimal), '2 ms' (time)"
            )
        kind = match["kind"].lower().rstrip("s") + "s"
        if kind.startswith("active"):
            kind = "active_params"
        prefix = (match["prefix"] or "").lower()
        if kind in PARAM_KINDS:
            if prefix not in _PARAM_KEY_PREFIXES:
                raise UnitError(
                    f"cannot read {shown(part.strip())}: parameter counts take K, M or B "
                    "(G is read as B)"
                )
            prefix = _PARAM_KEY_PREFIXES[prefix]
        elif prefix == "b":
            raise UnitError(
                f"cannot read {shown(part.strip())}: B (billions) is for parameter counts; "
                "compute takes K, M, G or T"
            )
        unit = Unit(kind, prefix)  # type: ignore[arg-type]
        quantity = check_quantity(float(match["number"]), unit, shown(part.strip()))
        quantities.append(replace(quantity, written=Decimal(match["number"])))
    return quantities


def _resource_quantity(part: str) -> Quantity | None:
    """``"16 GiB"``, ``"512 MiB"``, ``"16 GB"`` (decimal), ``"2 ms"``; None for anything else."""
    match = _RESOURCE.match(part)
    if match is None:
        return None
    memory = resources.memory_symbol(match["symbol"])
    time = resources.time_symbol(match["symbol"])
    if memory is None and time is None:
        return None
    unit = Unit("memory", memory) if memory is not None else Unit("time", time)  # type: ignore[arg-type]
    quantity = check_quantity(float(match["number"]), unit, shown(part.strip()))
    return replace(quantity, written=Decimal(match["number"]))


def written_number(value: object) -> Decimal | None:
    """A marker or table value's figures: ``4.1`` for ``gflops=4.1``, ``26`` for ``mparams=26``.

    The shortest decimal that reads back as the same float, which is what its author typed.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        if isinstance(value, numbers.Integral):
            number = Decimal(int(value))
        else:
            number = Decimal(repr(float(value)))
    except (OverflowError, ValueError, TypeError):
        return None
    return number if number.is_finite() else None


def best_prefix(value: float) -> str:
    for prefix in ("t", "g", "m", "k"):
        if abs(value) >= PREFIXES[prefix]:
            return prefix
    return ""


def best_prefix_for(value: float, kind: Kind) -> str:
    """The largest prefix below ``value``; parameter counts stop at B (``1,200B params``)."""
    prefix = best_prefix(value)
    return "g" if kind in PARAM_KINDS and prefix == "t" else prefix


def with_unit(number: str, kind: Kind, prefix: str) -> str:
    """``4.1 GFLOPs``, ``7B params``, ``12.9B active params``."""
    if kind in PARAM_KINDS:
        return f"{number}{_PARAM_DISPLAY_PREFIX[prefix]} {_KIND_DISPLAY[kind]}"
    return f"{number} {_DISPLAY_PREFIX[prefix]}{_KIND_DISPLAY[kind]}"


def format_written_budget(quantity: Quantity, prefix: str | None = None) -> str:
    """A budget with the figures its author wrote (``2.835 MFLOPs``, ``4.1 GFLOPs``).

    ``prefix`` shows it in another prefix of its kind, keeping its significant figures
    (``6800M params`` in B is ``6.800B params``), so that a row family reads in one unit.
    Without written figures (or with more than 12, or a number ``prefix`` would turn into
    a long run of zeros) it falls back to :func:`format_budget_value`.
    """
    unit = quantity.unit
    written = quantity.written
    if unit.kind in RESOURCE_KINDS:  # memory and time keep their own unit (``16 GiB``, ``2 ms``)
        if written is None or len(written.as_tuple().digits) > 12:
            return format_budget_value(quantity.base_value, unit.kind, unit.prefix, exact=True)
        symbol = MEMORY_SYMBOLS[unit.prefix] if unit.kind == "memory" else unit.prefix
        return f"{written:f} {symbol}"
    target = unit.prefix if prefix is None else prefix
    shift = (_EXPONENT[unit.prefix] - _EXPONENT[target]) * 3
    if written is None or len(written.as_tuple().digits) > 12 or abs(shift) > 12:
        shown = format_budget_value(quantity.base_value, unit.kind, target, exact=True)
        return shown.replace(",", "")  # read back as a budget string, where "," separates
    number = written.scaleb(shift)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        number = number.quantize(Decimal(1))  # 6.8 in M from 0.0068 B: 6.8, not 6.8E+0
    return with_unit(f"{number:f}", unit.kind, target)  # no separator: it reads back


_EXPONENT = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def format_quantity(value: float | None, kind: Kind, prefix: str | None = None) -> str:
    """``4.52 GFLOPs``, ``1.05 MMACs``, ``25.6M params``: three significant figures."""
    if value is None:
        return "-"
    prefix = best_prefix_for(value, kind) if prefix is None else prefix
    scaled = value / PREFIXES[prefix]
    if not prefix:
        number = f"{scaled:,.0f}"
    elif abs(scaled) >= 1000:  # no separator: "1200B params" reads back as a budget
        number = f"{scaled:.0f}"
    else:
        number = f"{scaled:#.3g}".rstrip(".")
    return with_unit(number, kind, prefix)


def format_budget_value(value: float, kind: Kind, prefix: str, *, exact: bool = False) -> str:
    """Two decimals in the budget's own unit, as in ``4.52 GFLOPs exceeds budget 4.10 GFLOPs``.

    ``exact``: a budget is shown with every decimal it has (``1.055 MMACs``, as the update
    writes it), never rounded to a value it is not.
    """
    if kind in RESOURCE_KINDS:
        return _format_resource(value, kind, prefix, exact=exact)
    scaled = value / PREFIXES[prefix]
    number = f"{scaled:.2f}" if prefix else f"{scaled:,.0f}"
    if exact and prefix:
        precise = (Decimal(repr(float(value))) / Decimal(int(PREFIXES[prefix]))).normalize()
        if precise.as_tuple().exponent < -2:  # type: ignore[operator]
            number = format(precise, "f")
    return with_unit(number, kind, prefix)


WRITTEN_DIGITS = 4
PARAM_PREFIXES = ("", "k", "m", "g")


def round_up(value: float, digits: int = WRITTEN_DIGITS) -> tuple[float, str]:
    """Round ``value`` up to ``digits`` significant figures in its best prefix."""
    prefix = best_prefix(value)
    number = ceil_significant(value, prefix, digits)
    return float(number), prefix


def ceil_significant(count: float, prefix: str, digits: int = WRITTEN_DIGITS) -> Decimal:
    """The smallest number of ``digits`` significant figures that, in ``prefix``, is >= ``count``.

    Exact (fractions, not floats), so what the update writes never parses below the count;
    it is at most one unit in the last of the ``digits`` figures above it (0.1% for 4).
    Zero stays zero.
    """
    scaled = Fraction(count) / Fraction(int(PREFIXES[prefix]))
    if scaled <= 0:
        return Decimal(0)
    exponent = _floor_log10(scaled) - digits + 1
    step = Fraction(10) ** exponent
    steps = math.ceil(scaled / step)
    return Decimal(steps).scaleb(exponent)


def _floor_log10(value: Fraction) -> int:
    exponent = len(str(value.numerator)) - len(str(value.denominator))
    if Fraction(10) ** exponent > value:
        exponent -= 1
    return exponent


def plain_number(number: Decimal) -> str:
    """``1.055``, ``1000``, ``0.000001``: no exponent and no trailing zeros."""
    return format(number.normalize(), "f")


def format_written(count: float, kind: Kind, prefix: str | None = None) -> str:
    """A count as the update writes it: rounded up to 4 significant figures, ``1.055 MFLOPs``.

    ``prefix`` None picks the best one (K, M, G, T; parameters K, M, G).
    """
    if prefix is None:
        prefix = best_prefix(count)
        if kind in PARAM_KINDS and prefix not in PARAM_PREFIXES:
            prefix = "g"
    number = plain_number(ceil_significant(count, prefix))
    return with_unit(number, kind, prefix)


def _format_resource(value: float, kind: Kind, key: str, *, exact: bool) -> str:
    """``16.00 GiB``, ``4.041 MiB`` (exact), ``2.00 ms``; bytes as a whole number."""
    scale = MEMORY_SCALES[key] if kind == "memory" else resources.time_scale(key)
    symbol = MEMORY_SYMBOLS[key] if kind == "memory" else key
    if kind == "memory" and key == "b":
        return f"{value:,.0f} {symbol}"
    scaled = Fraction(value) / Fraction(scale)
    number = f"{float(scaled):.2f}"
    if exact:
        precise = Decimal(scaled.numerator) / Decimal(scaled.denominator)
        precise = precise.quantize(Decimal("1e-9")).normalize()
        if precise.as_tuple().exponent < -2:  # type: ignore[operator]
            number = format(precise, "f")
    return f"{number} {symbol}"
