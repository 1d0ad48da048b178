"""The JUnit XML reader: real producers' reports, hostile input, reruns, and round trips."""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate import junit
from mlgate.junit import JUnitError, JUnitReport, parse_junit, parse_junit_files

DATA = Path(__file__).parent / "data" / "junit"
# Where the fixtures' producers ran (paths in skip reasons and stack traces).
ML = "/home/runner/work/ml-service/ml-service"
WEB = "/home/runner/work/web-ui/web-ui"

Row = tuple[str, str, str | None, int | None, str, bool]


def rows(report: JUnitReport) -> list[Row]:
    """Each case as (id, outcome, file, line, message, flaky), in report order."""
    return [(c.id, c.outcome, c.file, c.line, c.message, c.flaky) for c in report.cases]


def by_id(report: JUnitReport, case_id: str) -> junit.TestCase:
    (found,) = [c for c in report.cases if c.id == case_id]
    return found


def totals(
    tests: int, passed: int, failed: int, errors: int, skipped: int, flaky: int
) -> dict[str, int]:
    return {
        "tests": tests,
        "passed": passed,
        "failed": failed,
        "errors": errors,
        "skipped": skipped,
        "flaky": flaky,
    }


# --- pytest ----------------------------------------------------------------------------------

PREDICT_MSG = (
    "assert [1, 2, 3] == [1, 2]\n  \n  Left contains one more item: 3\n  Use -v to get more diff"
)
SCALE_MSG = "AssertionError: expected positive, got -3"
FIXTURE_MSG = 'failed on setup with "RuntimeError: database unavailable"'


def test_pytest_xunit1_uses_file_and_line_attributes() -> None:
    report = parse_junit(DATA / "pytest_xunit1.xml")
    src = "tests/test_model.py"
    assert report.totals == totals(11, 5, 2, 1, 3, 0)
    assert report.sources == (str(DATA / "pytest_xunit1.xml"),)
    assert report.duration_s == pytest.approx(1.298)
    # pytest writes 0-based def lines (5 for a def on line 6); failures point at the line that
    # broke in the test's own file, not at the helper that raised (tests/helpers.py:2).
    assert rows(report) == [
        ("tests.test_model::test_accuracy_threshold", "passed", src, 6, "", False),
        ("tests.test_model::test_predict_shape", "failed", src, 12, PREDICT_MSG, False),
        ("tests.test_model.TestPreprocess::test_normalize", "passed", src, 16, "", False),
        (
            "tests.test_model.TestPreprocess::test_scale_negative",
            "failed",
            src,
            20,
            SCALE_MSG,
            False,
        ),
        ("tests.test_model.TestPreprocess::test_escape[<b>bold</b>]", "passed", src, 22, "", False),
        ("tests.test_model.TestPreprocess::test_escape[a|b]", "passed", src, 22, "", False),
        ("tests.test_model::test_uses_broken_fixture", "error", src, 29, FIXTURE_MSG, False),
        ("tests.test_model::test_gpu_inference", "skipped", src, 36, "GPU required", False),
        (
            "tests.test_model::test_runtime_skip",
            "skipped",
            src,
            42,
            "dataset not downloaded",
            False,
        ),
        ("tests.test_model::test_known_drift", "skipped", src, 45, "known drift bug", False),
        ("tests.test_model::test_prints", "passed", src, 50, "", False),
    ]
    first = report.cases[0]
    assert (first.suite, first.classname, first.name) == (
        "pytest",
        "tests.test_model",
        "test_accuracy_threshold",
    )
    assert first.duration_s == 1.25
    predict = by_id(report, "tests.test_model::test_predict_shape")
    assert predict.detail.startswith(
        "def test_predict_shape():\n>       assert [1, 2, 3] == [1, 2]"
    )
    assert predict.detail.endswith("tests/test_model.py:12: AssertionError")
    skipped = by_id(report, "tests.test_model::test_gpu_inference")
    assert skipped.detail == f"{ML}/tests/test_model.py:36: GPU required"


