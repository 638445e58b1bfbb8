"""Bad input of every kind is a clear error naming its place, never a crash of the plugin.

Each case here once ended in an INTERNALERROR or a traceback through the plugin's modules.
``test_fuzz.py`` searches for more of them; these pin the ones found.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from pytest_flopbudget.cli import main

HUGE = "1" + "0" * 400  # a TOML integer no float can hold
PLUGIN_FRAME = re.compile(r"pytest_flopbudget[\\/][\w\\/]+\.py(:\d+|\", line)")

COUNTING_TEST = """
import pytest
import torch


def test_counts(flops):
    flops(torch.nn.Linear(4, 4), torch.randn(1, 4))
"""


def assert_no_crash(result: pytest.RunResult) -> str:
    """No INTERNALERROR, no traceback through the plugin; returns the whole output."""
    output = "\n".join(result.outlines + result.errlines)
    assert "INTERNALERROR" not in output
    assert result.ret != pytest.ExitCode.INTERNAL_ERROR
    assert not PLUGIN_FRAME.search(output), output
    assert "Traceback (most recent call last)" not in output
    return output


def strict_json(path: Path) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"{name} in {path}: not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def usage_error(pytester: pytest.Pytester, *args: str) -> str:
    pytester.makepyfile(test_target=COUNTING_TEST)
    result = run(pytester, *args)
    output = assert_no_crash(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    return output


# pytest reads pyproject.toml itself unless `-c` names its configuration file, and it is pytest,
# not the plugin, that fails on a pyproject it cannot decode (pytest 9.2): the plugin's reading
# is tested with `-c`.
def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makefile(".ini", pytest="[pytest]\n")
    return pytester.runpytest("-c", "pytest.ini", *args)


def pyproject(pytester: pytest.Pytester, content: str | bytes) -> None:
    path = pytester.path / "pyproject.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "place"),
    [
        (f"[tool.flopbudget]\ntolerance = {HUGE}\n", "[tool.flopbudget] tolerance"),
        (f"[tool.flopbudget]\nregression_tolerance = {HUGE}\n", "regression_tolerance"),
        (f"[tool.flopbudget]\ntighten_threshold = {HUGE}\n", "tighten_threshold"),
        (f"[tool.flopbudget]\nflops_per_mac = {HUGE}\n", "flops_per_mac"),
        (f"[tool.flopbudget.budgets]\nFFN = {{ gflops = {HUGE} }}\n", "'FFN': gflops"),
        (f"[tool.flopbudget.budgets]\nFFN = {{ params = -{HUGE} }}\n", "'FFN': params"),
        (f"[tool.flopbudget.budgets]\nFFN = {{ gflops = 1, tolerance = {HUGE} }}\n", "'FFN'"),
        ('[tool.flopbudget.budgets]\nFFN = "1e400 GFLOPs"\n', "'FFN'"),
    ],
)
def test_a_toml_integer_too_large_for_a_float_is_a_usage_error_naming_the_key(
    pytester: pytest.Pytester, content: str, place: str
) -> None:
    pyproject(pytester, content)
    output = usage_error(pytester)
    assert f"pyproject.toml: {place}" in output or place in output
    assert "pyproject.toml" in output


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[tool.flopbudget]\ntolerance = 101\n", "tolerance must be at most 100"),
        ("[tool.flopbudget]\ntolerance = nan\n", "tolerance must be a number"),
        ("[tool.flopbudget]\nregression_tolerance = inf\n", "regression_tolerance: must be"),
        ('[tool.flopbudget.budgets]\nFFN = "2e21 GFLOPs"\n', "must be at most 1e30 FLOPs"),
        ("[tool.flopbudget.budgets]\nFFN = { macs = 0.5 }\n", "must be at least one MAC"),
    ],
)
def test_numbers_outside_the_documented_range_are_refused(
    pytester: pytest.Pytester, content: str, problem: str
) -> None:
    pyproject(pytester, content)
    assert problem in usage_error(pytester)


def test_a_pyproject_that_is_not_utf8_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pyproject(pytester, b"[tool.flopbudget]\ntolerance = 0.1\n# caf\xe9\n")
    assert "pyproject.toml: not UTF-8 text" in usage_error(pytester)


def test_a_tool_key_that_is_not_a_table_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pyproject(pytester, 'tool = "x"\n')
    assert "pyproject.toml: [tool] must be a table, got str" in usage_error(pytester)


def test_a_pyproject_nested_too_deeply_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pyproject(pytester, "[tool.flopbudget]\nhardware = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert "pyproject.toml: invalid TOML" in usage_error(pytester)


@pytest.fixture
def symlink_loop(tmp_path: Path) -> Path:
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    return tmp_path / "a"


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("too long", "File name too long"),
        ("nul", "contains a NUL byte"),
        ("loop", "not a usable path"),
        ("unknown user", "not a usable path"),
    ],
)
@pytest.mark.parametrize("option", ["--flop-budget-json", "--flop-budget-markdown"])
def test_a_report_path_no_file_can_have_is_a_usage_error_naming_the_option(
    pytester: pytest.Pytester, symlink_loop: Path, option: str, kind: str, problem: str
) -> None:
    raw = {
        "too long": "r" * 5000 + ".json",
        "nul": "re\x00port.json",
        "loop": str(symlink_loop / "report.json"),
        "unknown user": "~no_such_user_flopbudget/report.json",
    }[kind]
    output = usage_error(pytester, f"{option}={raw}")
    assert f"pytest-flopbudget: {option}=" in output
    assert problem in output


@pytest.mark.parametrize(
    ("baseline", "problem"),
    [
        ("b" * 5000 + ".json", "File name too long"),
        ("base\\u0000line.json", "contains a NUL byte"),
        ("loop/flopbudget.json", "not a usable path"),
    ],
)
def test_a_baseline_path_no_file_can_have_is_a_usage_error_naming_the_key(
    pytester: pytest.Pytester, baseline: str, problem: str
) -> None:
    (pytester.path / "loop").symlink_to(pytester.path / "loop")
    pyproject(pytester, f'[tool.flopbudget]\nbaseline = "{baseline}"\n')
    output = usage_error(pytester)
    assert "pyproject.toml: [tool.flopbudget] baseline:" in output
    assert problem in output


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (
            '{"version": 1, "tests": {"t": {"n": {"macs": ' + "9" * 5000 + ', "params": 1}}}}',
            "digits",
        ),
        ('{"version": 1, "tests": {"t": {"n": {"macs": ' + HUGE + ', "params": 1}}}}', "digits"),
        ('{"version": 1, "tests": {"t": {"n": {"macs": 1e31, "params": 1}}}}', "macs"),
        ('{"version": 1, "tests": {"t": {"n": {"macs": NaN, "params": 1}}}}', "NaN"),
        ('{"version": 1, "tests": {"t\\ud800": {"n": {"macs": 1, "params": 1}}}}', "surrogate"),
        (
            '{"version": 1, "tests": {"t": {"n": {"macs": 10000000000000000000000000000001, "params": 1}}}}',
            "up to 1e30",
        ),
    ],
)
def test_a_baseline_too_deep_or_too_large_is_a_usage_error_naming_the_file(
    pytester: pytest.Pytester, content: str, problem: str
) -> None:
    pyproject(pytester, '[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    (pytester.path / "flopbudget.json").write_text(content)
    output = usage_error(pytester)
    assert "flopbudget.json: " in output
    assert problem in output


def marker_run(pytester: pytest.Pytester, marker: str, *args: str) -> tuple[pytest.RunResult, str]:
    pytester.makepyfile(
        test_target=f"""
