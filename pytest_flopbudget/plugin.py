"""pytest hooks and wiring: options, marker, fixture, and the session manager.

No arithmetic and no formatting here; each hook hands its data to the module that owns it.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from .budget import MARKER_NAME, ON_EXCEED_CHOICES, Budget, BudgetError, budget_from_marker
from .config import ConfigError, Settings, find_pyproject, load_settings
from .fixture import FlopCounter
from .record import PROPERTY, TestRecord
from .reports import json_report, table, update
from .verdict import ERROR, Verdict, judge

HELP_JSON = "write a machine-readable report of every count and verdict to PATH"
HELP_UPDATE = (
    "write the measured values into [tool.flopbudget.budgets] of pyproject.toml; "
    "over-budget tests pass in this run"
)
HELP_ON_EXCEED = 'what an over-budget test does: "fail" (default) or "warn" (report only)'
MARKER_HELP = (
    f"{MARKER_NAME}(gflops=4.1, *, mparams=None, name=None, tolerance=None, on_exceed=None): "
    "fail the test if the "
    "models it counts with the flops fixture exceed this budget. One compute unit among flops, "
    "kflops, mflops, gflops, tflops, macs, kmacs, mmacs, gmacs, tmacs; params or mparams for a "
    "model-size guard; name= binds the budget to counts recorded under that name."
)

SETTINGS_KEY = pytest.StashKey[Settings]()
COUNTER_KEY = pytest.StashKey[FlopCounter]()
BUDGETS_KEY = pytest.StashKey[list[Budget]]()
VERDICTS_KEY = pytest.StashKey[list[Verdict]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flopbudget", "compute budgets for PyTorch models (pytest-flopbudget)")
    group.addoption("--flop-budget-json", metavar="PATH", default=None, help=HELP_JSON)
    group.addoption("--flop-budget-update", action="store_true", default=False, help=HELP_UPDATE)
    group.addoption(
        "--flop-budget-on-exceed", choices=ON_EXCEED_CHOICES, default=None, help=HELP_ON_EXCEED
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    pyproject = find_pyproject(config.rootpath, config.inipath)
    try:
        settings = load_settings(
            pyproject,
            json_path=config.getoption("flop_budget_json"),
            update=bool(config.getoption("flop_budget_update")),
            on_exceed=config.getoption("flop_budget_on_exceed"),
        )
    except ConfigError as error:
        raise pytest.UsageError(f"pytest-flopbudget: {error}") from None
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(FlopBudgetManager(config, settings), "flopbudget-manager")


@pytest.fixture
def flops(request: pytest.FixtureRequest) -> FlopCounter:
    """Count a model: ``flops(model, inputs, *, name=None, grad=False)``.

    Returns the count (``.flops``, ``.macs``, ``.params``, ``.by_module``) and records it on
    the test, where ``flop_budget`` markers and pyproject budgets check it.
    """
    settings = request.config.stash[SETTINGS_KEY]
    counter = FlopCounter(flops_per_mac=settings.flops_per_mac)
    request.node.stash[COUNTER_KEY] = counter
    return counter


class FlopBudgetManager:
    """Owns the run's state: the records gathered from test reports, and the final reports."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.records: list[TestRecord] = []
        self.positions: dict[str, int] = {}
        self.notes: list[tuple[str, dict[str, bool]]] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # xdist workers collect the same items in the same order, so positions agree
        self.positions = {item.nodeid: index for index, item in enumerate(session.items)}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        budgets: list[Budget] = []
        problem = None
        for marker in item.iter_markers(name=MARKER_NAME):
            where = f"{item.nodeid}: @pytest.mark.{MARKER_NAME}"
            try:
                budgets.append(budget_from_marker(marker.args, marker.kwargs, where))
            except BudgetError as error:
                problem = str(error)
                break
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        item.stash[BUDGETS_KEY] = budgets

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        try:
            result = yield
        except BaseException:
            self._conclude(item, test_failed=True)
            raise
        verdicts = self._conclude(item, test_failed=False)
        failing = [verdict.message for verdict in verdicts if verdict.fails_test]
        if failing:
            pytest.fail("\n\n".join(failing), pytrace=False)
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, object, object]:
        result = yield
        errors = [v.message for v in item.stash.get(VERDICTS_KEY, []) if v.status == ERROR]
        if errors:
            pytest.fail("\n".join(errors), pytrace=False)
        return result

    def _conclude(self, item: pytest.Item, *, test_failed: bool) -> list[Verdict]:
        counter = item.stash.get(COUNTER_KEY, None)
        counts = list(counter.counts) if counter is not None else []
        budgets = item.stash.get(BUDGETS_KEY, [])
        verdicts = judge(item.nodeid, counts, budgets, self.settings, test_failed=test_failed)
        item.stash[VERDICTS_KEY] = verdicts
        if counts or verdicts:
            position = self.positions.get(item.nodeid, len(self.positions))
            record = TestRecord(item.nodeid, position, counts, verdicts)
            item.user_properties.append((PROPERTY, record.to_json()))
        return verdicts

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":
            return
        for key, value in report.user_properties:
            if key == PROPERTY:
                self.records.append(TestRecord.from_json(value))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # xdist worker: the controller writes the reports
        records = sorted(self.records, key=TestRecord.sort_key)
        try:
            if self.settings.json_path is not None:
                json_report.write(self.settings.json_path, records, self.settings)
                self.notes.append((f"flop budget report written to {self.settings.json_path}", {}))
            if self.settings.update and self.settings.pyproject is not None:
                outcome = update.update_pyproject(self.settings.pyproject, records, self.settings)
                self.notes.extend((line, {}) for line in outcome.lines())
        except (OSError, update.UpdateError) as error:
            self.notes.append((f"pytest-flopbudget: {error}", {"red": True, "bold": True}))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        records = sorted(self.records, key=TestRecord.sort_key)
        if records:
            table.write(terminalreporter, records, self.settings, self.config.get_verbosity())
        for line, markup in self.notes:
            terminalreporter.write_line(line, **markup)
