"""Test reports counted as their producers mean them: one fixture per JUnit dialect a model
team meets, outcome attributes, and suite headers that declare more than their cases show."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate.junit import JUnitError, parse_junit
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig, TestsPolicy

DIALECTS = Path(__file__).parent / "data" / "junit" / "dialects"


# (tests, passed, failed, errors, skipped, flaky), as each producer's own summary reads.
# Each fixture follows its producer's writer; docs/test-reports.md names the source files.
@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        # An xfail is <skipped type="pytest.xfail">: skipped.
        ("pytest.xml", (6, 2, 1, 1, 2, 0)),
        # expectedFailure is <skipped type="XFAIL">, an unexpected success <error>.
        ("unittest_xml_reporting.xml", (6, 1, 1, 2, 2, 0)),
        # A flakyFailure passed on rerun (a flake); failure + rerunFailures failed every run.
        ("surefire.xml", (6, 2, 2, 1, 1, 1)),
        ("gradle.xml", (4, 2, 1, 0, 1, 0)),
        # reportTestSuiteErrors: a test file that failed to run is one <error> case.
        ("jest_junit.xml", (5, 2, 1, 1, 1, 0)),
        # A pending test: counted in tests="4" and the root's skipped="1", never listed.
        ("mocha_junit_reporter.xml", (4, 2, 1, 0, 1, 0)),
        ("go_junit_report.xml", (5, 2, 1, 1, 1, 0)),
        # A build error: in the root's errors="1", listed nowhere.
        ("gotestsum.xml", (5, 2, 1, 1, 1, 0)),
        # DISABLED_ test: status="notrun" result="suppressed", no child; GTEST_SKIP:
        # result="skipped" and <skipped>; a TearDownTestSuite failure: an unnamed case that
        # no header counts.
        ("googletest.xml", (7, 3, 2, 0, 2, 0)),
        # A DISABLED test: status="disabled" and no child; a not-run one: <skipped>.
        ("ctest.xml", (5, 2, 1, 0, 2, 0)),
        ("bazel.xml", (1, 0, 0, 1, 0, 0)),
        # An assembly error (a fixture's Dispose threw): in the root's errors, listed nowhere.
        ("xunit_converted.xml", (5, 2, 1, 1, 1, 0)),
        # status="Skipped" with no child (a skip with no reason message); Inconclusive,
        # which nunit3-junit.xslt counts in its suite's errors.
        ("nunit_converted.xml", (6, 2, 1, 1, 2, 0)),
    ],
)
def test_each_dialect_counts_as_its_producer_does(
    fixture: str, expected: tuple[int, int, int, int, int, int]
) -> None:
    totals = parse_junit(DIALECTS / fixture).totals
    keys = ("tests", "passed", "failed", "errors", "skipped", "flaky")
    assert tuple(totals[k] for k in keys) == expected


def _report(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "report.xml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("attributes", "child", "outcome"),
    [
        ('status="notrun"', "", "skipped"),
        ('status="disabled"', "", "skipped"),
        ('result="skipped"', "", "skipped"),
        ('status="notrun" result="suppressed"', "", "skipped"),
        ('status="Ignored"', "", "skipped"),
        ('status="Failed"', "", "failed"),
        ('status="Inconclusive"', "", "error"),
        ('status="Warning"', "", "error"),
        ('result="error"', "", "error"),
        ('status="run" result="completed"', "", "passed"),
        ('status="weird"', "", "passed"),
        # A child element states the outcome; an attribute does not override it.
        ('status="notrun"', "<failure message='boom'/>", "failed"),
        ('status="run"', "<skipped/>", "skipped"),
    ],
)
def test_outcome_attributes(tmp_path: Path, attributes: str, child: str, outcome: str) -> None:
    path = _report(
        tmp_path, f'<testsuite><testcase name="t" {attributes}>{child}</testcase></testsuite>'
    )
    (case,) = parse_junit(path).cases
    assert case.outcome == outcome


@pytest.mark.parametrize(
    ("children", "outcome", "flaky"),
    [
        # Surefire's rerunFailingTestsCount: failed attempts before a passing rerun.
        ("<flakyFailure message='a'><stackTrace>t1</stackTrace></flakyFailure>", "passed", True),
        ("<flakyError message='a'/><flakyFailure message='b'/>", "passed", True),
        # Every run failed: the first run's element, then one per rerun.
        (
            "<failure message='a'/><rerunFailure message='b'/><rerunFailure message='c'/>",
            "failed",
            False,
        ),
        ("<error message='a'/><rerunError message='b'/>", "error", False),
    ],
)
def test_surefire_reruns(tmp_path: Path, children: str, outcome: str, flaky: bool) -> None:
    path = _report(tmp_path, f'<testsuite><testcase name="t">{children}</testcase></testsuite>')
    (case,) = parse_junit(path).cases
    assert (case.outcome, case.flaky) == (outcome, flaky)


def test_header_failures_beyond_the_cases_count_as_failed(tmp_path: Path) -> None:
    path = _report(
        tmp_path,
        '<testsuite name="ml" tests="3" failures="2">'
        '<testcase name="a"/><testcase name="b"><failure message="x"/></testcase>'
        '<testcase name="c"/></testsuite>',
    )
    report = parse_junit(path)
    assert report.totals["tests"] == 4 and report.totals["failed"] == 2
    unlisted = [c for c in report.cases if c.name.startswith("(unlisted")]
    assert [c.message for c in unlisted] == [
        "suite 'ml' declares 2 failures in its header but its test cases show 1: "
        "counted without detail"
    ]


def test_a_runner_that_stopped_mid_suite_does_not_pass(tmp_path: Path) -> None:
    path = _report(
        tmp_path,
        '<testsuite name="ml" tests="4" failures="0" errors="0">'
        '<testcase name="a"/><testcase name="b"/></testsuite>',
    )
    report = parse_junit(path)
    assert report.totals == {
        "tests": 4,
        "passed": 2,
        "failed": 0,
        "errors": 2,
        "skipped": 0,
        "flaky": 0,
    }
    assert report.cases[-1].message == (
        "suite 'ml' declares 4 tests in its header but lists 2 test cases: the outcome of the "
        "others is unknown (did the runner stop?), counted as errors"
    )


def test_a_header_beyond_belief_is_refused(tmp_path: Path) -> None:
    path = _report(
        tmp_path, '<testsuite name="ml" tests="999999999"><testcase name="a"/></testsuite>'
    )
    with pytest.raises(JUnitError, match=r"declare 999999998 tests beyond their test cases"):
        parse_junit(path)


def test_many_suites_beyond_belief_are_refused_too(tmp_path: Path) -> None:
    suite = '<testsuite name="s" tests="60000"/>'
    path = _report(tmp_path, f"<testsuites>{suite * 2}</testsuites>")
    with pytest.raises(JUnitError, match="declare 120000 tests beyond their test cases"):
        parse_junit(path)


def test_stage_fails_closed_with_the_reason(tmp_path: Path) -> None:
    _report(
        tmp_path,
        '<testsuite name="ml" tests="2" failures="1">'
        '<testcase name="a"/><testcase name="b"/></testsuite>',
    )
    stage = TestsStage()
    config = TestsConfig(working_directory=str(tmp_path), junit=["report.xml"])
    evidence = stage.run(config, RunContext(tmp_path / "ev", None))
    assert evidence.status == "failed"
    (finding,) = [f for f in evidence.findings if f.rule == "test-failure"]
    assert "declares 1 failure in its header but its test cases show 0" in finding.message
    rules = {r.rule: r for r in stage.evaluate(TestsPolicy(), evidence)}
    assert rules["tests.max_failures"].outcome == "fail"


# -- properties --------------------------------------------------------------------------

_OUTCOME_CHILD = {"passed": None, "failed": "failure", "error": "error", "skipped": "skipped"}
_HEADER_KEYS = {"tests": None, "failures": "failed", "errors": "error", "skipped": "skipped"}
_header = st.dictionaries(st.sampled_from(sorted(_HEADER_KEYS)), st.integers(0, 30), max_size=4)
_suite = st.tuples(_header, st.lists(st.sampled_from(sorted(_OUTCOME_CHILD)), max_size=12))


def _write(
    path: Path, root_header: dict[str, int], suites: list[tuple[dict[str, int], list[str]]]
) -> None:
    root = ET.Element("testsuites", {k: str(v) for k, v in root_header.items()})
    for index, (header, outcomes) in enumerate(suites):
        suite = ET.SubElement(
            root, "testsuite", {"name": f"s{index}"} | {k: str(v) for k, v in header.items()}
        )
        for number, outcome in enumerate(outcomes):
            case = ET.SubElement(suite, "testcase", name=f"t{number}", classname=f"s{index}")
            child = _OUTCOME_CHILD[outcome]
            if child:
                ET.SubElement(case, child)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(root_header=_header, suites=st.lists(_suite, max_size=4))
def test_totals_never_fall_below_a_declared_count(
    tmp_path: Path, root_header: dict[str, int], suites: list[tuple[dict[str, int], list[str]]]
) -> None:
    path = tmp_path / "report.xml"
    _write(path, root_header, suites)
    totals = parse_junit(path).totals
    assert (
        totals["passed"] + totals["failed"] + totals["errors"] + totals["skipped"]
        == (totals["tests"])
    )
    for header in [root_header] + [h for h, _ in suites]:
        assert totals["tests"] >= header.get("tests", 0)
        assert totals["failed"] >= header.get("failures", 0)
        assert totals["errors"] >= header.get("errors", 0)
        assert totals["skipped"] >= header.get("skipped", 0)
    listed = [o for _, outcomes in suites for o in outcomes]
    assert totals["passed"] == listed.count("passed")  # nothing unlisted ever counts as passed
    if not root_header and not any(h for h, _ in suites):
        assert totals["tests"] == len(listed)  # no header, no claim: the cases alone


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suites=st.lists(_suite, max_size=4))
def test_headers_that_agree_with_their_cases_add_nothing(
    tmp_path: Path, suites: list[tuple[dict[str, int], list[str]]]
) -> None:
    honest = [
        (
            {
                "tests": len(outcomes),
                "failures": outcomes.count("failed"),
                "errors": outcomes.count("error"),
                "skipped": outcomes.count("skipped"),
            },
            outcomes,
        )
        for _, outcomes in suites
    ]
    path = tmp_path / "report.xml"
    _write(path, {}, honest)
    assert parse_junit(path).totals["tests"] == sum(len(o) for _, o in suites)
