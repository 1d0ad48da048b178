"""Tests a suite's header declares beyond its test cases stay counted in pytest reports, where
records sharing an id are folded as reruns: the records mlgate adds for them are no reruns."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from mlgate.junit import UnlistedCase, parse_junit, parse_junit_files

# Two pytest shards merged into one file (junitparser merge, or CI's own merge step): both
# suites are named "pytest", and each header declares two failures its cases do not show.
MERGED_SHARDS = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites>'
    '<testsuite name="pytest" tests="3" failures="2" errors="0" skipped="0">'
    '<testcase classname="tests.test_a" name="test_ok" time="0.1"/></testsuite>'
    '<testsuite name="pytest" tests="3" failures="2" errors="0" skipped="0">'
    '<testcase classname="tests.test_b" name="test_ok" time="0.1"/></testsuite>'
    "</testsuites>"
)


def test_declared_failures_of_merged_pytest_shards_all_count(tmp_path: Path) -> None:
    report_path = tmp_path / "junit.xml"
    report_path.write_text(MERGED_SHARDS, encoding="utf-8")
    totals = parse_junit(report_path).totals
    # Each shard's header declares 2 failures: the report holds 4, not 2.
    assert (totals["tests"], totals["passed"], totals["failed"]) == (6, 2, 4)


def test_a_rerun_cannot_turn_a_declared_failure_into_a_pass(tmp_path: Path) -> None:
    first = tmp_path / "junit.xml"
    first.write_text(
        '<testsuite name="pytest" tests="2" failures="1">'
        '<testcase classname="tests.test_a" name="test_ok"/></testsuite>',
        encoding="utf-8",
    )
    # A re-run report whose test happens to carry the id of the record counted for the
    # declared failure: that failure has no test to re-run, so nothing re-runs it.
    (counted,) = [c for c in parse_junit(first).cases if isinstance(c, UnlistedCase)]
    assert counted.outcome == "failed"
    again = tmp_path / "rerun.xml"
    again.write_text(
        f'<testsuite name={quoteattr(counted.suite)} tests="1"><testcase '
        f"classname={quoteattr(counted.classname)} name={quoteattr(counted.name)}/></testsuite>",
        encoding="utf-8",
    )
    totals = parse_junit_files([first], reruns=[again]).totals
    assert (totals["failed"], totals["flaky"]) == (1, 0)


def test_declared_tests_are_bounded_over_all_reports_not_per_file(tmp_path: Path) -> None:
    """Each record counted for a header lives in memory and in the evidence; a 40-byte file
    may declare MAX_UNLISTED of them, so the bound holds for all reports read together."""
    import pytest

    from mlgate.junit import JUnitError
    from mlgate.junit_dialects import MAX_UNLISTED

    paths = []
    for shard in range(3):
        path = tmp_path / f"shard{shard}.xml"
        path.write_text(f'<testsuite name="s{shard}" tests="{MAX_UNLISTED // 2}"/>')
        paths.append(path)
    with pytest.raises(JUnitError) as refused:
        parse_junit_files(paths)
    message = str(refused.value)
    assert message.startswith(f"{paths[2]}: suite headers declare ")
    assert "too many to believe" in message and "\n" not in message
