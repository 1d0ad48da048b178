from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlgate import evidence as ev
from mlgate import process
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig, TestsPolicy
from tests.helpers import junit_xml, stage_evidence

STAGE = TestsStage()
ROOT = Path(__file__).resolve().parents[1]


def run(tmp_path: Path, **config: object) -> ev.Evidence:
    return STAGE.run(
        TestsConfig(working_directory=str(tmp_path), **config), RunContext(tmp_path / "ev", None)
    )


def test_ingests_junit_into_evidence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    junit_xml(tmp_path / "r.xml", passed=5, failed=2, errors=1, skipped=1)
    evidence = run(tmp_path, junit=["r.xml"])
    assert evidence.status == "failed"
    assert evidence.metrics["tests"] == 9
    assert (evidence.metrics["passed"], evidence.metrics["failed"], evidence.metrics["errors"]) == (
        5,
        2,
        1,
    )
    assert evidence.metrics["skipped"] == 1
    failures = [f for f in evidence.findings if f.rule == "test-failure"]
    assert len(failures) == 2 and failures[0].path == "tests/test_model.py" and failures[0].line
    assert failures[0].message == "assert 0.71 >= 0.9"
    assert [f.rule for f in evidence.findings].count("test-error") == 1
    assert evidence.artifacts[0].sha256 == ev.sha256_file(tmp_path / "r.xml")
    # The document survives the schema check on the way back in.
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence


def test_runs_the_command_then_reads_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    script = f"from tests.helpers import junit_xml, stage_evidence; from pathlib import Path; junit_xml(Path({str(tmp_path / 'j.xml')!r}), passed=3)"
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    assert evidence.status == "passed"
    assert evidence.metrics["command_exit_code"] == 0 and evidence.metrics["passed"] == 3


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"junit": ["missing.xml"]}, "no JUnit report found at missing.xml"),
        (
            {"command": ["definitely-not-a-command-xyz"]},
            "command not found: definitely-not-a-command-xyz",
        ),
        (
            {"command": [sys.executable, "-c", "import time; time.sleep(30)"], "timeout": 0.5},
            "timed out after 0.5 s",
        ),
        (
            {"command": [sys.executable, "-c", "raise SystemExit(3)"], "junit": ["stale.xml"]},
            "was not written by the test command",
        ),
    ],
    ids=["no-report", "missing-tool", "timeout", "stale-report"],
)
def test_bad_input_is_error_evidence(tmp_path: Path, config: dict, reason: str) -> None:
    stale = junit_xml(tmp_path / "stale.xml", passed=1)
    import os

    os.utime(stale, (1, 1))
    evidence = run(tmp_path, **config)
    assert evidence.status == "error"
    assert reason in (evidence.reason or "")


def test_crashed_runner_with_clean_report_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    script = f"from tests.helpers import junit_xml, stage_evidence; from pathlib import Path; junit_xml(Path({str(tmp_path / 'j.xml')!r}), passed=0); raise SystemExit(5)"
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    assert evidence.status == "error"
    assert evidence.reason == "test command exited 5 (its reports show no failing test)"


def test_a_failing_command_keeps_its_exit_code_and_output_tail(tmp_path: Path) -> None:
    """The user's `python -m pytest` in an interpreter without pytest: the reason says what
    the command said, not only that no report appeared."""
    script = (
        "import sys\n"
        "for i in range(100): print('noise', i)\n"
        "print('/venv/bin/python: No module named pytest', file=sys.stderr)\n"
        "raise SystemExit(1)\n"
    )
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    assert evidence.status == "error" and evidence.metrics["command_exit_code"] == 1
    assert evidence.reason == (
        "test command exited 1: /venv/bin/python: No module named pytest "
        "(no JUnit report found at j.xml)"
    )
    ran = evidence.data["command"]
    assert isinstance(ran, dict)
    assert ran["argv"] == [sys.executable, "-c", script] and ran["exit_code"] == 1
    tail = ran["output_tail"].splitlines()
    # The last 40 lines, stdout and stderr together, in order.
    assert len(tail) == process.TAIL_LINES
    assert tail[0] == "noise 61" and tail[-1] == "/venv/bin/python: No module named pytest"
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence


