"""``flopbudget``: the command line, for what happens between runs rather than inside one.

``flopbudget compare OLD.json NEW.json`` diffs two ``--flop-budget-json`` reports, so CI can
fail a change that makes a model bigger even where no budget catches it. This module only
parses arguments and hands each command to its module (``compare.py``, ``merge.py``).
``flopbudget merge SHARD.json... -o MERGED.json`` combines the reports of a sharded run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from . import compare, merge

EXIT_USAGE = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (so tests can call it without exiting)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2): argparse has printed already
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("flopbudget: error: choose a command: compare, merge", file=sys.stderr)
        return EXIT_USAGE
    return args.run(args, sys.stdout, sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flopbudget",
        description="Tools for the reports of pytest-flopbudget.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    compare.add_parser(commands)
    merge.add_parser(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("pytest-flopbudget")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"
