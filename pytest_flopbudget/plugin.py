"""pytest hooks and wiring: options, marker, fixture, and the session manager.

No arithmetic and no formatting here; each hook hands its data to the module that owns it.
Tests that neither count nor carry a budget cost one dictionary look-up per hook, and the
report writers are imported only when a run has something to report: suites that do not use
the plugin should not pay for it.
"""

from __future__ import annotations

import glob
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, TypeVar

import pluggy
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
from .budgets.paths import check_separate, written_files
from .budgets.scope import XFAILED, CollectionFacts, Phases, narrowed_by_paths
from .budgets.scopes import Scopes
from .budgets.verdict import ERROR, FAILING, FlopBudgetWarning
from .contributions import Contributions
from .fixture import FlopCounter

if TYPE_CHECKING:
    from collections.abc import Generator

    from .budgets.baseline import Baseline
    from .budgets.hardware import Device
    from .budgets.record import TestRecord
    from .budgets.scope import RunScope
    from .budgets.stale import StaleEntry, Staleness

T = TypeVar("T")

HELP_JSON = "write a machine-readable report of every count and verdict to PATH"
HELP_HTML = "write a self-contained HTML report (budget gauges, module icicles) to PATH"
HELP_MARKDOWN = "write a Markdown summary to PATH (also appended to $GITHUB_STEP_SUMMARY when set)"
HELP_UPDATE = (
    "write the measured values into [tool.flopbudget.budgets] of pyproject.toml (and the "
    "baseline file, if one is configured); over-budget tests pass in this run. Takes numbers "
    "only from tests that passed; removes only entries the run proves stale"
)
HELP_UPDATE_FAILED = (
    "with --flop-budget-update, also take the counts of tests that failed their own assertions"
)
HELP_REPORT_ONLY = (
    "check and report every budget, but fail no test for it (overrides on_exceed everywhere; "
    "pyproject: report_only = true)"
)
HELP_ON_EXCEED = 'what an over-budget test does: "fail" (default) or "warn" (report only)'
HELP_HARDWARE = (
    "comma-separated devices (T4,A100:fp16) to show the roofline time on: a lower bound, "
    "each op at the slower of its arithmetic and its memory traffic"
)
MARKER_HELP = (
    f"{MARKER_NAME}(gflops=4.1, *, mparams=None, name=None, tolerance=None, on_exceed=None, "
    "backend=None, mode=None, unknown_ops=None, ops=None, optimizer=None): fail the test if "
    "the models it "
    "counts with "
    "the flops fixture exceed this budget. One compute unit among flops, kflops, mflops, "
    "gflops, tflops, macs, kmacs, mmacs, gmacs, tmacs; params or mparams for a model-size "
    "guard, active_params, mactive_params or gactive_params for the parameters one token "
    "uses; name= binds the budget to counts recorded under that name; backend (fvcore, "
    "torch), mode (inference, train), unknown_ops (warn, fail, ignore) and ops (fvcore, dense: "
    "which ops count) and optimizer (sgd, sgd_momentum, adam, adamw, adagrad, rmsprop: whose "
    "state a train-mode peak memory includes) set how they count."
)
REPORT_ATTRIBUTE = "flopbudget"  # on the teardown report: the test's record, as JSON
BODY_ATTRIBUTE = "flopbudget_body"  # on the call report: "passed" when only the budget failed it
WORKER_OUTPUT = "flopbudget"  # xdist workeroutput: what the worker collected
REPORT_SECTION = "flop budget"
WORKER_IMPORTED = "flopbudget_imported"