import numpy as np
import pytest
import torch


@pytest.mark.flop_budget({marker})
def test_counts(flops):
    flops(torch.nn.Linear(4, 4), torch.randn(1, 4))
"""
    )
    result = run(pytester, "--junitxml=junit.xml", "--flop-budget-json=report.json", *args)
    output = assert_no_crash(result)
    ElementTree.parse(pytester.path / "junit.xml")
    if (pytester.path / "report.json").exists():
        strict_json(pytester.path / "report.json")
    return result, output


@pytest.mark.parametrize(
    ("marker", "problem"),
    [
        ("gflops=10**400", "gflops must be at most 1e30 FLOPs, got 1000"),
        ("gflops=1e300", "gflops must be at most 1e30 FLOPs"),
        ("gflops=float('nan')", "gflops must be a number, got nan"),
        ("gmacs=2e21", "gmacs must be at most 1e30 MACs"),
        ("flops=0.5", "flops must be at least one FLOP"),
        ("gflops=np.array([1.0])", "gflops must be a number, got array([1.])"),
        ("gflops=1, tolerance=np.array([1.0])", "tolerance must be a number such as 0.02"),
        ("gflops=1, tolerance=10**400", "tolerance must be at most 100"),
        ("gflops=1, backend=np.array(['torch', 'fvcore'])", "backend must be"),
        ("gflops=1, on_exceed=np.array(['fail', 'warn'])", "on_exceed must be"),
        ("np.array(['1 GFLOPs'])", "positional arguments are not accepted"),
    ],
)
def test_a_marker_argument_no_budget_can_hold_errors_the_test_naming_it(
    pytester: pytest.Pytester, marker: str, problem: str
) -> None:
    result, output = marker_run(pytester, marker)
    result.assert_outcomes(errors=1)
    assert "test_target.py::test_counts: @pytest.mark.flop_budget: " in output
    assert problem in output


def test_numpy_numbers_are_numbers(pytester: pytest.Pytester) -> None:
    result, _ = marker_run(pytester, "macs=np.int64(16), tolerance=np.float32(0.5)")
    result.assert_outcomes(passed=1)


def test_the_largest_budget_passes_and_its_reports_are_valid(pytester: pytest.Pytester) -> None:
    result, _ = marker_run(pytester, "gflops=1e21, mparams=1e24")
    result.assert_outcomes(passed=1)
    report = strict_json(pytester.path / "report.json")
    assert isinstance(report, dict)
    assert report["results"][0]["budget"] == 1e30


@pytest.mark.parametrize("name", ["a\\x00b\\x1b", "a\\ud800", "tab\\tbed"])
def test_a_name_with_control_characters_fails_the_test_and_leaves_the_reports_readable(
    pytester: pytest.Pytester, name: str
) -> None:
    pytester.makepyfile(
        test_target=f"""
