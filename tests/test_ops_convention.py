"""The ops convention: fvcore's (norms, pooling and resampling count) or dense (they do not)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from pytest_flopbudget import CountError, count_model
from pytest_flopbudget.cli import main
from pytest_flopbudget.counting.backends import get_backend
from pytest_flopbudget.counting.op_conventions import DENSE_OPS, counts_under

BACKENDS = ("fvcore", "torch")


def conv_bn_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, kernel_size=3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()


# On a (2, 3, 16, 16) input:
CONV = 2 * 8 * 16 * 16 * (3 * 3 * 3)  # outputs x taps
BN = 2 * (2 * 8 * 16 * 16)  # fvcore: 2 per element in eval (affine)
POOL = 2 * 8 * 16 * 16  # fvcore: 1 per input element
LINEAR = 2 * 8 * 10
FVCORE_TOTAL = CONV + BN + POOL + LINEAR
DENSE_TOTAL = CONV + LINEAR


def net_input() -> torch.Tensor:
    return torch.randn(2, 3, 16, 16)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fvcore_convention_counts_norms_and_pooling(backend: str) -> None:
    count = count_model(conv_bn_net(), net_input(), backend=backend, ops="fvcore")
    assert count.macs == FVCORE_TOTAL
    assert count.ops == "fvcore"
    assert (count.by_module["1"], count.by_module["3"]) == (BN, POOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_convention_counts_only_convolutions_and_matrix_products(backend: str) -> None:
    count = count_model(conv_bn_net(), net_input(), backend=backend, ops="dense")
    assert count.macs == DENSE_TOTAL
    assert count.ops == "dense"
    assert count.by_module == {"0": CONV, "1": 0, "2": 0, "3": 0, "4": 0, "5": LINEAR}
    assert count.unknown_ops == {}


@pytest.mark.parametrize("backend", BACKENDS)
def test_ops_the_dense_convention_leaves_out_are_ignored_not_unknown(backend: str) -> None:
    with torch.no_grad():  # as count_model counts
        raw = get_backend(backend, ops="dense")(conv_bn_net(), (net_input(),), {})
    assert raw.unknown_ops == {}
    assert any("batch_norm" in op for op in raw.ignored_ops)
    assert any("adaptive_avg_pool2d" in op for op in raw.ignored_ops)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_count_of_a_fused_encoder_layer_leaves_out_its_norms(backend: str) -> None:
    layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, batch_first=True).eval()
    tokens, width, ff = 2 * 5, 16, 32
    projections = 3 * tokens * width * width + tokens * width * width
    attention = 2 * 5 * 5 * width * 2  # Q K^T and attn V over 2 sequences of 5
    feed_forward = 2 * tokens * width * ff
    norms = 2 * 5 * tokens * width  # fvcore: 5 per element, two norms
    x = torch.randn(2, 5, 16)
    dense = count_model(layer, x, backend=backend, ops="dense")
    fvcore = count_model(layer, x, backend=backend, ops="fvcore")
    assert dense.macs == projections + attention + feed_forward
    assert fvcore.macs == dense.macs + norms


def test_a_dense_training_step_counts_the_backward_of_convolutions_and_matrix_products() -> None:
    count = count_model(conv_bn_net(), net_input(), mode="train", ops="dense")
    # forward; the convolution's weight gradient (its input needs none); the linear layer's
    # input and weight gradients. Batch norm and pooling backward are left out like forward.
    assert count.macs == DENSE_TOTAL + CONV + 2 * LINEAR


def test_an_lstm_counts_under_dense_because_it_is_matrix_products() -> None:
    lstm = nn.LSTM(4, 8)
    count = count_model(lstm, torch.randn(5, 2, 4), ops="dense")
    assert count.macs == 5 * 2 * 4 * 8 * (4 + 8)


def test_users_own_ops_count_under_both_conventions_while_aten_norms_do_not() -> None:
    assert counts_under("dense", "mylib::fused_attention")
    assert counts_under("dense", "aten::convolution.default")
    assert not counts_under("dense", "aten::native_batch_norm")
    assert not counts_under("dense", "aten::layer_norm")
    assert "aten::layer_norm" not in DENSE_OPS
    assert all(counts_under("fvcore", op) for op in ("aten::layer_norm", "aten::mm"))


def test_an_unknown_convention_is_a_count_error_naming_the_model() -> None:
    with pytest.raises(CountError, match=r"Sequential: flops\(ops=...\): ops must be "):
        count_model(conv_bn_net(), net_input(), ops="papers")


# --------------------------------------------------------------------------------------------
# through pytest: pyproject, marker, fixture call, reports

NET = textwrap.dedent(
    """
    import pytest, torch
    from torch import nn


    def net():
        return nn.Sequential(
            nn.Conv2d(3, 8, kernel_size=3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 10),
        ).eval()

    """
)


def test_pyproject_sets_the_convention_and_the_header_and_json_say_so(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nops = "dense"\n')
    pytester.makepyfile(
        test_net=NET
        + textwrap.dedent(
            f"""
            @pytest.mark.flop_budget(macs={DENSE_TOTAL})
            def test_net(flops):
                assert flops(net(), torch.randn(2, 3, 16, 16)).macs == {DENSE_TOTAL}
            """
        )
    )
    result = pytester.runpytest("--flop-budget-json=report.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ['*= flop budget: 1 FLOP = 1 MAC *; ops = "dense" (convolutions, matrix products and*']
    )
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["convention"]["ops"] == "dense"
    assert report["results"][0]["ops"] == "dense"


def test_the_marker_overrides_pyproject_and_the_fixture_call_overrides_the_marker(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nops = "fvcore"\n')
    pytester.makepyfile(
        test_net=NET
        + textwrap.dedent(
            f"""
            @pytest.mark.flop_budget(ops="dense")
            def test_marker(flops):
                assert flops(net(), torch.randn(2, 3, 16, 16)).macs == {DENSE_TOTAL}

            @pytest.mark.flop_budget(ops="dense")
            def test_call(flops):
                count = flops(net(), torch.randn(2, 3, 16, 16), ops="fvcore")
                assert (count.macs, count.ops) == ({FVCORE_TOTAL}, "fvcore")

            def test_default(flops):
                assert flops(net(), torch.randn(2, 3, 16, 16)).macs == {FVCORE_TOTAL}
            """
        )
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3)
    # a count under another convention than the header's is named in the notes
    result.stdout.fnmatch_lines(
        [
            "test_net.py::test_marker  *Sequential*fvcore  *dense  *no budget",
            'test_net.py::test_marker [[]Sequential[]]: counted under ops = "dense", not the run*',
        ]
    )
    assert "test_net.py::test_call [Sequential]: counted under" not in result.stdout.str()


def test_an_unknown_convention_in_pyproject_stops_the_run_naming_file_and_key(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nops = "papers"\n')
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ['*pyproject.toml: [[]tool.flopbudget[]] ops: must be "fvcore" or "dense", got *papers*']
    )


def test_an_unknown_convention_in_the_marker_errors_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_net=NET
        + textwrap.dedent(
            """
            @pytest.mark.flop_budget(gmacs=1, ops="paper")
            def test_net(flops):
                flops(net(), torch.randn(2, 3, 16, 16))
            """
        )
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*flop_budget: ops must be "fvcore" or "dense", got *paper*'])


def test_a_baseline_counted_under_another_convention_is_not_compared_but_said_so(
    pytester: pytest.Pytester,
) -> None:
    test_file = NET + textwrap.dedent(
        """
        def test_net(flops):
            flops(net(), torch.randn(2, 3, 16, 16))
        """
    )
    pytester.makepyprojecttoml('[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    pytester.makepyfile(test_net=test_file)
    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    baseline = pytester.path / "flopbudget.json"
    entry = json.loads(baseline.read_text())["tests"]["test_net.py::test_net"]["Sequential"]
    assert entry["macs"] == FVCORE_TOTAL and "ops" not in entry

    pytester.makepyprojecttoml('[tool.flopbudget]\nbaseline = "flopbudget.json"\nops = "dense"\n')
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*Sequential*ops differ*no budget*",
            '*[[]Sequential[]]: not compared with the baseline: it was counted under ops = "fvcore",'
            ' this run under ops = "dense"; rewrite it with --flop-budget-update',
        ]
    )

    pytester.runpytest("--flop-budget-update").assert_outcomes(passed=1)
    entry = json.loads(baseline.read_text())["tests"]["test_net.py::test_net"]["Sequential"]
    assert (entry["macs"], entry["ops"]) == (DENSE_TOTAL, "dense")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*Sequential*100.0%*=*ok"])


def test_a_baseline_with_an_unknown_convention_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.flopbudget]\nbaseline = "flopbudget.json"\n')
    entry = {"macs": 1, "params": 1, "by_module_macs": {}, "ops": "sparse"}
    (pytester.path / "flopbudget.json").write_text(
        json.dumps({"version": 1, "tests": {"test_x.py::test_x": {"Net": entry}}})
    )
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tests[[]'test_x.py::test_x'[]][[]'Net'[]].ops: must be *"])


# --------------------------------------------------------------------------------------------
# flopbudget compare


def _report(ops: str | None, macs: int) -> dict[str, object]:
    row: dict[str, object] = {"nodeid": "t.py::t", "name": "Net", "macs": macs, "params": 10}
    convention: dict[str, object] = {"flops_per_mac": 1}
    if ops is not None:
        row["ops"] = ops
        convention["ops"] = ops
    return {"version": 1, "convention": convention, "results": [row]}


def _compare(tmp_path: Path, old: object, new: object, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "old.json").write_text(json.dumps(old))
    (tmp_path / "new.json").write_text(json.dumps(new))
    code = main(["compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")])
    return code, capsys.readouterr()


def test_compare_refuses_reports_counted_under_different_conventions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, captured = _compare(
        tmp_path, _report("fvcore", FVCORE_TOTAL), _report("dense", DENSE_TOTAL), capsys
    )
    assert code == 2
    assert "counted under different ops conventions" in captured.err
    assert 't.py::t [Net] under ops = "fvcore" in one, ops = "dense" in the other' in captured.err
    assert captured.out == ""


def test_compare_reads_reports_without_a_convention_as_fvcores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, captured = _compare(
        tmp_path, _report(None, FVCORE_TOTAL), _report("fvcore", FVCORE_TOTAL + 1), capsys
    )
    assert code == 1
    assert "regressed" in captured.out
    code, captured = _compare(
        tmp_path, _report(None, FVCORE_TOTAL), _report("dense", DENSE_TOTAL), capsys
    )
    assert code == 2


def test_compare_rejects_an_unknown_convention_naming_the_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _report("fvcore", 1)
    bad["results"][0]["ops"] = "sparse"  # type: ignore[index]
    code, captured = _compare(tmp_path, bad, bad, capsys)
    assert code == 2
    assert "results[0].ops: must be" in captured.err