def test_pytest_xunit2_takes_location_from_the_traceback() -> None:
    report = parse_junit(DATA / "pytest_xunit2.xml")
    src = "tests/test_model.py"
    skip_src = f"{ML}/tests/test_model.py"
    assert report.totals == totals(11, 5, 2, 1, 3, 0)
    assert rows(report) == [
        ("tests.test_model::test_accuracy_threshold", "passed", None, None, "", False),
        ("tests.test_model::test_predict_shape", "failed", src, 12, PREDICT_MSG, False),
        ("tests.test_model.TestPreprocess::test_normalize", "passed", None, None, "", False),
        (
            "tests.test_model.TestPreprocess::test_scale_negative",
            "failed",
            src,
            20,
            SCALE_MSG,
            False,
        ),
        (
            "tests.test_model.TestPreprocess::test_escape[<b>bold</b>]",
            "passed",
            None,
            None,
            "",
            False,
        ),
        ("tests.test_model.TestPreprocess::test_escape[a|b]", "passed", None, None, "", False),
        ("tests.test_model::test_uses_broken_fixture", "error", src, 29, FIXTURE_MSG, False),
        ("tests.test_model::test_gpu_inference", "skipped", skip_src, 36, "GPU required", False),
        (
            "tests.test_model::test_runtime_skip",
            "skipped",
            skip_src,
            42,
            "dataset not downloaded",
            False,
        ),
        ("tests.test_model::test_known_drift", "skipped", None, None, "known drift bug", False),
        ("tests.test_model::test_prints", "passed", None, None, "", False),
    ]


def test_python_traceback_outside_the_test_module_gives_the_raising_line(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest"><testcase classname="pkg.test_io" name="test_read">'
        '<failure message="OSError">Traceback (most recent call last):\n'
        '  File "/usr/lib/python3.11/json/__init__.py", line 293, in load\n'
        '  File "/usr/lib/python3.11/json/decoder.py", line 337, in decode\n'
        "OSError</failure></testcase></testsuite></testsuites>",
        encoding="utf-8",
    )
    (case,) = parse_junit(report).cases
    assert (case.file, case.line) == ("/usr/lib/python3.11/json/decoder.py", 337)


def test_pytest_rerunfailures_repeated_records_fold_into_one() -> None:
    # pytest-rerunfailures (16.x) writes one record per attempt; the retried ones are empty.
    report = parse_junit(DATA / "pytest_rerunfailures.xml")
    assert report.totals == totals(3, 2, 1, 0, 0, 1)
    assert rows(report) == [
        ("tests.test_flaky::test_flaky_then_passes", "passed", None, None, "", True),
        (
            "tests.test_flaky::test_always_fails",
            "failed",
            "tests/test_flaky.py",
            16,
            "assert 1 == 2",
            False,
        ),
        ("tests.test_flaky::test_stable", "passed", None, None, "", False),
    ]


# --- Maven Surefire --------------------------------------------------------------------------


def test_surefire_junit5_with_reruns() -> None:
    report = parse_junit(DATA / "TEST-com.example.model.ScorerTest.xml")
    cls = "com.example.model.ScorerTest"
    # The suite's own counters (tests="3") are Surefire's rerun bookkeeping; cases are counted.
    assert report.totals == totals(8, 4, 2, 1, 1, 1)
    assert report.duration_s == pytest.approx(0.031)
    assert rows(report) == [
        (f"{cls}::gpuInference", "skipped", None, None, "needs GPU", False),
        (
            f"{cls}::alwaysTimesOut",
            "failed",
            None,
            53,
            "service did not answer ==> expected: <1> but was: <2>",
            False,
        ),
        (
            f"{cls}::thresholdMatches",
            "failed",
            None,
            21,
            "threshold drifted ==> expected: <0.75> but was: <0.7>",
            False,
        ),
        (
            f"{cls}::loadsModel",
            "error",
            None,
            31,
            'Cannot invoke "Object.toString()" because "model" is null',
            False,
        ),
        (f"{cls}::positive(int)[1]", "passed", None, None, "", False),
        (f"{cls}::positive(int)[2]", "passed", None, None, "", False),
        (f"{cls}::scoresWithinRange", "passed", None, None, "", False),
        # <flakyFailure> and no <failure>: passed on a rerun.
        (f"{cls}::warmsCache", "passed", None, 48, "", True),
    ]
    failed = by_id(report, f"{cls}::alwaysTimesOut")
    assert failed.detail.startswith("org.opentest4j.AssertionFailedError: service did not answer")
    assert "rerunFailure" not in failed.detail
    flaky = by_id(report, f"{cls}::warmsCache")
    assert flaky.detail.startswith(
        "org.opentest4j.AssertionFailedError: cache cold on first attempt"
    )


