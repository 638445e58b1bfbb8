"""The roofline: each op at the slower of its arithmetic and its memory traffic, by hand."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from pytest_flopbudget.budgets.config import Settings
from pytest_flopbudget.budgets.hardware import (
    Device,
    HardwareError,
    Roofline,
    find,
    format_seconds,
    roofline,
)
from pytest_flopbudget.budgets.verdict import Verdict, judge
from pytest_flopbudget.counting.count import Count, OpCost
from pytest_flopbudget.reports import rows

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


def _count(name: str, costs: tuple[OpCost, ...], *, measured: bool = True) -> Count:
    macs = sum(cost.macs * cost.calls for cost in costs)
    moved = sum(cost.bytes * cost.calls for cost in costs)
    return Count(
        name=name,
        flops=macs,
        macs=macs,
        params=4096 * 4096,
        flops_per_mac=1,
        backend="torch",
        bytes_moved=moved if measured else None,
        op_costs=costs if measured else (),
    )


A100_SETTINGS = Settings(hardware=("A100:fp16",))


def test_the_hardware_column_shows_the_roofline_labelled_by_its_bound() -> None:
    (decode,) = judge("t.py::test_decode", [_count("decode", (MATVEC,))], [], A100_SETTINGS)
    (prefill,) = judge("t.py::test_prefill", [_count("prefill", (MATMUL,))], [], A100_SETTINGS)
    assert rows.cells(decode, A100_SETTINGS)["A100 fp16 >="] == "21.6 us mem"
    assert rows.cells(prefill, A100_SETTINGS)["A100 fp16 >="] == "441 us compute"


def test_counts_of_one_name_add_their_op_costs() -> None:
    counts = [_count("step", (MATVEC,)), _count("step", (MATVEC, MATMUL))]
    (verdict,) = judge("t.py::test_steps", counts, [], A100_SETTINGS)
    assert verdict.op_costs is not None
    assert sorted(verdict.op_costs, key=lambda cost: cost.macs) == [
        OpCost(MATVEC_MACS, MATVEC_BYTES, calls=2),
        MATMUL,
    ]
    # 2 matvecs at 21.6 us (memory) + the matmul at 440 us (compute)
    expected = 2 * MATVEC_BYTES / A100_BANDWIDTH + 2 * MATMUL_MACS / A100_FP16
    assert (
        rows.cells(verdict, A100_SETTINGS)["A100 fp16 >="] == format_seconds(expected) + " compute"
    )


def test_a_count_without_bytes_falls_back_to_the_compute_only_time_and_says_so() -> None:
    counts = [_count("step", (MATVEC,)), _count("step", (MATVEC,), measured=False)]
    (verdict,) = judge("t.py::test_steps", counts, [], A100_SETTINGS)
    assert verdict.op_costs is None  # one unmeasured count makes the whole subject unmeasured
    compute_only = 2 * 2 * MATVEC_MACS / A100_FP16  # 0.215 us
    assert rows.cells(verdict, A100_SETTINGS)["A100 fp16 >="] == "215 ns MACs only"
    assert format_seconds(compute_only) == "215 ns"


def test_op_costs_that_miss_macs_never_lower_the_bound_below_compute() -> None:
    short = replace(_count("model", (MATVEC,)), macs=MATMUL_MACS, flops=MATMUL_MACS)
    (verdict,) = judge("t.py::test_model", [short], [], A100_SETTINGS)
    assert rows.cells(verdict, A100_SETTINGS)["A100 fp16 >="] == "441 us compute"


def test_op_costs_survive_the_trip_between_processes() -> None:
    (verdict,) = judge("t.py::test_decode", [_count("decode", (MATVEC,))], [], A100_SETTINGS)
    again = Verdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again == verdict
    assert again.op_costs == (MATVEC,)
    old = verdict.to_dict()
    del old["op_costs"]  # a record written before op costs existed
    assert Verdict.from_dict(old).op_costs is None


def test_the_legend_says_the_column_is_a_lower_bound() -> None:
    legend = rows.hardware_legend(A100_SETTINGS)
    assert legend is not None
    assert legend.startswith("A100 fp16 >=: lower bound on time")
    assert "MACs only: no bytes measured" in legend
    assert rows.hardware_legend(Settings()) is None


DECODE_AND_PREFILL = """
import torch

def test_decode(flops):
    with flops.abstract():
        projection = torch.nn.Linear(4096, 4096, bias=False, dtype=torch.float16)
        token = torch.empty(1, 4096, dtype=torch.float16)
    flops(projection, token, name="decode")

def test_prefill(flops):
    with flops.abstract():
        projection = torch.nn.Linear(4096, 4096, bias=False, dtype=torch.float16)
        prompt = torch.empty(4096, 4096, dtype=torch.float16)
    flops(projection, prompt, name="prefill")
"""


def test_the_table_labels_decode_memory_bound_and_prefill_compute_bound(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_llm=DECODE_AND_PREFILL)
    result = pytester.runpytest("--flop-budget-hardware=A100:fp16", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    # decode: 33,570,816 bytes / 1555e9 B/s = 21.6 us (its 16.8M MACs would take 0.108 us)
    # prefill: 2 * 4096^3 / 312e12 = 440 us (its 100.7 MB would take 64.7 us)
    result.stdout.fnmatch_lines(
        [
            "*A100 fp16 >=*status",
            "*test_decode *decode *16.8 MMACs*21.6 us mem  no budget",
            "*test_prefill *prefill *68.7 GMACs*441 us compute  no budget",
            "A100 fp16 >=: lower bound on time*",
        ]
    )
