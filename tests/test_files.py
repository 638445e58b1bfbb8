"""The file writer: users' files keep their kind, links, mode, owner and bytes."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_flopbudget.reports.files import (
    ForeignFileError,
    backup_path,
    check_ours,
    is_stream,
    keep_line_endings,
    write_atomically,
)
from pytest_flopbudget.reports.locking import LOCK_NAME, locked


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def _others(directory: Path, *names: str) -> list[str]:
    """What the writer left in ``directory`` besides the files the test made."""
    return sorted(set(os.listdir(directory)) - set(names))


def test_a_symlinked_file_has_its_target_edited_and_stays_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "shared" / "pyproject.toml"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "pyproject.toml"
    link.symlink_to(Path("shared") / "pyproject.toml")

    write_atomically(link, "new\n")

    assert link.is_symlink()
    assert os.readlink(link) == str(Path("shared") / "pyproject.toml")
    assert real.read_text() == "new\n"
    assert _others(real.parent, "pyproject.toml") == []  # written aside of the target, not the link
    assert _others(tmp_path, "pyproject.toml", "shared") == []


def test_a_hard_linked_file_is_rewritten_in_place_so_every_link_sees_it(tmp_path: Path) -> None:
    first = tmp_path / "flopbudget.json"
    first.write_text("old content, longer than the new\n")
    second = tmp_path / "copy.json"
    os.link(first, second)
    inode = first.stat().st_ino

    write_atomically(first, "new\n")

    assert first.stat().st_ino == inode
    assert second.read_text() == "new\n"
    assert first.stat().st_nlink == 2
    assert _others(tmp_path, "flopbudget.json", "copy.json") == []


def test_an_interrupted_in_place_write_is_undone_before_the_next_update(tmp_path: Path) -> None:
    target = tmp_path / "flopbudget.json"
    target.write_text('{"ha')  # what a kill in the middle of an in-place write leaves
    os.link(target, tmp_path / "copy.json")
    backup_path(target).write_text('{"complete": true}\n')

    with locked(target):
        assert target.read_text() == '{"complete": true}\n'

    assert (tmp_path / "copy.json").read_text() == '{"complete": true}\n'
    assert not backup_path(target).exists()


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "pyproject.toml"
    target.write_text("old\n")
    target.chmod(0o640)

    write_atomically(target, "new\n")

    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_the_mode_the_umask_gives(
    tmp_path: Path, umask: None, mask: int, mode: int
) -> None:
    os.umask(mask)
    target = tmp_path / "report.json"

    write_atomically(target, "{}\n")

    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_a_fifo_is_written_into_and_stays_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()

    write_atomically(fifo, "## flop budget\n")
    reader.join(timeout=30)

    assert received == [b"## flop budget\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert _others(tmp_path, "report.fifo") == []


def test_dev_null_is_written_into_not_replaced(dev_null: Path) -> None:
    assert is_stream(dev_null)
    write_atomically(dev_null, "{}\n")
    assert stat.S_ISCHR(os.stat(dev_null).st_mode)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
def test_a_path_through_proc_is_appended_to_even_when_it_names_a_regular_file(
    tmp_path: Path,
) -> None:
    """``--flop-budget-json=/dev/stdout`` with stdout redirected to a file: pytest's own output
    in that file stays, the report follows it."""
    output = tmp_path / "out.txt"
    with output.open("w") as stream:
        stream.write("pytest output\n")
        stream.flush()
        inode = output.stat().st_ino
        through_proc = Path(f"/proc/self/fd/{stream.fileno()}")
        assert is_stream(through_proc)
        write_atomically(through_proc, "{}\n")

    assert output.read_text() == "pytest output\n{}\n"
    assert output.stat().st_ino == inode


def test_a_temporary_file_of_a_killed_run_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "flopbudget.json"
    dead = 2**22 + 12345  # above the default pid_max: no such process
    leftover = tmp_path / f".flopbudget.json.flopbudget-{dead}-0badc0de.tmp"
    leftover.write_text('{"half')
    ours_in_flight = tmp_path / f".flopbudget.json.flopbudget-{os.getppid()}-00000000.tmp"
    ours_in_flight.write_text("another live process writing")

    write_atomically(target, "{}\n")

    assert not leftover.exists()
    assert ours_in_flight.exists()  # its writer is alive: not ours to remove


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "pyproject.toml"
    target.write_text("old\n")

    def broken_replace(source: object, destination: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C between the write aside and the rename

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(target, "new\n")

    assert target.read_text() == "old\n"
    assert _others(tmp_path, "pyproject.toml") == []


def test_the_lock_lives_beside_the_target_of_a_symlink(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "pyproject.toml").write_text("")
    (tmp_path / "pyproject.toml").symlink_to(tmp_path / "real" / "pyproject.toml")

    with locked(tmp_path / "pyproject.toml"):
        assert (tmp_path / "real" / LOCK_NAME).exists()


def test_a_foreign_file_at_a_report_path_is_refused(tmp_path: Path) -> None:
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "data"}\n')

    with pytest.raises(
        ForeignFileError,
        match=r"--flop-budget-json=x: .*notes.json exists and is not a JSON report",
    ):
        check_ours(notes, "--flop-budget-json=x", "JSON report", lambda content: False)

    (tmp_path / "empty.json").write_text("")
    check_ours(tmp_path / "empty.json", "x", "JSON report", lambda content: False)
    check_ours(tmp_path / "absent.json", "x", "JSON report", lambda content: False)
    check_ours(Path("/dev/zero"), "x", "JSON report", lambda content: False)  # a device


# --- properties ---------------------------------------------------------------------------


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    old=st.one_of(st.none(), st.binary(max_size=300)),
    new=st.binary(max_size=300),
    mode=st.sampled_from([0o600, 0o640, 0o644, 0o664, 0o755]),
    links=st.sampled_from(["plain", "symlink", "hardlink"]),
)
def test_any_bytes_round_trip_with_mode_and_links_kept(
    tmp_path_factory: pytest.TempPathFactory, old: bytes | None, new: bytes, mode: int, links: str
) -> None:
    directory = tmp_path_factory.mktemp("roundtrip")
    target = directory / "file"
    path = target
    if old is not None:
        target.write_bytes(old)
        target.chmod(mode)
        if links == "symlink":
            path = directory / "link"
            path.symlink_to(target)
        elif links == "hardlink":
            os.link(target, directory / "other")
    names = set(os.listdir(directory))

    write_atomically(path, new)

    assert target.read_bytes() == new
    assert set(os.listdir(directory)) == names | {"file"}
    if old is not None:
        assert stat.S_IMODE(target.stat().st_mode) == mode
        assert path.is_symlink() == (links == "symlink")
        if links == "hardlink":
            assert (directory / "other").read_bytes() == new


_LINE = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029§",
    ),
    max_size=12,
)
_ENDING = st.sampled_from(["\r\n", "\n"])


@settings(max_examples=100, deadline=None)
@given(
    lines=st.lists(st.tuples(_LINE, _ENDING), min_size=1, max_size=12),
    inserted=st.lists(st.tuples(st.integers(0, 12), _LINE), max_size=4),
    final_newline=st.booleans(),
)
def test_unchanged_lines_keep_their_bytes_and_new_lines_take_the_usual_ending(
    lines: list[tuple[str, str]], inserted: list[tuple[int, str]], final_newline: bool
) -> None:
    original_lines = [text + ending for text, ending in lines]
    if not final_newline:
        original_lines[-1] = lines[-1][0]
    original = "".join(original_lines)
    # what tomlkit does: new lines end in "\n", everything else is as it was
    edited_lines = list(original_lines)
    for position, text in sorted(inserted, reverse=True):
        edited_lines.insert(min(position, len(edited_lines) - 1), f"§ = {text!r}\n")
    edited = "".join(edited_lines)

    result = keep_line_endings(original, edited)

    crlf = original.count("\r\n")
    mostly_crlf = crlf > original.count("\n") - crlf
    expected = [
        line if line in original_lines or not mostly_crlf else line[:-1] + "\r\n"
        for line in edited_lines
    ]
    assert result == "".join(expected)
    if not inserted:
        assert result == original


def test_an_update_keeps_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    from pytest_flopbudget.budgets.config import Settings
    from pytest_flopbudget.budgets.record import TestRecord
    from pytest_flopbudget.budgets.verdict import NO_BUDGET, Verdict
    from pytest_flopbudget.reports.update import update_pyproject

    original = b"\xef\xbb\xbf[project]\r\nname = 'demo'\r\n"
    path = tmp_path / "pyproject.toml"
    path.write_bytes(original)
    # Linear(4, 8) on one row: 32 MACs, 40 params
    verdict = Verdict("t.py::test_a", "Linear", NO_BUDGET, flops=32, macs=32, params=40)

    update_pyproject(path, [TestRecord("t.py::test_a", 0, [], [verdict])], Settings())

    written = path.read_bytes()
    assert written.startswith(original)
    assert written.count(b"\n") == written.count(b"\r\n")
    assert b'"t.py::test_a" = "32 FLOPs, 40 params"\r\n' in written
