"""Fitting the summary table into the terminal: elide long ids, fold or drop secondary columns.

Numbers are never cut: a row that does not fit loses whole columns (in ``DROP_ORDER``) before
any value is split, and only free text (test ids, model names) is shortened, in the middle, so
the test function and its parameters stay readable. Pure functions of strings and widths, so
every rule is testable without a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

ELLIPSIS = "..."
GAP = "  "

# Secondary columns leave first (their values go to a continuation line under -v); the test,
# name, FLOPs, budget, used and status columns always stay.
DROP_ORDER = (
    "unknown ops",
    "ops",
    "backend",
    "source",
    "tolerance",
    "MACs",
    "vs baseline",
    "time",
    "memory",
    "params",
)
HARDWARE_SUFFIX = " >="  # hardware columns ("T4 fp16 >=") leave after "tolerance"
ELIDABLE = ("test", "name")
MIN_WIDTH = {"test": 16, "name": 8}
COMFORT_WIDTH = {"test": 40, "name": 16}


@dataclass(frozen=True)
class Layout:
    """Which columns are shown on the row, how wide, and which were moved off it.

    ``stacked``: the terminal is too narrow for one line per model even without the
    secondary columns, so each model takes a line for its test id and flowing lines for the
    rest.
    """

    columns: tuple[str, ...]
    widths: Mapping[str, int]
    folded: tuple[str, ...]  # columns moved to a continuation line (or left out when quiet)
    stacked: bool = False


def elide_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters by replacing its middle with an ellipsis."""
    if len(text) <= width:
        return text
    if width <= len(ELLIPSIS):
        return text[:width]
    keep = width - len(ELLIPSIS)
    head = keep // 2
    return text[:head] + ELLIPSIS + text[len(text) - (keep - head) :]


def elide_nodeid(nodeid: str, width: int) -> str:
    """Shorten a node id, keeping the test function and its parameters whole when they fit.

    ``tests/vision/backbones/test_resnet.py::TestWide::test_budget[224-fp32]`` becomes
    ``tests/vis...resnet.py::TestWide::test_budget[224-fp32]`` and, when narrower still,
    ``test_budget[224-fp32]`` with its own middle elided last.
    """
    if len(nodeid) <= width:
        return nodeid
    prefix, sep, last = nodeid.rpartition("::")
    room = width - len(last) - len(sep)
    if sep and room >= len(ELLIPSIS) + 4:
        return elide_middle(prefix, room) + sep + last
    return elide_middle(last, width)


def short_ids(nodeids: Iterable[str]) -> dict[str, str]:
    """The shortest suffix of each node id (at least the test function) that no other has.

    Under ``-q`` the table drops the file and class from ids, but two tests of the same name
    in two files must still read differently.
    """
    unique = sorted(set(nodeids))
    tokens = {nodeid: _tokens(nodeid) for nodeid in unique}
    shortest: dict[str, str] = {}
    for nodeid in unique:
        own = tokens[nodeid]
        for count in range(1, len(own) + 1):
            suffix = own[-count:]
            if all(other == nodeid or tokens[other][-count:] != suffix for other in unique):
                break
        shortest[nodeid] = "".join(suffix).lstrip("/:")
    return shortest


def _tokens(nodeid: str) -> list[str]:
    """``a/b.py::C::f`` -> ``["a", "/b.py", "::C", "::f"]``: suffixes join back into text."""
    path, *parts = nodeid.split("::")
    directories = path.split("/")
    tokens = [directories[0], *("/" + part for part in directories[1:])]
    return tokens + ["::" + part for part in parts] if parts else tokens


def fit(
    columns: Sequence[str], rows: Sequence[Mapping[str, str]], width: int
) -> tuple[Layout, list[dict[str, str]]]:
    """Choose the columns and elide the free-text cells so each row fits in ``width``.

    First the test and name columns shrink to a comfortable width, then secondary columns
    fold away in ``DROP_ORDER``, then test and name shrink to their minimum; if a row still
    does not fit, the table is stacked. Slack left over goes back to the test column.
    """
    shown = list(columns)
    cells = [dict(row) for row in rows]
    natural = {c: max(len(c), *(len(row.get(c, "-")) for row in cells)) for c in columns}
    widths = dict(natural)

    def excess() -> int:
        return sum(widths[c] for c in shown) + len(GAP) * (len(shown) - 1) - width

    def shrink(floor: Mapping[str, int]) -> None:
        for column in ELIDABLE:
            if excess() > 0 and column in shown:
                least = min(max(floor[column], len(column)), widths[column])
                widths[column] = max(least, widths[column] - excess())

    folded: list[str] = []
    shrink(COMFORT_WIDTH)
    for column in _drop_order(shown):
        if excess() <= 0:
            break
        shown.remove(column)
        folded.append(column)
    shrink(MIN_WIDTH)
    if excess() > 0:
        layout = Layout(tuple(shown), dict(natural), tuple(folded), stacked=True)
        for row in cells:
            row["test"] = elide_nodeid(row.get("test", "-"), width)
        return layout, cells
    for column in ELIDABLE:  # give back what folding freed
        if column in shown and excess() < 0:
            widths[column] = min(natural[column], widths[column] - excess())
    for row in cells:
        if "test" in shown:
            row["test"] = elide_nodeid(row.get("test", "-"), widths["test"])
        if "name" in shown:
            row["name"] = elide_middle(row.get("name", "-"), widths["name"])
    return Layout(tuple(shown), {c: widths[c] for c in shown}, tuple(folded)), cells


def _drop_order(shown: Sequence[str]) -> list[str]:
    hardware = [c for c in shown if c.endswith(HARDWARE_SUFFIX)]
    order: list[str] = []
    for column in DROP_ORDER:
        if column == "MACs":
            order += hardware
        if column in shown:
            order.append(column)
    return order


def continuation(row: Mapping[str, str], folded: Sequence[str], width: int) -> list[str]:
    """The folded columns of one row as indented ``column: value`` lines within ``width``."""
    indent = "    "
    items = [f"{column}: {row.get(column, '-')}" for column in folded]
    lines: list[str] = []
    current = ""
    for item in items:
        item = elide_middle(item, width - len(indent))
        candidate = f"{current}{GAP}{item}" if current else item
        if current and len(indent) + len(candidate) > width:
            lines.append(indent + current)
            candidate = item
        current = candidate
    if current:
        lines.append(indent + current)
    return lines


def wrap(text: str, width: int, indent: str = "  ") -> list[str]:
    """A note as lines within ``width``, broken between words only; a word longer than a
    line (a node id) is elided in its middle rather than split."""
    room = max(width - len(indent), len(ELLIPSIS) + 2)
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        word = elide_middle(word, room)
        limit = room if lines else width
        candidate = f"{current} {word}" if current else word
        if current and len(candidate) > limit:
            lines.append(current)
            current = word
        else:
            current = candidate
    lines.append(current)
    return [lines[0], *(indent + line for line in lines[1:])]
