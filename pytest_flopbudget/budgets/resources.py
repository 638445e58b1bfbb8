"""Units of memory and time: what memory budgets (``gib=16``, ``"512 MiB"``) and time budgets
(``ms=2.0``) are written in, and how peak memory is printed and written back.

Memory is in bytes. ``KiB``, ``MiB``, ``GiB`` and ``TiB`` are binary (2^10, 2^20, 2^30, 2^40),
as memory is sold and reported by CUDA and ``torch.cuda``; ``KB``, ``MB``, ``GB`` and ``TB`` are
accepted with their exact decimal meaning (10^3 ... 10^12), never read as binary: a budget of
``"16 GB"`` is 16,000,000,000 bytes, 7% less than ``"16 GiB"``. What the plugin writes and prints
is always binary.

Time is in seconds; a time budget is checked against the roofline lower bound on a named device
(:mod:`.hardware`), never a measured latency.

Kept apart from :mod:`.units` (compute and parameters) so the two families stay readable; the
unit symbol of a memory or time :class:`~.units.Unit` is its ``prefix`` (``"gib"``, ``"ms"``).
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

MEMORY_SCALES: dict[str, int] = {
    "b": 1,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}
MEMORY_SYMBOLS: dict[str, str] = {
    "b": "B",
    "kib": "KiB",
    "mib": "MiB",
    "gib": "GiB",
    "tib": "TiB",
    "kb": "KB",
    "mb": "MB",
    "gb": "GB",
    "tb": "TB",
}
MEMORY_KEYS = ("kib", "mib", "gib", "tib", "kb", "mb", "gb", "tb")
"""Marker and inline-table keys of memory budgets (bytes only in strings: ``"512 B"``)."""
BINARY = ("tib", "gib", "mib", "kib")

TIME_SCALES: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
TIME_KEYS = ("s", "ms", "us")

MIN_SECONDS = 1e-9  # a time budget below a nanosecond is below any device's resolution
MAX_SECONDS = 1e9  # 31 years

WRITTEN_DIGITS = 4


def memory_symbol(text: str) -> str | None:
    """``"GiB"``, ``"gib"``, ``"GB"``, ``"bytes"`` -> the unit's key (``"gib"``, ``"gb"``, ``"b"``)."""
    key = text.strip().lower()
    if key in ("b", "byte", "bytes"):
        return "b"
    return key if key in MEMORY_SCALES else None


def time_symbol(text: str) -> str | None:
    """``"ms"``, ``"us"``, ``"µs"``, ``"s"`` -> the unit's key."""
    key = text.strip().lower().replace("µ", "u").replace("μ", "u")
    if key in ("sec", "secs", "second", "seconds"):
        return "s"
    return key if key in TIME_SCALES else None


def best_binary(count: float) -> str:
    """The largest binary unit in which ``count`` bytes is at least 1 (``"b"`` below 1 KiB)."""
    for key in BINARY:
        if abs(count) >= MEMORY_SCALES[key]:
            return key
    return "b"


def format_bytes(count: float | None, key: str | None = None) -> str:
    """``4.04 MiB``, ``16.0 GiB``, ``512 B``: three significant figures in a binary unit."""
    if count is None:
        return "-"
    key = best_binary(count) if key is None else key
    scaled = count / MEMORY_SCALES[key]
    whole = key == "b" or abs(scaled) >= 1000
    number = f"{scaled:,.0f}" if whole else f"{scaled:#.3g}".rstrip(".")
    return f"{number} {MEMORY_SYMBOLS[key]}"


def ceil_in(count: float, scale: Fraction | int, digits: int = WRITTEN_DIGITS) -> Decimal:
    """The smallest number of ``digits`` significant figures that, times ``scale``, is >= ``count``.

    Exact (fractions), so a value written back never reads below the count it was written for.
    """
    scaled = Fraction(count) / Fraction(scale)
    if scaled <= 0:
        return Decimal(0)
    exponent = _floor_log10(scaled) - digits + 1
    step = Fraction(10) ** exponent
    return Decimal(math.ceil(scaled / step)).scaleb(exponent)


def _floor_log10(value: Fraction) -> int:
    exponent = len(str(value.numerator)) - len(str(value.denominator))
    if Fraction(10) ** exponent > value:
        exponent -= 1
    return exponent


def plain(number: Decimal) -> str:
    return format(number.normalize(), "f")


def written_bytes(count: int, key: str | None = None) -> str:
    """A peak as ``--flop-budget-update`` writes it: ``"4.041 MiB"``, rounded up, reads back >= count.

    ``key`` None picks the best binary unit; an existing entry's unit is kept.
    """
    key = best_binary(count) if key is None else key
    return f"{plain(ceil_in(count, MEMORY_SCALES[key]))} {MEMORY_SYMBOLS[key]}"


def time_scale(key: str) -> Fraction:
    """The exact scale of a time unit (``Fraction(1, 1000)`` for ms), for exact rounding up."""
    return {"s": Fraction(1), "ms": Fraction(1, 1000), "us": Fraction(1, 10**6)}[key]


def written_seconds(seconds: float, key: str) -> Decimal:
    """A time in ``key`` units rounded up to 4 significant figures (``2.001`` ms)."""
    return ceil_in(seconds, time_scale(key))
