"""Settings: ``[tool.flopbudget]`` in pyproject.toml, then the command line, validated once.

Precedence for every setting: command-line option, then pyproject.toml, then the default.
Every error names the file and the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..counting.count import OPTIMIZER_NAMES
from ..counting.op_conventions import DESCRIPTIONS, OPS_CONVENTIONS
from .budget import (
    ON_EXCEED_CHOICES,
    Budget,
    BudgetError,
    budget_from_entry,
    check_tolerance,
    is_choice,
    looks_like_nodeid,
)
from .hardware import Device
from .units import MAX_TOLERANCE, UnitError, as_number, shown

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

SECTION = "tool.flopbudget"
BACKEND_CHOICES = ("fvcore", "torch")
UNKNOWN_OPS_CHOICES = ("warn", "fail", "ignore")
MODE_CHOICES = ("inference", "train")


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the place (file and key)."""


@dataclass(frozen=True)
class Settings:
    """Everything the run needs to know from pyproject.toml and the command line."""

    flops_per_mac: int = 1
    tolerance: float = 0.0
    on_exceed: str = "fail"
    backend: str = "fvcore"
    unknown_ops: str = "warn"
    mode: str = "inference"
    ops: str = "fvcore"
    optimizer: str | None = None
    """Whose state a training step's peak memory includes (train-mode counts only)."""
    abstract: bool = False
    budgets_by_nodeid: Mapping[str, Budget] = field(default_factory=dict)
    budgets_by_name: Mapping[str, Budget] = field(default_factory=dict)
    baseline_path: Path | None = None
    regression_tolerance: float = 0.0
    tighten_threshold: float = 0.5
    hardware: Sequence[str] = ()
    devices: Mapping[str, Device] = field(default_factory=dict)
    """Devices plugins contributed for this session (``pytest_flopbudget_hardware``)."""
    pyproject: Path | None = None
    json_path: Path | None = None
    markdown_path: Path | None = None
    html_path: Path | None = None
    update: bool = False
    update_failed: bool = False
    report_only: bool = False

    @property
    def enforcing(self) -> bool:
        """Budgets fail tests: not while updating them, nor in a report-only run."""
        return not self.update and not self.report_only

    @property
    def convention(self) -> str:
        if self.flops_per_mac == 1:
            return "1 FLOP = 1 MAC (fvcore's convention; flops_per_mac = 1)"
        return "1 MAC = 2 FLOPs (flops_per_mac = 2)"

    @property
    def ops_convention(self) -> str:
        """Which ops the run's counts include, as the report header says it."""
        return DESCRIPTIONS[self.ops]


@dataclass(frozen=True)
class CountOptions:
    """How one test's models are counted: the closest marker's options, else the settings'."""

    backend: str = "fvcore"
    unknown_ops: str = "warn"
    mode: str = "inference"
    ops: str = "fvcore"
    optimizer: str | None = None
    """Whose state a training step's peak memory includes (train-mode counts only)."""
    abstract: bool = False
    """Count real models through fake copies of their tensors (no arithmetic, no memory)."""


def count_options(settings: Settings, marker_options: Mapping[str, str | bool]) -> CountOptions:
    optimizer = marker_options.get("optimizer", settings.optimizer)
    return CountOptions(
        backend=str(marker_options.get("backend", settings.backend)),
        unknown_ops=str(marker_options.get("unknown_ops", settings.unknown_ops)),
        mode=str(marker_options.get("mode", settings.mode)),
        ops=str(marker_options.get("ops", settings.ops)),
        optimizer=None if optimizer is None else str(optimizer),
        abstract=bool(marker_options.get("abstract", settings.abstract)),
    )