def test_the_reason_quotes_the_last_line_without_colour_codes(tmp_path: Path) -> None:
    script = (
        "print('\\x1b[31mE   ImportError: no module named sklearn\\x1b[0m\\n'); raise SystemExit(2)"
    )
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    assert evidence.reason == (
        "test command exited 2: E ImportError: no module named sklearn "
        "(no JUnit report found at j.xml)"
    )


def test_the_reason_passes_over_what_the_interpreter_prints_while_shutting_down(
    tmp_path: Path,
) -> None:
    # As gevent does at exit when a plugin imported it (locust 2.40's pytest plugin).
    script = (
        "class Noisy:\n"
        "    def __del__(self):\n"
        "        raise RuntimeError('greenlet is being finalized')\n"
        "keep = Noisy()\n"
        "print('== 1 failed, 1 passed in 0.01s ==')\n"
        "raise SystemExit(1)\n"
    )
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    tail = evidence.data["command"]["output_tail"]
    assert "Exception ignored in" in tail and "greenlet is being finalized" in tail
    assert evidence.reason == (
        "test command exited 1: == 1 failed, 1 passed in 0.01s == (no JUnit report found at j.xml)"
    )


@pytest.mark.parametrize(
    ("tail", "last"),
    [
        # an ignored exception during the run, then the command's own last word: kept
        ("Exception ignored in: <x>\nValueError: boom\n== 2 passed ==\n", "== 2 passed =="),
        (
            "Exception ignored in: <x>\nTraceback (most recent call last):\n"
            '  File "a.py", line 3, in f\n    g()\n    ^^^\nKeyError: 1\nall done\n',
            "all done",
        ),
        # at the end, with or without a traceback: passed over
        ("done\nException ignored in: <x>\nValueError: boom\n", "done"),
        ("done\nException ignored in: <x>\n", "done"),
        (
            "done\nException ignored in: <x>\nTraceback (most recent call last):\n"
            '  File "a.py", line 3, in f\n    g()\n    ^^^\nKeyError: 1\n'
            "Exception ignored in: <y>\nTraceback (most recent call last):\n"
            '  File "b.py", line 9, in h\nOSError: [Errno 9] Bad file descriptor\n',
            "done",
        ),
        ("Exception ignored in: <x>\nValueError: boom\n", ""),
    ],
)
def test_last_line_passes_over_only_a_closing_ignored_exception(tail: str, last: str) -> None:
    assert process.Completed(1, None, tail).last_line() == last


def test_output_tail_is_bounded_in_bytes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    script = "print('x' * 100_000); print('the end')"
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"])
    ran = evidence.data["command"]
    assert isinstance(ran, dict)
    # The cut-off first line is dropped rather than kept half.
    assert ran["output_tail"] == "the end"
    # The command's output still reaches the job log whole.
    assert "x" * 100_000 + "\nthe end" in capfd.readouterr().out


def test_a_timed_out_command_says_what_it_printed_last(tmp_path: Path) -> None:
    script = "import time; print('collecting...', flush=True); time.sleep(30)"
    evidence = run(tmp_path, command=[sys.executable, "-c", script], junit=["j.xml"], timeout=1)
    assert evidence.status == "error"
    assert (evidence.reason or "").endswith("; its last output: collecting...")
    ran = evidence.data["command"]
    assert isinstance(ran, dict) and ran["exit_code"] is None


def test_malformed_report_is_error_evidence(tmp_path: Path) -> None:
    (tmp_path / "bad.xml").write_text("<testsuites><testsuite name='x'><testcase")
    evidence = run(tmp_path, junit=["bad.xml"])
    assert evidence.status == "error" and "bad.xml" in (evidence.reason or "")