def test_surefire_junit4_legacy_report() -> None:
    report = parse_junit(DATA / "TEST-com.example.legacy.FeatureStoreClientTest.xml")
    cls = "com.example.legacy.FeatureStoreClientTest"
    assert report.totals == totals(5, 2, 1, 2, 0, 1)
    assert rows(report) == [
        (f"{cls}::fetchesFeatures", "passed", None, None, "", False),
        # <flakyError> with its trace in <stackTrace>; line from the test method's frame.
        (f"{cls}::retriesOnTimeout", "passed", None, 57, "", True),
        # The frame of the test method itself wins over the helper it called (line 101).
        (f"{cls}::parsesVector", "failed", None, 72, "expected:<[3]> but was:<[2]>", False),
        (f"{cls}$Codec::decodesPayload[1]", "error", None, 130, "Unexpected end of input", False),
        (f"{cls}::timesOut", "error", None, None, "test timed out after 1000 milliseconds", False),
    ]
    # Old Surefire wrote times with the locale's thousands separator.
    assert by_id(report, f"{cls}::fetchesFeatures").duration_s == 1201.004
    assert report.duration_s == pytest.approx(1201.004 + 12.5 + 0.011 + 0.002 + 1.003)
    flaky = by_id(report, f"{cls}::retriesOnTimeout")
    assert flaky.detail.startswith("java.net.SocketTimeoutException: Read timed out\n")
    assert by_id(report, f"{cls}::timesOut").detail == ""


# --- JavaScript ------------------------------------------------------------------------------


def test_jest_junit_default_options() -> None:
    report = parse_junit(DATA / "jest_junit.xml")
    assert report.totals == totals(5, 2, 2, 0, 1, 0)
    assert rows(report) == [
        ("sum adds 1 + 2 to equal 3::sum adds 1 + 2 to equal 3", "passed", None, None, "", False),
        (
            "sum adds floats <exactly>::sum adds floats <exactly>",
            "failed",
            None,
            None,
            "Error: expect(received).toBe(expected) // Object.is equality",
            False,
        ),
        ("sum handles bigint::sum handles bigint", "skipped", None, None, "", False),
        # jest-junit writes test.todo as an empty (passing) testcase.
        ("sum handles strings::sum handles strings", "passed", None, None, "", False),
        (
            'parse throws on empty & "quoted" input::parse throws on empty & "quoted" input',
            "failed",
            None,
            None,
            "TypeError: empty input",
            False,
        ),
    ]
    floats = report.cases[1]
    assert floats.suite == "sum"
    assert floats.detail.startswith("Error: expect(received).toBe(expected)")
    assert f"at Object.toBe ({WEB}/src/sum.test.js:9:27)" in floats.detail


def test_jest_junit_with_file_attribute_and_suite_errors() -> None:
    report = parse_junit(DATA / "jest_junit_file.xml")
    src = "src/sum.test.js"
    # The failed suite comes as two records with one id (an <error> and a <failure>): both
    # count, as records sharing an id outside pytest are never merged.
    assert report.totals == totals(7, 2, 3, 1, 1, 0)
    assert rows(report) == [
        ("sum::adds 1 + 2 to equal 3", "passed", src, None, "", False),
        (
            "sum::adds floats <exactly>",
            "failed",
            src,
            9,
            "Error: expect(received).toBe(expected) // Object.is equality",
            False,
        ),
        ("sum::handles bigint", "skipped", src, None, "", False),
        ("sum::handles strings", "passed", src, None, "", False),
        (
            'parse::throws on empty & "quoted" input',
            "failed",
            src,
            19,
            "TypeError: empty input",
            False,
        ),
        (
            "Test suite failed to run::src/broken.test.js",
            "error",
            "src/broken.test.js",
            1,
            "● Test suite failed to run",
            False,
        ),
        (
            "Test suite failed to run::src/broken.test.js",
            "failed",
            "src/broken.test.js",
            None,
            report.cases[-1].message,
            False,
        ),
    ]
    assert "Cannot find module" in report.cases[-1].message


