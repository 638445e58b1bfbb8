"""Property: no input, however odd, crashes the plugin or the command line.

Marker arguments (any Python value, NumPy arrays included), ``[tool.flopbudget]`` documents,
baselines and ``flopbudget compare`` reports are generated at random; every run must end in a
pass, a test failure or a usage error, with no INTERNALERROR, no traceback through the plugin's
modules and only valid JSON and XML written.

CI runs a few examples of each; ``FLOPBUDGET_FUZZ_EXAMPLES=10000`` runs that many of each (see
the README's contributor notes).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import tempfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tomlkit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pytest_flopbudget.budgets.budget import OPTION_KEYS
from pytest_flopbudget.budgets.config import KNOWN_KEYS
from pytest_flopbudget.budgets.units import ALL_UNITS
from pytest_flopbudget.cli import main

PLUGIN_FRAME = re.compile(r"pytest_flopbudget[\\/][\w\\/]+\.py(:\d+|\", line)")
EXAMPLES = int(os.environ.get("FLOPBUDGET_FUZZ_EXAMPLES", "0"))


def fuzz(ci_examples: int) -> Any:
    """Settings for one property: ``ci_examples`` in CI, ``$FLOPBUDGET_FUZZ_EXAMPLES`` if set."""
    return settings(
        max_examples=EXAMPLES or ci_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


TARGET = """
import torch


def test_counts(flops):
    flops(torch.nn.Linear(4, 4), torch.randn(1, 4))
    flops(torch.nn.Linear(4, 2), torch.randn(1, 4), name="head")
