"""pytest hooks and wiring: options, marker, fixture, and the session manager.

No arithmetic and no formatting here; each hook hands its data to the module that owns it.
Tests that neither count nor carry a budget cost one dictionary look-up per hook, and the
report writers are imported only when a run has something to report: suites that do not use
the plugin should not pay for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .budgets.budget import (
    MARKER_NAME,
    ON_EXCEED_CHOICES,
    Budget,
    BudgetError,
    budget_from_marker,
    count_options_from_marker,
)
from .budgets.config import (
    ConfigError,
    CountOptions,
    Settings,
    count_options,
    find_pyproject,
    load_settings,
)
from .budgets.verdict import ERROR
from .fixture import FlopCounter

if TYPE_CHECKING:
    from .budgets.baseline import Baseline
    from .budgets.record import TestRecord
    from .budgets.stale import StaleEntry

HELP_JSON = "write a machine-readable report of every count and verdict to PATH"
HELP_MARKDOWN = "write a Markdown summary to PATH (also appended to $GITHUB_STEP_SUMMARY when set)"
HELP_UPDATE = (
    "write the measured values into [tool.flopbudget.budgets] of pyproject.toml (and the "
    "baseline file, if one is configured); over-budget tests pass in this run"
)
HELP_ON_EXCEED = 'what an over-budget test does: "fail" (default) or "warn" (report only)'
HELP_HARDWARE = "comma-separated devices (T4,A100:fp16) to show the ideal time on, a lower bound"
MARKER_HELP = (
    f"{MARKER_NAME}(gflops=4.1, *, mparams=None, name=None, tolerance=None, on_exceed=None, "
    "backend=None, mode=None, unknown_ops=None): fail the test if the models it counts with "
    "the flops fixture exceed this budget. One compute unit among flops, kflops, mflops, "
    "gflops, tflops, macs, kmacs, mmacs, gmacs, tmacs; params or mparams for a model-size "
    "guard; name= binds the budget to counts recorded under that name; backend (fvcore, "
    "torch), mode (inference, train) and unknown_ops (warn, fail, ignore) set how they count."
)
REPORT_ATTRIBUTE = "flopbudget"

SETTINGS_KEY = pytest.StashKey[Settings]()
COUNTER_KEY = pytest.StashKey[FlopCounter]()
BUDGETS_KEY = pytest.StashKey[list[Budget]]()
OPTIONS_KEY = pytest.StashKey[CountOptions]()
RECORD_KEY = pytest.StashKey["TestRecord"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flopbudget", "compute budgets for PyTorch models (pytest-flopbudget)")
    group.addoption("--flop-budget-json", metavar="PATH", default=None, help=HELP_JSON)
    group.addoption("--flop-budget-markdown", metavar="PATH", default=None, help=HELP_MARKDOWN)
    group.addoption("--flop-budget-update", action="store_true", default=False, help=HELP_UPDATE)
    group.addoption(
        "--flop-budget-on-exceed", choices=ON_EXCEED_CHOICES, default=None, help=HELP_ON_EXCEED
    )
    group.addoption("--flop-budget-hardware", metavar="DEVICES", default=None, help=HELP_HARDWARE)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    pyproject = find_pyproject(config.rootpath, config.inipath)
    try:
        settings = load_settings(
            pyproject,
            json_path=config.getoption("flop_budget_json"),
            markdown_path=config.getoption("flop_budget_markdown"),
            update=bool(config.getoption("flop_budget_update")),
            on_exceed=config.getoption("flop_budget_on_exceed"),
            hardware=config.getoption("flop_budget_hardware"),
        )
    except ConfigError as error:
        raise pytest.UsageError(f"pytest-flopbudget: {error}") from None
    notes: list[str] = []
    baseline: Baseline | None = None
    if settings.baseline_path is not None:
        from .budgets import baseline as baseline_file

        try:
            baseline = baseline_file.load(settings.baseline_path)
        except baseline_file.BaselineError as error:
            if not settings.update:
                raise pytest.UsageError(f"pytest-flopbudget: {error}") from None
            notes.append(f"{error}; it will be rewritten")
            baseline = baseline_file.Baseline(settings.baseline_path, {}, exists=False)
        if not baseline.exists and not settings.update:
            notes.append(
                f"baseline {settings.baseline_path} does not exist yet; "
                "create it with --flop-budget-update"
            )
    config.stash[SETTINGS_KEY] = settings
    manager = FlopBudgetManager(config, settings, baseline, notes)
    config.pluginmanager.register(manager, "flopbudget-manager")


@pytest.fixture
def flops(request: pytest.FixtureRequest) -> FlopCounter:
    """Count a model: ``flops(model, inputs, *, name=None, grad=False, backend=None, mode=None)``.

    Returns the count (``.flops``, ``.macs``, ``.params``, ``.by_module``) and records it on
    the test, where ``flop_budget`` markers and pyproject budgets check it.
    """
    settings = request.config.stash[SETTINGS_KEY]
    manager = request.config.pluginmanager.get_plugin("flopbudget-manager")
    if isinstance(manager, FlopBudgetManager):
        manager.use_test_hooks()
    options = request.node.stash.get(OPTIONS_KEY, None) or count_options(settings, {})
    counter = FlopCounter(flops_per_mac=settings.flops_per_mac, options=options)
    request.node.stash[COUNTER_KEY] = counter
    return counter


class FlopBudgetManager:
    """Owns the run's state: the records gathered from test reports, and the final reports."""

    def __init__(
        self, config: pytest.Config, settings: Settings, baseline: Baseline | None, notes: list[str]
    ) -> None:
        self.config = config
        self.settings = settings
        self.baseline = baseline
        self.records: list[TestRecord] = []
        self.positions: dict[str, int] = {}
        self.seen: set[str] = set()
        self.ran: set[str] = set()
        self.passed: set[str] = set()
        self.stale: list[StaleEntry] = []
        self.pending: dict[str, TestRecord] = {}
        self.test_hooks: TestHooks | None = None
        self.notes: list[tuple[str, dict[str, bool]]] = [(note, {"yellow": True}) for note in notes]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # xdist workers collect the same items in the same order, so positions agree
        self.positions = {item.nodeid: index for index, item in enumerate(session.items)}
        if any(self._may_count(item) for item in session.items):
            self.use_test_hooks()

    def _may_count(self, item: pytest.Item) -> bool:
        return (
            "flops" in getattr(item, "fixturenames", ())
            or item.get_closest_marker(MARKER_NAME) is not None
            or item.nodeid in self.settings.budgets_by_nodeid
        )

    def use_test_hooks(self) -> None:
        """Register the per-test hooks (once); the fixture calls it too, for tests that ask
        for ``flops`` through ``request.getfixturevalue``."""
        if self.test_hooks is None:
            self.test_hooks = TestHooks(self)
            self.config.pluginmanager.register(self.test_hooks, "flopbudget-tests")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seen.add(report.nodeid)
        if report.when == "call":
            self.ran.add(report.nodeid)
            if report.passed:
                self.passed.add(report.nodeid)
        elif report.when == "teardown":
            record = self.pending.pop(report.nodeid, None)
            if record is not None and (record.counts or record.verdicts):
                # a plain JSON string in the report's __dict__ travels with it from xdist
                # workers (tryfirst: before xdist serializes the report)
                setattr(report, REPORT_ATTRIBUTE, record.to_json())
            payload = getattr(report, REPORT_ATTRIBUTE, None)
            if isinstance(payload, str):
                from .budgets.record import TestRecord

                self.records.append(TestRecord.from_json(payload))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # xdist worker: the controller writes the reports
        if not self._has_work():
            return
        from .budgets.record import TestRecord
        from .budgets.stale import find_stale
        from .reports.json_report import ReportError
        from .reports.update import UpdateError

        records = sorted(self.records, key=TestRecord.sort_key)
        full_run = _is_full_run(session)
        if full_run:
            self.stale = find_stale(self.settings, self.baseline, records, self.seen, self.ran)
        try:
            self._write_reports(records, full_run)
        except (OSError, UpdateError, ReportError) as error:
            self.notes.append((f"pytest-flopbudget: {error}", {"red": True, "bold": True}))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _has_work(self) -> bool:
        """Anything to report: counts, or budgets and a baseline that may have gone stale."""
        settings = self.settings
        return bool(
            self.records
            or settings.budgets_by_nodeid
            or settings.budgets_by_name
            or self.baseline is not None
            or settings.update
        )

    def _write_reports(self, records: list[TestRecord], full_run: bool) -> None:
        from .budgets import baseline as baseline_file
        from .reports import json_report, markdown, update

        settings = self.settings
        with_baseline = self.baseline is not None
        if settings.json_path is not None:
            json_report.write(settings.json_path, records, settings, self.stale)
            self.notes.append((f"flop budget report written to {settings.json_path}", {}))
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if (settings.markdown_path is not None or summary_file) and records:
            text = markdown.build(records, settings, with_baseline=with_baseline, stale=self.stale)
            if settings.markdown_path is not None:
                markdown.write(settings.markdown_path, text)
                self.notes.append((f"flop budget summary written to {settings.markdown_path}", {}))
            if summary_file:
                markdown.append_step_summary(Path(summary_file), text)
        if settings.update and settings.pyproject is not None:
            stale_keys = [entry.key for entry in self.stale if entry.where == "pyproject"]
            outcome = update.update_pyproject(
                settings.pyproject, records, settings, remove=stale_keys
            )
            self.notes.extend((line, {}) for line in outcome.lines())
        if settings.update and settings.baseline_path is not None:
            verdicts = [verdict for record in records for verdict in record.verdicts]
            measured = baseline_file.measured_entries(verdicts, settings.flops_per_mac)
            entries = baseline_file.merged(
                self.baseline,
                measured,
                {record.nodeid for record in records} | self.ran,
                full_run=full_run,
            )
            line = update.write_baseline(settings.baseline_path, self.baseline, entries)
            self.notes.append((line, {}))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.records or self.stale:
            from .budgets.record import TestRecord
            from .reports import table

            records = sorted(self.records, key=TestRecord.sort_key)
            table.write(
                terminalreporter,
                records,
                self.settings,
                self.config.get_verbosity(),
                with_baseline=self.baseline is not None,
                stale=self.stale,
            )
        for line, markup in self.notes:
            terminalreporter.write_line(line, **markup)


