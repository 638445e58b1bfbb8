"""``flopbudget compare``: two JSON reports in, the models that grew (and where) out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pytest_flopbudget
from pytest_flopbudget.cli import main

FFN_MODULES = {"fc1": 4096, "fc2": 1_048_576, "fc3": 2048}
FFN_MACS = sum(FFN_MODULES.values())
FFN_PARAMS = 1_056_770
NODEID = "tests/test_models.py::test_ffn"


def model(
    name: str = "FFN",
    macs: int = FFN_MACS,
    params: int = FFN_PARAMS,
    by_module: dict[str, int] | None = None,
    nodeid: str = NODEID,
    flops_per_mac: int = 1,
) -> dict[str, Any]:
    """One result row as ``--flop-budget-json`` writes it (``by_module`` given in MACs)."""
    modules = FFN_MODULES if by_module is None else by_module
    return {
        "nodeid": nodeid,
        "name": name,
        "flops": macs * flops_per_mac,
        "macs": macs,
        "params": params,
        "budget": None,
        "status": "no budget",
        "by_module": {path: value * flops_per_mac for path, value in modules.items()},
    }


def report(*rows: dict[str, Any], flops_per_mac: int = 1) -> dict[str, Any]:
    return {
        "version": 1,
        "convention": {"flops_per_mac": flops_per_mac, "description": "test"},
        "results": list(rows),
    }


def write(directory: Path, filename: str, content: Any) -> Path:
    path = directory / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def run_main(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_subprocess(cwd: Path, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m pytest_flopbudget``, importing this source tree wherever it runs from."""
    source_root = str(Path(pytest_flopbudget.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest_flopbudget", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_identical_reports_pass_and_say_every_model_is_unchanged(tmp_path: Path) -> None:
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model()))
    result = run_subprocess(tmp_path, "compare", old, new)
    assert result.returncode == 0, result.stderr
    assert "1 model compared: 1 unchanged" in result.stdout
    assert "REGRESSED" not in result.stdout


def test_a_model_that_grew_fails_and_names_the_module_that_grew(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grown = {**FFN_MODULES, "fc2": 2 * 1_048_576}
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(macs=FFN_MACS + 1_048_576, by_module=grown)))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 1
    (row,) = [line.split() for line in out.splitlines() if line.startswith(f"{NODEID}  ")]
    assert row == [
        NODEID,
        "FFN",
        *["1.05", "MMACs", "->", "2.10", "MMACs", "+1.05", "MMACs", "+99.4%"],
        *["1.06M", "params", "->", "1.06M", "params", "REGRESSED"],
    ]
    module_lines = [line.split() for line in out.splitlines() if line.strip().startswith("fc")]
    assert module_lines == [["fc2", "1.05", "MMACs", "2.10", "MMACs", "+1.05", "MMACs"]]
    assert "regression: MACs or params grew by more than 0.0%" in out


def test_the_same_regression_through_the_module_entry_point_exits_one(tmp_path: Path) -> None:
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(macs=FFN_MACS + 1)))
    result = run_subprocess(tmp_path, "compare", old, new)
    assert result.returncode == 1, result.stderr
    assert "+1 MACs" in result.stdout


def test_a_model_that_shrank_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    smaller = {**FFN_MODULES, "fc2": 524_288}
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(macs=FFN_MACS - 524_288, by_module=smaller)))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 0
    assert "shrank" in out
    assert "-524 KMACs" in out


def test_params_that_grew_fail_even_when_macs_did_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(params=FFN_PARAMS + 1000)))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 1
    (row,) = [line for line in out.splitlines() if line.startswith(f"{NODEID}  ")]
    assert row.endswith("1.06M params -> 1.06M params  REGRESSED")


def test_added_and_removed_models_are_listed_but_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model(), model(name="Old", nodeid="t.py::test_old")))
    new = write(tmp_path, "new.json", report(model(), model(name="New", nodeid="t.py::test_new")))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 0
    assert any(
        line.startswith("t.py::test_new") and line.endswith("added") for line in out.splitlines()
    )
    assert any(
        line.startswith("t.py::test_old") and line.endswith("removed") for line in out.splitlines()
    )
    assert "3 models compared: 1 added, 1 removed, 1 unchanged" in out