def evaluate(policy: TestsPolicy, evidence: ev.Evidence) -> dict[str, tuple[str, str]]:
    return {r.rule: (r.outcome, r.reason) for r in STAGE.evaluate(policy, evidence)}


def test_rules_give_outcomes_with_reasons() -> None:
    results = evaluate(TestsPolicy(), stage_evidence(passed=7, failed=3))
    assert results["tests.max_failures"] == ("fail", "tests: 3 failed, 0 allowed")
    assert results["tests.max_errors"] == ("pass", "tests: 0 errored, 0 allowed")
    assert results["tests.min_tests"] == ("pass", "tests: 10 ran, at least 1 required")
    assert "tests.max_flaky" not in results


def test_zero_tests_fail_closed() -> None:
    results = evaluate(TestsPolicy(), stage_evidence(passed=0))
    assert results["tests.min_tests"][0] == "fail"


def test_flaky_and_skipped_limits() -> None:
    results = evaluate(
        TestsPolicy(max_flaky=0, max_skipped=1), stage_evidence(passed=3, skipped=2, flaky=1)
    )
    assert results["tests.max_flaky"] == ("fail", "tests: 1 flaky, 0 allowed")
    assert results["tests.max_skipped"] == ("fail", "tests: 2 skipped, 1 allowed")
    assert evaluate(TestsPolicy(), stage_evidence(passed=5, flaky=2))["tests.max_flaky"] == (
        "pass",
        "tests: 2 flaky, any allowed",
    )


def test_annotation_paths_are_from_the_repository_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "models" / "iris"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_model.py").write_text("# test\n")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    # Relative to the working directory (pytest's rootdir is the project) ...
    junit_xml(project / "a.xml", failed=1, file="tests/test_model.py")
    # ... or to the repository root (pytest ran from the root).
    junit_xml(project / "b.xml", failed=1, file="models/iris/tests/test_model.py")
    for report in ("a.xml", "b.xml"):
        evidence = STAGE.run(
            TestsConfig(working_directory=str(project), junit=[report]),
            RunContext(tmp_path / "ev", None),
        )
        assert evidence.findings[0].path == "models/iris/tests/test_model.py"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {
                "metrics": {
                    "tests": 4,
                    "passed": 4,
                    "failed": 1.0,
                    "errors": 0,
                    "skipped": 0,
                    "flaky": 0,
                }
            },
            "lacks whole-number counts of failed",
        ),
        (
            {"metrics": {"tests": 4, "passed": 4, "errors": 0, "skipped": 0, "flaky": 0}},
            "lacks whole-number counts of failed",
        ),
        (
            {
                "metrics": {
                    "tests": 9,
                    "passed": 4,
                    "failed": 0,
                    "errors": 0,
                    "skipped": 0,
                    "flaky": 0,
                }
            },
            "do not add up",
        ),
        ({"status": "failed"}, "contradicts its 0 failing tests"),
        (
            {"findings": [{"id": "x", "severity": "high", "message": "m", "rule": "test-failure"}]},
            "findings do not match",
        ),
    ],
    ids=["float", "missing", "sum", "status", "findings"],
)
def test_untrustworthy_evidence_fails(change: dict, problem: str) -> None:
    results = evaluate(TestsPolicy(), stage_evidence(**change))
    assert list(results) == ["tests.evidence"]
    outcome, reason = results["tests.evidence"]
    assert outcome == "fail" and problem in reason


def test_timeout_kills_a_process_group_that_ignores_sigterm(tmp_path: Path) -> None:
    import time

    pid_file = tmp_path / "pid"
    script = f"trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > {pid_file}; sleep 60' & wait"
    started = time.monotonic()
    evidence = run(tmp_path, command=["sh", "-c", script], timeout=1)
    assert evidence.status == "error" and "timed out" in (evidence.reason or "")
    assert time.monotonic() - started < 30
    grandchild = int(pid_file.read_text())
    time.sleep(0.2)
    assert not running(grandchild)


def running(pid: int) -> bool:
    """Alive and not a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
