"""Peak throughput per device, and the ideal (lower-bound) time of a count of MACs on it."""

from __future__ import annotations

import math
import pickle

import pytest

from pytest_flopbudget.budgets.hardware import (
    DTYPES,
    Device,
    HardwareError,
    find,
    format_seconds,
    ideal_seconds,
    load_devices,
    parse_hardware_spec,
)

DEVICES = ["H100_PCIe", "H100_SXM", "L4", "T4", "A10G", "A100", "RTX_3080", "RTX_3090"]
VENDOR_SOURCES = ("https://www.nvidia.com/", "https://resources.nvidia.com/")


def test_the_data_file_lists_its_devices() -> None:
    assert list(load_devices()) == DEVICES


@pytest.mark.parametrize("name", DEVICES)
def test_every_device_has_an_fp32_peak_a_bandwidth_and_a_source(name: str) -> None:
    device = load_devices()[name]
    assert device.name == name
    assert device.peaks["fp32"] > 0
    assert device.bandwidth is not None and 1e11 < device.bandwidth < 1e13
    assert set(device.peaks) <= set(DTYPES)
    assert all(math.isfinite(peak) and peak > 0 for peak in device.peaks.values())
    if name != "A10G":  # NVIDIA publishes no A10G datasheet (see the data file)
        assert device.source.startswith(VENDOR_SOURCES)


def test_the_figures_are_the_datasheets_dense_ones() -> None:
    t4, a100, pcie, sxm = find("T4"), find("A100"), find("H100_PCIe"), find("H100_SXM")
    assert (t4.peaks, t4.bandwidth) == ({"fp32": 8.1e12, "fp16": 65e12}, 320e9)
    assert (a100.peaks["fp32"], a100.peaks["fp16"], a100.peaks["bf16"]) == (19.5e12, 312e12, 312e12)
    assert a100.bandwidth == 1555e9
    assert (pcie.peaks["fp16"], pcie.bandwidth) == (1513e12 / 2, 2e12)  # "1,513*": sparse
    assert (sxm.peaks["fp16"], sxm.bandwidth) == (1979e12 / 2, 3.35e12)  # "1,979*": sparse
    assert find("L4").peaks["bf16"] == 242e12 / 2
    assert find("RTX 3090").peaks["fp16"] == 71e12  # FP32 accumulate, not FP16's 142


def test_the_t4_has_no_bf16() -> None:
    with pytest.raises(HardwareError, match=r"hardware spec 'T4:bf16': T4 has no bf16 peak"):
        parse_hardware_spec("T4:bf16")


def test_h100_still_names_the_pcie_card_it_always_listed() -> None:
    assert find("H100") == find("h100-pcie") == load_devices()["H100_PCIe"]
    assert find("H100 SXM").name == "H100_SXM"
    assert find("H100").peaks["fp32"] == 51e12


def test_each_caller_gets_devices_of_its_own() -> None:
    mine = load_devices()
    mine["T4"].peaks["fp32"] = 1.0
    assert load_devices()["T4"].peaks["fp32"] == 8.1e12
    assert find("T4").peaks["fp32"] == 8.1e12


@pytest.mark.parametrize(
    ("name", "expected"),
    [("t4", "T4"), ("rtx 3090", "RTX_3090"), ("RTX-3090", "RTX_3090"), (" a10g ", "A10G")],
)
def test_devices_are_found_ignoring_case_and_separators(name: str, expected: str) -> None:
    assert find(name).name == expected


def test_an_unknown_device_is_refused_with_the_known_names() -> None:
    with pytest.raises(
        HardwareError,
        match=r"unknown device 'V100' \(known: H100_PCIe, H100_SXM, L4, .*, H100 \(= H100_PCIe\)\)",
    ):
        find("V100")


def test_ideal_seconds_counts_two_flops_per_mac() -> None:
    t4 = find("T4")
    assert ideal_seconds(4_100_000_000, t4, "fp32") == pytest.approx(2 * 4.1e9 / 8.1e12)
    assert ideal_seconds(4_100_000_000, t4, "fp16") == pytest.approx(2 * 4.1e9 / 65e12)
    assert ideal_seconds(4_100_000_000, t4) == ideal_seconds(4_100_000_000, t4, "fp32")
    assert ideal_seconds(0, t4) == 0.0


def test_ideal_seconds_accepts_torch_dtype_names() -> None:
    a100 = find("A100")
    assert ideal_seconds(10**9, a100, "bfloat16") == pytest.approx(2e9 / 312e12)
    assert ideal_seconds(10**9, a100, "torch.float16") == pytest.approx(2e9 / 312e12)


@pytest.mark.parametrize("macs", [-1, 1.5, True])
def test_ideal_seconds_refuses_anything_but_a_count(macs: object) -> None:
    with pytest.raises(HardwareError, match="macs must be a non-negative integer"):
        ideal_seconds(macs, find("T4"))  # type: ignore[arg-type]


def test_a_device_without_a_dtype_says_which_it_has() -> None:
    device = Device(name="Toy", peaks={"fp32": 1e12}, source="made up")
    with pytest.raises(HardwareError, match=r"Toy has no bf16 peak listed \(listed: fp32\)"):
        ideal_seconds(1, device, "bf16")


def test_devices_survive_pickling_and_hash() -> None:
    t4 = find("T4")
    assert pickle.loads(pickle.dumps(t4)) == t4
    assert hash(t4) == hash(find("t4"))


@pytest.mark.parametrize(
    ("spec", "device", "dtype"),
    [
        ("T4", "T4", "fp32"),
        ("A100:fp16", "A100", "fp16"),
        ("a100:bf16", "A100", "bf16"),
        ("H100:float16", "H100_PCIe", "fp16"),
        ("H100_SXM:bf16", "H100_SXM", "bf16"),
        ("L4:bfloat16", "L4", "bf16"),
        ("RTX 3090:float32", "RTX_3090", "fp32"),
        (" T4 : FP16 ", "T4", "fp16"),
    ],
)
def test_hardware_specs_name_a_device_and_optionally_a_dtype(
    spec: str, device: str, dtype: str
) -> None:
    found, found_dtype = parse_hardware_spec(spec)
    assert (found.name, found_dtype) == (device, dtype)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "expected DEVICE or DEVICE:DTYPE"),
        (":fp16", "expected DEVICE or DEVICE:DTYPE"),
        ("V100", "unknown device 'V100' (known: H100_PCIe"),
        ("T4:bf16", "T4 has no bf16 peak listed (listed: fp32, fp16)"),
        ("A100:fp8", "unknown dtype 'fp8' (accepted: fp32, fp16, bf16"),
        ("A100:", "no dtype after ':'"),
        ("A100:fp16:x", "expected one ':' between device and dtype"),
    ],
)
def test_unusable_hardware_specs_are_refused_naming_the_spec(spec: str, message: str) -> None:
    with pytest.raises(HardwareError) as raised:
        parse_hardware_spec(spec)
    assert str(raised.value).startswith(f"hardware spec {spec!r}: ")
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.2, "1.20 s"),
        (0.0123, "12.3 ms"),
        (4.1e-6, "4.10 us"),
        (0.1, "100 ms"),
        (0.9996, "1.00 s"),
        (5e-10, "0.500 ns"),
        (0.0, "0 s"),
        (2 * 4.1e9 / 8.1e12, "1.01 ms"),
    ],
)
def test_seconds_print_with_three_significant_figures(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan])
def test_seconds_that_are_not_a_duration_are_refused(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_seconds(seconds)