def test_models_are_matched_by_nodeid_and_name_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model(name="encoder"), model(name="decoder")))
    new = write(tmp_path, "new.json", report(model(name="decoder"), model(name="encoder")))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 0
    assert "2 models compared: 2 unchanged" in out


@pytest.mark.parametrize(("tolerance", "expected"), [("0.02", 0), ("0.01", 0), ("0.005", 1)])
def test_tolerance_lets_growth_within_it_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tolerance: str, expected: int
) -> None:
    old = write(tmp_path, "old.json", report(model(macs=1_000_000, by_module={})))
    new = write(tmp_path, "new.json", report(model(macs=1_010_000, by_module={})))
    code, out, _ = run_main(capsys, "compare", old, new, "--tolerance", tolerance)
    assert code == expected
    assert "+1.00%" in out
    assert ("grew (within tolerance)" in out) == (expected == 0)


def test_reports_of_different_conventions_are_compared_in_macs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model(flops_per_mac=1), flops_per_mac=1))
    new = write(tmp_path, "new.json", report(model(flops_per_mac=2), flops_per_mac=2))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 0
    assert "different conventions" in out
    assert "flops_per_mac = 1" in out and "flops_per_mac = 2" in out
    assert "1 model compared: 1 unchanged" in out


def test_module_flops_are_turned_into_macs_with_each_reports_convention(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grown = {**FFN_MODULES, "fc3": 4096}
    old = write(tmp_path, "old.json", report(model(flops_per_mac=2), flops_per_mac=2))
    new = write(
        tmp_path,
        "new.json",
        report(model(macs=FFN_MACS + 2048, by_module=grown, flops_per_mac=1), flops_per_mac=1),
    )
    code, out, _ = run_main(capsys, "compare", old, new, "--json")
    assert code == 1
    (changed,) = json.loads(out)["models"]
    assert changed["modules"] == [{"path": "fc3", "before": 2048, "after": 4096, "delta": 2048}]


def test_only_the_deepest_changed_modules_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {"features": 900, "features.0": 100, "features.3": 800, "head": 50}
    after = {"features": 1000, "features.0": 100, "features.3": 900, "head": 50}
    old = write(tmp_path, "old.json", report(model(macs=950, by_module=before)))
    new = write(tmp_path, "new.json", report(model(macs=1050, by_module=after)))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 1
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  features")]
    assert listed == ["features.3"]


def test_each_model_lists_its_ten_largest_module_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {f"layer{i}": 1000 for i in range(12)}
    after = {f"layer{i}": 1000 + 10 * (i + 1) for i in range(12)}
    old = write(tmp_path, "old.json", report(model(macs=12_000, by_module=before)))
    new = write(tmp_path, "new.json", report(model(macs=12_780, by_module=after)))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 1
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("  layer")]
    assert listed == [f"layer{i}" for i in range(11, 1, -1)]
    assert "  ... and 2 more" in out


def test_rows_without_counts_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    error_row = {**model(name="Missing"), "flops": None, "macs": None, "params": None}
    error_row["status"] = "error"
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(), error_row))
    code, out, _ = run_main(capsys, "compare", old, new)
    assert code == 0
    assert "Missing" not in out
    assert "rows without counts skipped: 1 in" in out


def test_json_output_carries_every_model_and_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(macs=FFN_MACS * 2), model(name="Extra")))
    code, out, _ = run_main(capsys, "compare", old, new, "--json")
    data = json.loads(out)
    assert code == 1
    assert data["regressed"] is True
    assert [(m["name"], m["status"]) for m in data["models"]] == [
        ("FFN", "regressed"),
        ("Extra", "added"),
    ]
    assert data["models"][0]["macs"] == {
        "old": FFN_MACS,
        "new": 2 * FFN_MACS,
        "delta": FFN_MACS,
        "relative": 1.0,
    }


