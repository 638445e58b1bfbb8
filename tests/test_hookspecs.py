"""Other plugins and conftest files contribute formulas and devices through hooks, per session."""

from __future__ import annotations

import pytest
from conftest import FFN_MACS

from pytest_flopbudget.counting import formulas

# A custom autograd Function: without a formula its inner matmul counts (n*k*m MACs); the
# conftest's formula says 3*n*k*m, so a count of 3 * 2*8*16 = 768 proves the formula applied.
MATMUL_FN = """
import torch


class MatmulFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a @ b

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError


class UsesMatmulFn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(8, 16))

    def forward(self, x):
        return MatmulFn.apply(x, self.w)
"""

FORMULA_CONFTEST = """
def pytest_flopbudget_register_formulas(register):
    def matmul_fn_macs(inputs, outputs):
        (n, k), (_, m) = inputs
        return 3 * n * k * m

    register("prim::PythonOp.MatmulFn", matmul_fn_macs)
"""

COUNTS_MATMUL_FN = """
import pytest, torch
from matmul_fn import UsesMatmulFn


@pytest.mark.parametrize("backend", ["fvcore", "torch"])
def test_matmul_fn(flops, backend):
    count = flops(UsesMatmulFn(), torch.randn(2, 8), backend=backend)
    assert count.macs == EXPECTED, count.macs
"""

WITH_FORMULA = 3 * 2 * 8 * 16
WITHOUT_FORMULA = 2 * 8 * 16


def _formula_project(pytester: pytest.Pytester, expected: int, *, hook: bool = True) -> None:
    pytester.makepyfile(matmul_fn=MATMUL_FN)
    if hook:
        pytester.makeconftest(FORMULA_CONFTEST)
    pytester.makepyfile(test_fn=COUNTS_MATMUL_FN.replace("EXPECTED", str(expected)))


def test_a_conftest_registers_a_formula_for_its_session(pytester: pytest.Pytester) -> None:
    _formula_project(pytester, WITH_FORMULA)
    pytester.runpytest().assert_outcomes(passed=2)
    assert formulas.FORMULAS.get("prim::PythonOp.MatmulFn") is None  # gone after the session


def test_conftest_formulas_apply_on_xdist_workers(pytester: pytest.Pytester) -> None:
    _formula_project(pytester, WITH_FORMULA)
    pytester.runpytest("-n", "2").assert_outcomes(passed=2)


def test_a_second_session_does_not_see_the_first_sessions_formulas(
    pytester: pytest.Pytester,
) -> None:
    _formula_project(pytester, WITH_FORMULA)
    pytester.runpytest().assert_outcomes(passed=2)
    (pytester.path / "conftest.py").unlink()
    pytester.makepyfile(test_fn=COUNTS_MATMUL_FN.replace("EXPECTED", str(WITHOUT_FORMULA)))
    pytester.runpytest().assert_outcomes(passed=2)


def test_a_hook_formula_gives_way_to_what_was_registered_before(pytester: pytest.Pytester) -> None:
    def ten(inputs: object, outputs: object) -> int:
        return 10

    formulas.register_formula("prim::PythonOp.MatmulFn", ten)
    try:
        _formula_project(pytester, WITH_FORMULA)
        pytester.runpytest().assert_outcomes(passed=2)
        assert formulas.FORMULAS.get("prim::PythonOp.MatmulFn") is ten
    finally:
        formulas.FORMULAS.pop("prim::PythonOp.MatmulFn", None)
        formulas.FVCORE_HANDLES.pop("prim::PythonOp.MatmulFn", None)


