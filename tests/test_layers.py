"""The package's layers (README, "How it works") hold, and the check that says so can fail.

``lint-imports`` reads the contracts in pyproject.toml's ``[tool.importlinter]``: imports
point down (cli -> plugin -> fixture -> reports -> budgets -> counting), budgets/ imports
neither torch nor pytest, counting/ no pytest, and no two sibling modules import each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pytest_flopbudget

PACKAGE = Path(pytest_flopbudget.__file__).parent
PYPROJECT = PACKAGE.parent / "pyproject.toml"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"  # import-linter's command


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` on ``project``'s copy of the package, with its pyproject."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(project / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def copy_of_package(tmp_path: Path) -> Path:
    shutil.copytree(PACKAGE, tmp_path / "pytest_flopbudget")
    shutil.copy(PYPROJECT, tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers(copy_of_package: Path) -> None:
    result = lint_imports(copy_of_package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "broken"),
    [
        ("budgets/units.py", "from ..reports import table", "Layers: imports point down"),
        ("counting/count.py", "from ..budgets import units", "Layers: imports point down"),
        ("budgets/verdict.py", "import torch", "budgets/ is pure"),
        ("counting/inputs.py", "import pytest", "counting/ works without pytest"),
        ("counting/formulas.py", "from . import counter", "No import cycles"),
    ],
    ids=[
        "budgets-imports-reports",
        "counting-imports-budgets",
        "torch-in-budgets",
        "pytest-in-counting",
        "cycle",
    ],
)
def test_an_import_against_the_layers_is_caught(
    copy_of_package: Path, module: str, bad_import: str, broken: str
) -> None:
    path = copy_of_package / "pytest_flopbudget" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{bad_import}  # noqa\n", "utf-8")
    result = lint_imports(copy_of_package)
    assert result.returncode == 1, result.stdout + result.stderr
    broken_lines = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(line.startswith(broken) for line in broken_lines), result.stdout
