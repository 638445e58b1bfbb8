"""Memory budgets: ``mib=``/``gib=`` and ``"16 GiB"`` on the peak memory of the counted pass.

The seed article's FFN (4 -> 1024 -> 1024 -> 2, fp32) counted on a (1, 4) input, by hand:

    parameters        1,056,770 x 4 bytes                    = 4,227,080
    live at the peak  the input (4 floats) + two 1024-float activations
                      (fc2 reads relu(fc1(x)) while writing its output)
                      16 + 4,096 + 4,096                     =     8,208
    peak                                                      = 4,235,288  (4.04 MiB)

held by module at the peak: fc2 its weights and bias 1,049,600 x 4 = 4,198,400; fc1 its
parameters 5,120 x 4 = 20,480 and its output 4,096, 24,576; fc3 its parameters 2,050 x 4 = 8,200.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import FFN_MACS, FFN_PARAMS
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_flopbudget.budgets.budget import BudgetError, budget_from_entry, budget_from_marker
from pytest_flopbudget.budgets.config import Settings
from pytest_flopbudget.budgets.resources import format_bytes, written_bytes
from pytest_flopbudget.budgets.units import UnitError, parse_quantities
from pytest_flopbudget.budgets.verdict import ERROR, OK, OVER, judge
from pytest_flopbudget.counting.count import Count

PARAM_BYTES = FFN_PARAMS * 4
PEAK = PARAM_BYTES + 4 * 4 + 2 * 1024 * 4
MIB = 2**20
GIB = 2**30
FC2_HELD = (1024 * 1024 + 1024) * 4
FC1_HELD = (4 * 1024 + 1024) * 4 + 1024 * 4
FC3_HELD = (1024 * 2 + 2) * 4

TEST_FFN = """
import pytest
import torch
from models import FFN

{marker}
def test_ffn(flops):
    flops(FFN(), torch.randn(1, 4))
