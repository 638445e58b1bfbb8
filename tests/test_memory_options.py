"""The ``optimizer`` option through the fixture, the marker and pyproject, and its errors."""

from __future__ import annotations

import pytest
from test_memory import FFN_ADAM_PEAK, FFN_PEAK, FFN_TRAIN_PEAK


def _pyproject(project: pytest.Pytester, body: str) -> None:
    project.makefile(".toml", pyproject=body)


def test_marker_optimizer_adds_its_state_to_train_counts(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_opt=f"""
        import pytest
        from models import FFN, ffn_input

        @pytest.mark.flop_budget(mode="train", optimizer="adam")
        def test_adam(flops):
            assert flops(FFN(), ffn_input()).peak_memory == {FFN_ADAM_PEAK}

        @pytest.mark.flop_budget(mode="train", optimizer="adam")
        def test_call_overrides_marker(flops):
            assert flops(FFN(), ffn_input(), optimizer="sgd").peak_memory == {FFN_TRAIN_PEAK}

        def test_no_optimizer(flops):
            assert flops(FFN(), ffn_input(), mode="train").peak_memory == {FFN_TRAIN_PEAK}
        """
    )
    project.runpytest().assert_outcomes(passed=3)


def test_pyproject_optimizer_applies_to_train_counts_only(project: pytest.Pytester) -> None:
    _pyproject(
        project,
        """
[tool.flopbudget]
mode = "train"
optimizer = "adam"
""",
    )
    project.makepyfile(
        test_opt=f"""
        import pytest
        from models import FFN, ffn_input

        def test_train(flops):
            assert flops(FFN(), ffn_input()).peak_memory == {FFN_ADAM_PEAK}

        @pytest.mark.flop_budget(mode="inference")
        def test_inference(flops):
            assert flops(FFN(), ffn_input()).peak_memory == {FFN_PEAK}
        """
    )
    project.runpytest().assert_outcomes(passed=2)


def test_pyproject_optimizer_without_train_mode_is_an_error_naming_the_key(
    project: pytest.Pytester,
) -> None:
    _pyproject(project, '[tool.flopbudget]\noptimizer = "adamw"\n')
    project.makepyfile(test_opt="def test_nothing(): pass")
    result = project.runpytest()
    assert result.ret != 0
    result.stderr.fnmatch_lines(
        ["*pyproject.toml: [[]tool.flopbudget[]] optimizer: 'adamw' needs mode = \"train\"*"]
    )


def test_pyproject_unknown_optimizer_is_an_error(project: pytest.Pytester) -> None:
    _pyproject(project, '[tool.flopbudget]\nmode = "train"\noptimizer = "lion"\n')
    project.makepyfile(test_opt="def test_nothing(): pass")
    result = project.runpytest()
    assert result.ret != 0
    result.stderr.fnmatch_lines(['*optimizer: must be "sgd" or "sgd_momentum" or *, got \'lion\''])


def test_marker_optimizer_in_inference_fails_the_test_naming_the_marker(
    project: pytest.Pytester,
) -> None:
    project.makepyfile(
        test_opt="""
        import pytest
        from models import FFN, ffn_input

        @pytest.mark.flop_budget(gflops=1, optimizer="adam")
        def test_inference(flops):
            flops(FFN(), ffn_input())
        """
    )
    result = project.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*test_opt.py::test_inference: @pytest.mark.flop_budget: optimizer='adam' needs "
            'mode="train"*this test counts in mode="inference"*'
        ]
    )
    result.stdout.no_fnmatch_line("*Traceback*")


def test_fixture_optimizer_in_inference_fails_naming_the_call(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_opt="""
        from models import FFN, ffn_input

        def test_inference(flops):
            flops(FFN(), ffn_input(), optimizer="adam")
        """
    )
    result = project.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FFN: flops(optimizer='adam') needs mode=\"train\"*"])
