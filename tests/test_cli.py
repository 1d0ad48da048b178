"""The CLI as users and scripts call it: exit codes, one-line errors, files written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import junit_xml

DATA = Path(__file__).parent / "data" / "junit"
ROOT = Path(__file__).resolve().parents[1]


def mlgate(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("mlgate: error")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_pipeline_pass_fail_and_reports(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests:\n    junit: junit.xml\n")
    junit_xml(tmp_path / "junit.xml", passed=4)
    assert mlgate("run", cwd=tmp_path).returncode == 0
    gate = mlgate("gate", cwd=tmp_path)
    assert gate.returncode == 0, gate.stderr
    assert "pass  tests: 0 failed, 0 allowed" in gate.stderr
    assert json.loads((tmp_path / ".mlgate" / "verdict.json").read_text())["outcome"] == "pass"
    report = mlgate("report", cwd=tmp_path)
    assert report.returncode == 0 and "mlgate: PASSED" in report.stdout
    assert (tmp_path / ".mlgate" / "report.md").read_text().startswith("✅ **mlgate: passed**")

    junit_xml(tmp_path / "junit.xml", passed=4, failed=3)
    assert mlgate("test", "--junit", "junit.xml", cwd=tmp_path).returncode == 0  # the gate decides
    gate = mlgate("gate", cwd=tmp_path)
    assert gate.returncode == 1 and "fail  tests: 3 failed, 0 allowed" in gate.stderr


def test_command_after_double_dash(tmp_path: Path) -> None:
    script = "from tests.helpers import junit_xml; from pathlib import Path; junit_xml(Path('out.xml'), passed=2, failed=1)"
    result = mlgate("test", "--junit", "out.xml", cwd=tmp_path)
    assert result.returncode == 4  # no report yet: error evidence
    result = mlgate(
        "test", "--evidence-dir", "ev", "--", sys.executable, "-c", script, cwd=tmp_path
    )
    assert result.returncode == 4, (
        result.stderr
    )  # default junit path .mlgate/junit.xml was not written
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests:\n    junit: out.xml\n")
    result = mlgate("test", "--", sys.executable, "-c", script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evidence = json.loads((tmp_path / ".mlgate" / "evidence" / "tests.json").read_text())
    assert evidence["status"] == "failed" and evidence["metrics"]["failed"] == 1


@pytest.mark.parametrize(
    "fixture",
    [
        "bad_xxe.xml",
        "bad_billion_laughs.xml",
        "bad_truncated.xml",
        "bad_empty.xml",
        "bad_binary.xml.gz",
        "missing.xml",
    ],
)
def test_hostile_or_missing_xml_is_one_line_and_error_evidence(
    tmp_path: Path, fixture: str
) -> None:
    other = tmp_path / ".mlgate" / "evidence" / "other.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    result = mlgate("test", "--junit", str(DATA / fixture), cwd=tmp_path)
    assert result.returncode == 4
    line = [x for x in result.stderr.splitlines() if x.startswith("mlgate: tests: error")]
    assert len(line) == 1 and fixture in line[0]
    assert "Traceback" not in result.stderr
    evidence = json.loads((tmp_path / ".mlgate" / "evidence" / "tests.json").read_text())
    assert evidence["status"] == "error"
    assert other.read_text() == "{}"  # nothing already recorded is lost
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    assert mlgate("gate", cwd=tmp_path).returncode == 1


@pytest.mark.parametrize(
    ("args", "config", "expected"),
    [
        (["gate"], None, "mlgate.yml: no such config file"),
        (
            ["gate"],
            "stages:\n  tests:\n    timeout: never\n",
            "mlgate.yml: stages.tests.timeout: Input should be a valid number",
        ),
        (
            ["config", "check"],
            "policy: {tests: {max_failures: many}}\n",
            "policy.tests.max_failures",
        ),
        (["report"], "stages: {tests: {}}\n", "no verdict found"),
        (
            ["run", "--stage", "load"],
            "stages: {tests: {}}\n",
            "stage not enabled in the config: load",
        ),
        (["test", "--command", "x", "--", "y"], None, "either after -- or with --command"),
    ],
)
def test_usage_and_config_errors_exit_2(
    tmp_path: Path, args: list[str], config: str | None, expected: str
) -> None:
    if config is not None:
        (tmp_path / "mlgate.yml").write_text(config)
    result = mlgate(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in one_line_error(result)


def test_unknown_option_is_usage_error(tmp_path: Path) -> None:
    result = mlgate("gate", "--frobnicate", cwd=tmp_path)
    assert result.returncode == 2 and "No such option" in one_line_error(result)


def test_config_check_and_schema(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages: {tests: {}}\n")
    assert mlgate("config", "check", cwd=tmp_path).stdout.strip() == "mlgate.yml: ok; stages: tests"
    schema = json.loads(mlgate("config", "schema", cwd=tmp_path).stdout)
    assert "tests" in schema["$defs"]["StagesConfig"]["properties"]


def test_github_outputs_are_written(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages: {tests: {junit: j.xml}}\n")
    junit_xml(tmp_path / "j.xml", passed=1)
    out = tmp_path / "github_output"
    assert mlgate("run", cwd=tmp_path, env={"GITHUB_OUTPUT": str(out)}).returncode == 0
    assert mlgate("gate", cwd=tmp_path, env={"GITHUB_OUTPUT": str(out)}).returncode == 0
    lines = out.read_text().splitlines()
    assert (
        "status=passed" in lines
        and "evidence-path=.mlgate/evidence/tests.json" in lines
        and "verdict=pass" in lines
    )


def test_sigterm_stops_the_test_command_and_its_children(tmp_path: Path) -> None:
    import signal
    import time

    marker = tmp_path / "child.pid"
    script = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    child = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "test", "--", sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 20
    while not marker.exists() or not marker.read_text():
        assert time.monotonic() < deadline, "the test command never started"
        time.sleep(0.05)
    grandchild = int(marker.read_text())
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=20)
    assert child.returncode == 130 and "mlgate: interrupted" in stderr
    assert "Traceback" not in stderr
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(grandchild, 0)


def test_report_refuses_a_verdict_of_another_commit_or_changed_evidence(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages: {tests: {junit: j.xml}}\n")
    junit_xml(tmp_path / "j.xml", passed=1)
    old = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "1" * 40}
    assert mlgate("run", cwd=tmp_path, env=old).returncode == 0
    assert mlgate("gate", cwd=tmp_path, env=old).returncode == 0
    new = {"GITHUB_ACTIONS": "true", "GITHUB_SHA": "2" * 40}
    result = mlgate("report", "--local", cwd=tmp_path, env=new)
    assert result.returncode == 2
    assert "the verdict was made for commit 111111111111, not 222222222222" in one_line_error(
        result
    )
    evidence = tmp_path / ".mlgate" / "evidence" / "tests.json"
    evidence.write_text(evidence.read_text().replace('"passed": 1', '"passed": 1 '))
    result = mlgate("report", "--local", cwd=tmp_path, env=old)
    assert result.returncode == 2 and "changed since the gate judged it" in one_line_error(result)


def test_a_crashing_stage_leaves_error_evidence_not_old_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgate import cli
    from mlgate.stages import STAGES

    (tmp_path / "mlgate.yml").write_text("stages: {tests: {junit: j.xml}}\n")
    junit_xml(tmp_path / "j.xml", passed=1)
    monkeypatch.chdir(tmp_path)
    assert mlgate("run", cwd=tmp_path).returncode == 0  # a passing document is on disk

    def explode(*args: object) -> None:
        raise RuntimeError("disk on fire\n::error::forged")

    monkeypatch.setattr(STAGES["tests"], "run", explode)
    with pytest.raises(SystemExit) as exited:
        monkeypatch.setattr(sys, "argv", ["mlgate", "run"])
        cli.main()
    assert exited.value.code == 4
    evidence = json.loads((tmp_path / ".mlgate" / "evidence" / "tests.json").read_text())
    assert evidence["status"] == "error"
    assert evidence["reason"] == "stage crashed: RuntimeError: disk on fire ::error::forged"
    assert mlgate("gate", cwd=tmp_path).returncode == 1


def test_rerun_reports_turn_retried_failures_flaky(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages: {tests: {}}\npolicy: {tests: {max_flaky: 0}}\n")
    first, rerun = DATA / "pytest_run1.xml", DATA / "pytest_run2_lastfailed.xml"
    assert (
        mlgate("test", "--junit", str(first), "--rerun-junit", str(rerun), cwd=tmp_path).returncode
        == 0
    )
    evidence = json.loads((tmp_path / ".mlgate" / "evidence" / "tests.json").read_text())
    assert evidence["metrics"]["flaky"] == 2 and evidence["metrics"]["failed"] == 1
    gate = mlgate("gate", cwd=tmp_path)
    assert gate.returncode == 1 and "fail  tests: 2 flaky, 0 allowed" in gate.stderr


def test_bench_command_ingests_without_running_the_configured_command(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  bench:\n    command: definitely-not-a-command\n"
    )
    fixture = DATA.parent / "bench" / "pytest-benchmark.json"
    result = mlgate("bench", "--json", str(fixture), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evidence = json.loads((tmp_path / ".mlgate" / "evidence" / "bench.json").read_text())
    assert evidence["status"] == "passed" and evidence["metrics"]["benchmarks"] == 3
    result = mlgate("bench", cwd=tmp_path)
    assert result.returncode == 4 and "command not found: definitely-not-a-command" in result.stderr


def write_samples(path: Path, seed: int, n: int, scale: float = 1.0) -> Path:
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.lognormal(np.log(20), 0.3, n) * scale
    path.write_text("# latency in ms\n" + "\n".join(f"{v:.4f}" for v in values) + "\n")
    return path


def test_compare_exit_codes_and_json(tmp_path: Path) -> None:
    base = write_samples(tmp_path / "base.txt", 1, 5000)
    same = write_samples(tmp_path / "same.txt", 2, 5000)
    slow = write_samples(tmp_path / "slow.txt", 3, 5000, scale=1.3)
    assert mlgate("compare", str(base), str(same), cwd=tmp_path).returncode == 0
    result = mlgate("compare", str(base), str(slow), "--metric", "p95", "--json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    (entry,) = json.loads(result.stdout)["metrics"]
    assert entry["metric"] == "p95" and entry["decision"] == "regression"
    assert 0 < entry["ci"][0] < entry["relative_change"] < entry["ci"][1]
    assert 0 <= entry["p_value"] < 0.05
    small_a = write_samples(tmp_path / "a.txt", 4, 40)
    small_b = write_samples(tmp_path / "b.txt", 5, 40)
    result = mlgate(
        "compare", str(small_a), str(small_b), "--metric", "p99", "--tolerance", "5%", cwd=tmp_path
    )
    assert result.returncode == 3 and "inconclusive" in result.stdout


def write_rounds(path: Path, seed: int, machine: list[float], scale: float = 1.0) -> Path:
    """Rounds of 500 samples; round i runs on a machine `machine[i]` times slower."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = []
    for i, speed in enumerate(machine, 1):
        lines.append(f"# round {i}")
        lines += [f"{v:.4f}" for v in rng.lognormal(np.log(20), 0.3, 500) * speed * scale]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compare_pairs_rounds_when_both_sides_mark_them(tmp_path: Path) -> None:
    machine = [1.0, 1.15, 0.9, 1.1, 0.95, 1.2]
    base = write_rounds(tmp_path / "base.txt", 1, machine)
    same = write_rounds(tmp_path / "same.txt", 2, machine)
    slow = write_rounds(tmp_path / "slow.txt", 3, machine, scale=1.1)
    result = mlgate("compare", str(base), str(same), "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["method"] == "paired rounds"
    result = mlgate("compare", str(base), str(slow), cwd=tmp_path)
    assert result.returncode == 1 and "6 paired rounds" in result.stdout
    # Rounds that do not pair up: independent samples, and a note saying so.
    fewer = write_rounds(tmp_path / "fewer.txt", 4, machine[:5])
    result = mlgate("compare", str(base), str(fewer), "--json", cwd=tmp_path)
    assert json.loads(result.stdout)["method"] == "independent samples"
    assert "rounds do not pair up (6 vs 5)" in result.stderr


def test_compare_bad_input_is_one_line(tmp_path: Path) -> None:
    base = write_samples(tmp_path / "base.txt", 1, 100)
    (tmp_path / "bad.txt").write_text("12.5\nfast\n")
    result = mlgate("compare", str(base), str(tmp_path / "bad.txt"), cwd=tmp_path)
    assert result.returncode == 2 and "bad.txt" in one_line_error(result)
    result = mlgate("compare", str(base), str(base), "--tolerance", "lots", cwd=tmp_path)
    assert result.returncode == 2 and "not a percentage" in one_line_error(result)


def test_config_extras_names_what_the_enabled_stages_need(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  tests: {}\n  load: {url: 'http://127.0.0.1:9', payload: p.jsonl}\n"
    )
    assert mlgate("config", "extras", cwd=tmp_path).stdout.strip() == "load"
    # Installed in the test environment, so nothing is missing here.
    assert mlgate("config", "extras", "--missing", cwd=tmp_path).stdout.strip() == ""
    result = mlgate("config", "extras", "--extras", "load,nonsense", cwd=tmp_path)
    assert result.returncode == 2 and "unknown extras: nonsense" in one_line_error(result)


def test_serve_detached_then_stopped(tmp_path: Path) -> None:
    import urllib.request

    example = ROOT / "examples" / "iris"
    state = tmp_path / "server.json"
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    started = mlgate(
        "serve",
        "--command",
        "python serve.py --port {port}",
        "--detach",
        "--state-file",
        str(state),
        cwd=example,
        env=env,
    )
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    with urllib.request.urlopen(url + "/ping", timeout=5) as answer:
        assert answer.status == 200
    stopped = mlgate("serve", "--stop", "--state-file", str(state), cwd=tmp_path)
    assert stopped.returncode == 0 and "cold_start_s" in stopped.stderr
    pid = json.loads(state.read_text()).get("pid")
    assert pid is None or not Path(f"/proc/{pid}").exists()
    again = mlgate("serve", "--stop", "--state-file", str(state), cwd=tmp_path)
    assert again.returncode == 2 and "no detached server is running" in one_line_error(again)
    failed = mlgate(
        "serve",
        "--command",
        "definitely-not-a-server {port}",
        "--detach",
        "--state-file",
        str(tmp_path / "x.json"),
        cwd=tmp_path,
    )
    assert failed.returncode == 2 and "the server did not start" in one_line_error(failed)
    assert mlgate("serve", "--detach", "--url", "http://127.0.0.1:9", cwd=tmp_path).returncode == 2