"""


def _ffn_count(**changes: object) -> Count:
    count = Count(
        name="FFN",
        flops=FFN_MACS,
        macs=FFN_MACS,
        params=FFN_PARAMS,
        flops_per_mac=1,
        backend="fvcore",
        peak_memory=PEAK,
        peak_by_module={"fc1": FC1_HELD, "fc2": FC2_HELD, "fc3": FC3_HELD},
    )
    return replace(count, **changes)  # type: ignore[arg-type]


def test_the_hand_arithmetic_is_the_ffns_parameter_bytes_plus_two_activations() -> None:
    assert PARAM_BYTES == 4_227_080
    assert PEAK == 4_235_288
    assert format_bytes(PEAK) == "4.04 MiB"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16 GiB", 16 * GIB),
        ("512 MiB", 512 * MIB),
        ("1.5 KiB", 1536),
        ("2 TiB", 2 * 2**40),
        ("16 GB", 16 * 10**9),  # decimal, exactly as written, never read as GiB
        ("500 MB", 500 * 10**6),
        ("4096 bytes", 4096),
        ("4096 B", 4096),
    ],
)
def test_memory_strings_mean_exactly_their_binary_or_decimal_bytes(
    text: str, expected: int
) -> None:
    (quantity,) = parse_quantities(text)
    assert quantity.unit.kind == "memory"
    assert quantity.base_value == expected


def test_marker_and_inline_keys_are_binary_units() -> None:
    budget = budget_from_marker((), {"gib": 16, "gflops": 4.1}, "here")
    assert budget is not None and budget.memory is not None and budget.compute is not None
    assert budget.memory.base_value == 16 * GIB
    entry = budget_from_entry("FFN", {"mib": 512}, "there", is_nodeid=False)
    assert entry.memory is not None and entry.memory.base_value == 512 * MIB


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gib": -1}, "here: gib must be a positive number, got -1"),
        ({"gib": 0}, "here: gib must be a positive number, got 0"),
        ({"gib": "16"}, "here: gib must be a number, got '16'"),
        ({"gib": 1, "mib": 2}, "here: give at most one memory unit"),
    ],
)
def test_bad_memory_values_in_a_marker_are_refused_naming_the_place(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(BudgetError, match="^" + message.replace("(", r"\(")):
        budget_from_marker((), kwargs, "here")


def test_an_unreadable_memory_string_names_what_is_accepted() -> None:
    with pytest.raises(UnitError, match=r"cannot read '16 gigs'.*'16 GiB'"):
        parse_quantities("16 gigs")


@settings(max_examples=300, deadline=None)
@given(count=st.integers(min_value=1, max_value=2**60))
def test_a_written_memory_budget_reads_back_to_at_least_the_count(count: int) -> None:
    text = written_bytes(count)
    (quantity,) = parse_quantities(text)
    assert quantity.base_value >= count
    # rounded up to four significant figures: at most one unit in the fourth above
    assert Fraction(quantity.base_value) <= Fraction(count) * Fraction(1001, 1000) + 1


@settings(max_examples=100, deadline=None)
@given(
    count=st.integers(min_value=1, max_value=2**50),
    unit=st.sampled_from(["KiB", "MiB", "GiB", "TiB", "GB", "MB", "B"]),
)
def test_a_written_memory_budget_keeps_its_unit_and_reads_back_to_at_least_the_count(
    count: int, unit: str
) -> None:
    (old,) = parse_quantities(f"1 {unit}")
    text = written_bytes(count, old.unit.prefix)
    (quantity,) = parse_quantities(text)
    assert text.endswith(f" {unit}")
    assert quantity.base_value >= count


def test_a_memory_budget_on_a_count_without_peak_memory_is_an_error_not_a_pass() -> None:
    budget = budget_from_marker((), {"gib": 16}, "t.py::test_x: @pytest.mark.flop_budget")
    assert budget is not None
    (verdict,) = judge("t.py::test_x", [_ffn_count(peak_memory=None)], [budget], Settings())
    assert verdict.status == ERROR
    assert verdict.message.startswith(
        "t.py::test_x: @pytest.mark.flop_budget: memory budget 16 GiB for 'FFN', but its "
        "count has no peak memory"
    )


def test_a_missing_peak_is_not_hidden_by_unknown_ops_nor_hides_a_compute_excess() -> None:
    budget = budget_from_marker((), {"mflops": 1, "gib": 16}, "here")
    assert budget is not None
    count = _ffn_count(peak_memory=None, unknown_ops={"mylib::op": 1})
    (verdict,) = judge("t.py::test_x", [count], [budget], Settings(), unknown_ops="fail")
    assert verdict.status == ERROR
    lines = verdict.message.splitlines()
    assert lines[0].startswith("here: memory budget 16 GiB for 'FFN', but its count has no")
    assert lines[1] == "FFN: 1.05 MFLOPs exceeds budget 1 MFLOPs (+5.5%)"


def test_a_budget_combining_compute_memory_checks_and_shows_each() -> None:
    budget = budget_from_marker((), {"mflops": 2, "mib": 4}, "here")
    assert budget is not None
    (verdict,) = judge("t.py::test_x", [_ffn_count()], [budget], Settings())
    assert verdict.status == OVER
    assert verdict.budget_label == "2 MFLOPs, 4 MiB"
    lines = verdict.message.splitlines()
    # 4,235,288 / 4,194,304 = 1.00977
    assert lines[0] == "FFN: 4.04 MiB peak memory exceeds budget 4 MiB (+1.0%)"
    assert lines[1:5] == [
        "peak memory held by:",
        f"  fc2  {'4.00 MiB':>12}   99.1%",
        f"  fc1  {'24.0 KiB':>12}    0.6%",
        f"  fc3  {'8.01 KiB':>12}    0.2%",
    ]
    budget = budget_from_marker((), {"mflops": 2, "mib": 4.1}, "here")
    assert budget is not None
    (verdict,) = judge("t.py::test_x", [_ffn_count()], [budget], Settings())
    assert verdict.status == OK
    assert verdict.used == FFN_MACS / 2e6  # the first budget written is the one "used" shows


def test_counts_under_one_name_have_the_highest_peak_of_their_passes() -> None:
    budget = budget_from_marker((), {"mib": 5}, "here")
    assert budget is not None
    counts = [_ffn_count(), _ffn_count(peak_memory=5 * MIB + 1)]
    (verdict,) = judge("t.py::test_x", counts, [budget], Settings())
    assert (verdict.status, verdict.peak_memory) == (OVER, 5 * MIB + 1)


def test_a_memory_budget_passes_and_fails_on_a_real_model(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker="@pytest.mark.flop_budget(mib=4.1)"))
    passed = project.runpytest(*plugin_args)
    passed.assert_outcomes(passed=1)
    passed.stdout.fnmatch_lines(["*test_ffn*FFN*4.04 MiB*4.1 MiB*98.5%*ok"])

    project.makepyfile(test_ffn=TEST_FFN.format(marker="@pytest.mark.flop_budget(mib=4)"))
    failed = project.runpytest(*plugin_args)
    failed.assert_outcomes(failed=1)
    failed.stdout.fnmatch_lines(
        [
            "*FFN: 4.04 MiB peak memory exceeds budget 4 MiB (+1.0%)",
            "peak memory held by:",
            "  fc2      4.00 MiB   99.1%",
            "  fc1      24.0 KiB    0.6%",
            "  fc3      8.01 KiB    0.2%",
        ]
    )
    failed.stdout.fnmatch_lines(["*test_ffn*FFN*4.04 MiB*4 MiB*over"])


def test_a_memory_budget_in_warn_mode_reports_and_passes(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    project.makefile(
        ".toml",
        pyproject='[tool.flopbudget]\non_exceed = "warn"\n\n[tool.flopbudget.budgets]\n'
        'FFN = "4 MiB"\n',
    )
    result = project.runpytest(*plugin_args)
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*FlopBudgetWarning: FFN: 4.04 MiB peak memory exceeds*"])
    result.stdout.fnmatch_lines(["*FFN*4.04 MiB*4 MiB*over (warn)"])


def test_the_update_writes_a_gib_string_that_reads_back_and_holds(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    pyproject = project.makefile(
        ".toml",
        pyproject="[tool.flopbudget.budgets]\n"
        '"test_ffn.py::test_ffn" = "1 MFLOPs, 1 GiB"  # keep this comment\n',
    )
    project.runpytest(*plugin_args).assert_outcomes(failed=1)  # 1.05 MFLOPs > 1 MFLOPs
    project.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=1)
    text = pyproject.read_text()
    # 1,054,720 MACs -> 1.055 MFLOPs; 4,235,288 / 2^30 = 0.0039444... -> 0.003945 GiB (kept unit)
    assert '"test_ffn.py::test_ffn" = "1.055 MFLOPs, 0.003945 GiB"  # keep this comment' in text
    (memory,) = parse_quantities("0.003945 GiB")
    assert memory.base_value >= PEAK
    project.runpytest(*plugin_args).assert_outcomes(passed=1)


def test_the_update_rewrites_an_inline_memory_key_in_its_own_unit(project: pytest.Pytester) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    pyproject = project.makefile(
        ".toml", pyproject="[tool.flopbudget.budgets]\nFFN = { mib = 1, tolerance = 0.01 }\n"
    )
    project.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    # 4,235,288 / 2^20 = 4.03908... -> 4.040 MiB, written as 4.04
    assert "FFN = { mib = 4.04, tolerance = 0.01 }" in pyproject.read_text()
    assert 4.04 * MIB >= PEAK
    project.runpytest().assert_outcomes(passed=1)


BUFFERED = """
import pytest
import torch
from models import FFN