SETTINGS_KEY = pytest.StashKey[Settings]()
COUNTER_KEY = pytest.StashKey[FlopCounter]()
BUDGETS_KEY = pytest.StashKey[list[Budget]]()
OPTIONS_KEY = pytest.StashKey[CountOptions]()
RECORD_KEY = pytest.StashKey["TestRecord"]()
BODY_PASSED_KEY = pytest.StashKey[bool]()
CONTRIBUTIONS_KEY = pytest.StashKey[Contributions]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flopbudget", "compute budgets for PyTorch models (pytest-flopbudget)")
    group.addoption("--flop-budget-json", metavar="PATH", default=None, help=HELP_JSON)
    group.addoption("--flop-budget-markdown", metavar="PATH", default=None, help=HELP_MARKDOWN)
    group.addoption("--flop-budget-html", metavar="PATH", default=None, help=HELP_HTML)
    group.addoption("--flop-budget-update", action="store_true", default=None, help=HELP_UPDATE)
    group.addoption(
        "--flop-budget-update-failed", action="store_true", default=None, help=HELP_UPDATE_FAILED
    )
    group.addoption(
        "--flop-budget-report-only", action="store_true", default=None, help=HELP_REPORT_ONLY
    )
    group.addoption(
        "--flop-budget-on-exceed", choices=ON_EXCEED_CHOICES, default=None, help=HELP_ON_EXCEED
    )
    group.addoption("--flop-budget-hardware", metavar="DEVICES", default=None, help=HELP_HARDWARE)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    contributions = Contributions(config)
    config.stash[CONTRIBUTIONS_KEY] = contributions
    try:
        settings, baseline, notes, scopes = _load(config, contributions.read_hardware())
        contributions.register_formulas()
    except ConfigError as error:
        # `pytest --help` and `--version` keep working; the error comes when tests would run
        config.pluginmanager.register(_BrokenConfig(str(error)), "flopbudget-manager")
        return
    config.stash[SETTINGS_KEY] = settings
    manager = FlopBudgetManager(config, settings, baseline, notes, scopes)
    config.pluginmanager.register(manager, "flopbudget-manager")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Formulas contributed by hooks last for their session only."""
    contributions = config.stash.get(CONTRIBUTIONS_KEY, None)
    if contributions is not None:
        contributions.close()


def _load(
    config: pytest.Config, devices: dict[str, Device]
) -> tuple[Settings, Baseline | None, list[str], Scopes]:
    pyproject = find_pyproject(config.rootpath, config.inipath)
    settings = load_settings(
        pyproject,
        json_path=config.getoption("flop_budget_json"),
        markdown_path=config.getoption("flop_budget_markdown"),
        html_path=config.getoption("flop_budget_html"),
        update=config.getoption("flop_budget_update"),
        update_failed=config.getoption("flop_budget_update_failed"),
        report_only=config.getoption("flop_budget_report_only"),
        on_exceed=config.getoption("flop_budget_on_exceed"),
        hardware=config.getoption("flop_budget_hardware"),
        devices=devices,
    )
    scopes = Scopes(settings, config.rootpath)
    settings = scopes.settings
    check_separate(written_files(settings, os.environ.get("GITHUB_STEP_SUMMARY")))
    _refuse_foreign_reports(settings)
    notes: list[str] = []
    baseline: Baseline | None = None
    if settings.baseline_path is not None:
        from .budgets import baseline as baseline_file

        try:
            baseline = baseline_file.load(settings.baseline_path)
        except baseline_file.BaselineError as error:
            if not settings.update or isinstance(error, baseline_file.ForeignBaselineError):
                raise ConfigError(str(error)) from None
            notes.append(f"{error}; it will be rewritten")
            baseline = baseline_file.Baseline(settings.baseline_path, {}, exists=False)
        if not baseline.exists and not settings.update:
            notes.append(
                f"baseline {settings.baseline_path} does not exist yet; "
                "create it with --flop-budget-update"
            )
    if settings.report_only:
        notes.append("flop budget: report only, budgets fail no test in this run")
    if baseline is not None:
        baseline = scopes.baseline_for_run(baseline)
    return settings, baseline, notes, scopes


class _BrokenConfig:
    """Stands in for the manager when ``[tool.flopbudget]`` cannot be read."""

    def __init__(self, error: str) -> None:
        self.error = error

    @pytest.hookimpl(tryfirst=True)  # before xdist starts workers
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        raise pytest.UsageError(f"pytest-flopbudget: {self.error}")


def _refuse_foreign_reports(settings: Settings) -> None:
    """A report path that names someone else's file is refused before any test runs."""
    reports = [
        (settings.json_path, "--flop-budget-json", "JSON report", "json_report"),
        (settings.markdown_path, "--flop-budget-markdown", "Markdown summary", "markdown"),
        (settings.html_path, "--flop-budget-html", "HTML report", "html"),
    ]
    if all(path is None for path, *_ in reports):
        return
    from .reports import html, json_report, markdown
    from .reports.files import ForeignFileError, check_ours

    recognisers = {
        "json_report": json_report.looks_like_report,
        "markdown": markdown.looks_like_summary,
        "html": html.looks_like_report,
    }
    try:
        for path, option, kind, module in reports:
            if path is not None:
                check_ours(path, f"{option}={path}", kind, recognisers[module])
    except ForeignFileError as error:
        raise ConfigError(str(error)) from None