class TestHooks:
    """The per-test hooks, registered only when some test counts or has a budget.

    A suite that does not use the plugin then pays nothing per test for it.
    """

    __test__ = False  # not a test class

    def __init__(self, manager: FlopBudgetManager) -> None:
        self.manager = manager

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if item.get_closest_marker(MARKER_NAME) is None:
            return
        budgets: list[Budget] = []
        options: dict[str, str] = {}
        problem = None
        for marker in item.iter_markers(name=MARKER_NAME):  # closest first
            where = f"{item.nodeid}: @pytest.mark.{MARKER_NAME}"
            try:
                budget = budget_from_marker(marker.args, marker.kwargs, where)
                marker_options = count_options_from_marker(marker.kwargs, where)
            except BudgetError as error:
                problem = str(error)
                break
            if budget is not None:
                budgets.append(budget)
            options = {**marker_options, **options}
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        item.stash[BUDGETS_KEY] = budgets
        item.stash[OPTIONS_KEY] = count_options(self.manager.settings, options)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """Runs after the test body, and only if it passed: over budget fails the test here."""
        if not self._involved(item):
            return
        record = self._conclude(item, test_failed=False)
        failing = [verdict.message for verdict in record.verdicts if verdict.fails_test]
        if failing:
            pytest.fail("\n\n".join(failing), pytrace=False)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """After the fixtures' teardown: budgets that named nothing counted error the test."""
        if not self._involved(item):
            return
        record = item.stash.get(RECORD_KEY, None)
        judged_late = record is None
        if record is None:
            # Either the body failed or skipped (record what it counted, judge nothing), or it
            # asked for `flops` at run time, after the call hooks had run: judge it now.
            passed = item.nodeid in self.manager.passed
            record = self._conclude(item, test_failed=not passed)
        self.manager.pending[item.nodeid] = record
        problems = [
            v.message
            for v in record.verdicts
            if v.status == ERROR or (judged_late and v.fails_test)
        ]
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)

    def _involved(self, item: pytest.Item) -> bool:
        return (
            COUNTER_KEY in item.stash
            or BUDGETS_KEY in item.stash
            or item.nodeid in self.manager.settings.budgets_by_nodeid
        )

    def _conclude(self, item: pytest.Item, *, test_failed: bool) -> TestRecord:
        from .budgets.record import TestRecord
        from .budgets.regression import against_baseline, tighten_note
        from .budgets.verdict import judge
        from .reports import junit

        counter = item.stash.get(COUNTER_KEY, None)
        counts = list(counter.counts) if counter is not None else []
        budgets = item.stash.get(BUDGETS_KEY, [])
        options = item.stash.get(OPTIONS_KEY, None) or count_options(self.manager.settings, {})
        verdicts = judge(
            item.nodeid,
            counts,
            budgets,
            self.manager.settings,
            test_failed=test_failed,
            unknown_ops=options.unknown_ops,
        )
        verdicts = [
            tighten_note(
                against_baseline(verdict, self.manager.baseline, self.manager.settings),
                self.manager.settings,
            )
            for verdict in verdicts
        ]
        position = self.manager.positions.get(item.nodeid, len(self.manager.positions))
        record = TestRecord(item.nodeid, position, counts, verdicts)
        item.stash[RECORD_KEY] = record
        item.user_properties.extend(junit.properties(verdicts))
        return record


def _is_full_run(session: pytest.Session) -> bool:
    """False when -k, -m, --lf, --deselect, a stop on failure or a narrower path selected tests."""
    config = session.config
    option = config.option
    if getattr(option, "keyword", "") or getattr(option, "markexpr", ""):
        return False
    if getattr(option, "lf", False) or getattr(option, "deselect", None):
        return False
    if session.shouldstop or session.shouldfail:
        return False
    if config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    root = config.rootpath
    defaults = {(root / path).resolve() for path in config.getini("testpaths")} or {root.resolve()}
    chosen = set()
    for arg in config.args:
        if "::" in arg:
            return False
        chosen.add((config.invocation_params.dir / arg).resolve())
    return root.resolve() in chosen or defaults <= chosen