class Buffered(FFN):
    def __init__(self):
        super().__init__()
        self.register_buffer("cache", torch.zeros({floats}))

@pytest.mark.flop_budget(kmacs=2000)
def test_ffn(flops):
    flops(Buffered(), torch.randn(1, 4), name="FFN")
"""


def test_a_peak_that_grew_since_the_baseline_is_a_regression(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makefile(".toml", pyproject='[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    project.makepyfile(test_ffn=BUFFERED.format(floats=1))
    project.runpytest(*plugin_args, "--flop-budget-update").assert_outcomes(passed=1)
    entry = json.loads((project.path / "flopbudget.json").read_text())["tests"][
        "test_ffn.py::test_ffn"
    ]["FFN"]
    assert (entry["macs"], entry["peak_memory"]) == (FFN_MACS, PEAK + 4)
    project.runpytest(*plugin_args).assert_outcomes(passed=1)

    # a 1 MiB buffer: the same MACs and params, 1,048,576 more bytes live
    project.makepyfile(test_ffn=BUFFERED.format(floats=MIB // 4))
    grown = project.runpytest(*plugin_args)
    grown.assert_outcomes(failed=1)
    after = PEAK + MIB
    grown.stdout.fnmatch_lines(
        [
            "*FFN: 5.04 MiB peak memory, up from 4.04 MiB in the baseline "
            f"({after / (PEAK + 4) - 1:+.1%})"
        ]
    )
    grown.stdout.fnmatch_lines(["*test_ffn*FFN*5.04 MiB*regression"])
    assert "up from 1.05 MMACs" not in grown.stdout.str()  # the MACs did not grow


def test_json_markdown_and_junit_carry_the_peak_and_its_budget(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker="@pytest.mark.flop_budget(gib=1)"))
    result = project.runpytest(
        *plugin_args,
        "--flop-budget-json=report.json",
        "--flop-budget-markdown=summary.md",
        "--junitxml=junit.xml",
    )
    result.assert_outcomes(passed=1)
    (row,) = json.loads((project.path / "report.json").read_text())["results"]
    assert (row["peak_memory"], row["budget_memory"]) == (PEAK, GIB)
    assert row["peak_by_module"] == {"fc1": FC1_HELD, "fc2": FC2_HELD, "fc3": FC3_HELD}
    markdown = (project.path / "summary.md").read_text()
    assert "| test | name | FLOPs | MACs | params | memory | budget | used |" in markdown
    assert "| 4.04 MiB | 1 GiB |" in markdown
    properties = {
        prop.get("name"): prop.get("value")
        for prop in ET.parse(project.path / "junit.xml").iter("property")
    }
    assert properties["flopbudget[FFN].peak_memory"] == str(PEAK)
    assert properties["flopbudget[FFN].budget_memory"] == str(GIB)


def _report_row(peak: int | None) -> dict[str, object]:
    return {
        "nodeid": "t.py::test_ffn",
        "name": "FFN",
        "flops": FFN_MACS,
        "macs": FFN_MACS,
        "params": FFN_PARAMS,
        "peak_memory": peak,
        "by_module": {"fc2": 1_048_576},
    }


def _report(path: Path, peak: int | None) -> Path:
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "convention": {"flops_per_mac": 1, "description": "test"},
                "results": [_report_row(peak)],
            }
        )
    )
    return path


def test_compare_shows_a_peak_that_grew_and_fails_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_flopbudget.cli import main

    old = _report(tmp_path / "old.json", PEAK)
    new = _report(tmp_path / "new.json", PEAK + MIB)
    assert main(["compare", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert "peak memory old -> new" in out
    # (4,235,288 + 1,048,576) / 4,235,288 - 1 = 24.76%
    assert "4.04 MiB -> 5.04 MiB (+24.8%)" in out
    assert "REGRESSED" in out
    assert main(["compare", str(old), str(new), "--json"]) == 1
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert model["peak_memory"] == {
        "old": PEAK,
        "new": PEAK + MIB,
        "delta": MIB,
        "relative": MIB / PEAK,
    }


def test_compare_of_reports_without_peaks_keeps_its_columns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_flopbudget.cli import main

    old = _report(tmp_path / "old.json", None)
    new = _report(tmp_path / "new.json", PEAK)  # measured on one side only: not compared
    assert main(["compare", str(old), str(new)]) == 0
    assert "1 model compared: 1 unchanged" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('FFN = "16 gigs"', "[tool.flopbudget.budgets] 'FFN': cannot read '16 gigs'"),
        ('FFN = "-1 GiB"', "[tool.flopbudget.budgets] 'FFN': '-1 GiB' must be a positive number"),
        ("FFN = { gib = -2 }", "[tool.flopbudget.budgets] 'FFN': gib must be a positive number"),
        ('FFN = "1 GiB, 2 MiB"', "[tool.flopbudget.budgets] 'FFN': give at most one memory unit"),
    ],
)
def test_bad_memory_budgets_in_pyproject_are_usage_errors_naming_the_key(
    project: pytest.Pytester, entry: str, message: str
) -> None:
    project.makepyfile(test_ffn=TEST_FFN.format(marker=""))
    project.makefile(".toml", pyproject=f"[tool.flopbudget.budgets]\n{entry}\n")
    result = project.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"pyproject.toml: {message}" in result.stderr.str()


def test_the_html_report_shows_the_peak_and_the_time(project: pytest.Pytester) -> None:
    import re

    marker = '@pytest.mark.flop_budget(mib=5, us=3, device="A100:fp16")'
    project.makepyfile(test_ffn=TEST_FFN.format(marker=marker))
    project.runpytest("--flop-budget-html=report.html").assert_outcomes(passed=1)
    page = (project.path / "report.html").read_text(encoding="utf-8")
    match = re.search(r'id="flopbudget-data">(.*?)</script>', page, re.S)
    assert match is not None
    (model,) = json.loads(match.group(1))["models"]
    assert model["peak_memory"] == PEAK
    assert model["cells"]["memory"] == "4.04 MiB"
    # 4,259,872 bytes moved at 1,555 GB/s (see test_time_budgets.py)
    assert model["cells"]["time"] == "2.74 us, memory-bound"
    assert model["cells"]["budget"] == "5 MiB, 3 us on A100:fp16"
