"""What a count of MACs means in time on a known accelerator, at best.

``data/hardware.toml`` lists each device's peak dense throughput per dtype in FLOP/s, with the
page the figure comes from. Peak FLOP/s count a fused multiply-add as 2 FLOPs, so the ideal
time of ``macs`` multiply-accumulates is ``2 * macs / peak`` whatever ``flops_per_mac`` the
budgets use.

That time is a lower bound, not a latency: it ignores memory bandwidth, kernel launches,
occupancy and every op that is not a multiply-accumulate. It is useful to compare models on
one device, or to see that a model cannot possibly fit a time budget; it says nothing about
how fast the model will actually run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16")
DEFAULT_DTYPE = "fp32"
DTYPE_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "fp32": "fp32",
        "float32": "fp32",
        "fp16": "fp16",
        "float16": "fp16",
        "bf16": "bf16",
        "bfloat16": "bf16",
    }
)
FLOPS_PER_FMA = 2
_DATA_FILE = "hardware.toml"


class HardwareError(ValueError):
    """A device, dtype or hardware spec that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Device:
    """One accelerator: its peak FLOP/s per dtype and where that figure comes from."""

    name: str
    peaks: dict[str, float] = field(hash=False)
    source: str

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s in ``dtype`` (an alias such as ``float16`` is accepted)."""
        canonical = normalize_dtype(dtype)
        if canonical not in self.peaks:
            known = ", ".join(self.peaks)
            raise HardwareError(f"{self.name} has no {canonical} peak listed (listed: {known})")
        return self.peaks[canonical]


def normalize_dtype(dtype: str) -> str:
    """``float16`` and ``torch.float16`` -> ``fp16``, so every caller spells dtypes one way."""
    key = dtype.strip().lower().removeprefix("torch.")
    if key not in DTYPE_ALIASES:
        raise HardwareError(
            f"unknown dtype {dtype!r} (accepted: {', '.join(DTYPES)}; "
            "aliases float32, float16, bfloat16)"
        )
    return DTYPE_ALIASES[key]


def load_devices() -> dict[str, Device]:
    """Every device of ``data/hardware.toml`` by its name there.

    The file is small and read afresh on each call, so every caller gets its own devices and no
    caller can change the figures another one sees.
    """
    text = (resources.files("pytest_flopbudget") / "data" / _DATA_FILE).read_text("utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{_DATA_FILE}: {exc}") from exc
    devices = data.get("devices")
    if not isinstance(devices, dict) or not devices:
        raise HardwareError(f"{_DATA_FILE}: expected a [devices.NAME] table per device")
    return {name: _device(name, entry) for name, entry in devices.items()}


def _device(name: str, entry: Any) -> Device:
    """Validate one ``[devices.NAME]`` table: a broken data file must fail loudly, not estimate."""
    where = f"{_DATA_FILE}: [devices.{name}]"
    if not isinstance(entry, dict):
        raise HardwareError(f"{where}: expected a table")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise HardwareError(f"{where}: needs a 'source' string saying where the figures come from")
    unknown = set(entry) - {"source", *DTYPES}
    if unknown:
        raise HardwareError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    if DEFAULT_DTYPE not in entry:
        raise HardwareError(f"{where}: needs an {DEFAULT_DTYPE} peak")
    peaks = {dtype: _peak(where, dtype, entry[dtype]) for dtype in DTYPES if dtype in entry}
    return Device(name=name, peaks=peaks, source=source)


def _peak(where: str, dtype: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HardwareError(f"{where}: {dtype} must be a number of FLOP/s, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise HardwareError(f"{where}: {dtype} must be positive, got {value!r}")
    return float(value)


def _folded(name: str) -> str:
    """``RTX_3090``, ``rtx 3090`` and ``RTX-3090`` are one device."""
    return "".join(char for char in name.lower() if char not in " -_")


def find(name: str) -> Device:
    """The device called ``name``, ignoring case, spaces, ``-`` and ``_``."""
    devices = load_devices()
    wanted = _folded(name)
    for device_name, device in devices.items():
        if _folded(device_name) == wanted:
            return device
    raise HardwareError(f"unknown device {name!r} (known: {', '.join(devices)})")


def parse_hardware_spec(spec: str) -> tuple[Device, str]:
    """``"T4"`` -> (T4, ``"fp32"``); ``"A100:fp16"`` -> (A100, ``"fp16"``)."""
    device_part, separator, dtype_part = spec.partition(":")
    try:
        if not device_part.strip():
            raise HardwareError("expected DEVICE or DEVICE:DTYPE, e.g. 'T4' or 'A100:fp16'")
        if separator and ":" in dtype_part:
            raise HardwareError("expected one ':' between device and dtype")
        if separator and not dtype_part.strip():
            raise HardwareError(f"no dtype after ':' (accepted: {', '.join(DTYPES)})")
        device = find(device_part.strip())
        dtype = normalize_dtype(dtype_part) if separator else DEFAULT_DTYPE
        device.peak(dtype)
    except HardwareError as exc:
        raise HardwareError(f"hardware spec {spec!r}: {exc}") from None
    return device, dtype


def ideal_seconds(macs: int, device: Device, dtype: str = DEFAULT_DTYPE) -> float:
    """``2 * macs / peak``: a lower bound on compute time, never a latency (see the module doc)."""
    if isinstance(macs, bool) or not isinstance(macs, int) or macs < 0:
        raise HardwareError(f"macs must be a non-negative integer, got {macs!r}")
    return FLOPS_PER_FMA * macs / device.peak(dtype)


_TIME_UNITS: tuple[tuple[float, str], ...] = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))


def format_seconds(seconds: float) -> str:
    """``1.20 s``, ``12.3 ms``, ``4.10 us``: three significant figures, ASCII units."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite non-negative number, got {seconds!r}")
    if seconds == 0:
        return "0 s"
    rounded = float(f"{seconds:.3g}")  # round first: 0.9996 s is "1.00 s", not "1.00e+03 ms"
    scale, unit = next(
        ((scale, unit) for scale, unit in _TIME_UNITS if rounded >= scale), _TIME_UNITS[-1]
    )
    scaled = rounded / scale
    number = f"{scaled:,.0f}" if scaled >= 1000 else f"{scaled:#.3g}".rstrip(".")
    return f"{number} {unit}"
