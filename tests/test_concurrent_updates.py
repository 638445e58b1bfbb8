"""Two ``--flop-budget-update`` runs at once: each waits for the other's lock, none loses an update."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"
"""

# Linear(4, 8) on one row: 32 MACs, 40 params; Linear(4, 16): 64 MACs, 80 params.
TEST_A = """
import torch

def test_a(flops):
    flops(torch.nn.Linear(4, 8), torch.randn(1, 4))
"""
TEST_B = TEST_A.replace("test_a", "test_b").replace("Linear(4, 8)", "Linear(4, 16)")
WAITING = "another run is updating"


class Run:
    """One ``pytest --flop-budget-update`` process, its output read as it comes."""

    def __init__(self, root: Path, *args: str) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--flop-budget-update",
                *args,
            ],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def finish(self) -> int:
        code = self.process.wait(timeout=300)
        self.reader.join(timeout=30)
        return code

    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def two_tests(pytester: pytest.Pytester) -> Path:
    pytester.makefile(".toml", pyproject=PYPROJECT)
    pytester.makepyfile(test_a=TEST_A, test_b=TEST_B)
    return pytester.path


def _assert_both_updates_kept(root: Path) -> None:
    budgets = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["flopbudget"]["budgets"]
    assert budgets == {
        "test_a.py::test_a": "32 FLOPs, 40 params",
        "test_b.py::test_b": "64 FLOPs, 80 params",
    }
    tests = json.loads((root / "flopbudget.json").read_text())["tests"]
    assert {nodeid: entry["Linear"]["macs"] for nodeid, entry in tests.items()} == {
        "test_a.py::test_a": 32,
        "test_b.py::test_b": 64,
    }
    leftovers = [name for name in os.listdir(root) if ".flopbudget-" in name]
    assert leftovers == []


def _reset(root: Path) -> None:
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "flopbudget.json").unlink(missing_ok=True)


def test_a_run_waits_for_the_lock_says_so_and_then_merges(two_tests: Path) -> None:
    """Both runs are made to reach their write while the other's is pending: a test holds the
    lock until both say they are waiting, then lets them go."""
    holder = FileLock(str(two_tests / ".flopbudget.lock"))
    holder.acquire()
    try:
        runs = [Run(two_tests, "test_a.py"), Run(two_tests, "test_b.py")]
        deadline = time.monotonic() + 240
        while not all(run.said(WAITING) for run in runs):
            if time.monotonic() > deadline or any(run.process.poll() is not None for run in runs):
                pytest.fail(
                    "both runs should wait for the lock:\n" + "\n".join(r.output() for r in runs)
                )
            time.sleep(0.1)
    finally:
        holder.release()

    for run in runs:
        assert run.finish() == 0, run.output()
        assert f"waiting up to 120 s for its lock {two_tests / '.flopbudget.lock'}" in run.output()
    _assert_both_updates_kept(two_tests)


@pytest.mark.parametrize("attempt", range(2))
def test_two_update_runs_started_together_keep_both_updates(two_tests: Path, attempt: int) -> None:
    _reset(two_tests)
    runs = [Run(two_tests, "test_a.py"), Run(two_tests, "test_b.py")]
    for run in runs:
        assert run.finish() == 0, run.output()
    _assert_both_updates_kept(two_tests)


def test_a_lock_held_too_long_fails_the_run_and_writes_nothing(
    two_tests: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPBUDGET_LOCK_TIMEOUT", "0.5")
    before = (two_tests / "pyproject.toml").read_bytes()
    holder = FileLock(str(two_tests / ".flopbudget.lock"))
    with holder:
        run = Run(two_tests, "test_a.py")
        code = run.finish()

    assert code == pytest.ExitCode.TESTS_FAILED, run.output()
    assert "another run held the lock" in run.output()
    assert "set FLOPBUDGET_LOCK_TIMEOUT (seconds)" in run.output()
    assert (two_tests / "pyproject.toml").read_bytes() == before
    assert not (two_tests / "flopbudget.json").exists()
