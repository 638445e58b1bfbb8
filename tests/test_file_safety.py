"""Users' files through the plugin: one file never plays two roles, and edits keep every byte."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"
"""

# Linear(4, 8) on one row: 4 * 8 = 32 MACs (= FLOPs, fvcore's convention); 4 * 8 + 8 = 40 params.
# Linear(4, 16): 64 MACs, 80 params.
TESTS = """
import torch

def test_net(flops):
    flops(torch.nn.Linear(4, 8), torch.randn(1, 4))

def test_wide(flops):
    flops(torch.nn.Linear(4, 16), torch.randn(1, 4))
"""


@pytest.fixture
def counted(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_net=TESTS)
    return pytester


def _refused(result: pytest.RunResult, *fragments: str) -> None:
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    message = result.stderr.str()
    for fragment in fragments:
        assert fragment in message, message


# --- one file, one role ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "pyproject.toml",
        "{root}/pyproject.toml",
        "sub/../pyproject.toml",
        "symlink.toml",
        "hard.toml",
    ],
)
def test_a_json_report_over_the_pyproject_is_refused_at_start_up(
    counted: pytest.Pytester, spelling: str
) -> None:
    (counted.path / "sub").mkdir()
    (counted.path / "symlink.toml").symlink_to(counted.path / "pyproject.toml")
    os.link(counted.path / "pyproject.toml", counted.path / "hard.toml")
    before = (counted.path / "pyproject.toml").read_bytes()

    result = counted.runpytest(f"--flop-budget-json={spelling.format(root=counted.path)}")

    _refused(
        result,
        "--flop-budget-json=",
        "the pyproject.toml holding [tool.flopbudget]",
        "are the same file",
    )
    assert (counted.path / "pyproject.toml").read_bytes() == before
    result.stdout.no_fnmatch_line("*passed*")  # refused before any test ran


def test_a_json_report_over_the_baseline_is_refused(counted: pytest.Pytester) -> None:
    counted.runpytest("--flop-budget-update").assert_outcomes(passed=2)
    baseline = (counted.path / "flopbudget.json").read_bytes()

    result = counted.runpytest("--flop-budget-json=flopbudget.json")

    _refused(result, "[tool.flopbudget] baseline", "--flop-budget-json=", "are the same file")
    assert (counted.path / "flopbudget.json").read_bytes() == baseline


def test_a_baseline_that_is_the_pyproject_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", pyproject=PYPROJECT.replace("flopbudget.json", "./pyproject.toml"))
    pytester.makepyfile(test_net=TESTS)
    before = (pytester.path / "pyproject.toml").read_bytes()

    result = pytester.runpytest("--flop-budget-update")

    _refused(
        result, "the pyproject.toml holding", "[tool.flopbudget] baseline", "are the same file"
    )
    assert (pytester.path / "pyproject.toml").read_bytes() == before


def test_the_json_report_and_the_markdown_summary_must_differ(counted: pytest.Pytester) -> None:
    result = counted.runpytest("--flop-budget-json=out", "--flop-budget-markdown=./out")
    _refused(result, "--flop-budget-json=", "--flop-budget-markdown=", "are the same file")