def test_a_formula_conftest_below_the_rootdir_applies_once_collected(
    pytester: pytest.Pytester,
) -> None:
    sub = pytester.mkpydir("sub")
    (sub / "conftest.py").write_text(FORMULA_CONFTEST)
    (sub / "matmul_fn.py").write_text(MATMUL_FN)
    (sub / "test_fn.py").write_text(
        COUNTS_MATMUL_FN.replace("EXPECTED", str(WITH_FORMULA)).replace(
            "from matmul_fn", "from sub.matmul_fn"
        )
    )
    pytester.runpytest().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        ('register("matmul_fn", lambda i, o: 0)', "op must look like 'namespace::name'"),
        ('register("mylib::op", "not callable")', "formula for 'mylib::op' must be callable"),
    ],
)
def test_a_bad_formula_from_a_hook_is_an_error_naming_the_conftest(
    pytester: pytest.Pytester, call: str, problem: str
) -> None:
    pytester.makeconftest(f"def pytest_flopbudget_register_formulas(register):\n    {call}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*pytest-flopbudget: pytest_flopbudget_register_formulas in conftest.py: *{problem}*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# --------------------------------------------------------------------------------------------
# devices

HARDWARE_CONFTEST = """
def pytest_flopbudget_hardware(config):
    return {
        "Toy_TPU": {
            "peaks": {"fp32": 1e12, "bf16": 4e12},
            "bandwidth": 1e11,
            "source": "https://example.com/toy-tpu",
        }
    }
"""

FFN_TEST = """
import pytest
from models import FFN, ffn_input

@pytest.mark.flop_budget(mmacs=1.1)
def test_ffn(flops):
    flops(FFN(), ffn_input(), backend="torch")
"""

# The FFN's Linear layers on the toy device in bf16: each at the slower of 2*MACs/4e12 and
# bytes/1e11. fc2 alone (1024x1024 fp32 weight, 4 MiB read) takes 4,206,592 / 1e11 = 42.1 us,
# against 2*1,048,576/4e12 = 0.52 us of arithmetic: memory-bound.
FFN_BYTES_LOWER_BOUND = 4 * (1024 * 1024)


def test_a_conftest_device_works_on_the_command_line_and_in_pyproject(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(HARDWARE_CONFTEST)
    project.makepyfile(test_models=FFN_TEST)
    result = project.runpytest("--flop-budget-hardware=toy-tpu:bf16,T4")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Toy_TPU bf16 >=*T4 fp32 >=*status", "*test_ffn*us mem*ok"])
    assert FFN_BYTES_LOWER_BOUND / 1e11 > 2 * FFN_MACS / 4e12
    project.makefile(".toml", pyproject='[tool.flopbudget]\nhardware = ["Toy_TPU"]\n')
    project.runpytest().stdout.fnmatch_lines(["*Toy_TPU fp32 >=*status"])


def test_conftest_devices_are_known_on_xdist_workers(project: pytest.Pytester) -> None:
    project.makeconftest(HARDWARE_CONFTEST)
    project.makepyfile(test_models=FFN_TEST)
    result = project.runpytest("-n", "2", "--flop-budget-hardware=Toy_TPU:bf16")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Toy_TPU bf16 >=*status", "*test_ffn*us mem*ok"])


def test_a_later_session_does_not_know_the_device(project: pytest.Pytester) -> None:
    project.makeconftest(HARDWARE_CONFTEST)
    project.makepyfile(test_models=FFN_TEST)
    project.runpytest("--flop-budget-hardware=Toy_TPU").assert_outcomes(passed=1)
    (project.path / "conftest.py").unlink()
    result = project.runpytest("--flop-budget-hardware=Toy_TPU")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*hardware spec 'Toy_TPU': unknown device 'Toy_TPU'*"])


@pytest.mark.parametrize(
    ("returned", "problem"),
    [
        ('["Toy_TPU"]', "must return a mapping of device name -> *"),
        (
            '{"A100": {"peaks": {"fp32": 1e12}, "bandwidth": 1e11, "source": "x"}}',
            "device 'A100': 'A100' is already a device*",
        ),
        (
            '{"h100": {"peaks": {"fp32": 1e12}, "bandwidth": 1e11, "source": "x"}}',
            "device 'h100': 'H100' is already a device*",
        ),
        (
            '{"Toy": {"peaks": {"fp16": 1e12}, "bandwidth": 1e11, "source": "x"}}',
            "device 'Toy': needs an fp32 peak",
        ),
        (
            '{"Toy": {"peaks": {"fp32": 1e12}, "source": "x"}}',
            "device 'Toy': needs a memory 'bandwidth' in bytes/s",
        ),
        (
            '{"Toy": {"peaks": {"fp32": -1}, "bandwidth": 1e11, "source": "x"}}',
            "device 'Toy': fp32 must be positive, got -1",
        ),
        (
            '{"Toy": {"peaks": {"fp8": 1e15}, "bandwidth": 1e11, "source": "x"}}',
            "device 'Toy': peaks has unknown dtypes 'fp8'*",
        ),
        (
            '{"Toy": {"peaks": {"fp32": 1e12}, "bandwidth": 1e11}}',
            "device 'Toy': needs a 'source' string*",
        ),
        (
            '{"Toy": {"peak": 1e12, "bandwidth": 1e11, "source": "x"}}',
            "device 'Toy': unknown keys peak*",
        ),
    ],
)
def test_a_bad_device_from_a_hook_is_an_error_naming_the_conftest(
    pytester: pytest.Pytester, returned: str, problem: str
) -> None:
    pytester.makeconftest(f"def pytest_flopbudget_hardware():\n    return {returned}\n")
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"*pytest-flopbudget: pytest_flopbudget_hardware in conftest.py: {problem}"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_hardware_hook_loaded_too_late_is_an_error_not_ignored(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("sub")
    (sub / "conftest.py").write_text(HARDWARE_CONFTEST)
    (sub / "test_x.py").write_text("def test_x():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*pytest_flopbudget_hardware in sub/conftest.py was loaded during collection*"]
    )