@pytest.fixture
def flops(request: pytest.FixtureRequest) -> FlopCounter:
    """Count a model: ``flops(model, inputs, *, name=None, grad=False, backend=None, mode=None,
    ops=None, optimizer=None)``.

    Returns the count (``.flops``, ``.macs``, ``.params``, ``.by_module``) and records it on
    the test, where ``flop_budget`` markers and pyproject budgets check it.
    """
    settings = request.config.stash[SETTINGS_KEY]
    manager = request.config.pluginmanager.get_plugin("flopbudget-manager")
    if isinstance(manager, FlopBudgetManager):
        manager.use_test_hooks()
    options = request.node.stash.get(OPTIONS_KEY, None)
    if options is None:
        local = settings
        if isinstance(manager, FlopBudgetManager):
            try:
                local = manager.settings_for(request.node)
            except ConfigError as error:
                pytest.fail(f"pytest-flopbudget: {error}", pytrace=False)
        options = count_options(local, {})
    counter = FlopCounter(flops_per_mac=settings.flops_per_mac, options=options)
    request.node.stash[COUNTER_KEY] = counter
    request.addfinalizer(counter.close)
    return counter


class FlopBudgetManager:
    """Owns the run's state: what was collected, each test's last attempt, and the reports."""

    def __init__(
        self,
        config: pytest.Config,
        settings: Settings,
        baseline: Baseline | None,
        notes: list[str],
        scopes: Scopes | None = None,
    ) -> None:
        self.config = config
        self.settings = settings
        self.scopes = scopes if scopes is not None else Scopes(settings, config.rootpath)
        self.baseline = baseline
        self.records: dict[str, TestRecord] = {}  # by node id: a rerun replaces its attempt
        self.attempts: dict[str, Phases] = {}
        self.positions: dict[str, int] = {}
        self.collected: list[str] = []
        self.counting: list[str] = []
        self.dropped = 0
        self.deselected = 0
        self.collection_errors = 0
        self.worker_facts: list[CollectionFacts] = []
        self.workers_without_facts = 0
        self.stale: tuple[StaleEntry, ...] = ()
        self.test_hooks: TestHooks | None = None
        self.imported: set[str] = set()  # model libraries xdist workers imported
        self.notes: list[tuple[str, dict[str, bool]]] = [(note, {"yellow": True}) for note in notes]

    def pytest_report_header(self, config: pytest.Config) -> str:
        from .reports.table import header_line

        return header_line(self.settings)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Generator[None]:
        before = len(items)
        yield
        self.dropped += max(0, before - len(items))

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.deselected += len(items)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    def settings_for(self, node: pytest.Item | pytest.Collector) -> Settings:
        """The settings of one test: nested ``[tool.flopbudget]`` tables apply below them."""
        return self.scopes.settings_for(node.path)

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path) -> None:
        """Read the pyprojects above each test module as it is collected (once per directory):
        a table that cannot apply is a collection error naming it, never a silent no budget."""
        try:
            self.scopes.settings_for(module_path)
            contributions = self.config.stash[CONTRIBUTIONS_KEY]
            contributions.register_formulas()  # conftest files loaded during collection
            late = contributions.late_hardware()
            if late is not None:
                raise ConfigError(late)
        except ConfigError as error:
            raise pytest.Collector.CollectError(f"pytest-flopbudget: {error}") from None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        # rows follow the source (file, line, parameter index), not the run order, so reports
        # read the same under pytest-randomly and xdist
        ordered = sorted(session.items, key=_source_order)
        self.positions = {item.nodeid: index for index, item in enumerate(ordered)}
        self.collected = [item.nodeid for item in session.items]
        self.counting = [item.nodeid for item in session.items if self._may_count(item)]
        if self.counting:
            self.use_test_hooks()

    def _may_count(self, item: pytest.Item) -> bool:
        if "flops" in getattr(item, "fixturenames", ()):
            return True
        if item.get_closest_marker(MARKER_NAME) is not None:
            return True
        try:
            return item.nodeid in self.settings_for(item).budgets_by_nodeid
        except ConfigError:
            return True  # its setup reports the error

    def use_test_hooks(self) -> None:
        """Register the per-test hooks (once); the fixture calls it too, for tests that ask
        for ``flops`` through ``request.getfixturevalue``."""
        if self.test_hooks is None:
            self.test_hooks = TestHooks(self)
            self.config.pluginmanager.register(self.test_hooks, "flopbudget-tests")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Each test's last attempt counts (pytest-rerunfailures logs every attempt)."""
        nodeid = report.nodeid
        if report.when == "setup":
            self.attempts[nodeid] = Phases(setup=_outcome(report))
            self.records.pop(nodeid, None)
        elif report.when == "call":
            body_passed = getattr(report, BODY_ATTRIBUTE, None) == "passed"
            phases = self.attempts.get(nodeid, Phases())
            self.attempts[nodeid] = replace(phases, call=_outcome(report), body_passed=body_passed)
        else:
            payload = getattr(report, REPORT_ATTRIBUTE, None)
            if isinstance(payload, str):
                from .budgets.record import TestRecord

                self.records[nodeid] = TestRecord.from_json(payload)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: object, error: object) -> None:
        """xdist controller: each worker sends what it collected and which model libraries it
        imported (for the environment)."""
        output = getattr(node, "workeroutput", None) or {}
        self.imported.update(output.get(WORKER_IMPORTED, ()))
        facts = output.get(WORKER_OUTPUT)
        if isinstance(facts, dict):
            self.worker_facts.append(CollectionFacts.from_dict(facts))
        else:
            self.workers_without_facts += 1

    def _facts(self) -> CollectionFacts:
        return CollectionFacts(
            tuple(self.collected),
            tuple(self.counting),
            max(self.dropped, self.deselected),
            self.collection_errors,
        )

    def environment(self) -> dict[str, str]:
        """Versions of python, torch, fvcore, transformers (if imported) and this plugin."""
        from .budgets import environment

        return environment.current(self.imported)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # xdist worker: the controller writes the reports
            from .budgets import environment

            workeroutput[WORKER_OUTPUT] = self._facts().to_dict()
            workeroutput[WORKER_IMPORTED] = environment.imported_libraries()
            return
        if not self._has_work():
            return
        from .budgets.record import TestRecord
        from .budgets.stale import find_stale
        from .reports.json_report import ReportError
        from .reports.update import UpdateError

        records = sorted(self.records.values(), key=TestRecord.sort_key)
        scope = self._scope(session)
        staleness = find_stale(self.settings, self.baseline, records, scope)
        self.stale = staleness.stale
        self.stale = (*self.stale, *self.scopes.stale(records, scope))
        try:
            self._write_reports(records, scope, staleness)
        except (OSError, UpdateError, ReportError) as error:
            self.notes.append((f"pytest-flopbudget: {error}", {"red": True, "bold": True}))
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._summary_without_terminal_reporter()

    def _summary_without_terminal_reporter(self) -> None:
        """The table and the over-budget messages where a plugin replaced pytest's terminal
        reporter with one that calls no ``pytest_terminal_summary`` (pytest-rich).

        pytest-sugar's reporter is a ``TerminalReporter`` and calls it; ``-p no:terminal``
        asked for no output, and gets none.
        """
        manager = self.config.pluginmanager
        if manager.get_plugin("terminalreporter") is not None or not manager.has_plugin("terminal"):
            return
        capture = manager.get_plugin("capturemanager")
        reporter = pytest.TerminalReporter(self.config, sys.stdout)
        if capture is not None:
            with capture.global_and_fixture_disabled():
                self._write_summary(reporter, with_failures=True)
        else:
            self._write_summary(reporter, with_failures=True)

    def _scope(self, session: pytest.Session) -> RunScope:
        from .budgets.scope import build_scope

        narrowed = _narrowed_by(self.config)
        facts = self._facts()
        if self.config.pluginmanager.has_plugin("dsession"):
            facts = CollectionFacts.merged([*self.worker_facts, facts])
            if self.workers_without_facts or not self.worker_facts:
                narrowed.append("an xdist worker did not say what it collected")
        return build_scope(
            facts,
            self.attempts,
            narrowed_by=narrowed,
            only_collects=_only_collects(self.config),
            interrupted=_interrupted(session),
        )

    def _has_work(self) -> bool:
        """Anything to report: counts, or budgets and a baseline that may have gone stale."""
        settings = self.settings
        return bool(
            self.records
            or settings.budgets_by_nodeid
            or settings.budgets_by_name
            or self.baseline is not None
            or settings.update
            or self.scopes.tables()
        )

    def _write_reports(
        self, records: list[TestRecord], scope: RunScope, staleness: Staleness
    ) -> None:
        from .reports import json_report, markdown

        settings = self.settings
        with_baseline = self.baseline is not None
        environment = self.environment()
        if settings.json_path is not None:
            json_report.write(settings.json_path, records, settings, self.stale, environment)
            self.notes.append((f"flop budget report written to {settings.json_path}", {}))
        if settings.html_path is not None:
            from .reports import html

            html.write(settings.html_path, records, settings, self.stale)
            self.notes.append((f"flop budget HTML report written to {settings.html_path}", {}))
        summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
        if (settings.markdown_path is not None or summary_file) and records:
            text = markdown.build(
                records,
                settings,
                with_baseline=with_baseline,
                stale=self.stale,
                environment=environment,
            )
            if settings.markdown_path is not None:
                markdown.write(settings.markdown_path, text)
                self.notes.append((f"flop budget summary written to {settings.markdown_path}", {}))
            if summary_file:
                markdown.append_step_summary(Path(summary_file), text)
        if settings.update:
            self._update(records, scope, staleness)

    def _update(self, records: list[TestRecord], scope: RunScope, staleness: Staleness) -> None:
        from .budgets import baseline as baseline_file
        from .budgets.stale import PYPROJECT
        from .reports import update

        settings = self.settings
        if scope.no_write is not None:
            self.notes.append(
                (f"flop budgets and baseline not updated: {scope.no_write}", {"yellow": True})
            )
            return
        takes = {
            record.nodeid: scope.takes_numbers_from(
                record.nodeid, failed_too=settings.update_failed
            )
            for record in records
        }
        taken = [record for record in records if takes[record.nodeid]]
        not_taken = [
            (record.nodeid, scope.why_not_completed(record.nodeid))
            for record in records
            if not takes[record.nodeid] and any(verdict.counted for verdict in record.verdicts)
        ]
        left_alone = update.left_alone(
            staleness.kept, not_taken, failed_option="--flop-budget-update-failed"
        )
        if settings.pyproject is not None:
            base = settings.pyproject
            stale_keys = [
                (entry.path or base, self.scopes.written_key(entry.path, entry.key))
                for entry in self.stale
                if entry.where == PYPROJECT
            ]
            outcomes = update.update_pyprojects(
                taken, settings, home=self.scopes.home, remove=stale_keys, on_wait=self._say
            )
            for outcome in outcomes:
                self.notes.extend((line, {}) for line in outcome.lines())
        if settings.baseline_path is not None:
            verdicts = [verdict for record in taken for verdict in record.verdicts]
            measured = baseline_file.measured_entries(verdicts, settings.flops_per_mac)
            proven_stale = staleness.stale_baseline_keys()
            line = update.write_baseline(
                settings.baseline_path,
                lambda current: self.scopes.baseline_for_file(
                    baseline_file.merged(
                        self.scopes.baseline_for_run(current), measured, proven_stale
                    )
                ),
                on_wait=self._say,
                environment=self.environment(),
            )
            self.notes.append((line, {}))
        self.notes.extend((line, {}) for line in left_alone)

    def _say(self, line: str) -> None:
        """A line shown now, not in the summary: a run waiting for a lock should say why."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line, yellow=True)
            reporter.flush()
        else:
            sys.stderr.write(line + "\n")

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        self._write_summary(terminalreporter)

    def _write_summary(
        self, terminalreporter: pytest.TerminalReporter, *, with_failures: bool = False
    ) -> None:
        """``with_failures``: each over-budget message first, under its test's id, for a
        reporter that showed none of them."""
        if with_failures:
            for record in sorted(self.records.values(), key=lambda record: record.sort_key()):
                for verdict in record.verdicts:
                    if verdict.status in (*FAILING, ERROR) and verdict.message:
                        terminalreporter.write_sep("_", f"{verdict.nodeid} [{verdict.name}]")
                        terminalreporter.write_line(verdict.message, red=verdict.fails_test)
        if self.records or self.stale:
            from .budgets.record import TestRecord
            from .reports import table

            records = sorted(self.records.values(), key=TestRecord.sort_key)
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
        # a rerun attempt starts clean: no properties left from the attempt before
        item.user_properties[:] = [
            prop for prop in item.user_properties if not str(prop[0]).startswith("flopbudget[")
        ]
        try:
            settings = self.manager.settings_for(item)
        except ConfigError as error:
            pytest.fail(f"pytest-flopbudget: {error}", pytrace=False)
        if item.get_closest_marker(MARKER_NAME) is None:
            return
        budgets: list[Budget] = []
        options: dict[str, str | bool] = {}
        problem = None
        for marker in item.iter_markers(name=MARKER_NAME):  # closest first
            where = f"{item.nodeid}: @pytest.mark.{MARKER_NAME}"
            try:
                budget = budget_from_marker(marker.args, marker.kwargs, where, settings.devices)
                marker_options = count_options_from_marker(marker.kwargs, where)
            except BudgetError as error:
                problem = str(error)
                break
            if budget is not None:
                budgets.append(budget)
            options = {**marker_options, **options}
        if problem is not None:
            pytest.fail(problem, pytrace=False)
        resolved = count_options(settings, options)
        if "optimizer" in options and resolved.mode != "train":
            pytest.fail(
                f"{item.nodeid}: @pytest.mark.{MARKER_NAME}: optimizer={options['optimizer']!r} "
                f'needs mode="train" (optimizer state is memory of a training step); this test '
                f'counts in mode="{resolved.mode}"',
                pytrace=False,
            )
        item.stash[BUDGETS_KEY] = budgets
        item.stash[OPTIONS_KEY] = resolved

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        """Runs after the test body, and only if it passed: over budget fails the test here."""
        if not self._involved(item):
            return
        item.stash[BODY_PASSED_KEY] = True
        record = self._conclude(item, test_failed=False)
        path, line, _ = item.location
        for verdict in record.verdicts:
            if verdict.status in FAILING and not verdict.enforced:
                # attributed to the test, not to this line: the summary points where to look
                warnings.warn_explicit(
                    FlopBudgetWarning(verdict.message),
                    FlopBudgetWarning,
                    filename=str(self.manager.config.rootpath / path),
                    lineno=(line or 0) + 1,
                    module=item.nodeid,
                )
        failing = [verdict.message for verdict in record.verdicts if verdict.fails_test]
        if failing:
            pytest.fail("\n\n".join(failing), pytrace=False)

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> None:
        """After the fixtures' teardown: budgets that named nothing counted error the test."""
        if not self._involved(item):
            return
        record = item.stash.get(RECORD_KEY, None)
        if record is None:  # the body failed, skipped or never ran: record, judge nothing
            record = self._conclude(item, test_failed=True)
        problems = [v.message for v in record.verdicts if v.status == ERROR]
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pluggy.Result[pytest.TestReport]]:
        """Per-test data goes on the report here, before any ``pytest_runtest_logreport``
        (where xdist serializes it): pytest's report serialization carries plain attributes."""
        outcome = yield
        report = outcome.get_result()
        if call.when == "call":
            self._after_call(item, call, report)
        elif call.when == "teardown":
            record = item.stash.get(RECORD_KEY, None)
            if record is not None and (record.counts or record.verdicts):
                setattr(report, REPORT_ATTRIBUTE, record.to_json())
            _forget(item.stash, RECORD_KEY)  # a rerun attempt starts clean
            _forget(item.stash, BODY_PASSED_KEY)
            _forget(item.stash, COUNTER_KEY)

    def _after_call(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> None:
        if BODY_PASSED_KEY in item.stash:  # judged in pytest_runtest_call
            setattr(report, BODY_ATTRIBUTE, "passed")
            return
        if not self._involved(item):
            return
        if call.excinfo is None:
            # the test asked for `flops` at run time, after the call hooks had started
            item.stash[BODY_PASSED_KEY] = True
            setattr(report, BODY_ATTRIBUTE, "passed")
            record = self._conclude(item, test_failed=False)
            failing = [verdict.message for verdict in record.verdicts if verdict.fails_test]
            if failing and report.passed:
                report.outcome = "failed"
                report.longrepr = "\n\n".join(failing)
        elif report.failed:
            # one test, one failure: the excess goes into the failure the test already has
            record = self._conclude(item, test_failed=True)
            excess = [verdict.message for verdict in record.verdicts if verdict.fails_test]
            if excess:
                report.sections.append((REPORT_SECTION, "\n\n".join(excess)))

    def _involved(self, item: pytest.Item) -> bool:
        if COUNTER_KEY in item.stash or BUDGETS_KEY in item.stash:
            return True
        try:
            return item.nodeid in self.manager.settings_for(item).budgets_by_nodeid
        except ConfigError:
            return False  # failed at setup

    def _conclude(self, item: pytest.Item, *, test_failed: bool) -> TestRecord:
        from .budgets.record import TestRecord
        from .budgets.regression import against_baseline, tighten_note
        from .budgets.verdict import judge
        from .reports import junit

        counter = item.stash.get(COUNTER_KEY, None)
        counts = list(counter.counts) if counter is not None else []
        budgets = item.stash.get(BUDGETS_KEY, [])
        settings = self.manager.settings_for(item)
        options = item.stash.get(OPTIONS_KEY, None) or count_options(settings, {})
        verdicts = judge(
            item.nodeid,
            counts,
            budgets,
            settings,
            test_failed=test_failed,
            unknown_ops=options.unknown_ops,
        )
        baseline = self.manager.baseline
        environment = self.manager.environment() if baseline is not None else None
        verdicts = [
            tighten_note(against_baseline(verdict, baseline, settings, environment), settings)
            for verdict in verdicts
        ]
        position = self.manager.positions.get(item.nodeid, len(self.manager.positions))
        record = TestRecord(item.nodeid, position, counts, verdicts)
        item.stash[RECORD_KEY] = record
        item.user_properties.extend(junit.properties(verdicts))
        return record


def _source_order(item: pytest.Item) -> tuple[str, int, tuple[int, ...], str]:
    path, line, _ = item.location
    callspec = getattr(item, "callspec", None)
    indices = tuple(callspec.indices[name] for name in sorted(callspec.indices)) if callspec else ()
    return (path, line if line is not None else -1, indices, item.nodeid)


def _forget(stash: pytest.Stash, key: pytest.StashKey[T]) -> None:
    if key in stash:
        del stash[key]


def _outcome(report: pytest.TestReport) -> str:
    if report.skipped and hasattr(report, "wasxfail"):
        return XFAILED
    return report.outcome


def _narrowed_by(config: pytest.Config) -> list[str]:
    """What the command line chose that is less than the suite (the rest is seen in the data)."""
    option = config.option
    reasons: list[str] = []
    if getattr(option, "ignore", None) or getattr(option, "ignore_glob", None):
        reasons.append("--ignore left paths out")
    if getattr(option, "lf", False):
        reasons.append("--lf ran only the last failures")
    if getattr(option, "pyargs", False):
        reasons.append("--pyargs chose packages")
    root = config.rootpath.resolve()
    suite: list[PurePath] = []
    for pattern in config.getini("testpaths"):
        suite += [Path(path).resolve() for path in glob.glob(str(root / pattern), recursive=True)]
    here = config.invocation_params.dir
    chosen = [(here / arg.split("::")[0]).resolve() for arg in config.args]
    why = narrowed_by_paths(
        chosen, suite or [root], node_ids=any("::" in arg for arg in config.args)
    )
    if why is not None:
        reasons.append(why)
    return reasons


def _only_collects(config: pytest.Config) -> str | None:
    for dest, flag in (
        ("collectonly", "--collect-only"),
        ("setupplan", "--setup-plan"),
        ("setuponly", "--setup-only"),
        ("showfixtures", "--fixtures"),
        ("show_fixtures_per_test", "--fixtures-per-test"),
    ):
        if getattr(config.option, dest, False):
            return flag
    return None


def _interrupted(session: pytest.Session) -> str | None:
    if session.exitstatus == pytest.ExitCode.INTERRUPTED:
        return "interrupted"
    if session.exitstatus == pytest.ExitCode.INTERNAL_ERROR:
        return "internal error"
    for why in (session.shouldstop, session.shouldfail):
        if why:
            return str(why)
    return None
