"""Time budgets: a count's roofline lower bound on a named device (``ms=2.0, device="A100:fp16"``).

The time of a count is what :func:`.hardware.roofline` says: the sum over its ops of
max(FLOPs / peak, bytes / bandwidth). It is a lower bound, never a latency: a model over a time
budget cannot meet it on that device, whatever its kernels; a model under it may still be slow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..counting.count import Count, OpCost
from .hardware import Device, HardwareError, format_seconds, parse_hardware_spec, roofline


@dataclass(frozen=True)
class Timing:
    """A subject's lower bound on one device, and what bounds it."""

    seconds: float
    bound: str  # "compute" or "memory"
    device: str  # the spec as written, "A100:fp16"

    def describe(self) -> str:
        """``1.90 ms on A100:fp16, memory-bound (lower bound)``."""
        return f"{format_seconds(self.seconds)} on {self.device}, {self.bound}-bound (lower bound)"


def check_device(spec: str, devices: Mapping[str, Device] | None = None) -> None:
    """The device parses, has a peak in its dtype and a memory bandwidth: a roofline applies.

    ``devices``: those plugins contributed (``pytest_flopbudget_hardware``)."""
    device, _ = parse_hardware_spec(spec.strip(), devices)
    device.memory_bandwidth()  # a device without a bandwidth cannot price bytes


def unmeasured(counts: Sequence[Count]) -> list[str]:
    """Names of counts that carry no per-op bytes, whose time therefore cannot be known."""
    return sorted(
        {count.name for count in counts if count.bytes_moved is None or _missing_ops(count)}
    )


def _missing_ops(count: Count) -> bool:
    return not count.op_costs and bool(count.macs or count.bytes_moved)


def lower_bound(
    op_costs: Sequence[OpCost], spec: str, devices: Mapping[str, Device] | None = None
) -> Timing:
    """The roofline of ``op_costs`` on the device ``spec`` names."""
    device, dtype = parse_hardware_spec(spec, devices)
    result = roofline(tuple(op_costs), device, dtype)
    bound = str(result.bound)
    if bound not in ("compute", "memory"):
        raise HardwareError(f"roofline on {spec}: unexpected bound {bound!r}")
    return Timing(seconds=float(result.seconds), bound=bound, device=spec)
