"""What other plugins and conftest files contribute through :mod:`.hookspecs`, for one session.

Each implementation is called on its own rather than through ``config.hook``, so that a bad
result names the plugin or ``conftest.py`` it came from. Formulas are installed in the
process-wide registry for the session and removed again by :meth:`Contributions.close`
(``pytest_unconfigure``): a second session in the same process (pytester, an IDE) starts
without them.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .budgets.config import ConfigError
from .budgets.hardware import Device, HardwareError, contributed_devices
from .counting.formulas import Formula, formula_key, install_formulas

FORMULAS_HOOK = "pytest_flopbudget_register_formulas"
HARDWARE_HOOK = "pytest_flopbudget_hardware"


class _RegisterError(Exception):
    """A ``register(op, formula)`` call a hook made with an op or formula we cannot use."""


class Contributions:
    """The session's contributed devices and formulas, and which implementations gave them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.devices: dict[str, Device] = {}
        self._called: set[int] = set()
        self._restores: list[Callable[[], None]] = []

    def read_hardware(self) -> dict[str, Device]:
        """Call every ``pytest_flopbudget_hardware`` implementation loaded so far."""
        for impl in self._new(HARDWARE_HOOK):
            where = f"{HARDWARE_HOOK} in {self._origin(impl)}"
            result = self._call(impl, config=self.config)
            try:
                self.devices |= contributed_devices(result, where, self.devices)
            except HardwareError as error:
                raise ConfigError(str(error)) from None
        return self.devices

    def register_formulas(self) -> None:
        """Call every ``pytest_flopbudget_register_formulas`` implementation not yet called
        (conftest files below the rootdir load during collection) and install their formulas."""
        for impl in self._new(FORMULAS_HOOK):
            where = f"{FORMULAS_HOOK} in {self._origin(impl)}"
            collected: list[tuple[str, Formula]] = []

            def register(
                op: str,
                formula: Formula,
                where: str = where,
                collected: list[tuple[str, Formula]] = collected,
            ) -> None:
                try:
                    formula_key(op, formula)
                except (TypeError, ValueError) as error:
                    raise _RegisterError(f"{where}: {error}") from None
                collected.append((op, formula))

            try:
                self._call(impl, register=register, config=self.config)
            except _RegisterError as error:
                raise ConfigError(str(error)) from None
            self._restores.append(install_formulas(collected))

    def late_hardware(self) -> str | None:
        """A hardware hook pytest loaded after start-up (a conftest below the rootdir): its
        devices were never read, which must not pass silently."""
        for impl in self._new(HARDWARE_HOOK, mark=False):
            return (
                f"{HARDWARE_HOOK} in {self._origin(impl)} was loaded during collection, after "
                "the devices were read at start-up; implement it in a plugin or in the "
                "rootdir's conftest.py"
            )
        return None

    def close(self) -> None:
        """Remove this session's formulas, newest first."""
        while self._restores:
            self._restores.pop()()

    def _new(self, hook_name: str, *, mark: bool = True) -> list[Any]:
        hook = getattr(self.config.hook, hook_name)
        fresh = [impl for impl in reversed(hook.get_hookimpls()) if id(impl) not in self._called]
        if mark:
            self._called.update(id(impl) for impl in fresh)
        return fresh

    @staticmethod
    def _call(impl: Any, **kwargs: Any) -> Any:
        return impl.function(*(kwargs[name] for name in impl.argnames))

    def _origin(self, impl: Any) -> str:
        """``conftest.py`` (relative to the rootdir) or the plugin's name."""
        source = getattr(impl.plugin, "__file__", None) or inspect.getsourcefile(impl.function)
        if source:
            path = Path(source)
            try:
                return str(path.relative_to(self.config.rootpath))
            except ValueError:
                pass
        return f"plugin {impl.plugin_name!r}"