import pytest
import torch


@pytest.mark.flop_budget(gflops=1)
def test_counts(flops):
    flops(torch.nn.Linear(4, 4), torch.randn(1, 4), name="{name}")


@pytest.mark.flop_budget(gflops=1, name="{name}")
def test_marker_name(flops):
    flops(torch.nn.Linear(4, 4), torch.randn(1, 4))
"""
    )
    result = run(pytester, "--junitxml=junit.xml", "--flop-budget-markdown=summary.md")
    output = assert_no_crash(result)
    result.assert_outcomes(failed=1, errors=1)
    assert "CountError: flops(name=...) must be printable text" in output
    assert (
        "test_target.py::test_marker_name: @pytest.mark.flop_budget: name must be printable"
        in output
    )
    ElementTree.parse(pytester.path / "junit.xml")


def test_junit_property_names_escape_what_xml_cannot_hold() -> None:
    from pytest_flopbudget.budgets.verdict import Verdict
    from pytest_flopbudget.reports.junit import properties

    verdict = Verdict(nodeid="t.py::t", name="a\x00b\x1b\x7f\ud800", status="error")
    (name, value), *_ = properties([verdict])
    assert (name, value) == ("flopbudget[a#x00b#x1B#x7F#xD800].status", "error")
    element = ElementTree.Element("property", name=name, value=str(value))
    ElementTree.fromstring(ElementTree.tostring(element))


def compare(tmp_path: Path, old: str, new: str, *options: str) -> tuple[int, str, str]:
    (tmp_path / "old.json").write_text(old)
    (tmp_path / "new.json").write_text(new)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json"), *options])
    return code, out.getvalue(), err.getvalue()


def _report(macs: str, module: str = "1") -> str:
    return (
        '{"version": 1, "convention": {"flops_per_mac": 1}, "results": [{"nodeid": "t.py::t", '
        f'"name": "N", "macs": {macs}, "params": 1, "by_module": {{"a": {module}}}}}]}}'
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (_report(HUGE), "not valid JSON: an integer of 401 digits is too long"),
        (_report("9" * 5000), "an integer of 5000 digits"),
        (_report("10000000000000000000000000000001"), "results[0].macs: expected a non-negative"),
        (_report("1", "1e400"), "results[0].by_module['a']: expected a non-negative number"),
        (_report("1", "1.7e308"), "results[0].by_module['a']: expected a non-negative number"),
        (_report("1", "NaN"), "NaN is not a JSON number"),
        (_report("1").replace('"N"', '"\\udc00"'), "half a surrogate pair"),
        (_report("1", "-Infinity"), "-Infinity is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)
def test_compare_refuses_huge_numbers_and_deep_nesting_with_exit_status_2(
    tmp_path: Path, content: str, problem: str
) -> None:
    code, out, err = compare(tmp_path, _report("1"), content)
    assert code == 2
    assert out == ""
    assert f"flopbudget compare: error: {tmp_path / 'new.json'}: " in err
    assert problem in err
    assert "Traceback" not in err


def test_compare_still_reads_the_largest_counts(tmp_path: Path) -> None:
    largest = str(10**30)
    code, out, _ = compare(tmp_path, _report("1"), _report(largest, largest), "--json")
    assert code == 1
    document = json.loads(out)
    assert document["models"][0]["macs"]["new"] == 10**30


def test_a_report_path_that_loops_is_a_clear_compare_error(symlink_loop: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compare", str(symlink_loop), os.devnull])
    assert code == 2
    assert f"{symlink_loop}: cannot read" in err.getvalue()
