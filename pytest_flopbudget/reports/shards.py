"""``flopbudget merge``: shard reports of one suite combined into the report of one run.

A suite split over CI machines (a matrix, pytest-split, pytest-shard) writes one
``--flop-budget-json`` per shard; merged, they give one table and one list of stale entries.

Stale entries are merged conservatively. Each shard already lists only what it proved stale (the
owning test ran to completion in that shard without recording the entry). The merged report keeps
an entry stale when some shard lists it and no shard recorded it: a row for the same test and
name, the same node id, or the same name counts as a record and the entry is kept. Entries no
single shard could judge (a name whose owners ran in different shards) are never stale here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budgets.comparison import Report
from .json_report import FORMAT_VERSION, ReportError, load, parse

NUMBERS = ("flops", "macs", "params")


@dataclass(frozen=True)
class Shard:
    path: Path
    document: dict[str, Any]
    report: Report


@dataclass(frozen=True)
class Merged:
    document: dict[str, Any]
    kept: tuple[str, ...]  # stale entries of a shard that another shard recorded
    warnings: tuple[str, ...]


def read_shard(path: Path) -> Shard:
    data = load(path)
    report = parse(data, str(path))  # a dict once parse accepts it
    _stale_list(data.get("stale", []), str(path))
    return Shard(path, data, report)


def merge(shards: Sequence[Shard]) -> Merged:
    """One report from several; a :class:`ReportError` names the file that does not fit."""
    first = shards[0]
    rows: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
    results: list[dict[str, Any]] = []
    warnings: list[str] = []
    for shard in shards:
        _check_convention(first, shard)
        if shard.document.get("environment", {}) != first.document.get("environment", {}):
            warnings.append(
                f"{shard.path}: environment differs from {first.path}; the merged report "
                f"keeps {first.path}'s"
            )
        for row in shard.document["results"]:
            key = (row["nodeid"], row["name"])
            if key in rows:
                other_path, other = rows[key]
                if any(row.get(n) != other.get(n) for n in NUMBERS):
                    raise ReportError(
                        f"{shard.path}: {key[0]} [{key[1]}] counted "
                        f"{_numbers(row)} here but {_numbers(other)} in {other_path}; "
                        "the shards did not measure the same code"
                    )
                continue
            rows[key] = (shard.path, row)
            results.append(row)
    stale, kept = _merge_stale(shards, results)
    document = {
        "version": FORMAT_VERSION,
        "convention": first.document["convention"],
        "environment": first.document.get("environment", {}),
        "results": sorted(results, key=lambda row: (row["nodeid"], row["name"])),
        "stale": stale,
        "merged_from": [str(shard.path) for shard in shards],
    }
    return Merged(document, tuple(kept), tuple(warnings))


def _check_convention(first: Shard, shard: Shard) -> None:
    mine, theirs = shard.report, first.report
    if mine.flops_per_mac != theirs.flops_per_mac:
        raise ReportError(
            f"{shard.path}: convention.flops_per_mac is {mine.flops_per_mac} but "
            f"{theirs.flops_per_mac} in {first.path}; merge shards of one configuration"
        )
    if mine.ops != theirs.ops:
        raise ReportError(
            f"{shard.path}: convention.ops is {mine.ops!r} but {theirs.ops!r} in "
            f"{first.path}; merge shards of one configuration"
        )


def _numbers(row: dict[str, Any]) -> str:
    return ", ".join(f"{n}={row.get(n)}" for n in NUMBERS)


def _merge_stale(
    shards: Sequence[Shard], results: Sequence[dict[str, Any]]
) -> tuple[list[dict[str, str]], list[str]]:
    recorded_pairs = {f"{row['nodeid']} [{row['name']}]" for row in results}
    nodeids = {row["nodeid"] for row in results}
    names = {row["name"] for row in results}
    stale: list[dict[str, str]] = []
    kept: list[str] = []
    seen: set[tuple[str, str]] = set()
    for shard in shards:
        for entry in shard.document.get("stale", []):
            where, key = entry["where"], entry["key"]
            if (where, key) in seen:
                continue
            seen.add((where, key))
            if where == "baseline":
                recorded = key in recorded_pairs
            else:
                recorded = key in names or any(
                    nodeid == key or nodeid.endswith("/" + key) for nodeid in nodeids
                )
            if recorded:
                kept.append(
                    f"kept: {where} entry {key!r}: listed stale by {shard.path}, "
                    "but a shard recorded it"
                )
            else:
                stale.append({"where": where, "key": key})
    return stale, kept


def _stale_list(value: Any, source: str) -> None:
    if not isinstance(value, list):
        raise ReportError(f"{source}: 'stale' must be a list")
    for index, entry in enumerate(value):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("where"), str)
            and isinstance(entry.get("key"), str)
        ):
            raise ReportError(
                f"{source}: stale[{index}]: expected an object with string 'where' and 'key'"
            )
