"""``flopbudget compare OLD.json NEW.json``: did any model grow between two reports?

Only arguments, printing and the exit code live here; reading is ``reports.json_report``'s,
comparing is ``budgets.comparison``'s (on the engine the in-run regression check uses), and
rendering is ``reports.comparison``'s.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TextIO

from ..budgets import strict_json
from ..budgets.comparison import DEFAULT_TOP, ConventionMismatch, compare
from ..reports import json_report
from ..reports.comparison import render_markdown, render_text, to_dict

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
FORMATS = ("text", "json", "markdown")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    compare_parser = commands.add_parser(
        "compare",
        help="compare two --flop-budget-json reports",
        description=(
            "Compare two reports written by pytest --flop-budget-json, model by model (matched "
            "by test node id and recorded name), in MACs. Lists the models that changed, were "
            "added or were removed, and the deepest modules whose MACs changed."
        ),
        epilog=(
            "exit status: 0 no model grew beyond the tolerance (shrinking, added and removed "
            "models are fine); 1 some model's MACs or params grew beyond it; 2 bad input, or "
            "models counted under different ops conventions (fvcore, dense)."
        ),
    )
    compare_parser.add_argument("old", type=Path, metavar="OLD.json", help="the baseline report")
    compare_parser.add_argument("new", type=Path, metavar="NEW.json", help="the report to check")
    compare_parser.add_argument(
        "--tolerance",
        type=_tolerance,
        default=0.0,
        help="relative growth allowed before it counts as a regression: 0.02 = 2%% (default: 0)",
    )
    compare_parser.add_argument(
        "--top",
        type=_top,
        default=DEFAULT_TOP,
        help=f"modules listed per changed model (default: {DEFAULT_TOP})",
    )
    output = compare_parser.add_mutually_exclusive_group()
    output.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (a table, the default), json (for machines) or markdown (a pull-request "
        "comment, module changes folded under each model)",
    )
    output.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    output.add_argument(
        "--markdown",
        dest="format",
        action="store_const",
        const="markdown",
        help="same as --format markdown",
    )
    compare_parser.set_defaults(run=_run_compare)


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _run_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    try:
        old = json_report.read(args.old)
        new = json_report.read(args.new)
    except json_report.ReportError as exc:
        print(f"flopbudget compare: error: {exc}", file=err)
        return EXIT_USAGE
    try:
        comparison = compare(old, new, tolerance=args.tolerance, top=args.top)
    except ConventionMismatch as exc:
        print(f"flopbudget compare: error: {exc}", file=err)
        return EXIT_USAGE
    if args.format == "json":
        out.write(strict_json.dumps(to_dict(comparison), indent=2) + "\n")
    elif args.format == "markdown":
        out.write(render_markdown(comparison))
    else:
        out.write(render_text(comparison))
    return EXIT_REGRESSION if comparison.regressions else EXIT_OK
