"""JSON as the standard defines it, for every file the plugin reads or writes.

Python's ``json`` reads and writes ``NaN`` and ``Infinity``, which other tools reject, and
raises ``RecursionError`` or a bare ``ValueError`` on deep nesting and very long integers.
Here each of those is one ``ValueError`` whose message says what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DIGITS = 100  # far above any count (1e30 at most), far below Python's limit of 4300


def loads(text: str) -> Any:
    """Decode ``text``; ``ValueError`` (a ``json.JSONDecodeError`` for syntax) on bad input."""

    def _constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    def _integer(digits: str) -> int:
        if len(digits) > MAX_DIGITS:
            raise ValueError(f"an integer of {len(digits)} digits is too long to be a count")
        return int(digits)

    try:
        document = json.loads(text, parse_constant=_constant, parse_int=_integer)
    except RecursionError:
        raise ValueError("arrays or objects nested too deeply") from None
    _check_text(document)
    return document


def _check_text(document: Any) -> None:
    """JSON may escape half a surrogate pair (``"\\ud800"``); no file or terminal can hold it."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"{value!r:.60} holds half a surrogate pair") from None


def dumps(document: Any, **options: Any) -> str:
    """Encode ``document``; ``ValueError`` if it holds NaN or an infinity."""
    return json.dumps(document, allow_nan=False, **options)