"""
NODEID = "test_target.py::test_counts"
WORDS = [
    "fail", "warn", "ignore", "fvcore", "torch", "inference", "train", "Linear", "head",
    "4.1 GFLOPs", "1 MMACs, 2M params", "16 MACs", "0 FLOPs", "1e400 TFLOPs", NODEID,
]  # fmt: skip

big_integers = st.integers(min_value=-(10**1000), max_value=10**1000)
edges = st.sampled_from(
    [0, 1, 2, -1, 0.5, 10**30, 10**30 + 1, 10**400, 1e21, 1e300, 5e-324, math.nan, math.inf]
)
integers = edges | st.integers() | big_integers
floats = edges | st.floats()
strings = (
    st.sampled_from(WORDS)
    | st.text()
    | st.text(alphabet=st.characters(max_codepoint=31))
    | st.text(alphabet=st.characters(categories=["Cs"]), max_size=2)  # lone surrogates
)
numpy_values = (
    hnp.arrays(
        dtype=hnp.scalar_dtypes(), shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)
    )
    | hnp.from_dtype(np.dtype("float64"))
    | hnp.from_dtype(np.dtype("int64"))
    | st.sampled_from([np.array([1.0]), np.array(["torch", "fvcore"]), np.float64(1e300)])
)
python_scalars = (
    st.none() | st.booleans() | integers | floats | strings | st.binary() | st.complex_numbers()
)
python_values = st.recursive(
    python_scalars | st.fractions() | st.decimals() | numpy_values,
    lambda children: (
        st.lists(children, max_size=3)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=6,
)
marker_values = integers | floats | numpy_values | strings | python_values
keys = st.sampled_from([*ALL_UNITS, *OPTION_KEYS]) | st.text(max_size=8)


class AddMarker:
    """A plugin that puts ``flop_budget(*args, **kwargs)`` on every collected test."""

    def __init__(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.args, self.kwargs = args, kwargs

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            item.add_marker(pytest.mark.flop_budget.with_args(*self.args, **self.kwargs))


def run(pytester: pytest.Pytester, *args: str, plugins: Sequence[Any] = ()) -> str:
    """Run the target test in process; assert the run ended cleanly; return its output."""
    for name in ("junit.xml", "report.json"):
        (pytester.path / name).unlink(missing_ok=True)
    pytester.makefile(".ini", pytest="[pytest]\n")
    result = pytester.runpytest(
        "-c", "pytest.ini", "--junitxml=junit.xml", "--flop-budget-json=report.json", *args,
        plugins=list(plugins),
    )  # fmt: skip
    output = "\n".join(result.outlines + result.errlines)
    assert "INTERNALERROR" not in output, output
    assert result.ret in (
        pytest.ExitCode.OK,
        pytest.ExitCode.TESTS_FAILED,
        pytest.ExitCode.USAGE_ERROR,
    ), output
    assert not PLUGIN_FRAME.search(output), output
    assert "Traceback (most recent call last)" not in output, output
    if result.ret == pytest.ExitCode.USAGE_ERROR:
        assert "ERROR: pytest-flopbudget: " in output, output
    else:
        ElementTree.parse(pytester.path / "junit.xml")
        report = pytester.path / "report.json"
        if report.exists():
            json.loads(report.read_text(encoding="utf-8"), parse_constant=_refuse)
    return output


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} written into a JSON file")


@fuzz(ci_examples=12)
@given(
    args=st.lists(python_values, max_size=2).map(tuple),
    kwargs=st.dictionaries(keys, marker_values, max_size=4),
)
def test_no_marker_argument_crashes_the_run(
    pytester: pytest.Pytester, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    pytester.makepyfile(test_target=TARGET)
    output = run(pytester, plugins=[AddMarker(args, kwargs)])
    if "ERROR at setup" in output:
        assert f"{NODEID}: @pytest.mark.flop_budget: " in output, output


toml_scalars = (
    st.booleans()
    | st.integers(min_value=-(10**1000), max_value=10**1000)
    | floats
    | strings
    | st.dates()
    | st.datetimes()
    | st.times()
)
toml_values = st.recursive(
    toml_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(keys | st.sampled_from(WORDS), children, max_size=3)
    ),
    max_leaves=6,
)
budget_values = toml_values | st.dictionaries(keys, toml_values, max_size=3)
sections = st.dictionaries(
    st.sampled_from(KNOWN_KEYS) | st.text(max_size=6),
    toml_values | st.dictionaries(st.sampled_from(WORDS) | st.text(), budget_values, max_size=3),
    max_size=5,
)
documents = st.one_of(
    sections.map(lambda section: {"tool": {"flopbudget": section}}),
    st.dictionaries(st.sampled_from(["tool", "project"]), toml_values, max_size=2),
)


@fuzz(ci_examples=15)
@given(document=documents, damage=st.none() | st.binary(min_size=1, max_size=8))
def test_no_pyproject_crashes_the_run(
    pytester: pytest.Pytester, document: dict[str, Any], damage: bytes | None
) -> None:
    try:
        text = tomlkit.dumps(document).encode("utf-8", "surrogatepass")
    except Exception:  # tomlkit cannot write every generated value (surrogates, huge ints)
        assume(False)
        raise
    if damage is not None:  # bytes that may break the syntax or the UTF-8 encoding
        text = text[: len(text) // 2] + damage + text[len(text) // 2 :]
    pytester.makepyfile(test_target=TARGET)
    (pytester.path / "pyproject.toml").write_bytes(text)
    output = run(pytester)
    if "ERROR: pytest-flopbudget: " in output:
        assert "pyproject.toml" in output, output


json_values = st.recursive(
    st.none() | st.booleans() | integers | floats | strings,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.sampled_from(WORDS), children, max_size=3)
    ),
    max_leaves=8,
)
counts = integers | floats | st.integers(min_value=0, max_value=10**31) | json_values
# what a generator seldom makes: nesting and integers too deep or too long for Python's json
SPECIAL_FILES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"version": 1, "tests": {"'
    + NODEID.encode()
    + b'": {"Linear": {"macs": '
    + b"9" * 5000
    + b', "params": 1}}}}',
    b'{"version": 1, "convention": {"flops_per_mac": 1}, "results": [{"nodeid": "t", '
    b'"name": "n", "macs": 1, "params": 1, "by_module": {"a": ' + b"9" * 400 + b"}}]}",
    b'{"version": NaN}',
    b"\xff\xfe{}",
]
baselines = st.fixed_dictionaries(
    {
        "version": st.just(1) | json_values,
        "tests": st.dictionaries(
            st.sampled_from([NODEID]) | strings,
            st.dictionaries(
                st.sampled_from(["Linear", "head"]) | strings,
                st.fixed_dictionaries(
                    {"macs": counts, "params": counts},
                    optional={"by_module_macs": st.dictionaries(st.text(max_size=3), counts)},
                )
                | json_values,
                max_size=2,
            )
            | json_values,
            max_size=2,
        ),
    }
)


def _file_text(document: Any, damage: bytes | None) -> bytes:
    if isinstance(document, bytes):
        return document
    text = json.dumps(document).encode("utf-8", "surrogatepass")
    if damage is not None:
        text = text[: len(text) // 2] + damage + text[len(text) // 2 :]
    return text


@fuzz(ci_examples=12)
@given(
    document=baselines | json_values | st.sampled_from(SPECIAL_FILES),
    damage=st.none() | st.binary(min_size=1, max_size=8),
    update=st.booleans(),
)
def test_no_baseline_crashes_the_run(
    pytester: pytest.Pytester, document: Any, damage: bytes | None, update: bool
) -> None:
    pytester.makepyfile(test_target=TARGET)
    pytester.makefile(".toml", pyproject='[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    (pytester.path / "flopbudget.json").write_bytes(_file_text(document, damage))
    output = run(pytester, *(["--flop-budget-update"] if update else []))
    if "ERROR: pytest-flopbudget: " in output:
        assert "flopbudget.json: " in output, output


rows = st.fixed_dictionaries(
    {"nodeid": st.just(NODEID) | json_values, "name": st.just("Linear") | json_values},
    optional={
        "macs": counts,
        "params": counts,
        "by_module": st.dictionaries(st.text(max_size=3), counts | floats, max_size=3),
    },
)
reports = st.fixed_dictionaries(
    {
        "version": st.just(1) | json_values,
        "convention": st.fixed_dictionaries({"flops_per_mac": st.sampled_from([1, 2])})
        | json_values,
        "results": st.lists(rows | json_values, max_size=3) | json_values,
    }
)


@fuzz(ci_examples=60)
@given(
    old=reports | json_values,
    new=reports | json_values | st.sampled_from(SPECIAL_FILES),
    damage=st.none() | st.binary(min_size=1, max_size=8),
    as_json=st.booleans(),
)
def test_no_report_crashes_compare(old: Any, new: Any, damage: bytes | None, as_json: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "old.json").write_bytes(_file_text(old, None))
        (Path(directory) / "new.json").write_bytes(_file_text(new, damage))
        out, err = io.StringIO(), io.StringIO()
        argv = ["compare", f"{directory}/old.json", f"{directory}/new.json"]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, *(["--json"] if as_json else [])])
    assert code in (0, 1, 2)
    if code == 2:
        assert err.getvalue().startswith("flopbudget compare: error: ")
        assert "Traceback" not in err.getvalue()
    elif as_json:
        json.loads(out.getvalue(), parse_constant=_refuse)