def test_a_markdown_summary_over_the_github_step_summary_is_refused(
    counted: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = counted.path / "step_summary.md"
    summary.write_text("earlier steps\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    result = counted.runpytest(f"--flop-budget-markdown={summary}")

    _refused(result, "$GITHUB_STEP_SUMMARY", "--flop-budget-markdown=", "are the same file")
    assert summary.read_text() == "earlier steps\n"


def test_dev_null_may_take_both_reports_and_stays_a_device(
    counted: pytest.Pytester, dev_null: Path
) -> None:
    result = counted.runpytest("--flop-budget-json=/dev/null", "--flop-budget-markdown=/dev/null")
    result.assert_outcomes(passed=2)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_gets_the_json_report_written_into_it(counted: pytest.Pytester) -> None:
    import threading

    fifo = counted.path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()

    counted.runpytest(f"--flop-budget-json={fifo}").assert_outcomes(passed=2)
    reader.join(timeout=60)

    report = json.loads(received[0])
    assert [(row["nodeid"], row["macs"]) for row in report["results"]] == [
        ("test_net.py::test_net", 32),
        ("test_net.py::test_wide", 64),
    ]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


# --- never replace a file we did not write ----------------------------------------------------


def test_a_json_report_path_naming_someone_elses_file_is_refused(counted: pytest.Pytester) -> None:
    data = counted.path / "data.json"
    data.write_text('{"weights": [1, 2, 3]}\n')

    result = counted.runpytest(f"--flop-budget-json={data}")

    _refused(
        result,
        f"--flop-budget-json={data}",
        "exists and is not a JSON report written by pytest-flopbudget",
    )
    assert data.read_text() == '{"weights": [1, 2, 3]}\n'


def test_a_markdown_path_naming_someone_elses_file_is_refused(counted: pytest.Pytester) -> None:
    notes = counted.path / "README.md"
    notes.write_text("# My project\n")

    result = counted.runpytest("--flop-budget-markdown=README.md")

    _refused(
        result, "--flop-budget-markdown=", "is not a Markdown summary written by pytest-flopbudget"
    )
    assert notes.read_text() == "# My project\n"


def test_our_own_reports_and_empty_files_are_replaced_run_after_run(
    counted: pytest.Pytester,
) -> None:
    (counted.path / "report.md").write_text("")  # mktemp, touch: nothing to lose
    for _ in range(2):
        result = counted.runpytest(
            "--flop-budget-json=report.json", "--flop-budget-markdown=report.md"
        )
        result.assert_outcomes(passed=2)
    assert json.loads((counted.path / "report.json").read_text())["version"] == 1
    assert (counted.path / "report.md").read_text().startswith("## flop budget\n")


# --- edits keep what they did not mean to change ----------------------------------------------

CRLF_PYPROJECT = (
    b"[tool.pytest.ini_options]\r\n"
    b'pythonpath = ["."]\r\n'
    b"\r\n"
    b"[tool.flopbudget]\r\n"
    b"[tool.flopbudget.budgets]\r\n"
    b'"test_net.py::test_net" = "1 FLOPs, 1 params"  # keep this comment\r\n'
    b'"test_net.py::test_wide" = "2 FLOPs, 2 params"'  # no final newline
)


def test_a_crlf_pyproject_keeps_its_line_endings_and_every_other_byte(
    pytester: pytest.Pytester,
) -> None:
    (pytester.path / "pyproject.toml").write_bytes(CRLF_PYPROJECT)
    pytester.makepyfile(test_net=TESTS)

    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=2)

    assert (pytester.path / "pyproject.toml").read_bytes() == CRLF_PYPROJECT.replace(
        b"1 FLOPs, 1 params", b"32 FLOPs, 40 params"
    ).replace(b"2 FLOPs, 2 params", b"64 FLOPs, 80 params")


def test_new_entries_in_a_crlf_pyproject_end_in_crlf(pytester: pytest.Pytester) -> None:
    original = PYPROJECT.replace('baseline = "flopbudget.json"\n', "# budgets below\n")
    (pytester.path / "pyproject.toml").write_bytes(original.replace("\n", "\r\n").encode())
    pytester.makepyfile(test_net=TESTS)

    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=2)

    written = (pytester.path / "pyproject.toml").read_bytes()
    assert written.startswith(original.replace("\n", "\r\n").encode())
    assert b'"test_net.py::test_net" = "32 FLOPs, 40 params"\r\n' in written
    assert written.count(b"\n") == written.count(b"\r\n")


def test_a_symlinked_pyproject_and_baseline_have_their_targets_edited(
    pytester: pytest.Pytester,
) -> None:
    shared = pytester.path / "shared"
    shared.mkdir()
    (shared / "pyproject.toml").write_text(PYPROJECT)
    (shared / "flopbudget.json").write_text('{"version": 1, "unit": "MACs", "tests": {}}\n')
    (pytester.path / "pyproject.toml").symlink_to(Path("shared") / "pyproject.toml")
    (pytester.path / "flopbudget.json").symlink_to(Path("shared") / "flopbudget.json")
    pytester.makepyfile(test_net=TESTS)

    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=2)

    assert (pytester.path / "pyproject.toml").is_symlink()
    assert (
        '"test_net.py::test_net" = "32 FLOPs, 40 params"' in (shared / "pyproject.toml").read_text()
    )
    tests = json.loads((shared / "flopbudget.json").read_text())["tests"]
    assert tests["test_net.py::test_net"]["Linear"]["macs"] == 32


def test_a_hard_linked_baseline_stays_linked(counted: pytest.Pytester) -> None:
    baseline = counted.path / "flopbudget.json"
    baseline.write_text('{"version": 1, "unit": "MACs", "tests": {}}\n')
    os.link(baseline, counted.path / "published.json")

    counted.runpytest("--flop-budget-update").assert_outcomes(passed=2)

    assert baseline.stat().st_nlink == 2
    published = json.loads((counted.path / "published.json").read_text())
    assert published["tests"]["test_net.py::test_wide"]["Linear"]["macs"] == 64


def test_new_files_follow_the_umask_and_existing_files_keep_their_mode(
    counted: pytest.Pytester,
) -> None:
    old_mask = os.umask(0o022)
    try:
        (counted.path / "pyproject.toml").chmod(0o664)
        counted.runpytest("--flop-budget-update", "--flop-budget-json=report.json").assert_outcomes(
            passed=2
        )
    finally:
        os.umask(old_mask)

    assert stat.S_IMODE((counted.path / "flopbudget.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((counted.path / "report.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((counted.path / "pyproject.toml").stat().st_mode) == 0o664