def test_mocha_junit_reporter_file_on_testsuite() -> None:
    report = parse_junit(DATA / "mocha_junit.xml")
    src = f"{WEB}/test/sum.spec.js"
    # mocha-junit-reporter counts its pending test (tests="3", the root's skipped="1") and
    # lists it not: it is one skipped test without detail, as the producer means it.
    assert report.totals == totals(3, 1, 1, 0, 1, 0)
    assert rows(report)[:2] == [
        ("adds integers::sum adds integers", "passed", src, None, "", False),
        # The stack names the file relatively; the raw newlines in the attribute read as spaces.
        (
            "adds strings::sum adds strings",
            "failed",
            src,
            10,
            "Expected values to be strictly equal:  '12' !== 3 ",
            False,
        ),
    ]


def test_phpunit_lines_are_already_one_based() -> None:
    report = parse_junit(DATA / "phpunit_junit.xml")
    src = "/app/tests/Unit/ScorerTest.php"
    assert report.totals == totals(3, 1, 1, 0, 1, 0)
    assert rows(report) == [
        ("Tests.Unit.ScorerTest::testScoresWithinRange", "passed", src, 12, "", False),
        # No message attribute: the body's first line stands in; its last line gives the line.
        (
            "Tests.Unit.ScorerTest::testThreshold",
            "failed",
            src,
            20,
            "Tests\\Unit\\ScorerTest::testThreshold",
            False,
        ),
        ("Tests.Unit.ScorerTest::testGpuInference", "skipped", src, 24, "", False),
    ]
    assert {c.suite for c in report.cases} == {"Tests\\Unit\\ScorerTest"}
    assert report.duration_s == pytest.approx(0.005321)


# --- tolerated variants ----------------------------------------------------------------------


def test_generic_edge_cases() -> None:
    report = parse_junit(DATA / "generic_edge_cases.xml")
    api = "specs/api.spec.js"
    html_name = "renders <script>alert(1)</script> | *bold* [x](y) `code`"
    assert report.totals == totals(9, 4, 3, 0, 2, 0)
    assert rows(report) == [
        ("api::returns 200", "passed", api, None, "", False),
        (
            "api::returns 404 for unknown model",
            "failed",
            api,
            41,
            "AssertionError: expected 404, got 500",
            False,
        ),
        ("api::streams tokens", "skipped", api, None, "", False),
        # No classname: the suite names the test.
        ("integration.api::no classname here", "passed", api, None, "", False),
        ("cli::prints help", "failed", None, None, "", False),
        (f"cli::{html_name}", "passed", None, None, "", False),
        ("cli::strips control chars\tkeeps tabs", "skipped", None, None, "needs\nnetwork", False),
        # Two distinct tests sharing a name in one file: both count, the pass hides nothing.
        ("cli::same name twice", "passed", None, None, "", False),
        ("cli::same name twice", "failed", None, None, "second one failed", False),
    ]
    suites = [c.suite for c in report.cases]
    assert suites == ["integration.api"] * 4 + ["integration"] * 5
    durations = [c.duration_s for c in report.cases]
    # "1,234.5" groups thousands, "0,25" is a decimal comma; missing, "abc" and "-1" are 0.
    assert durations[:7] == [1234.5, 0.0, 0.25, 0.0, 0.0, 0.5, 0.125]
    assert report.duration_s == pytest.approx(1235.377)
    assert by_id(report, "cli::prints help").detail == ""
    assert by_id(report, "cli::strips control chars\tkeeps tabs").detail == "reason: offline"
    assert report.cases[-1].detail == "boom"


def test_absurd_line_numbers_are_ignored(tmp_path: Path) -> None:
    report = tmp_path / "report.xml"
    report.write_text(
        f'<testsuite><testcase classname="t" name="n" line="{"9" * 5000}">'
        f"<failure>t.py:{'9' * 5000}: Error</failure></testcase></testsuite>",
        encoding="utf-8",
    )
    (case,) = parse_junit(report).cases
    assert (case.file, case.line, case.outcome) == (None, None, "failed")


