"""Monorepos: [tool.flopbudget] tables in package pyprojects apply to the tests below them.

Every test runs the same repository three ways (from the root, from the package directory,
and from the root with --rootdir=packages/vision): node-id keys are relative to the file that
holds them, so they mean the same test each time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import MODELS

ROOT = """\
[tool.pytest.ini_options]
addopts = "-p no:cacheprovider"
pythonpath = ["."]
"""

PACKAGE = """\
# the vision package's own settings
[project]
name = "vision"

[tool.flopbudget.budgets]
"tests/test_vision.py::test_ffn" = "1 MMACs"  # too tight: FFN is 1.05 MMACs
"""

TESTS = """
from models import FFN, ffn_input

def test_ffn(flops):
    flops(FFN(), ffn_input())
"""

HOW = ["from the root", "from the package", "with --rootdir"]


@pytest.fixture
def repo(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", pyproject=ROOT)
    package = pytester.mkpydir("packages") / "vision"
    (package / "tests").mkdir(parents=True)
    (package / "pyproject.toml").write_text(PACKAGE)
    (package / "tests" / "test_vision.py").write_text(TESTS)
    (pytester.path / "models.py").write_text(MODELS)
    os.remove(pytester.path / "packages" / "__init__.py")
    pytester.syspathinsert()
    return pytester


@pytest.fixture(params=HOW)
def run(
    request: pytest.FixtureRequest, repo: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, object]]:
    how = request.param

    def runner(*args: str) -> pytest.RunResult:
        if how == "from the package":
            monkeypatch.chdir(repo.path / "packages" / "vision")
            return repo.runpytest(*args)
        if how == "with --rootdir":
            return repo.runpytest("--rootdir=packages/vision", "packages/vision", *args)
        return repo.runpytest(*args)

    yield how, runner


def _vision(repo: pytest.Pytester) -> Path:
    return repo.path / "packages" / "vision" / "pyproject.toml"


def test_a_package_budget_applies_however_pytest_is_started(
    repo: pytest.Pytester, run: tuple[str, object]
) -> None:
    _, runner = run
    result = runner("-v")  # type: ignore[operator]
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FFN: 1.05 MMACs exceeds budget 1 MMACs*"])
    result.stdout.fnmatch_lines(["*test_ffn*1 MMACs*pyproject:nodeid*over*"])
    result.stdout.no_fnmatch_line("*no budget*")


def test_the_update_writes_into_the_package_file_under_its_own_key(
    repo: pytest.Pytester, run: tuple[str, object]
) -> None:
    _, runner = run
    root_before = (repo.path / "pyproject.toml").read_bytes()
    (repo.path / "packages" / "vision" / "tests" / "test_new.py").write_text(
        "from models import FFN, ffn_input\n\ndef test_new(flops):\n    flops(FFN(), ffn_input())\n"
    )
    updated = runner("--flop-budget-update")  # type: ignore[operator]
    updated.assert_outcomes(passed=2)
    updated.stdout.fnmatch_lines(["flop budgets updated in *packages/vision/pyproject.toml: 2*"])

    text = _vision(repo).read_text()
    # FFN: 1,054,720 MACs and 1,056,770 params, rounded up to four figures
    assert text == PACKAGE.replace('"1 MMACs"  # too tight', '"1.055 MMACs"  # too tight') + (
        '"tests/test_new.py::test_new" = "1.055 MFLOPs, 1.057M params"\n'
    )
    assert (repo.path / "pyproject.toml").read_bytes() == root_before

    again = runner()  # type: ignore[operator]
    again.assert_outcomes(passed=2)
    again.stdout.no_fnmatch_line("*no budget*")
    again.stdout.no_fnmatch_line("*stale*")


def test_the_nearest_table_wins_per_setting_and_per_name(repo: pytest.Pytester) -> None:
    repo.makefile(
        ".toml",
        pyproject=ROOT
        + """
[tool.flopbudget]
on_exceed = "warn"
tolerance = 0.5