def load_toml(path: Path) -> dict[str, Any]:
    """A whole TOML file, or a :class:`ConfigError` naming the file and what is wrong."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text, as TOML must be ({error.reason})") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror or error}") from None


def tool_table(path: Path, document: Mapping[str, Any]) -> Mapping[str, Any]:
    """``[tool]`` of a TOML document (empty if absent), checked to be a table."""
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: [tool] must be a table, got {type(tool).__name__}")
    return tool


def read_pyproject(path: Path) -> dict[str, Any]:
    """The ``[tool.flopbudget]`` table of ``path`` (empty if absent)."""
    section = tool_table(path, load_toml(path)).get("flopbudget", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [{SECTION}] must be a table, got {type(section).__name__}")
    return section


def _choice(
    section: Mapping[str, Any], key: str, choices: Sequence[str], default: str, place: str
) -> str:
    value = section.get(key, default)
    if not is_choice(value, choices):
        allowed = " or ".join(f'"{choice}"' for choice in choices)
        raise ConfigError(f"{place} {key}: must be {allowed}, got {shown(value)}")
    return str(value)


def _optimizer(section: Mapping[str, Any], mode: str, place: str) -> str | None:
    """``optimizer = "adamw"``: its state joins a training step's peak memory, so it needs
    ``mode = "train"`` beside it (markers may still count single tests in inference)."""
    if "optimizer" not in section:
        return None
    value = section["optimizer"]
    if not is_choice(value, OPTIMIZER_NAMES):
        allowed = " or ".join(f'"{choice}"' for choice in OPTIMIZER_NAMES)
        raise ConfigError(f"{place} optimizer: must be {allowed}, got {shown(value)}")
    if mode != "train":
        raise ConfigError(
            f'{place} optimizer: {shown(value)} needs mode = "train" (optimizer state is memory '
            f'of a training step); mode is "{mode}"'
        )
    return str(value)


def _fraction(
    section: Mapping[str, Any], key: str, default: float, place: str, *, below_one: bool = False
) -> float:
    value = section.get(key, default)
    try:
        number = as_number(value, key)
    except UnitError:
        raise ConfigError(f"{place} {key}: must be a number >= 0, got {shown(value)}") from None
    if number < 0:
        raise ConfigError(f"{place} {key}: must be a number >= 0, got {shown(value)}")
    if below_one and number >= 1:
        raise ConfigError(
            f"{place} {key}: must be below 1 (a share of the budget), got {shown(value)}"
        )
    if number > MAX_TOLERANCE:
        raise ConfigError(f"{place} {key}: must be at most {MAX_TOLERANCE}, got {shown(value)}")
    return number


def _budgets(
    path: Path | None,
    budgets: object,
    place: str,
    devices: Mapping[str, Device] | None = None,
) -> tuple[dict[str, Budget], dict[str, Budget]]:
    if not isinstance(budgets, Mapping):
        raise ConfigError(f"{place} budgets: must be a table, got {type(budgets).__name__}")
    by_nodeid: dict[str, Budget] = {}
    by_name: dict[str, Budget] = {}
    for key, value in budgets.items():
        where = f"{path}: [{SECTION}.budgets] {key!r}"
        is_nodeid = looks_like_nodeid(key)
        try:
            budget = budget_from_entry(key, value, where, is_nodeid=is_nodeid, devices=devices)
        except BudgetError as error:
            raise ConfigError(str(error)) from None
        (by_nodeid if is_nodeid else by_name)[key] = budget
    return by_nodeid, by_name


KNOWN_KEYS = (
    "flops_per_mac",
    "tolerance",
    "on_exceed",
    "backend",
    "unknown_ops",
    "mode",
    "ops",
    "optimizer",
    "abstract",
    "budgets",
    "baseline",
    "regression_tolerance",
    "tighten_threshold",
    "hardware",
    "report_only",
)


def settings_from_pyproject(
    path: Path | None, section: Mapping[str, Any], devices: Mapping[str, Device] | None = None
) -> Settings:
    place = f"{path}: [{SECTION}]"
    for key in section:
        if key not in KNOWN_KEYS:
            raise ConfigError(
                f"{place} unknown key {key!r} (known: {', '.join(sorted(KNOWN_KEYS))})"
            )

    flops_per_mac = section.get("flops_per_mac", 1)
    if (
        isinstance(flops_per_mac, bool)
        or not isinstance(flops_per_mac, (int, float))
        or (flops_per_mac not in (1, 2))
    ):
        raise ConfigError(f"{place} flops_per_mac: must be 1 or 2, got {shown(flops_per_mac)}")
    try:
        tolerance = check_tolerance(section.get("tolerance", 0.0), f"{place} tolerance")
    except BudgetError as error:
        raise ConfigError(str(error)) from None

    baseline = section.get("baseline")
    baseline_path: Path | None = None
    if baseline is not None:
        if not isinstance(baseline, str) or not baseline.strip():
            raise ConfigError(
                f'{place} baseline: must be a file path such as "flopbudget.json", '
                f"got {shown(baseline)}"
            )
        root = path.parent if path is not None else Path.cwd()
        baseline_path = usable_path(root / baseline, f"{place} baseline: {baseline!r}")

    hardware = section.get("hardware", [])
    if not isinstance(hardware, list) or not all(isinstance(item, str) for item in hardware):
        raise ConfigError(
            f'{place} hardware: must be a list of device names such as ["T4", "A100:fp16"], '
            f"got {shown(hardware)}"
        )
    _check_hardware(hardware, f"{place} hardware", devices)

    report_only = section.get("report_only", False)
    if not isinstance(report_only, bool):
        raise ConfigError(f"{place} report_only: must be true or false, got {report_only!r}")
    abstract = section.get("abstract", False)
    if not isinstance(abstract, bool):
        raise ConfigError(f"{place} abstract: must be true or false, got {shown(abstract)}")

    by_nodeid, by_name = _budgets(path, section.get("budgets", {}), place, devices)
    mode = _choice(section, "mode", MODE_CHOICES, "inference", place)
    return Settings(
        flops_per_mac=int(flops_per_mac),
        tolerance=tolerance,
        on_exceed=_choice(section, "on_exceed", ON_EXCEED_CHOICES, "fail", place),
        backend=_choice(section, "backend", BACKEND_CHOICES, "fvcore", place),
        unknown_ops=_choice(section, "unknown_ops", UNKNOWN_OPS_CHOICES, "warn", place),
        mode=mode,
        ops=_choice(section, "ops", OPS_CONVENTIONS, "fvcore", place),
        optimizer=_optimizer(section, mode, place),
        abstract=abstract,
        budgets_by_nodeid=by_nodeid,
        budgets_by_name=by_name,
        baseline_path=baseline_path,
        regression_tolerance=_fraction(section, "regression_tolerance", 0.0, place),
        tighten_threshold=_fraction(section, "tighten_threshold", 0.5, place, below_one=True),
        hardware=tuple(hardware),
        devices=dict(devices or {}),
        pyproject=path,
        report_only=report_only,
    )


def _check_hardware(
    specs: Sequence[str], place: str, devices: Mapping[str, Device] | None = None
) -> None:
    if not specs:
        return
    from .hardware import HardwareError, parse_hardware_spec

    for spec in specs:
        try:
            parse_hardware_spec(spec, devices)
        except HardwareError as error:
            raise ConfigError(f"{place}: {error}") from None


def find_pyproject(rootpath: Path, inipath: Path | None) -> Path:
    """The pyproject.toml pytest used, or the one at its rootdir (which may not exist yet)."""
    if inipath is not None and inipath.name == "pyproject.toml":
        return inipath
    return rootpath / "pyproject.toml"


def load_settings(
    pyproject: Path,
    *,
    json_path: str | None = None,
    markdown_path: str | None = None,
    html_path: str | None = None,
    update: bool | None = None,
    update_failed: bool | None = None,
    report_only: bool | None = None,
    on_exceed: str | None = None,
    hardware: str | None = None,
    devices: Mapping[str, Device] | None = None,
) -> Settings:
    """Command-line values (None: not given) over pyproject values over defaults.

    ``devices``: those plugins contributed, usable wherever a device is named."""
    section = read_pyproject(pyproject) if pyproject.is_file() else {}
    settings = settings_from_pyproject(pyproject, section, devices)
    overrides: dict[str, Any] = {"update": bool(update), "update_failed": bool(update_failed)}
    if report_only is not None:
        overrides["report_only"] = report_only
    if on_exceed is not None:
        overrides["on_exceed"] = on_exceed
    if json_path is not None:
        overrides["json_path"] = check_writable(json_path, "--flop-budget-json")
    if markdown_path is not None:
        overrides["markdown_path"] = check_writable(markdown_path, "--flop-budget-markdown")
    if html_path is not None:
        overrides["html_path"] = check_writable(html_path, "--flop-budget-html")
    if hardware is not None:
        specs = tuple(spec.strip() for spec in hardware.split(",") if spec.strip())
        _check_hardware(specs, f"--flop-budget-hardware={hardware}", devices)
        overrides["hardware"] = specs
    return replace(settings, **overrides)


def usable_path(path: Path, place: str, *, resolve: bool = True) -> Path:
    """``path`` made absolute, or a :class:`ConfigError` saying why no file can live there.

    ``resolve=False`` keeps symbolic links in the returned path (``/dev/stdout`` must stay
    ``/dev/stdout``, a symlinked report is written through its link); the checks are the same.

    Catches at start-up what would otherwise fail when the file is read or written: a NUL
    byte, an unknown ``~user``, a name too long for the file system, a loop of symbolic links.
    """
    problem = None
    try:
        absolute = path.expanduser().absolute()
        resolved = absolute.resolve()
        os.stat(resolved)
    except FileNotFoundError:
        return resolved if resolve else absolute
    except ValueError:  # an embedded NUL byte
        problem = "not a usable path (it contains a NUL byte)"
    except RuntimeError as error:  # an unknown ~user, or a symlink loop resolve() met
        problem = f"not a usable path ({error})"
    except OSError as error:  # too long, a loop of symbolic links, a file used as a directory
        problem = f"not a usable path ({error.strerror or error})"
    else:
        return resolved if resolve else absolute
    raise ConfigError(f"{place}: {problem}")


def check_writable(raw: str, option: str) -> Path:
    """The absolute path, not resolved: ``/dev/stdout`` must stay ``/dev/stdout``."""
    path = usable_path(Path(raw), f"{option}={shown(raw)}", resolve=False)
    if path.is_dir():
        raise ConfigError(f"{option}={raw}: is a directory; give a file path")
    if path.exists() and not path.is_file():  # a device or a pipe: written into
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{option}={raw}: not writable")
        return path
    parent = Path(os.path.realpath(path)).parent  # written beside the file its symlinks name
    if not parent.is_dir():
        raise ConfigError(f"{option}={raw}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"{option}={raw}: not writable")
    return path
