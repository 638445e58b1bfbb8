"""Updates killed at random moments (SIGKILL, Ctrl-C) leave every file old or new, and complete.

The first test sends many signals to processes that run the update's writers in a loop (the
same code ``--flop-budget-update`` runs at the end of a session, without pytest's and torch's
start-up, so that most signals land while a file is being written). The second sends them to
real ``pytest --flop-budget-update`` runs, at the moment they start writing.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pytest_flopbudget.budgets import baseline as baseline_file
from pytest_flopbudget.reports.locking import LOCK_NAME

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

KILLS = 40

# A CRLF pyproject with a comment and another table: all of it must survive every kill.
PYPROJECT = (
    '[project]\r\nname = "demo"  # a comment that stays\r\n\r\n'
    '[tool.flopbudget]\r\nbaseline = "flopbudget.json"\r\n\r\n'
    "[tool.flopbudget.budgets]\r\n"
)

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from pytest_flopbudget.budgets.baseline import BaselineEntry
    from pytest_flopbudget.budgets.config import Settings
    from pytest_flopbudget.budgets.record import TestRecord
    from pytest_flopbudget.budgets.verdict import NO_BUDGET, Verdict
    from pytest_flopbudget.reports.update import update_pyproject, write_baseline

    root, worker = Path(sys.argv[1]), sys.argv[2]
    nodeid = f"test_kill.py::test_{worker}"
    for i in range(1, 1_000_000):
        verdict = Verdict(nodeid, "Net", NO_BUDGET, flops=i, macs=i, params=i)
        update_pyproject(root / "pyproject.toml", [TestRecord(nodeid, 0, [], [verdict])], Settings())
        entry = BaselineEntry(i, i, {"fc": i})
        write_baseline(root / "flopbudget.json", lambda now: {**now.entries, (nodeid, "Net"): entry})
        print(i, flush=True)
    """
)


class Writer:
    def __init__(self, script: Path, root: Path, worker: str) -> None:
        self.worker = worker
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(root), worker],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def stop(self, signum: int) -> bool:
        """Signal it, wait; whether it completed at least one update of both files."""
        self.process.send_signal(signum)
        self.process.wait(timeout=60)
        self.reader.join(timeout=30)
        return bool(self.lines)


def _nodeid(worker: str) -> str:
    return f"test_kill.py::test_{worker}"


def _assert_complete(root: Path, confirmed: list[str]) -> None:
    """Both files parse, keep every byte around the budgets, and hold every confirmed update."""
    text = (root / "pyproject.toml").read_bytes().decode()
    assert text.startswith(PYPROJECT)
    assert text.count("\n") == text.count("\r\n")
    budgets = tomllib.loads(text)["tool"]["flopbudget"]["budgets"]
    baseline = baseline_file.load(root / "flopbudget.json")
    for worker in confirmed:
        assert _nodeid(worker) in budgets
        assert baseline.get(_nodeid(worker), "Net") is not None


def _temporaries(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root) if ".flopbudget-" in name)


def test_writers_killed_at_random_moments_leave_complete_files_and_lose_no_update(
    tmp_path: Path,
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_bytes(PYPROJECT.encode())
    chance = random.Random(20240609)
    confirmed: list[str] = []
    running = [Writer(script, root, "w0"), Writer(script, root, "w1")]
    interrupted_cleanly = 0
    for kill in range(KILLS):
        time.sleep(chance.uniform(0.05, 0.6))
        victim = running.pop(chance.randrange(len(running)))
        signum = chance.choice([signal.SIGKILL, signal.SIGINT])
        pid = victim.process.pid
        if victim.stop(signum):
            confirmed.append(victim.worker)
        if signum == signal.SIGINT:
            # Ctrl-C runs the clean-up: no temporary file of that process stays
            assert not [name for name in _temporaries(root) if f"-{pid}-" in name]
            interrupted_cleanly += 1
        _assert_complete(root, confirmed)
        running.append(Writer(script, root, f"w{kill + 2}"))
    for writer in running:
        if writer.stop(signal.SIGINT):
            confirmed.append(writer.worker)

    # the next update removes what SIGKILL left; only the lock file stays
    finish = Writer(script, root, "last")
    deadline = time.monotonic() + 120
    while not finish.lines and time.monotonic() < deadline:
        time.sleep(0.05)
    assert finish.stop(signal.SIGINT)
    _assert_complete(root, [*confirmed, "last"])
    assert _temporaries(root) == []
    assert sorted(os.listdir(root)) == sorted(["pyproject.toml", "flopbudget.json", LOCK_NAME])
    assert interrupted_cleanly > 0


PROJECT_PYPROJECT = """\
[tool.pytest.ini_options]
pythonpath = ["."]

[tool.flopbudget]
baseline = "flopbudget.json"
"""

CONFTEST = """
import sys
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    print("SESSION FINISHING", flush=True)  # the plugin writes its files right after this
"""

TESTS = """
import torch

def test_net(flops):
    flops(torch.nn.Linear(4, 8), torch.randn(1, 4))
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_update_runs_killed_while_writing_leave_complete_files(
    pytester: pytest.Pytester, signum: int
) -> None:
    pytester.makefile(".toml", pyproject=PROJECT_PYPROJECT)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_net=TESTS)
    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)  # the old files
    old_pyproject = (pytester.path / "pyproject.toml").read_bytes()
    old_baseline = (pytester.path / "flopbudget.json").read_bytes()
    pytester.makepyfile(test_net=TESTS.replace("Linear(4, 8)", "Linear(4, 16)"))
    chance = random.Random(int(signum))

    for _ in range(2):
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--flop-budget-update"],
            cwd=pytester.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            if "SESSION FINISHING" in line:
                break
        time.sleep(chance.uniform(0.0, 0.05))
        process.send_signal(signum)
        process.communicate(timeout=120)

        pyproject = (pytester.path / "pyproject.toml").read_bytes()
        assert pyproject == old_pyproject or b'"64 FLOPs, 80 params"' in pyproject
        tomllib.loads(pyproject.decode())
        baseline = (pytester.path / "flopbudget.json").read_bytes()
        assert baseline == old_baseline or json.loads(baseline)["tests"]["test_net.py::test_net"]
        baseline_file.load(pytester.path / "flopbudget.json")

    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    assert not [name for name in os.listdir(pytester.path) if ".flopbudget-" in name]
