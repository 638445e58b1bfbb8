"""``flopbudget merge SHARD.json... -o MERGED.json``: one table for a suite run in shards.

Only arguments, printing and the exit code live here; merging is ``reports.shards``'.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from ..budgets import strict_json
from ..budgets.units import format_quantity
from ..reports.comparison import aligned
from ..reports.files import ForeignFileError, check_ours, write_atomically
from ..reports.json_report import ReportError, looks_like_report
from ..reports.shards import merge, read_shard

EXIT_OK = 0
EXIT_USAGE = 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    merge_parser = commands.add_parser(
        "merge",
        help="merge the --flop-budget-json reports of a sharded run",
        description=(
            "Merge the reports that the shards of one test suite wrote with pytest "
            "--flop-budget-json into one report, print its table and a tally. An entry stays "
            "stale only if a shard proved it stale and no shard recorded it."
        ),
        epilog=(
            "exit status: 0 merged; 2 bad input: an unreadable report, shards counted under "
            "different conventions, or one test and model counted differently by two shards."
        ),
    )
    merge_parser.add_argument(
        "shards", type=Path, nargs="+", metavar="SHARD.json", help="the shards' reports"
    )
    merge_parser.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="MERGED.json",
        help="write the merged report here (a report that compare and merge read)",
    )
    merge_parser.set_defaults(run=_run_merge)


def _run_merge(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        if args.output is not None:
            check_ours(args.output, f"-o {args.output}", "JSON report", looks_like_report)
        merged = merge([read_shard(path) for path in args.shards])
        if args.output is not None:
            text = strict_json.dumps(merged.document, indent=2, sort_keys=True)
            write_atomically(args.output, text + "\n")
    except (ReportError, ForeignFileError) as exc:
        print(f"flopbudget merge: error: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"flopbudget merge: error: {args.output}: cannot write: {exc}", file=err)
        return EXIT_USAGE
    for warning in merged.warnings:
        print(f"flopbudget merge: warning: {warning}", file=err)
    out.write(render(merged.document, len(args.shards)))
    for line in merged.kept:
        out.write(line + "\n")
    return EXIT_OK


def render(document: dict[str, Any], shards: int) -> str:
    results = document["results"]
    rows = [
        {
            "test": "test",
            "model": "model",
            "macs": "MACs",
            "params": "params",
            "budget": "budget",
            "status": "status",
        }
    ]
    for row in results:
        rows.append(
            {
                "test": row["nodeid"],
                "model": row["name"],
                "macs": format_quantity(row.get("macs"), "macs"),
                "params": format_quantity(row.get("params"), "params"),
                "budget": str(row.get("budget_label") or "-"),
                "status": str(row.get("status", "-")),
            }
        )
    lines = aligned(rows, rows[0].keys(), right={"macs", "params"}) if results else []
    statuses = Counter(str(row.get("status", "unknown")) for row in results)
    tally = ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
    stale = document["stale"]
    lines.append(
        f"merged {shards} shard{'s' if shards != 1 else ''}: {len(results)} model"
        f"{'s' if len(results) != 1 else ''}"
        + (f" ({tally})" if tally else "")
        + f", {len(stale)} stale entr{'ies' if len(stale) != 1 else 'y'}"
    )
    lines += [f"stale: {entry['where']} entry {entry['key']!r}" for entry in stale]
    return "\n".join(lines) + "\n"
