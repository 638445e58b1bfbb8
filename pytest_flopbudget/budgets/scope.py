"""What a run proves: which tests ran to completion, and whether it covered the whole suite.

Budgets and baseline entries are removed only on proof (see stale.py), and an update takes
numbers only from tests that ran to completion. Both questions are answered here, from what
was collected and what ran, not from a list of command-line flags: a conftest hook or a
plugin (pytest-split, pytest-shard) that drops items narrows the run just as ``-k`` does.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath

SKIPPED = "skipped"
XFAILED = "xfailed"
FAILED = "failed"
SETUP_ERROR = "error in setup"
DID_NOT_FINISH = "did not finish"
NOT_RUN = "not run"
NOT_IN_RUN = "not in this run"


@dataclass(frozen=True)
class Phases:
    """The outcomes of one attempt of one test, as its reports give them.

    ``body_passed`` is set when the test's own code passed and only its budget failed it.
    """

    setup: str | None = None
    call: str | None = None
    body_passed: bool = False

    def why_not_completed(self) -> str | None:
        """None when the test body ran to its end; otherwise why it did not."""
        if self.setup is None:
            return NOT_RUN
        if self.setup == "skipped":
            return SKIPPED
        if self.setup != "passed":
            return SETUP_ERROR
        if self.call is None:
            return DID_NOT_FINISH
        if self.call == "passed" or self.body_passed:
            return None
        if self.call == "xfailed":
            return XFAILED
        if self.call == "skipped":
            return SKIPPED
        return FAILED


@dataclass(frozen=True)
class CollectionFacts:
    """What collection gave, on one process (each xdist worker sends its own)."""

    collected: tuple[str, ...] = ()
    counting: tuple[str, ...] = ()  # tests that use `flops` or carry a budget
    dropped: int = 0  # removed while items were modified, or reported deselected
    errors: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "collected": list(self.collected),
            "counting": list(self.counting),
            "dropped": self.dropped,
            "errors": self.errors,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> CollectionFacts:
        def ids(key: str) -> tuple[str, ...]:
            value = data.get(key, ())
            return tuple(str(item) for item in value) if isinstance(value, (list, tuple)) else ()

        def number(key: str) -> int:
            value = data.get(key, 0)
            return value if isinstance(value, int) else 0

        return cls(ids("collected"), ids("counting"), number("dropped"), number("errors"))

    @classmethod
    def merged(cls, facts: Iterable[CollectionFacts]) -> CollectionFacts:
        """Workers collect the same suite; whatever one of them lost is lost."""
        facts = list(facts)
        collected = dict.fromkeys(nodeid for fact in facts for nodeid in fact.collected)
        counting = dict.fromkeys(nodeid for fact in facts for nodeid in fact.counting)
        return cls(
            tuple(collected),
            tuple(counting),
            max((fact.dropped for fact in facts), default=0),
            max((fact.errors for fact in facts), default=0),
        )


@dataclass(frozen=True)
class RunScope:
    """The proof a run gives.

    ``completed``: tests whose body ran to its end (passed, apart from their budget), so
    whatever they did not record, they no longer record. ``narrowed``: why the run did not
    cover the whole suite (empty: it did). ``no_write``: why this run may not write budgets
    or a baseline at all (collection errors, an interrupted run, collecting only).
    """

    collected: frozenset[str] = frozenset()
    counting: frozenset[str] = frozenset()
    completed: frozenset[str] = frozenset()
    why_not: Mapping[str, str] = field(default_factory=dict)
    narrowed: tuple[str, ...] = ()
    no_write: str | None = None

    @property
    def complete(self) -> bool:
        """Every test of the suite was collected and the run went to its end."""
        return not self.narrowed and self.no_write is None

    def why_not_completed(self, nodeid: str) -> str:
        return self.why_not.get(nodeid, NOT_IN_RUN)

    def takes_numbers_from(self, nodeid: str, *, failed_too: bool = False) -> bool:
        """An update takes a test's counts only if its own code passed (or the user says so)."""
        if nodeid in self.completed:
            return True
        return failed_too and self.why_not.get(nodeid) in (FAILED, XFAILED)


def build_scope(
    facts: CollectionFacts,
    attempts: Mapping[str, Phases],
    *,
    narrowed_by: Sequence[str] = (),
    only_collects: str | None = None,
    interrupted: str | None = None,
) -> RunScope:
    """The scope from collection facts and each test's final attempt.

    ``narrowed_by``: what the arguments chose (a path, a node id, --ignore, --lf);
    ``only_collects``: the option that ran no test (--collect-only, --setup-only, ...);
    ``interrupted``: why the run stopped early (Ctrl-C, -x, --maxfail).
    """
    completed: set[str] = set()
    why_not: dict[str, str] = {}
    for nodeid in (*facts.collected, *attempts):
        reason = attempts.get(nodeid, Phases()).why_not_completed()
        if reason is None:
            completed.add(nodeid)
        else:
            why_not[nodeid] = reason
    narrowed = list(narrowed_by)
    if facts.dropped:
        narrowed.append(f"{facts.dropped} collected tests deselected")
    if not facts.collected:
        narrowed.append("no tests collected")
    no_write = None
    never_ran = [nodeid for nodeid in facts.collected if nodeid not in attempts]
    if facts.errors:
        no_write = f"{facts.errors} errors during collection"
    elif only_collects is not None:
        no_write = f"{only_collects} runs no test"
    elif interrupted is not None:
        no_write = f"the run was interrupted ({interrupted})"
    elif never_ran:
        no_write = f"the run was interrupted ({len(never_ran)} collected tests did not run)"
    return RunScope(
        collected=frozenset(facts.collected),
        counting=frozenset(facts.counting),
        completed=frozenset(completed),
        why_not=why_not,
        narrowed=tuple(narrowed),
        no_write=no_write,
    )


def narrowed_by_paths(
    chosen: Collection[PurePath], suite: Collection[PurePath], *, node_ids: bool
) -> str | None:
    """Why the paths pytest was given cover less than the suite (rootdir or testpaths).

    Paths come resolved and absolute; a chosen path covers every path below it.
    """
    if node_ids:
        return "single tests were selected by node id"
    uncovered = [
        path for path in suite if not any(path == pick or pick in path.parents for pick in chosen)
    ]
    if uncovered:
        shown = ", ".join(sorted(str(path) for path in chosen))
        return f"only {shown} was given, not the whole suite"
    return None