BAD_REPORTS = {
    "invalid JSON": ("{not json", "not valid JSON"),
    "a list": ("[]", "expected a JSON object, got a list"),
    "no version": (json.dumps({"results": []}), "no 'version'"),
    "another version": (json.dumps({**report(), "version": 2}), "unsupported report version 2"),
    "results not a list": (json.dumps({**report(), "results": {}}), "'results' must be a list"),
    "macs not a number": (
        json.dumps(report({**model(), "macs": "many"})),
        "results[0].macs: expected a non-negative integer or null",
    ),
    "no convention": (
        json.dumps({"version": 1, "results": []}),
        "'convention' must be an object",
    ),
}


@pytest.mark.parametrize("problem", list(BAD_REPORTS))
def test_a_broken_report_exits_two_naming_the_file_and_the_problem(
    tmp_path: Path, problem: str
) -> None:
    content, message = BAD_REPORTS[problem]
    old = write(tmp_path, "old.json", report(model()))
    bad = write(tmp_path, "broken.json", content)
    result = run_subprocess(tmp_path, "compare", old, bad)
    assert result.returncode == 2
    assert f"{bad}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_missing_report_exits_two_naming_the_file(tmp_path: Path) -> None:
    old = write(tmp_path, "old.json", report(model()))
    result = run_subprocess(tmp_path, "compare", old, tmp_path / "absent.json")
    assert result.returncode == 2
    assert f"{tmp_path / 'absent.json'}: no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_directory_given_as_a_report_exits_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model()))
    code, _, err = run_main(capsys, "compare", old, tmp_path)
    assert code == 2
    assert f"{tmp_path}: is a directory" in err


@pytest.mark.parametrize("tolerance", ["-0.1", "lots", "nan"])
def test_an_unreadable_tolerance_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tolerance: str
) -> None:
    old = write(tmp_path, "old.json", report(model()))
    code, _, err = run_main(capsys, "compare", old, old, "--tolerance", tolerance)
    assert code == 2
    assert "--tolerance" in err


def test_without_a_command_the_usage_is_printed_and_the_exit_is_two(tmp_path: Path) -> None:
    result = run_subprocess(tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: flopbudget")
    assert "compare" in result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["compare", "--help"]])
def test_help_describes_the_command_and_exits_zero(tmp_path: Path, argv: list[str]) -> None:
    result = run_subprocess(tmp_path, *argv)
    assert result.returncode == 0
    assert "usage: flopbudget" in result.stdout
    assert "compare" in result.stdout


def test_markdown_output_is_a_pull_request_comment_with_modules_folded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grown = {**FFN_MODULES, "fc2": FFN_MODULES["fc2"] + 1024}
    old = write(tmp_path, "old.json", report(model()))
    new = write(tmp_path, "new.json", report(model(macs=FFN_MACS + 1024, by_module=grown)))
    code, out, _ = run_main(capsys, "compare", old, new, "--markdown")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("### flopbudget compare:")
    header = "| test | name | MACs old -> new | delta | delta % | params old -> new | status |"
    assert header in lines
    row = next(line for line in lines if line.startswith(f"| {NODEID} "))
    # 1,054,720 -> 1,055,744 MACs: +1024 (+0.097%)
    assert "| +1.02 KMACs | +0.10% |" in row and row.endswith("| **REGRESSED** |")
    assert "<details>" in lines and "</details>" in lines
    summary = next(line for line in lines if line.startswith("<summary>"))
    assert summary == f"<summary>{NODEID} [FFN]: 1 module changed</summary>"
    assert "| `fc2` | 1.05 MMACs | 1.05 MMACs | +1.02 KMACs |" in lines
    assert code == run_main(capsys, "compare", old, new, "--format", "markdown")[0]


def test_json_and_format_json_print_the_same(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = write(tmp_path, "old.json", report(model()))
    assert (
        run_main(capsys, "compare", old, old, "--json")[1]
        == (run_main(capsys, "compare", old, old, "--format", "json")[1])
    )
