"""The toolchain a count was made with: python, torch, fvcore, transformers, this plugin.

A count can change because torch decomposes an op differently or fvcore gained a handle, not
because the model changed. Reports and baselines record these versions, and a regression
that comes with a version change says so, so a toolchain upgrade is not read as a model
change.

Versions come from package metadata (``importlib.metadata``), never by importing a package:
a run that counted nothing must not pay for importing torch.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Collection, Mapping
from importlib import metadata

# Always recorded when installed: the counting toolchain.
TOOLCHAIN = ("torch", "fvcore")
# Recorded when the run imported them: model libraries whose code is what gets counted.
WHEN_IMPORTED = ("transformers",)
PLUGIN = "pytest-flopbudget"
ORDER = ("python", *TOOLCHAIN, *WHEN_IMPORTED, PLUGIN)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def current(imported: Collection[str] = ()) -> dict[str, str]:
    """This process's versions; ``imported`` adds modules other processes (xdist workers)
    imported."""
    found = {"python": platform.python_version()}
    names = [*TOOLCHAIN]
    names += [name for name in WHEN_IMPORTED if name in sys.modules or name in imported]
    names.append(PLUGIN)
    for name in names:
        version = _version(name)
        if version is not None:
            found[name] = version
    return found


def imported_libraries() -> list[str]:
    """The ``WHEN_IMPORTED`` libraries this process imported (sent from xdist workers)."""
    return [name for name in WHEN_IMPORTED if name in sys.modules]


def read(value: object) -> dict[str, str]:
    """An ``environment`` object from a file; anything else (older files) is no environment."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, (str, int, float))}


def changes(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """``torch 2.13.0 -> 2.15.0`` for every tool recorded on both sides with another version."""
    keys = [key for key in ORDER if key in before and key in after]
    keys += sorted(key for key in before if key in after and key not in ORDER)
    return [f"{key} {before[key]} -> {after[key]}" for key in keys if before[key] != after[key]]


def describe(environment: Mapping[str, str]) -> str:
    """``python 3.11.7, torch 2.13.0, fvcore 0.1.5, pytest-flopbudget 0.1.0``."""
    keys = [key for key in ORDER if key in environment]
    keys += sorted(key for key in environment if key not in ORDER)
    return ", ".join(f"{key} {environment[key]}" for key in keys)


def toolchain_note(before: Mapping[str, str], after: Mapping[str, str]) -> str | None:
    """The line a changed count gets when the toolchain changed with it."""
    changed = changes(before, after)
    if not changed:
        return None
    return (
        f"the toolchain changed too ({', '.join(changed)}): the change may come from it, "
        "not from the model"
    )
