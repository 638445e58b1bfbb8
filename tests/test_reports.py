"""What the run leaves: the summary table, the JSON report, and the pyproject update."""

from __future__ import annotations

import json
import os

import pytest
from conftest import CONV_MACS, FFN_MACS, FFN_PARAMS

TESTS = """
import pytest, torch
from models import FFN, TinyConv, ffn_input

@pytest.mark.flop_budget(mmacs=1.1)
def test_ffn(flops):
    flops(FFN(), ffn_input())

def test_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))

def test_plain():
    pass
"""


def test_the_summary_lists_every_count_with_its_budget(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makepyfile(test_models=TESTS)
    result = project.runpytest(*plugin_args)
    result.stdout.fnmatch_lines(
        [
            "*= flop budget: 1 FLOP = 1 MAC (fvcore's convention; flops_per_mac = 1); "
            'ops = "fvcore" (convolutions, matrix products, attention, norms, pooling, '
            "resampling) =*",
            "test *name *FLOPs *MACs *params *budget *used *status",
            "test_models.py::test_ffn  *FFN  *1.05 MFLOPs  *1.05 MMACs  *1.06M params  *1.1 MMACs  *95.9%  *ok",
            "test_models.py::test_conv *TinyConv  *13.8 KFLOPs  *13.8 KMACs  *224 params  *-  *-  *no budget",
            "2 counted: 1 no budget, 1 ok",
        ]
    )
    assert "test_plain" not in result.stdout.str().split("flop budget:")[1]


def test_quiet_narrows_the_table_and_verbose_widens_it(project: pytest.Pytester) -> None:
    project.makepyfile(test_models=TESTS)
    quiet = project.runpytest("-q")
    quiet.stdout.fnmatch_lines(["test *name *FLOPs *budget *used *status", "test_ffn *FFN*ok"])
    assert "MACs  " not in quiet.stdout.str().split("flop budget:")[1].splitlines()[1]
    tally_only = project.runpytest("-qq")
    tally_only.stdout.fnmatch_lines(["2 counted: 1 no budget, 1 ok"])
    assert "test_ffn " not in tally_only.stdout.str()
    verbose = project.runpytest("-v")
    verbose.stdout.fnmatch_lines(
        ["*tolerance *source *backend *unknown ops *status", "*0.0%*marker*fvcore*ok"]
    )


def test_no_table_when_nothing_was_counted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest()
    assert "flop budget" not in result.stdout.str()


def test_the_json_report_holds_the_convention_and_every_count(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    project.makefile(".toml", pyproject="[tool.flopbudget]\nflops_per_mac = 2\n")
    project.makepyfile(test_models=TESTS)
    project.runpytest(
        *plugin_args, "--flop-budget-json=out/report.json".replace("out/", "")
    ).assert_outcomes(passed=3)
    report = json.loads((project.path / "report.json").read_text())
    assert report["convention"]["flops_per_mac"] == 2
    rows = {row["nodeid"]: row for row in report["results"]}
    ffn = rows["test_models.py::test_ffn"]
    assert (ffn["name"], ffn["flops"], ffn["macs"], ffn["params"]) == (
        "FFN",
        2 * FFN_MACS,
        FFN_MACS,
        FFN_PARAMS,
    )
    assert ffn["budget"] == pytest.approx(2 * 1.1e6)  # a MACs budget, in FLOPs of the convention
    assert ffn["status"] == "ok"
    conv = rows["test_models.py::test_conv"]
    assert (conv["macs"], conv["budget"], conv["status"]) == (CONV_MACS, None, "no budget")


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("missing-dir/report.json", "does not exist"),
        (".", "is a directory"),
        ("ro/report.json", "not writable"),
    ],
)
def test_an_unwritable_json_path_is_a_usage_error(
    project: pytest.Pytester, path: str, problem: str
) -> None:
    (project.path / "ro").mkdir()
    os.chmod(project.path / "ro", 0o500)
    if problem == "not writable" and os.access(project.path / "ro", os.W_OK):
        os.chmod(project.path / "ro", 0o700)
        (project.path / "ro" / "report.json").mkdir()
        problem = "is a directory"
    project.makepyfile(test_models=TESTS)
    result = project.runpytest(f"--flop-budget-json={path}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: pytest-flopbudget: --flop-budget-json={path}: *{problem}*"]
    )