[tool.flopbudget.budgets]
"FFN" = "10 MMACs"
"Net" = "1 MMACs"
""",
    )
    _vision(repo).write_text(
        '[tool.flopbudget]\non_exceed = "fail"\n\n[tool.flopbudget.budgets]\n"Net" = "1 KMACs"\n'
    )
    (repo.path / "packages" / "vision" / "tests" / "test_vision.py").write_text(
        TESTS + '\ndef test_net(flops):\n    flops(FFN(), ffn_input(), name="Net")\n'
    )
    repo.makepyfile(
        test_top=TESTS + '\ndef test_net(flops):\n    flops(FFN(), ffn_input(), name="Net")\n'
    )
    result = repo.runpytest("-v")
    # the package's Net: 1 KMACs, fail, the root's tolerance 0.5 still applies (1.5 KMACs)
    result.stdout.fnmatch_lines(["FAILED packages/vision/tests/test_vision.py::test_net*"])
    result.stdout.fnmatch_lines(["*Net: 1054.72 KMACs exceeds budget 1 KMACs*tolerance 50.0%*"])
    # the root's Net: 1 MMACs with tolerance 0.5 holds 1.05 MMACs; FFN by name everywhere
    result.assert_outcomes(passed=3, failed=1)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            '[tool.flopbudget.budgets]\n"../other/test_x.py::test_y" = "1 MMACs"\n',
            "*'../other/test_x.py::test_y': a node-id key is relative to the directory*",
        ),
        ('[tool.flopbudget]\nbaseline = "flops.json"\n', "*baseline: applies to the whole run*"),
        ('[tool.flopbudget]\nhardware = ["T4"]\n', "*hardware: applies to the whole run*"),
        ("[tool.flopbudget]\nflops_per_mac = 2\n", "*flops_per_mac: 2 differs from 1 in *"),
        ("[tool.flopbudget]\ntolerance = -1\n", "*tolerance must not be negative*"),
        ("[tool.flopbudget\n", "*invalid TOML*"),
    ],
)
def test_a_package_table_that_cannot_apply_stops_the_run_naming_it(
    repo: pytest.Pytester, body: str, problem: str
) -> None:
    _vision(repo).write_text(body)
    result = repo.runpytest()
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"*pytest-flopbudget: *packages/vision/pyproject.toml*{problem}"])
    result.stdout.no_fnmatch_line("*no budget*")


def test_the_same_flops_per_mac_in_a_package_is_fine(repo: pytest.Pytester) -> None:
    _vision(repo).write_text("[tool.flopbudget]\nflops_per_mac = 1\n")
    repo.runpytest().assert_outcomes(passed=1)


def test_a_table_outside_the_rootdir_is_an_error(repo: pytest.Pytester) -> None:
    other = repo.path / "packages" / "text"
    (other / "tests").mkdir(parents=True)
    (other / "pyproject.toml").write_text('[tool.flopbudget.budgets]\n"FFN" = "1 MMACs"\n')
    (other / "tests" / "test_text.py").write_text(TESTS)
    result = repo.runpytest("--rootdir=packages/vision", "packages/text/tests")
    assert result.ret != pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*packages/text/pyproject.toml*is outside the rootdir*"])


def test_a_root_key_keeps_its_meaning_when_the_rootdir_moves(repo: pytest.Pytester) -> None:
    # the budget lives in the root file, keyed from the root; --rootdir changes node ids
    repo.makefile(
        ".toml",
        pyproject=ROOT
        + '\n[tool.flopbudget.budgets]\n"packages/vision/tests/test_vision.py::test_ffn" = "1 MMACs"\n',
    )
    _vision(repo).write_text('[project]\nname = "vision"\n')
    result = repo.runpytest("-c", "pyproject.toml", "--rootdir=packages/vision", "packages/vision")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FFN: 1.05 MMACs exceeds budget 1 MMACs*"])

    updated = repo.runpytest(
        "-c",
        "pyproject.toml",
        "--rootdir=packages/vision",
        "packages/vision",
        "--flop-budget-update",
    )
    updated.assert_outcomes(passed=1)
    text = (repo.path / "pyproject.toml").read_text()
    assert '"packages/vision/tests/test_vision.py::test_ffn" = "1.055 MMACs"' in text
    assert '"tests/test_vision.py::test_ffn"' not in text


def test_stale_package_entries_are_listed_and_removed_from_their_file(
    repo: pytest.Pytester,
) -> None:
    _vision(repo).write_text(
        PACKAGE + '"tests/test_vision.py::test_gone" = "1 MMACs"\n"Gone" = "1 MMACs"\n'
    )
    result = repo.runpytest()
    result.stdout.fnmatch_lines(
        [
            "*packages/vision/pyproject.toml: [[]tool.flopbudget.budgets[]] 'tests/test_vision.py::test_gone': the test no longer exists*"
        ]
    )
    result.stdout.fnmatch_lines(
        ["*packages/vision/pyproject.toml: *'Gone': no test below it recorded it*"]
    )
    repo.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    text = _vision(repo).read_text()
    assert "test_gone" not in text and "Gone" not in text
    assert '"tests/test_vision.py::test_ffn" = "1.055 MMACs"' in text


def test_under_xdist_the_update_writes_the_package_file_too(repo: pytest.Pytester) -> None:
    updated = repo.runpytest("-n", "2", "--flop-budget-update")
    updated.assert_outcomes(passed=1)
    assert '"tests/test_vision.py::test_ffn" = "1.055 MMACs"' in _vision(repo).read_text()


def test_baseline_node_ids_keep_their_meaning_when_the_rootdir_moves(
    repo: pytest.Pytester,
) -> None:
    import json

    repo.makefile(".toml", pyproject=ROOT + '\n[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    _vision(repo).write_text('[project]\nname = "vision"\n')
    other = {"macs": 5, "params": 5, "by_module_macs": {}}
    ffn = "packages/vision/tests/test_vision.py::test_ffn"
    baseline = repo.path / "flopbudget.json"
    baseline.write_text(
        json.dumps(
            {
                "version": 1,
                "unit": "MACs",
                "tests": {ffn: {"FFN": {"macs": 1, "params": 1}}, "other/t.py::t": {"M": other}},
            }
        )
    )
    args = ("-c", "pyproject.toml", "--rootdir=packages/vision", "packages/vision")
    grown = repo.runpytest(*args)
    grown.assert_outcomes(failed=1)
    grown.stdout.fnmatch_lines(["*FFN: 1.05 MMACs, up from 1 MACs in the baseline*"])

    repo.runpytest(*args, "--flop-budget-update").assert_outcomes(passed=1)
    tests = json.loads(baseline.read_text())["tests"]
    assert sorted(tests) == ["other/t.py::t", ffn]  # no rootdir-relative duplicate
    assert tests["other/t.py::t"] == {"M": other}  # outside the rootdir: kept as it was
    assert tests[ffn]["FFN"]["macs"] == 1_054_720
    repo.runpytest(*args).assert_outcomes(passed=1)
