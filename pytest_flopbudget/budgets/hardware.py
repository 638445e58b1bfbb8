"""What a count means in time on a known accelerator, at best.

``data/hardware.toml`` lists each device's peak dense throughput per dtype in FLOP/s and its
memory bandwidth in bytes/s, with the vendor datasheet the figures come from. Peak FLOP/s count
a fused multiply-add as 2 FLOPs, so ``macs`` multiply-accumulates take at least
``2 * macs / peak`` whatever ``flops_per_mac`` the budgets use, and ``bytes`` moved take at
least ``bytes / bandwidth``.

:func:`roofline` prices each op at the slower of the two; :func:`ideal_seconds` is the
compute-only time, for counts that did not measure bytes. Both are lower bounds, not latencies:
they ignore kernel launches, caches, occupancy and every op the count does not price. They are
useful to compare models on one device, or to see that a model cannot possibly fit a time
budget; they say nothing about how fast the model will actually run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any, Literal

from ..counting.count import OpCost

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
    bandwidth: float | None = None
    """Peak memory bandwidth in bytes/s (DRAM/HBM to the chip); None where none is listed."""

    def memory_bandwidth(self) -> float:
        """Peak bytes/s; a device without one cannot price memory traffic, so it says so."""
        if self.bandwidth is None:
            raise HardwareError(f"{self.name} has no memory bandwidth listed")
        return self.bandwidth

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


def _read_data_file() -> dict[str, Any]:
    text = (resources.files("pytest_flopbudget") / "data" / _DATA_FILE).read_text("utf-8")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HardwareError(f"{_DATA_FILE}: {exc}") from exc


def load_devices() -> dict[str, Device]:
    """Every device of ``data/hardware.toml`` by its name there.

    The file is small and read afresh on each call, so every caller gets its own devices and no
    caller can change the figures another one sees.
    """
    devices = _read_data_file().get("devices")
    if not isinstance(devices, dict) or not devices:
        raise HardwareError(f"{_DATA_FILE}: expected a [devices.NAME] table per device")
    return {
        name: device_from_table(name, entry, f"{_DATA_FILE}: [devices.{name}]")
        for name, entry in devices.items()
    }


def load_aliases() -> dict[str, str]:
    """Older device names and the device each now means (``H100`` -> ``H100_PCIe``)."""
    data = _read_data_file()
    aliases = data.get("aliases", {})
    devices = data.get("devices", {})
    if not isinstance(aliases, dict):
        raise HardwareError(f'{_DATA_FILE}: [aliases] must be a table of NAME = "DEVICE"')
    for alias, target in aliases.items():
        if not isinstance(target, str) or target not in devices:
            raise HardwareError(
                f"{_DATA_FILE}: [aliases] {alias} = {target!r} names no [devices.NAME] table"
            )
    return dict(aliases)


def device_from_table(name: str, entry: Any, where: str) -> Device:
    """Validate one device table (``where`` names it in errors): a broken one must fail loudly.

    The data file's ``[devices.NAME]`` tables and the mappings plugins return from
    ``pytest_flopbudget_hardware`` go through here alike.
    """
    if not isinstance(entry, Mapping):
        raise HardwareError(f"{where}: expected a table")
    source = entry.get("source")
    if not isinstance(source, str) or not source.strip():
        raise HardwareError(f"{where}: needs a 'source' string saying where the figures come from")
    unknown = set(entry) - {"source", "bandwidth", *DTYPES}
    if unknown:
        raise HardwareError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))}")
    if DEFAULT_DTYPE not in entry:
        raise HardwareError(f"{where}: needs an {DEFAULT_DTYPE} peak")
    if "bandwidth" not in entry:
        raise HardwareError(f"{where}: needs a memory 'bandwidth' in bytes/s")
    peaks = {dtype: _peak(where, dtype, entry[dtype]) for dtype in DTYPES if dtype in entry}
    bandwidth = _positive(where, "bandwidth", entry["bandwidth"], "bytes/s")
    return Device(name=name, peaks=peaks, source=source, bandwidth=bandwidth)


def contributed_devices(result: Any, where: str, known: Mapping[str, Device]) -> dict[str, Device]:
    """What one ``pytest_flopbudget_hardware`` implementation returned, validated.

    ``result`` maps device names to ``{"peaks": {dtype: FLOP/s}, "bandwidth": bytes/s,
    "source": str}``. A name that is already a device (the data file's, an alias, or one an
    earlier hook contributed; ``known``) is refused: two sets of figures for one name would
    make every time that uses it ambiguous.
    """
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise HardwareError(
            f"{where}: must return a mapping of device name -> "
            f"{{'peaks': {{...}}, 'bandwidth': ..., 'source': ...}}, got {result!r}"
        )
    taken = {_folded(name): name for name in [*load_devices(), *load_aliases(), *known]}
    devices: dict[str, Device] = {}
    for name, entry in result.items():
        if not isinstance(name, str) or not _folded(name) or ":" in name:
            raise HardwareError(
                f"{where}: device names must be non-empty strings without ':', got {name!r}"
            )
        place = f"{where}: device {name!r}"
        if _folded(name) in taken:
            raise HardwareError(
                f"{place}: {taken[_folded(name)]!r} is already a device; pick another name"
            )
        if not isinstance(entry, Mapping):
            raise HardwareError(f"{place}: expected a mapping with peaks, bandwidth and source")
        unknown = set(entry) - {"peaks", "bandwidth", "source"}
        if unknown:
            raise HardwareError(
                f"{place}: unknown keys {', '.join(sorted(map(str, unknown)))} (expected peaks, bandwidth, source)"
            )
        peaks = entry.get("peaks")
        if not isinstance(peaks, Mapping):
            raise HardwareError(
                f"{place}: peaks must map dtypes ({', '.join(DTYPES)}) to FLOP/s, got {peaks!r}"
            )
        odd = [dtype for dtype in peaks if dtype not in DTYPES]
        if odd:
            raise HardwareError(
                f"{place}: peaks has unknown dtypes {', '.join(map(repr, odd))} (accepted: {', '.join(DTYPES)})"
            )
        flat = {key: value for key, value in entry.items() if key != "peaks"} | dict(peaks)
        devices[name] = device_from_table(name, flat, place)
        taken[_folded(name)] = name
    return devices


def _peak(where: str, dtype: str, value: Any) -> float:
    return _positive(where, dtype, value, "FLOP/s")


def _positive(where: str, key: str, value: Any, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HardwareError(f"{where}: {key} must be a number of {unit}, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise HardwareError(f"{where}: {key} must be positive, got {value!r}")
    return float(value)


def _folded(name: str) -> str:
    """``RTX_3090``, ``rtx 3090`` and ``RTX-3090`` are one device."""
    return "".join(char for char in name.lower() if char not in " -_")


def find(name: str, extra: Mapping[str, Device] | None = None) -> Device:
    """The device called ``name``, ignoring case, spaces, ``-`` and ``_``.

    ``extra`` are devices plugins contributed for this session (``pytest_flopbudget_hardware``);
    they are looked up after the data file's devices and aliases.
    """
    devices = load_devices()
    aliases = load_aliases()
    wanted = _folded(name)
    for device_name, device in devices.items():
        if _folded(device_name) == wanted:
            return device
    for alias, target in aliases.items():
        if _folded(alias) == wanted:
            return devices[target]
    for device_name, device in (extra or {}).items():
        if _folded(device_name) == wanted:
            return device
    known = [*devices, *(f"{alias} (= {target})" for alias, target in aliases.items())]
    known += list(extra or {})
    raise HardwareError(f"unknown device {name!r} (known: {', '.join(known)})")


def parse_hardware_spec(spec: str, extra: Mapping[str, Device] | None = None) -> tuple[Device, str]:
    """``"T4"`` -> (T4, ``"fp32"``); ``"A100:fp16"`` -> (A100, ``"fp16"``)."""
    device_part, separator, dtype_part = spec.partition(":")
    try:
        if not device_part.strip():
            raise HardwareError("expected DEVICE or DEVICE:DTYPE, e.g. 'T4' or 'A100:fp16'")
        if separator and ":" in dtype_part:
            raise HardwareError("expected one ':' between device and dtype")
        if separator and not dtype_part.strip():
            raise HardwareError(f"no dtype after ':' (accepted: {', '.join(DTYPES)})")
        device = find(device_part.strip(), extra)
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


Bound = Literal["compute", "memory"]


@dataclass(frozen=True)
class Roofline:
    """The roofline time of a count on one device: a lower bound, never a latency.

    ``seconds`` prices every op at the slower of its arithmetic (``2 * macs / peak``) and its
    memory traffic (``bytes / bandwidth``), as if each op ran alone at the device's peaks with
    perfect overlap of compute and memory and nothing else (no launches, no caches, no
    fusion). ``compute_seconds`` and ``memory_seconds`` are the two sums on their own;
    ``seconds`` is at least the larger of them and at most their sum. ``bound`` says which kind
    of op, compute-bound or memory-bound, contributes more of ``seconds``.
    """

    seconds: float
    compute_seconds: float
    memory_seconds: float
    bound: Bound

    @property
    def label(self) -> str:
        """``"1.90 ms mem"`` / ``"12.3 ms compute"``: a table cell."""
        return f"{format_seconds(self.seconds)} {'mem' if self.bound == 'memory' else 'compute'}"


def roofline(op_costs: Iterable[OpCost], device: Device, dtype: str) -> Roofline:
    """Σ over ops of ``calls * max(2 * macs / peak, bytes / bandwidth)`` on ``device``.

    ``bytes`` are what the counted pass moved, in the dtypes it ran in: pricing an fp32 count at
    an fp16 peak keeps its fp32 bytes. No ops (nothing measured) is zero time, bound by
    compute; callers that may hold counts without ``op_costs`` check for that first and fall
    back to :func:`ideal_seconds`.
    """
    peak = device.peak(dtype)
    bandwidth = device.memory_bandwidth()
    compute_total = memory_total = 0.0
    compute_bound_part = memory_bound_part = 0.0
    for cost in op_costs:
        for what, value in (("macs", cost.macs), ("bytes", cost.bytes), ("calls", cost.calls)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise HardwareError(f"op cost {what} must be a non-negative integer, got {value!r}")
        compute = cost.calls * FLOPS_PER_FMA * cost.macs / peak
        memory = cost.calls * cost.bytes / bandwidth
        compute_total += compute
        memory_total += memory
        if memory > compute:
            memory_bound_part += memory
        else:
            compute_bound_part += compute
    return Roofline(
        seconds=compute_bound_part + memory_bound_part,
        compute_seconds=compute_total,
        memory_seconds=memory_total,
        bound="memory" if memory_bound_part > compute_bound_part else "compute",
    )


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