def test_detail_is_capped_at_64_kib(tmp_path: Path) -> None:
    report = tmp_path / "big.xml"
    trace = "é" * 100_000  # two bytes each in UTF-8
    report.write_text(
        f'<testsuite name="s"><testcase classname="c" name="n"><failure message="m">{trace}'
        "</failure></testcase></testsuite>",
        encoding="utf-8",
    )
    (case,) = parse_junit(report).cases
    assert len(case.detail.encode()) <= junit.MAX_TEXT_BYTES
    assert case.detail.startswith("é" * 1000)
    assert case.detail.endswith("[… truncated to 64 KiB]")


def test_twenty_thousand_cases_parse_quickly(tmp_path: Path) -> None:
    report = tmp_path / "big.xml"
    parts = ['<testsuites name="pytest tests"><testsuite name="pytest">']
    for i in range(20_000):
        attrs = f'classname="tests.test_m{i % 50}" name="test_{i}" time="0.001"'
        if i % 10:
            parts.append(f"<testcase {attrs}/>")
        else:
            trace = "&gt;       assert 1 == 2\nE       assert 1 == 2\n" * 5
            parts.append(
                f'<testcase {attrs}><failure message="assert 1 == 2">{trace}\n'
                f"tests/test_m{i % 50}.py:{i % 300 + 1}: AssertionError</failure></testcase>"
            )
    parts.append("</testsuite></testsuites>")
    report.write_text("".join(parts), encoding="utf-8")
    parsed = parse_junit(report)
    assert parsed.totals == totals(20_000, 18_000, 2_000, 0, 0, 0)
    assert (parsed.cases[10].file, parsed.cases[10].line) == ("tests/test_m10.py", 11)


# --- several reports -------------------------------------------------------------------------


def test_rerun_report_makes_retried_failures_flaky() -> None:
    first, rerun = DATA / "pytest_run1.xml", DATA / "pytest_run2_lastfailed.xml"
    report = parse_junit_files([first], reruns=[rerun])
    src = "tests/test_serving.py"
    assert report.sources == (str(first), str(rerun))
    assert report.totals == totals(5, 3, 1, 0, 1, 2)
    assert rows(report) == [
        ("tests.test_serving::test_health", "passed", src, 8, "", False),
        # Failed, then passed in the --last-failed run: the failed attempt says where.
        ("tests.test_serving::test_latency_budget", "passed", src, 14, "", True),
        (
            "tests.test_serving::test_schema_matches",
            "failed",
            src,
            18,
            "AssertionError: assert {'score': 1} == {'score': 1, 'label': 'cat'}\n  \n"
            "  Omitting 1 identical items, use -vv to show\n  Right contains 1 more item:\n"
            "  {'label': 'cat'}\n  Use -v to get more diff",
            False,
        ),
        # Errored in setup, then passed.
        ("tests.test_serving::test_predict_endpoint", "passed", src, 24, "", True),
        ("tests.test_serving::test_gpu_batch", "skipped", src, 32, "needs a GPU runner", False),
    ]
    latency = by_id(report, "tests.test_serving::test_latency_budget")
    assert "p95 latency 412 ms > 250 ms" in latency.detail
    assert latency.duration_s == 0.101  # the passing run's time
    # Given as two ordinary reports, nothing is taken for a rerun: every failure counts.
    plain = parse_junit_files([first, rerun])
    assert plain.totals["failed"] + plain.totals["errors"] > report.totals["failed"]
    assert plain.totals["flaky"] == 0


def test_a_pass_in_another_report_hides_no_failure(tmp_path: Path) -> None:
    failing = tmp_path / "a.xml"
    passing = tmp_path / "b.xml"
    failing.write_text(
        '<testsuite name="s"><testcase classname="com.acme.ScorerTest" name="scores">'
        '<failure message="boom"/></testcase></testsuite>'
    )
    passing.write_text(
        '<testsuite name="s"><testcase classname="com.acme.ScorerTest" name="scores"/></testsuite>'
    )
    for order in ([failing, passing], [passing, failing]):
        assert parse_junit_files(order).totals["failed"] == 1


def test_same_report_twice_counts_each_test_once() -> None:
    path = DATA / "pytest_run1.xml"
    assert parse_junit_files([path, path]).totals == parse_junit(path).totals


