"""What one test leaves behind: its counts and verdicts, as data that survives xdist."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .count import Count
from .verdict import Verdict

PROPERTY = "flopbudget"


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str
    location: tuple[str, int]
    counts: Sequence[Count]
    verdicts: Sequence[Verdict]

    def to_json(self) -> str:
        return json.dumps(
            {
                "nodeid": self.nodeid,
                "location": list(self.location),
                "counts": [count.to_dict() for count in self.counts],
                "verdicts": [verdict.to_dict() for verdict in self.verdicts],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TestRecord:
        data: dict[str, Any] = json.loads(text)
        return cls(
            nodeid=data["nodeid"],
            location=(data["location"][0], int(data["location"][1])),
            counts=[Count.from_dict(item) for item in data["counts"]],
            verdicts=[Verdict.from_dict(item) for item in data["verdicts"]],
        )

    @property
    def sort_key(self) -> tuple[str, int, str]:
        return (self.location[0], self.location[1], self.nodeid)
