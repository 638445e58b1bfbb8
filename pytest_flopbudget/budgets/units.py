"""Units of compute and model size: parsing budget values and printing counts.

Budgets name their unit explicitly (``gflops=4.1``, ``"300 MMACs"``, ``"25.6M params"``).
A FLOPs-family value depends on the convention in force (``flops_per_mac``); a MACs-family
value does not, which is why both families exist.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

Kind = Literal["flops", "macs", "params"]

PREFIXES: dict[str, float] = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_DISPLAY_PREFIX = {"": "", "k": "K", "m": "M", "g": "G", "t": "T"}
_KIND_DISPLAY = {"flops": "FLOPs", "macs": "MACs", "params": "params"}


@dataclass(frozen=True)
class Unit:
    """A named unit such as GFLOPs: its kind and its multiplier."""

    kind: Kind
    prefix: str

    @property
    def scale(self) -> float:
        return PREFIXES[self.prefix]

    @property
    def key(self) -> str:
        """The marker / pyproject argument name of this unit (``gflops``, ``mparams``)."""
        return f"{self.prefix}{self.kind}"

    @property
    def label(self) -> str:
        if self.kind == "params":
            return f"{_DISPLAY_PREFIX[self.prefix]} params".strip() if self.prefix else "params"
        return f"{_DISPLAY_PREFIX[self.prefix]}{_KIND_DISPLAY[self.kind]}"


COMPUTE_UNITS: dict[str, Unit] = {
    f"{p}{kind}": Unit(kind, p)
    for kind in ("flops", "macs")
    for p in PREFIXES  # type: ignore[arg-type]
}
PARAM_UNITS: dict[str, Unit] = {"params": Unit("params", ""), "mparams": Unit("params", "m")}
ALL_UNITS: dict[str, Unit] = {**COMPUTE_UNITS, **PARAM_UNITS}

_QUANTITY = re.compile(
    r"^\s*(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)\s*"
    r"(?P<prefix>[kmgt])?\s*(?P<kind>flops?|macs?|params?)\s*$",
    re.IGNORECASE,
)


class UnitError(ValueError):
    """A budget value that cannot be read; the message says why, the caller says where."""


@dataclass(frozen=True)
class Quantity:
    value: float
    unit: Unit

    @property
    def base_value(self) -> float:
        """The value in the unit's base (FLOPs, MACs or parameters).

        Multiplied in decimal, so ``"1.001 KFLOPs"`` is exactly 1001 FLOPs: a float product
        (1000.9999999999999) would fail the count of 1,001 the update wrote it for.
        """
        return float(Decimal(repr(self.value)) * Decimal(repr(self.unit.scale)))


def check_positive(value: object, what: str) -> float:
    """Return ``value`` as a float if it is a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnitError(f"{what} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise UnitError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def parse_quantities(text: str) -> list[Quantity]:
    """Parse ``"4.1 GFLOPs"`` or ``"4.1 GFLOPs, 25.6M params"`` into quantities."""
    if not isinstance(text, str):
        raise UnitError(f"expected a string such as '4.1 GFLOPs', got {text!r}")
    parts = [part for part in text.split(",")]
    if not text.strip() or any(not part.strip() for part in parts):
        raise UnitError(
            f"cannot read {text!r}: expected e.g. '4.1 GFLOPs', '300 MMACs', '25.6M params'"
        )
    quantities = []
    for part in parts:
        match = _QUANTITY.match(part)
        if match is None:
            raise UnitError(
                f"cannot read {part.strip()!r}: expected a number and a unit, e.g. '4.1 GFLOPs', "
                "'300 MMACs', '25.6M params' (prefixes K, M, G, T)"
            )
        kind = match["kind"].lower().rstrip("s") + "s"
        prefix = (match["prefix"] or "").lower()
        if kind == "params" and prefix not in ("", "k", "m", "g"):
            raise UnitError(f"cannot read {part.strip()!r}: parameter counts take K, M or G")
        value = check_positive(float(match["number"]), f"{part.strip()!r}")
        quantities.append(Quantity(value, Unit(kind, prefix)))  # type: ignore[arg-type]
    return quantities


def best_prefix(value: float) -> str:
    for prefix in ("t", "g", "m", "k"):
        if abs(value) >= PREFIXES[prefix]:
            return prefix
    return ""


def format_quantity(value: float | None, kind: Kind, prefix: str | None = None) -> str:
    """``4.52 GFLOPs``, ``1.05 MMACs``, ``25.6M params``: three significant figures."""
    if value is None:
        return "-"
    prefix = best_prefix(value) if prefix is None else prefix
    scaled = value / PREFIXES[prefix]
    whole = not prefix or abs(scaled) >= 1000
    number = f"{scaled:,.0f}" if whole else f"{scaled:#.3g}".rstrip(".")
    if kind == "params":
        return f"{number}{_DISPLAY_PREFIX[prefix]} params" if prefix else f"{number} params"
    return f"{number} {_DISPLAY_PREFIX[prefix]}{_KIND_DISPLAY[kind]}"


def format_budget_value(value: float, kind: Kind, prefix: str, *, exact: bool = False) -> str:
    """Two decimals in the budget's own unit, as in ``4.52 GFLOPs exceeds budget 4.10 GFLOPs``.

    ``exact``: a budget is shown with every decimal it has (``1.055 MMACs``, as the update
    writes it), never rounded to a value it is not.
    """
    scaled = value / PREFIXES[prefix]
    number = f"{scaled:.2f}" if prefix else f"{scaled:,.0f}"
    if exact and prefix:
        precise = (Decimal(repr(float(value))) / Decimal(int(PREFIXES[prefix]))).normalize()
        if precise.as_tuple().exponent < -2:  # type: ignore[operator]
            number = format(precise, "f")
    if kind == "params":
        return f"{number}{_DISPLAY_PREFIX[prefix]} params" if prefix else f"{number} params"
    return f"{number} {_DISPLAY_PREFIX[prefix]}{_KIND_DISPLAY[kind]}"


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
        if kind == "params" and prefix not in PARAM_PREFIXES:
            prefix = "g"
    number = plain_number(ceil_significant(count, prefix))
    if kind == "params":
        return f"{number}{_DISPLAY_PREFIX[prefix]} params" if prefix else f"{number} params"
    return f"{number} {_DISPLAY_PREFIX[prefix]}{_KIND_DISPLAY[kind]}"
