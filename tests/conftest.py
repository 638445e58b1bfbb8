"""Shared helpers: small real models, written into each pytester project as ``models.py``."""

from __future__ import annotations

import os
import stat
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytester's in-process runs drop modules first imported inside them; torch's C extension
# cannot be imported twice in one process, so it is imported here, once, for all of them.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import fvcore.nn  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from pytest_flopbudget.counting.counter import count_model
    from pytest_flopbudget.counting.fakes import abstract

    # Counting once with every path imports the torch submodules they load lazily (fake
    # tensors, custom ops, autograd); a second import of those inside pytester would fail.
    @torch.library.custom_op("flopbudget_warmup::op", mutates_args=())
    def _warmup_op(x: torch.Tensor) -> torch.Tensor:
        return x.clone()

    @_warmup_op.register_fake
    def _(x: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(x)

    class _Warmup(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return _warmup_op(self.fc(x))

    for _backend in ("fvcore", "torch"):
        count_model(_Warmup(), torch.randn(1, 2), backend=_backend)
    count_model(torch.nn.Linear(2, 2), torch.randn(1, 2), backend="torch", mode="train")
    with abstract():
        _model, _x = _Warmup(), torch.empty(1, 2)
    count_model(_model, _x)

MODELS = textwrap.dedent(
    '''
    import torch
    from torch import nn


    class FFN(nn.Module):
        """The seed article's three-layer FFN: 4 -> 1024 -> 1024 -> 2."""

        def __init__(self, hidden: int = 1024):
            super().__init__()
            self.fc1 = nn.Linear(4, hidden)
            self.fc2 = nn.Linear(hidden, hidden)
            self.fc3 = nn.Linear(hidden, 2)

        def forward(self, x):
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


    class TinyConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)

        def forward(self, x):
            return self.conv(x)


    class KeywordModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(16, 32)

        def forward(self, input_ids=None, scale=1.0, extra=None):
            out = self.proj(input_ids) * scale
            if extra is not None:
                out = out + self.proj(extra)
            return {"logits": out, "aux": None}


    def ffn_input():
        return torch.randn(1, 4)
    '''
)

# 4*1024 + 1024*1024 + 1024*2 multiply-accumulates (seed article 002).
FFN_MACS = 4 * 1024 + 1024 * 1024 + 1024 * 2
# weights plus biases of the three layers
FFN_PARAMS = (4 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 2 + 2)
# Conv2d(3, 8, 3, padding=1) on 8x8: 8 output channels x 64 positions x (3 x 3 x 3) taps
CONV_MACS = 8 * 8 * 8 * (3 * 3 * 3)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project with ``models.py`` importable from its tests."""
    pytester.makepyfile(models=MODELS)
    pytester.syspathinsert()
    return pytester


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Table rows in these tests are matched whole: give runs a terminal wide enough for them.

    The fitting of the table to narrow terminals has tests of its own (test_table_width.py),
    which set COLUMNS themselves.
    """
    monkeypatch.setenv("COLUMNS", "250")


# Plugins that reorder tests or replace pytest's terminal reporter; pytester runs load every
# installed plugin, so they are off here and on only in the tests about them
# (test_other_plugins.py), which pass ``-p randomly`` and the like themselves.
OTHER_PLUGINS_OFF = "-p no:randomly -p no:sugar -p no:rich"


@pytest.fixture(autouse=True)
def _other_plugins_off(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # set after pytester starts: it clears PYTEST_ADDOPTS for its runs
    if "pytester" in request.fixturenames:
        request.getfixturevalue("pytester")
    monkeypatch.setenv("PYTEST_ADDOPTS", OTHER_PLUGINS_OFF)


# Life-cycle and report tests run three ways, as syrupy's do: without xdist, with xdist
# loaded but off (-n 0), and over two workers (-n 2).
RUN_MODES = {"serial": (), "xdist-off": ("-n", "0"), "xdist-2": ("-n", "2")}
# Known gaps under xdist, xfailed here and nowhere else: {test name: reason}.
XDIST_GAPS: dict[str, str] = {}


@pytest.fixture(params=list(RUN_MODES))
def plugin_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """Arguments every pytester run of the test passes, one parametrization per run mode."""
    gap = XDIST_GAPS.get(request.node.originalname)
    if gap is not None and request.param == "xdist-2":
        request.applymarker(pytest.mark.xfail(reason=gap, strict=True))
    return RUN_MODES[request.param]


@pytest.fixture
def dev_null() -> Iterator[Path]:
    """``/dev/null`` for a test that writes to it; as root, a writer that replaced it with a
    regular file would break the whole machine, so the device is put back and the test fails."""
    yield Path("/dev/null")
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode) and os.geteuid() == 0:
        os.mknod("/dev/.null-restored", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        os.replace("/dev/.null-restored", "/dev/null")
        pytest.fail("/dev/null was replaced by a regular file (restored)")
