"""The summary table fits the terminal: no line wider than it, no value split across lines."""

from __future__ import annotations

import re

import pytest

from pytest_flopbudget.reports import layout

LONG = "tests/vision/backbones/residual/test_resnet_variants_for_the_edge_devices.py"
TESTS = """
import pytest
import torch
from models import FFN, TinyConv


class TestBackbones:
    @pytest.mark.flop_budget(kmacs=1100, mparams=1.1, tolerance=0.05, on_exceed="warn")
    @pytest.mark.parametrize("resolution", ["224-fp32-channels-last-with-a-long-suffix"])
    def test_the_backbone_fits_its_budget_at_every_resolution(self, flops, resolution):
        flops(FFN(), torch.randn(1, 4), name="FeedForwardNetworkWithAVeryLongDescriptiveName")


@pytest.mark.flop_budget(kflops=10)
def test_conv(flops):
    flops(TinyConv(), torch.randn(1, 3, 8, 8))
"""
VALUES = ["1.05 MFLOPs", "13.8 KFLOPs", "95.9%", "138.2%"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def table_lines(output: str) -> list[str]:
    text = ANSI.sub("", output)
    lines = []
    for line in text.split("flop budget:", 1)[1].splitlines()[1:]:
        if line.startswith("="):  # pytest's next section
            break
        lines.append(line)
    return lines


@pytest.mark.parametrize(
    ("columns", "flags"),
    [
        (60, []),
        (80, []),
        (120, []),
        (200, []),
        (60, ["-q"]),
        (80, ["-q"]),
        (80, ["-v"]),
        (120, ["-v"]),
        (80, ["--color=yes"]),
    ],
)
def test_no_line_is_wider_than_the_terminal_and_no_value_is_split(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, columns: int, flags: list[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    project.mkpydir("tests")
    path = project.path / LONG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TESTS)
    result = project.runpytest(*flags)
    lines = table_lines(result.stdout.str())
    assert lines, result.stdout.str()
    heading = next(
        line for line in ANSI.sub("", result.stdout.str()).splitlines() if "flop budget:" in line
    )
    too_wide = [line for line in [heading, *lines] if len(line) > columns]
    assert not too_wide, "\n".join(too_wide)
    shown = "\n".join(lines)
    for value in VALUES:
        assert value in shown, f"{value!r} split or missing:\n{shown}"
    assert lines[-1] == "2 counted: 1 over, 1 ok"


def test_wide_terminals_get_the_full_table(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    path = project.path / LONG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TESTS)
    lines = table_lines(project.runpytest("-v").stdout.str())
    assert lines[0].split() == (
        [
            "test",
            "name",
            "FLOPs",
            "MACs",
            "params",
            "memory",
            "budget",
            "used",
            "tolerance",
            "source",
            "backend",
            "ops",
            "unknown",
            "ops",
            "status",
        ]
    )
    assert f"{LONG}::TestBackbones::test_the_backbone" in lines[1]


def test_quiet_ids_stay_unique_across_files(project: pytest.Pytester) -> None:
    body = "import torch\nfrom models import FFN\n\ndef test_same(flops):\n    flops(FFN(), torch.randn(1, 4))\n"
    project.makepyfile(test_one=body, test_two=body)
    lines = table_lines(project.runpytest("-q").stdout.str())
    assert any(line.startswith("test_one.py::test_same ") for line in lines), lines
    assert any(line.startswith("test_two.py::test_same ") for line in lines), lines


def test_the_tally_lists_the_worst_first() -> None:
    from pytest_flopbudget.budgets.verdict import Verdict
    from pytest_flopbudget.reports.table import tally

    def verdict(status: str, counted: bool = True, enforced: bool = True) -> Verdict:
        numbers = 1 if counted else None
        return Verdict(
            nodeid="t.py::t",
            name="m",
            status=status,
            flops=numbers,
            macs=numbers,
            params=numbers,
            enforced=enforced,
        )

    verdicts = [
        verdict("ok"),
        verdict("ok"),
        verdict("no budget"),
        verdict("over", enforced=False),
        verdict("over"),
        verdict("error", counted=False),
    ]
    assert (
        tally(verdicts)
        == "5 counted: 1 over, 1 over (warn), 1 no budget, 2 ok; 1 error (nothing counted)"
    )


def test_long_ids_keep_the_test_function_and_its_parameters() -> None:
    nodeid = "tests/deep/path/test_mod.py::TestC::test_fn[1-2]"
    assert layout.elide_nodeid(nodeid, 60) == nodeid
    elided = layout.elide_nodeid(nodeid, 40)
    # 40 - len("::test_fn[1-2]") = 26 for the prefix: 11 characters each side of "..."
    assert elided == "tests/deep/...od.py::TestC::test_fn[1-2]"
    assert len(elided) == 40


def test_ids_too_long_even_for_their_function_are_elided_in_the_middle() -> None:
    elided = layout.elide_nodeid("t.py::test_" + "x" * 50 + "[param]", 20)
    assert len(elided) == 20
    assert elided.startswith("test_x") and elided.endswith("[param]")
    assert "..." in elided


def test_short_ids_grow_only_as_far_as_needed() -> None:
    ids = ["a/test_m.py::test_f", "b/test_m.py::test_f", "a/test_m.py::test_g"]
    assert layout.short_ids(ids) == {
        "a/test_m.py::test_f": "a/test_m.py::test_f",
        "b/test_m.py::test_f": "b/test_m.py::test_f",
        "a/test_m.py::test_g": "test_g",
    }


def test_notes_wrap_between_words_and_never_split_a_word() -> None:
    text = "tests/test_x.py::test_y [FFN]: budget can be tightened (uses 12%)"
    lines = layout.wrap(text, 30)
    assert all(len(line) <= 30 for line in lines)
    assert " ".join(line.strip() for line in lines) == text
