"""The roofline: each op at the slower of its arithmetic and its memory traffic, by hand."""

from __future__ import annotations

import pytest

from pytest_flopbudget.budgets.hardware import (
    Device,
    HardwareError,
    Roofline,
    find,
    roofline,
)
from pytest_flopbudget.counting.count import OpCost

A100_FP16 = 312e12  # FLOP/s, dense Tensor Core (A100 datasheet)
A100_BANDWIDTH = 1555e9  # bytes/s, A100 PCIe 40 GB

# One decode step's projection: a 4096x4096 fp16 weight times one fp16 vector.
MATVEC_MACS = 4096 * 4096  # 16,777,216
MATVEC_BYTES = 4096 * 4096 * 2 + 4096 * 2 + 4096 * 2  # weight + vector in + vector out
MATVEC = OpCost(macs=MATVEC_MACS, bytes=MATVEC_BYTES)

# A 4096^3 fp16 matmul: two 4096x4096 inputs read, one written.
MATMUL_MACS = 4096**3  # 68,719,476,736
MATMUL_BYTES = 3 * 4096 * 4096 * 2  # 100,663,296
MATMUL = OpCost(macs=MATMUL_MACS, bytes=MATMUL_BYTES)


def test_hand_figures_are_what_the_arithmetic_says() -> None:
    assert MATVEC_BYTES == 33_570_816  # ~33.5 MB, almost all weight
    assert MATMUL_MACS == 68_719_476_736


def test_a_decode_shaped_matrix_vector_product_is_memory_bound_on_an_a100() -> None:
    result = roofline([MATVEC], find("A100"), "fp16")
    compute = 2 * 16_777_216 / 312e12  # 0.108 us
    memory = 33_570_816 / 1555e9  # 21.6 us
    assert result == Roofline(
        seconds=pytest.approx(memory),  # type: ignore[arg-type]
        compute_seconds=pytest.approx(compute),  # type: ignore[arg-type]
        memory_seconds=pytest.approx(memory),  # type: ignore[arg-type]
        bound="memory",
    )
    assert result.label == "21.6 us mem"
    assert result.seconds / result.compute_seconds > 200  # the compute-only time is far off


def test_a_large_matmul_is_compute_bound_on_an_a100() -> None:
    result = roofline([MATMUL], find("A100"), "fp16")
    compute = 2 * 68_719_476_736 / 312e12  # 440 us
    memory = 100_663_296 / 1555e9  # 64.7 us
    assert result.seconds == pytest.approx(compute)
    assert result.compute_seconds == pytest.approx(compute)
    assert result.memory_seconds == pytest.approx(memory)
    assert result.bound == "compute"
    assert result.label == "441 us compute"


def test_each_op_takes_the_slower_of_its_two_times_and_calls_multiply() -> None:
    result = roofline([MATMUL, OpCost(MATVEC_MACS, MATVEC_BYTES, calls=32)], find("A100"), "fp16")
    matmul = 2 * MATMUL_MACS / A100_FP16
    matvecs = 32 * MATVEC_BYTES / A100_BANDWIDTH  # 691 us of weight reads
    assert result.seconds == pytest.approx(matmul + matvecs)
    assert result.compute_seconds == pytest.approx(2 * (MATMUL_MACS + 32 * MATVEC_MACS) / A100_FP16)
    assert result.memory_seconds == pytest.approx(
        (MATMUL_BYTES + 32 * MATVEC_BYTES) / A100_BANDWIDTH
    )
    assert result.bound == "memory"  # 691 us of memory-bound ops outweigh 440 us of compute
    assert max(result.compute_seconds, result.memory_seconds) <= result.seconds
    assert result.seconds <= result.compute_seconds + result.memory_seconds


def test_the_dtype_picks_the_peak_but_not_the_bytes() -> None:
    fp32 = roofline([MATMUL], find("A100"), "float32")
    assert fp32.compute_seconds == pytest.approx(2 * MATMUL_MACS / 19.5e12)
    assert fp32.memory_seconds == pytest.approx(MATMUL_BYTES / A100_BANDWIDTH)


def test_no_ops_is_no_time() -> None:
    assert roofline([], find("T4"), "fp32") == Roofline(0.0, 0.0, 0.0, "compute")


def test_a_t4_has_no_bf16_to_price_at() -> None:
    with pytest.raises(HardwareError, match=r"T4 has no bf16 peak listed \(listed: fp32, fp16\)"):
        roofline([MATVEC], find("T4"), "bf16")


def test_a_device_without_bandwidth_says_so() -> None:
    device = Device(name="Toy", peaks={"fp32": 1e12}, source="made up")
    with pytest.raises(HardwareError, match="Toy has no memory bandwidth listed"):
        roofline([MATVEC], device, "fp32")


@pytest.mark.parametrize("cost", [OpCost(-1, 0), OpCost(0, -5), OpCost(1, 1, calls=-1)])
def test_negative_op_costs_are_refused(cost: OpCost) -> None:
    with pytest.raises(HardwareError, match="must be a non-negative integer"):
        roofline([cost], find("A100"), "fp16")


def test_the_roofline_is_frozen() -> None:
    result = roofline([MATVEC], find("A100"), "fp16")
    with pytest.raises(AttributeError):
        result.seconds = 0.0  # type: ignore[misc]