def test_flaky_in_one_file_stays_flaky_when_passed_in_another() -> None:
    path = DATA / "TEST-com.example.model.ScorerTest.xml"
    report = parse_junit_files([path, path])
    assert by_id(report, "com.example.model.ScorerTest::warmsCache").flaky


def test_a_lone_path_is_not_taken_for_a_list_of_characters() -> None:
    path = str(DATA / "pytest_run1.xml")
    assert parse_junit_files(path).sources == (path,)


def test_no_files_is_an_empty_report() -> None:
    report = parse_junit_files([])
    assert report == JUnitReport(cases=(), sources=())
    assert report.totals == totals(0, 0, 0, 0, 0, 0)
    assert report.duration_s == 0.0


# --- bad input -------------------------------------------------------------------------------


def assert_one_line_error(path: Path, expected: str) -> JUnitError:
    with pytest.raises(JUnitError) as caught:
        parse_junit(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert path.name in message
    assert expected in message
    assert "\n" not in message
    return caught.value


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("bad_xxe.xml", "refused: DOCTYPE <testsuites> is not allowed"),
        ("bad_external_dtd.xml", "refused: DOCTYPE <testsuites> is not allowed"),
        ("bad_billion_laughs.xml", "refused: DOCTYPE <lolz> is not allowed"),
        ("bad_truncated.xml", "not well-formed XML at line 20, column 17 (no element found)"),
        ("bad_empty.xml", "file is empty"),
        ("bad_wrong_root_nunit.xml", "root element <test-run> is not <testsuites> or <testsuite>"),
        ("bad_binary.xml.gz", "not well-formed XML at line 1, column 0 (invalid token)"),
    ],
)
def test_bad_fixture_is_one_clear_error(fixture: str, expected: str) -> None:
    started = time.perf_counter()
    assert_one_line_error(DATA / fixture, expected)
    assert time.perf_counter() - started < 1.0


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nowhere.xml", "file not found")


def test_directory(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path, "is a directory")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"  \n ", "not well-formed XML at line 2, column 1 (no element found)"),
        (b"<html><body>502 Bad Gateway</body></html>", "root element <html> is not"),
        (b'<?xml version="1.0" encoding="x-bogus"?><testsuite/>', "unknown encoding: x-bogus"),
        (b"<testsuite><testcase name='&undefined;'/></testsuite>", "(undefined entity)"),
        (b"<testsuite/><testsuite/>", "(junk after document element)"),
    ],
)
def test_more_bad_content(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "report.xml"
    path.write_bytes(content)
    assert_one_line_error(path, expected)


def test_bad_file_among_several_names_that_file(tmp_path: Path) -> None:
    bad = tmp_path / "TEST-broken.xml"
    shutil.copy(DATA / "bad_truncated.xml", bad)
    with pytest.raises(JUnitError, match=r"TEST-broken\.xml: not well-formed"):
        parse_junit_files([DATA / "pytest_xunit1.xml", bad])


def test_xxe_entity_file_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-TOKEN", encoding="utf-8")
    report = tmp_path / "report.xml"
    report.write_text(
        f'<?xml version="1.0"?><!DOCTYPE testsuites [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>'
        '<testsuites><testsuite name="s"><testcase classname="c" name="&xxe;">'
        "<failure>&xxe;</failure></testcase></testsuite></testsuites>",
        encoding="utf-8",
    )
    error = assert_one_line_error(report, "refused")
    assert "TOP-SECRET" not in str(error)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_xxe_does_not_even_open_the_entity(tmp_path: Path) -> None:
    # Opening a FIFO with no writer blocks, so a parser that followed the entity would hang.
    fifo = tmp_path / "entity.fifo"
    os.mkfifo(fifo)
    report = tmp_path / "report.xml"
    report.write_text(
        f'<?xml version="1.0"?><!DOCTYPE testsuite [<!ENTITY e SYSTEM "{fifo.as_uri()}">]>'
        '<testsuite name="&e;"/>',
        encoding="utf-8",
    )
    outcome: list[BaseException] = []

    def parse() -> None:
        try:
            parse_junit(report)
        except BaseException as exc:  # handed back to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=parse, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock the reader before failing
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("the parser opened the external entity")
    assert len(outcome) == 1
    assert isinstance(outcome[0], JUnitError)
    assert "refused" in str(outcome[0])


# --- properties ------------------------------------------------------------------------------

# Anything XML 1.0 can carry in a document, weighted towards what Markdown and HTML reporters
# must escape later. Control characters other than \t and \n are stripped by the reader, so
# they are left out here and tested above.
_TEXT_CHARS = st.one_of(
    st.characters(exclude_categories=("Cs", "Cc", "Cn"), include_characters="\t\n"),
    st.sampled_from(list("<>&\"'`*_[]()|#!-\\{}~@:;/.$%^=+ ")),
)
_text = st.text(_TEXT_CHARS, max_size=30)


@st.composite
def _suites(draw: st.DrawFn) -> list[tuple[str, list[tuple[str, str, str, float, str, str]]]]:
    cases = draw(
        st.lists(
            st.tuples(
                st.text(_TEXT_CHARS, min_size=1, max_size=30),  # classname
                _text,  # name
                st.sampled_from(["passed", "failed", "error", "skipped"]),
                st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False),
                _text,  # message
                _text,  # body
            ),
            max_size=12,
            unique_by=lambda case: (case[0], case[1]),
        )
    )
    split = draw(st.integers(min_value=0, max_value=len(cases)))
    return [(draw(_text), cases[:split]), (draw(_text), cases[split:])]