PYPROJECT = """\
# project settings, kept by hand
[project]
name = "demo"  # the name

[tool.flopbudget]
tolerance = 0.0  # exact counts

[tool.flopbudget.budgets]
# the FFN from the seed article
"test_models.py::test_named" = "1 MMACs"  # too tight
"Shared" = { kmacs = 1.0, mparams = 9.0 }

[tool.other]
keep = [1, 2, 3]
"""

UPDATE_TESTS = """
from models import FFN, TinyConv, ffn_input
import torch

def test_named(flops):
    flops(FFN(), ffn_input())

def test_shared(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8), name="Shared")

def test_new(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
"""


def test_update_writes_measured_budgets_and_keeps_every_other_byte(
    project: pytest.Pytester, plugin_args: tuple[str, ...]
) -> None:
    original = project.makefile(".toml", pyproject=PYPROJECT).read_text()
    project.makepyfile(test_models=UPDATE_TESTS)
    project.runpytest(*plugin_args).assert_outcomes(passed=1, failed=2)

    updated = project.runpytest(*plugin_args, "--flop-budget-update")
    updated.assert_outcomes(passed=3)
    assert updated.ret == 0
    updated.stdout.fnmatch_lines(["flop budgets updated in *pyproject.toml: 3 entries"])

    text = (project.path / "pyproject.toml").read_text()
    # 1,054,720 MACs rounded up to four figures; 13,824 MACs -> 13.83 KMACs; 224 params
    expected = original.replace('"1 MMACs"  # too tight', '"1.055 MMACs"  # too tight')
    expected = expected.replace(
        "{ kmacs = 1.0, mparams = 9.0 }", "{ kmacs = 13.83, mparams = 0.000224 }"
    )
    expected = expected.replace(
        "\n[tool.other]", '"test_models.py::test_new" = "13.83 KFLOPs, 224 params"\n\n[tool.other]'
    )
    assert text == expected

    project.runpytest(*plugin_args).assert_outcomes(passed=3)


def test_update_creates_the_budgets_table_when_there_is_none(project: pytest.Pytester) -> None:
    project.makefile(".toml", pyproject='[project]\nname = "demo"\n')
    project.makepyfile(test_models=UPDATE_TESTS)
    project.runpytest("--flop-budget-update").assert_outcomes(passed=3)
    text = (project.path / "pyproject.toml").read_text()
    assert text.startswith('[project]\nname = "demo"\n')
    assert '"test_models.py::test_named" = "1.055 MFLOPs, 1.057M params"' in text
    project.runpytest().assert_outcomes(passed=3)


def test_update_cannot_change_a_marker_and_says_so(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_models="""
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=1)
def test_marked(flops):
    flops(FFN(), ffn_input())
"""
    )
    result = project.runpytest("--flop-budget-update")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*not updated (budget set by a marker in code, edit it there): test_models.py::test_marked (FFN)"
        ]
    )


def test_update_refuses_a_pyproject_it_cannot_parse_and_leaves_it_alone(
    project: pytest.Pytester,
) -> None:
    broken = '[tool.flopbudget.budgets]\n"FFN" = "1 MMACs\n'
    path = project.path / "pyproject.toml"
    path.write_text(broken)
    project.makepyfile(test_models=UPDATE_TESTS)
    result = project.runpytest("--flop-budget-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *pyproject.toml*"])
    assert path.read_text() == broken
    assert [p.name for p in project.path.iterdir() if p.name.startswith(".pyproject")] == []
