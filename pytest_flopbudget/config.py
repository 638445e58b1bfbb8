"""Settings: ``[tool.flopbudget]`` in pyproject.toml, then the command line, validated once.

Precedence for every setting: command-line option, then pyproject.toml, then the default.
Every error names the file and the key.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .budget import (
    ON_EXCEED_CHOICES,
    Budget,
    BudgetError,
    budget_from_entry,
    check_tolerance,
    looks_like_nodeid,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

OnExceed = Literal["fail", "warn"]
SECTION = "tool.flopbudget"


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the place (file and key)."""


@dataclass(frozen=True)
class Settings:
    """Everything the run needs to know from pyproject.toml and the command line."""

    flops_per_mac: int = 1
    tolerance: float = 0.0
    on_exceed: OnExceed = "fail"
    budgets_by_nodeid: Mapping[str, Budget] = field(default_factory=dict)
    budgets_by_name: Mapping[str, Budget] = field(default_factory=dict)
    pyproject: Path | None = None
    json_path: Path | None = None
    update: bool = False

    @property
    def convention(self) -> str:
        if self.flops_per_mac == 1:
            return "1 FLOP = 1 MAC (fvcore's convention; flops_per_mac = 1)"
        return "1 MAC = 2 FLOPs (flops_per_mac = 2)"


def read_pyproject(path: Path) -> dict[str, Any]:
    """The ``[tool.flopbudget]`` table of ``path`` (empty if absent)."""
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None
    section = document.get("tool", {}).get("flopbudget", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{SECTION}] must be a table, got {type(section).__name__}")
    return section


def settings_from_pyproject(path: Path | None, section: Mapping[str, Any]) -> Settings:
    place = f"{path}: [{SECTION}]"
    known = {"flops_per_mac", "tolerance", "on_exceed", "budgets"}
    for key in section:
        if key not in known:
            raise ConfigError(f"{place} unknown key {key!r} (known: {', '.join(sorted(known))})")

    flops_per_mac = section.get("flops_per_mac", 1)
    if isinstance(flops_per_mac, bool) or flops_per_mac not in (1, 2):
        raise ConfigError(f"{place} flops_per_mac: must be 1 or 2, got {flops_per_mac!r}")

    try:
        tolerance = check_tolerance(section.get("tolerance", 0.0), f"{place} tolerance")
    except BudgetError as error:
        raise ConfigError(str(error)) from None

    on_exceed = section.get("on_exceed", "fail")
    if on_exceed not in ON_EXCEED_CHOICES:
        raise ConfigError(f'{place} on_exceed: must be "fail" or "warn", got {on_exceed!r}')

    budgets = section.get("budgets", {})
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"{place} budgets: must be a table, got {type(budgets).__name__}")
    by_nodeid: dict[str, Budget] = {}
    by_name: dict[str, Budget] = {}
    for key, value in budgets.items():
        where = f"{path}: [{SECTION}.budgets] {key!r}"
        is_nodeid = looks_like_nodeid(key)
        try:
            budget = budget_from_entry(key, value, where, is_nodeid=is_nodeid)
        except BudgetError as error:
            raise ConfigError(str(error)) from None
        (by_nodeid if is_nodeid else by_name)[key] = budget
    return Settings(
        flops_per_mac=int(flops_per_mac),
        tolerance=tolerance,
        on_exceed=on_exceed,
        budgets_by_nodeid=by_nodeid,
        budgets_by_name=by_name,
        pyproject=path,
    )


def find_pyproject(rootpath: Path, inipath: Path | None) -> Path:
    """The pyproject.toml pytest used, or the one at its rootdir (which may not exist yet)."""
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    return rootpath / "pyproject.toml"


def load_settings(
    pyproject: Path,
    *,
    json_path: str | None,
    update: bool,
    on_exceed: str | None,
) -> Settings:
    section = read_pyproject(pyproject) if pyproject.is_file() else {}
    settings = settings_from_pyproject(pyproject, section)
    overrides: dict[str, Any] = {"update": update}
    if on_exceed is not None:
        overrides["on_exceed"] = on_exceed
    if json_path is not None:
        overrides["json_path"] = check_writable(json_path, "--flop-budget-json")
    return _replace(settings, **overrides)


def check_writable(raw: str, option: str) -> Path:
    import os

    path = Path(raw).expanduser().resolve()
    if path.is_dir():
        raise ConfigError(f"{option}={raw}: is a directory; give a file path")
    parent = path.parent
    if not parent.is_dir():
        raise ConfigError(f"{option}={raw}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option}={raw}: not writable")
    return path


def _replace(settings: Settings, **changes: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)