_RESULT_TAG = {"failed": "failure", "error": "error", "skipped": "skipped"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suites=_suites())
def test_round_trip_through_xml_etree(
    tmp_path_factory: pytest.TempPathFactory,
    suites: list[tuple[str, list[tuple[str, str, str, float, str, str]]]],
) -> None:
    root = ET.Element("testsuites")
    expected = []
    for suite_name, cases in suites:
        suite = ET.SubElement(root, "testsuite", name=suite_name)
        for classname, name, outcome, seconds, message, body in cases:
            element = ET.SubElement(
                suite, "testcase", classname=classname, name=name, time=repr(seconds)
            )
            if outcome != "passed":
                result = ET.SubElement(element, _RESULT_TAG[outcome], message=message)
                result.text = body
            expected.append((suite_name, classname, name, outcome, seconds, message, body))
    path = tmp_path_factory.mktemp("roundtrip") / "report.xml"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)

    report = parse_junit(path)

    assert [(c.suite, c.classname, c.name, c.outcome) for c in report.cases] == [
        row[:4] for row in expected
    ]
    outcomes = [row[3] for row in expected]
    assert report.totals == totals(
        len(expected),
        outcomes.count("passed"),
        outcomes.count("failed"),
        outcomes.count("error"),
        outcomes.count("skipped"),
        0,
    )
    assert [c.duration_s for c in report.cases] == [row[4] for row in expected]
    assert report.duration_s == pytest.approx(math.fsum(row[4] for row in expected))
    for case, (_, _, _, outcome, _, message, body) in zip(report.cases, expected, strict=True):
        if outcome == "passed":
            assert (case.message, case.detail) == ("", "")
            continue
        first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
        assert case.message == (message or first_line)
        assert case.detail == (body if body.strip() else "")


_GOOD = [
    (DATA / name).read_bytes()
    for name in (
        "pytest_xunit1.xml",
        "TEST-com.example.model.ScorerTest.xml",
        "jest_junit_file.xml",
        "generic_edge_cases.xml",
    )
]


@st.composite
def _damaged_reports(draw: st.DrawFn) -> bytes:
    good = draw(st.sampled_from(_GOOD))
    start = draw(st.integers(min_value=0, max_value=len(good)))
    end = draw(st.integers(min_value=start, max_value=min(len(good), start + 64)))
    return good[:start] + draw(st.binary(max_size=16)) + good[end:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=st.one_of(st.binary(max_size=512), _damaged_reports()))
def test_arbitrary_bytes_raise_nothing_but_junit_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "report.xml"
    path.write_bytes(content)
    try:
        report = parse_junit(path)
    except JUnitError as exc:
        assert str(exc).startswith(f"{path}: ")
        assert "\n" not in str(exc)
    else:
        assert report.totals["tests"] == len(report.cases)
