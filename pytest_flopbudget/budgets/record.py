"""What one test leaves behind: its counts and verdicts, as data that survives xdist."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..counting.count import Count
from .verdict import Verdict

PROPERTY = "flopbudget"


@dataclass(frozen=True)
class TestRecord:
    __test__ = False  # not a pytest test class

    nodeid: str
    position: int  # in the collection order
    counts: Sequence[Count]
    verdicts: Sequence[Verdict]

    def to_json(self) -> str:
        return json.dumps(
            {
                "nodeid": self.nodeid,
                "position": self.position,
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
            position=int(data["position"]),
            counts=[Count.from_dict(item) for item in data["counts"]],
            verdicts=[Verdict.from_dict(item) for item in data["verdicts"]],
        )

    def sort_key(self) -> tuple[int, str]:
        return (self.position, self.nodeid)
