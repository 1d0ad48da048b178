"""The load stage against the example's real model server (examples/iris/serve.py) on 127.0.0.1.

Runs are short (a second of warm-up, a few seconds measured); no assertion depends on how fast
this machine is, except where queueing makes the answer certain.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from mlgate import evidence as ev
from mlgate import stats
from mlgate.samples import read_samples
from mlgate.stages.interface import RunContext
from mlgate.stages.load.config import SAMPLES_FILE, LoadConfig, LoadPolicy
from mlgate.stages.load.stage import LoadStage
from tests.helpers import ExampleServer as Server

STAGE = LoadStage()
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "iris"
PAYLOAD = str(EXAMPLE / "payloads.jsonl")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server()
    yield running
    running.stop()


@pytest.fixture
def slow_server() -> Iterator[Server]:
    """One prediction at a time, 50 ms each: at most 20 answers per second."""
    running = Server("--delay-ms", "50", "--threads", "1")
    yield running
    running.stop()


def run(tmp_path: Path, **config: object) -> ev.Evidence:
    settings: dict[str, object] = {"warmup": 1, "duration": 3, "working_directory": str(tmp_path)}
    evidence = STAGE.run(
        LoadConfig.model_validate(settings | config), RunContext(tmp_path / "ev", None)
    )
    # Every document the stage makes passes the evidence schema on the way back in.
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence
    return evidence


def samples(tmp_path: Path) -> list[float]:
    with gzip.open(tmp_path / "ev" / SAMPLES_FILE, "rt", encoding="ascii") as handle:
        return [float(line) for line in handle]


def children(*servers: Server) -> list[psutil.Process]:
    """Processes this test process started, other than the servers."""
    keep = {s.process.pid for s in servers}
    return [p for p in psutil.Process().children(recursive=True) if p.pid not in keep]


def test_closed_loop_measures_every_request(tmp_path: Path, server: Server) -> None:
    evidence = run(tmp_path, url=server.url, payload=PAYLOAD)
    assert evidence.status == "passed", evidence.reason
    m = evidence.metrics
    assert (m["mode"], m["users"], m["rate"]) == ("closed", 4, None)
    assert (m["duration_s"], m["warmup_s"]) == (3, 1)
    assert m["errors"] == 0 and m["error_rate"] == 0
    assert isinstance(m["requests"], int) and m["requests"] > 0
    ordered = [m[k] for k in ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")]
    assert ordered == sorted(ordered) and ordered[0] > 0  # type: ignore[type-var,operator]
    assert isinstance(m["throughput_rps"], float) and m["throughput_rps"] > 0
    assert evidence.data["errors_by_status"] == {} and evidence.data["errors_by_exception"] == {}
    assert evidence.data["warmup_requests"] > 0
    assert evidence.findings == []
    # The samples artifact holds each successful measured request, at full precision.
    (artifact,) = evidence.artifacts
    assert artifact.path == evidence.data["samples_artifact"] == SAMPLES_FILE
    assert artifact.sha256 == ev.sha256_file(tmp_path / "ev" / SAMPLES_FILE)
    latencies = samples(tmp_path)
    assert len(latencies) == m["requests"]
    assert max(latencies) == pytest.approx(m["max_ms"], abs=0.001)
    assert math.fsum(latencies) / len(latencies) == pytest.approx(m["mean_ms"], abs=0.001)
    assert "4 users" in STAGE.summary(evidence)
    assert evidence.provenance.tool_versions["locust"]


def test_open_loop_sends_on_schedule(tmp_path: Path, server: Server) -> None:
    evidence = run(tmp_path, url=server.url, payload=PAYLOAD, rate=50)
    assert evidence.status == "passed", evidence.reason
    m = evidence.metrics
    assert (m["mode"], m["users"], m["rate"]) == ("open", None, 50)
    # The schedule fixes the count: 50 per second for the 3 measured seconds.
    assert m["requests"] == 150 and m["errors"] == 0
    assert len(samples(tmp_path)) == 150
    assert "open loop at 50.0 req/s" in STAGE.summary(evidence)


def test_open_loop_shows_the_queue_a_slow_server_builds(
    tmp_path: Path, slow_server: Server
) -> None:
    # 40 requests per second to a server that answers 20: the queue, and with it the latency
    # counted from each request's scheduled time, grows for the whole run.
    evidence = run(
        tmp_path,
        url=slow_server.url,
        payload=PAYLOAD,
        rate=40,
        warmup=0.5,
        duration=1.5,
        request_timeout=10,
    )
    assert evidence.status == "passed", evidence.reason
    assert evidence.metrics["errors"] == 0
    p99 = evidence.metrics["p99_ms"]
    assert isinstance(p99, float) and p99 > 10 * 50  # far beyond the 50 ms a request takes
    # Throughput is what the server delivered (at most 20 a second), not the rate offered.
    assert evidence.metrics["throughput_rps"] < 30  # type: ignore[operator]
    latencies = samples(tmp_path)
    assert len(latencies) == 60  # 40 a second for 1.5 s, every one answered
    # Certain whatever this machine's speed: one at a time, the 60 measured requests take
    # 3 s from the first one's time (0.5 s), and the last answered was scheduled at 1.975 s
    # at the latest, so some latency is at least 3.5 - 1.975 s. A closed loop, sending only
    # after an answer, would show about 50 ms.
    assert max(latencies) >= 1525
    # And it grows through the run (in answer order; medians, as one request a thread
    # scheduler leaves waiting, or a stall of this client, moves a sum).
    quarter = len(latencies) // 4
    first, last = statistics.median(latencies[:quarter]), statistics.median(latencies[-quarter:])
    assert last > first + 10 * 50


def test_open_loop_counts_requests_over_the_in_flight_cap_as_errors(
    tmp_path: Path, slow_server: Server
) -> None:
    evidence = run(
        tmp_path,
        url=slow_server.url,
        payload=PAYLOAD,
        rate=40,
        warmup=0,
        duration=2,
        max_in_flight=5,
    )
    assert evidence.status == "passed", evidence.reason
    dropped = evidence.data["errors_by_exception"]["InFlightLimitReached"]
    assert dropped > 0 and evidence.metrics["errors"] == dropped
    assert evidence.metrics["requests"] == 80
    (finding,) = evidence.findings
    assert finding.rule == "load-error" and finding.severity == "medium" and finding.path is None
    assert finding.message.startswith(f"{dropped} of 80 measured requests")


def test_a_user_locustfile_drives_the_load(tmp_path: Path, server: Server) -> None:
    evidence = run(
        tmp_path, url=server.url, locustfile=str(EXAMPLE / "locustfile.py"), payload=PAYLOAD
    )
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["scenario"].endswith("locustfile.py")
    assert evidence.metrics["errors"] == 0
    assert len(samples(tmp_path)) == evidence.metrics["requests"]


def test_server_errors_are_counted_by_status(tmp_path: Path, server: Server) -> None:
    # Every other body is one the model cannot score: a 400, counted and reported as such.
    good = Path(PAYLOAD).read_text().splitlines()[0]
    (tmp_path / "mixed.jsonl").write_text(f'{good}\n{{"instances": [[1, 2]]}}\n')
    evidence = run(tmp_path, url=server.url, payload="mixed.jsonl", users=1, duration=2)
    assert evidence.status == "passed", evidence.reason
    assert evidence.data["errors_by_status"] == {"400": evidence.metrics["errors"]}
    assert 0.4 < evidence.metrics["error_rate"] < 0.6  # type: ignore[operator]
    (finding,) = evidence.findings
    assert finding.id == "load-error-http-400" and "answered HTTP 400" in finding.message
    results = {r.rule: r for r in STAGE.evaluate(LoadPolicy(), evidence)}
    assert results["load.error_rate_max"].outcome == "fail"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("unreachable", "server unreachable: GET http://127.0.0.1:"),
        ("unhealthy", "/nope answered 404, not 200, within 1 s"),
        ("payload_missing", "missing.jsonl does not exist"),
        ("payload_empty", "holds no requests"),
        ("payload_not_json", "line 2 is not JSON"),
        ("locustfile_missing", "nope.py does not exist"),
        ("locustfile_import_error", "failed to import: ModuleNotFoundError: No module named"),
        ("locustfile_no_user", "defines no User class"),
        (
            "tasks_raise",
            "no request was made in the measured window; "
            "the locustfile's tasks raised KeyError: 'no such payload'",
        ),
        ("all_rejected", "no request succeeded: "),
    ],
)
def test_bad_input_is_error_evidence_with_one_reason(
    tmp_path: Path, server: Server, case: str, reason: str
) -> None:
    config: dict[str, object] = {"url": server.url, "payload": PAYLOAD, "warmup": 0, "duration": 1}
    if case == "unreachable":
        with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config |= {"url": f"http://127.0.0.1:{port}", "health_timeout": 1}
    elif case == "unhealthy":
        config |= {"health_path": "/nope", "health_timeout": 1}
    elif case == "payload_missing":
        config["payload"] = "missing.jsonl"
    elif case == "payload_empty":
        config["payload"] = _write(tmp_path / "empty.jsonl", "\n  \n")
    elif case == "payload_not_json":
        config["payload"] = _write(tmp_path / "bad.jsonl", '{"instances": [[1, 2, 3, 4]]}\n{oops\n')
    elif case == "locustfile_missing":
        config["locustfile"] = "nope.py"
    elif case == "locustfile_import_error":
        config["locustfile"] = _write(tmp_path / "lf.py", "import no_such_module_xyz\n")
    elif case == "locustfile_no_user":
        config["locustfile"] = _write(tmp_path / "lf.py", "from locust import HttpUser\nX = 1\n")
    elif case == "tasks_raise":
        config["locustfile"] = _write(
            tmp_path / "lf.py",
            "from locust import User, task\n"
            "class Broken(User):\n"
            "    @task\n"
            "    def t(self):\n"
            "        raise KeyError('no such payload')\n",
        )
    elif case == "all_rejected":
        config["payload"] = _write(tmp_path / "p.jsonl", '{"rows": [[1, 2, 3, 4]]}\n')
    evidence = run(tmp_path, **config)
    assert evidence.status == "error"
    assert evidence.reason is not None and reason in evidence.reason, evidence.reason
    assert evidence.artifacts == [] and not (tmp_path / "ev" / SAMPLES_FILE).exists()
    assert STAGE.summary(evidence) == f"error: {evidence.reason}"
    assert children(server) == []
    if case == "all_rejected":
        assert "(HTTP 400: " in evidence.reason
        assert evidence.metrics["errors"] == evidence.metrics["requests"]


def test_a_hung_load_run_ends_at_the_stage_timeout(tmp_path: Path, server: Server) -> None:
    hang = _write(tmp_path / "lf.py", "import time\ntime.sleep(3600)\n")
    started = time.monotonic()
    # 6 s: 1 s of load and the generator's 3 s start-up allowance leave 2 s for the checks
    # before loading (0.5 s was too little for a stalled machine).
    evidence = run(tmp_path, url=server.url, locustfile=hang, warmup=0, duration=1, timeout=6)
    assert evidence.status == "error"
    assert evidence.reason == "load run did not finish within the stage timeout of 6 s"
    # The child is killed at the deadline (plus process.run's grace for SIGTERM at most).
    assert time.monotonic() - started < 6 + 6
    assert children(server) == []


def test_stale_samples_never_outlive_a_failed_run(tmp_path: Path) -> None:
    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / SAMPLES_FILE).write_bytes(b"old")
    evidence = run(tmp_path, url="http://127.0.0.1:9", payload="missing.jsonl")
    assert evidence.status == "error"
    assert not (tmp_path / "ev" / SAMPLES_FILE).exists()


def test_serve_answers_bad_input_with_4xx_never_5xx(server: Server) -> None:
    def post(body: bytes, content_type: str = "application/json") -> int:
        request = urllib.request.Request(
            server.url + "/invocations", data=body, headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                assert json.load(reply)["predictions"]
                return int(reply.status)
        except urllib.error.HTTPError as exc:
            assert json.load(exc)["message"]
            return exc.code

    assert post(Path(PAYLOAD).read_bytes().splitlines()[0]) == 200
    assert (
        post(
            b'{"instances": [{"sepal length": 5, "sepal width": 3, "petal length": 1, "petal width": 0.2}]}'
        )
        == 200
    )
    for body in [
        b"{",
        b"[]",
        b"{}",
        b'{"instances": [[1, 2, 3]]}',
        b'{"instances": [[1, 2, 3, NaN]]}',
        b'{"instances": [[1, 2, 3, "x"]]}',
        b'{"instances": [[1, 2, 3, ' + b"9" * 400 + b"]]}",
        b'{"instances": []}',
        b'{"instances": [{"sepal length": 1}]}',
        b'{"dataframe_split": {"columns": ["a"], "data": [[1]]}}',
        b'{"dataframe_split": {"data": [[1, 2, 3, 4], [1]]}}',
        b'{"instances": [[1, 2, 3, 4]], "dataframe_split": {"data": []}}',
        b"[" * 100_000 + b"]" * 100_000,
        b"\xff\xfe",
    ]:
        assert post(body) == 400, body[:60]
    assert post(b'{"instances": [[1, 2, 3, 4]]}', "text/csv") == 415


def _evidence(**metrics: object) -> ev.Evidence:
    base: dict[str, object] = {
        "requests": 1000,
        "errors": 5,
        "error_rate": 0.005,
        "throughput_rps": 331.7,
        "p50_ms": 90.0,
        "p90_ms": 150.0,
        "p95_ms": 182.4,
        "p99_ms": 240.0,
        "max_ms": 400.0,
        "mean_ms": 101.0,
        "duration_s": 3.0,
        "warmup_s": 1.0,
        "mode": "closed",
        "users": 4,
        "rate": None,
    }
    return ev.Evidence.model_validate(
        {
            "stage": "load",
            "status": "passed",
            "started_at": ev.now(),
            "finished_at": ev.now(),
            "metrics": base | metrics,
        }
    )


def test_evaluate_judges_each_rule_with_its_numbers() -> None:
    policy = LoadPolicy(p95_ms_max=250, p99_ms_max=200, throughput_min_rps=500)
    results = {r.rule: r for r in STAGE.evaluate(policy, _evidence())}
    assert {rule: r.outcome for rule, r in results.items()} == {
        "load.min_requests": "pass",
        "load.error_rate_max": "pass",
        "load.p95_ms_max": "pass",
        "load.p99_ms_max": "fail",
        "load.throughput_min_rps": "fail",
    }
    assert results["load.p95_ms_max"].reason == "load: p95 182.4 ms, at most 250 ms allowed"
    assert results["load.p99_ms_max"].reason == "load: p99 240.0 ms, at most 200 ms allowed"
    assert results["load.min_requests"].reason == (
        "load: 995 successful requests measured, at least 100 required"
    )
    assert results["load.error_rate_max"].reason == (
        "load: error rate 0.50% (5 of 1000), at most 1.00% allowed"
    )
    assert results["load.throughput_min_rps"].reason == (
        "load: throughput 331.7 req/s, at least 500 req/s required"
    )


def test_evaluate_defaults_only_check_errors_and_enough_requests() -> None:
    results = STAGE.evaluate(LoadPolicy(), _evidence(requests=60, errors=0, error_rate=0.0))
    assert [(r.rule, r.outcome) for r in results] == [
        ("load.min_requests", "fail"),
        ("load.error_rate_max", "pass"),
    ]


@pytest.mark.parametrize(
    ("metrics", "problem"),
    [
        ({"requests": "1000"}, "whole-number counts"),
        ({"errors": 1001}, "more errors than requests"),
        ({"p95_ms": None}, "lacks latency numbers: p95_ms"),
        ({"p99_ms": 10.0}, "not in increasing order"),
        ({"error_rate": 0.0}, "error rate does not match"),
    ],
)
def test_evaluate_refuses_inconsistent_evidence(metrics: dict[str, object], problem: str) -> None:
    (result,) = STAGE.evaluate(LoadPolicy(), _evidence(**metrics))
    assert result.rule == "load.evidence" and result.outcome == "fail"
    assert problem in result.reason


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"users": 2, "rate": 10.0}, "give users (closed loop) or rate (open loop), not both"),
        ({"rate": 10.0, "locustfile": "l.py"}, "drives the built-in scenario only"),
        ({"payload": None}, "payload is required unless a locustfile drives the load"),
        ({"timeout": 10}, "timeout (10 s) must exceed warmup + duration (35 s)"),
        ({"rate": float("nan")}, "finite number"),
        ({"duration": float("inf")}, "finite number"),
        ({"users": 0}, "greater than or equal to 1"),
        ({"url": "127.0.0.1:8080"}, "must be an http:// or https:// URL"),
        ({"path": "invocations"}, "must start with '/'"),
        ({"workers": 3}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_are_clear(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        LoadConfig.model_validate({"url": "http://127.0.0.1:8080", "payload": "p.jsonl"} | config)


def test_config_defaults_to_a_closed_loop_of_four_users() -> None:
    config = LoadConfig(url="http://127.0.0.1:8080/", payload="p.jsonl")
    assert (config.closed_loop_users, config.rate, config.url) == (4, None, "http://127.0.0.1:8080")
    # The default is not stored: the same config switches to an open loop by adding a rate.
    open_loop = LoadConfig.model_validate(config.model_dump() | {"rate": 20})
    assert (open_loop.closed_loop_users, open_loop.rate) == (None, 20)
    assert (config.path, config.health_path, config.duration, config.warmup) == (
        "/invocations",
        "/ping",
        30,
        5,
    )
    with pytest.raises(ValidationError, match="finite number"):
        LoadPolicy(p95_ms_max=float("inf"))


def test_a_baseline_comparison_is_recorded_and_judged(
    tmp_path: Path, server: Server, slow_server: Server
) -> None:
    # The slow server as the baseline, the fast one as the candidate: a clear improvement.
    (tmp_path / "base").mkdir()
    (tmp_path / "swap").mkdir()
    baseline = run(tmp_path / "base", url=slow_server.url, payload=PAYLOAD, users=1)
    assert baseline.status == "passed", baseline.reason
    candidate = run(
        tmp_path,
        url=server.url,
        payload=PAYLOAD,
        users=1,
        baseline=str(tmp_path / "base" / "ev" / "load.json"),
    )
    assert candidate.status == "passed", candidate.reason
    comparison = candidate.data["comparison"]
    p95 = next(m for m in comparison["metrics"] if m["metric"] == "p95")
    assert p95["decision"] == "improvement" and p95["ci"][1] < 0
    results = {r.rule: r for r in STAGE.evaluate(LoadPolicy(), candidate)}
    assert results["load.no_regression"].outcome == "pass"
    assert "vs baseline" in results["load.no_regression"].reason
    # Swapped, the same data is a regression the gate fails; the baseline given as an evidence
    # directory (an unpacked report artifact) is its load evidence.
    swapped = run(
        tmp_path / "swap",
        url=slow_server.url,
        payload=PAYLOAD,
        users=1,
        baseline=str(tmp_path / "ev"),
    )
    results = {r.rule: r for r in STAGE.evaluate(LoadPolicy(), swapped)}
    assert (
        results["load.no_regression"].outcome == "fail"
        and "regression" in results["load.no_regression"].reason
    )
    markdown = STAGE.report_markdown(swapped)
    assert "xychart-beta" in markdown and "| baseline |" in markdown and "| candidate |" in markdown


def test_a_missing_baseline_is_an_error_and_can_be_required(tmp_path: Path, server: Server) -> None:
    evidence = run(tmp_path, url=server.url, payload=PAYLOAD, baseline="nope.txt")
    assert evidence.status == "error" and (evidence.reason or "").startswith("baseline: ")
    (tmp_path / "empty").mkdir()
    evidence = run(tmp_path, url=server.url, payload=PAYLOAD, baseline="empty")
    assert evidence.status == "error" and "a directory without load.json" in (evidence.reason or "")
    plain = _evidence()
    assert "load.no_regression" not in {r.rule for r in STAGE.evaluate(LoadPolicy(), plain)}
    results = {r.rule: r for r in STAGE.evaluate(LoadPolicy(require_baseline=True), plain)}
    assert results["load.no_regression"].outcome == "fail"


@pytest.mark.parametrize(
    ("ci", "p_value", "outcome"),
    [
        ([0.15, 0.30], 0.001, "fail"),
        ([-0.03, 0.04], 0.4, "pass"),
        ([-0.05, 0.25], 0.2, "inconclusive"),
    ],
    ids=["regression", "no-change", "too-wide"],
)
def test_the_policy_tolerance_decides_on_the_stored_interval(
    ci: list[float], p_value: float, outcome: str
) -> None:
    evidence = _evidence().model_copy(
        update={
            "data": {
                "comparison": {
                    "metrics": [
                        {
                            "metric": "p95",
                            "ci": ci,
                            "p_value": p_value,
                            "relative_change": sum(ci) / 2,
                        }
                    ]
                }
            }
        }
    )
    (rule,) = [r for r in STAGE.evaluate(LoadPolicy(), evidence) if r.rule == "load.no_regression"]
    assert rule.outcome == outcome


def test_the_stage_can_start_and_stop_the_server_itself(tmp_path: Path, server: Server) -> None:
    serve = {
        "source": "command",
        "command": [sys.executable, str(EXAMPLE / "serve.py"), "--port", "{port}"],
    }
    evidence = run(tmp_path, serve=serve, payload=PAYLOAD, users=2)
    assert evidence.status == "passed", evidence.reason
    assert (
        isinstance(evidence.metrics["cold_start_s"], float) and evidence.metrics["cold_start_s"] > 0
    )
    assert isinstance(evidence.metrics["server_cpu_seconds"], float)
    # Nothing but the module's own server outlives the stage.
    assert children(server) == []


def test_a_server_that_cannot_start_is_error_evidence(tmp_path: Path) -> None:
    serve = {"source": "command", "command": ["definitely-not-a-server", "--port", "{port}"]}
    evidence = run(tmp_path, serve=serve, payload=PAYLOAD)
    assert evidence.status == "error"
    assert (evidence.reason or "").startswith("serving: command not found: definitely-not-a-server")


def test_url_or_serve_exactly_one() -> None:
    with pytest.raises(ValueError, match="give url"):
        LoadConfig(payload=PAYLOAD)


def test_server_ceilings_judge_what_serving_measured() -> None:
    served = _evidence(server_peak_memory_bytes=300 * 2**20, cold_start_s=4.2)
    results = {
        r.rule: r
        for r in STAGE.evaluate(LoadPolicy(memory_max_mb=256, cold_start_max_s=10), served)
    }
    assert results["load.memory_max_mb"].outcome == "fail"
    assert (
        results["load.memory_max_mb"].reason
        == "load: server peak memory 300 MiB, at most 256 MiB allowed"
    )
    assert results["load.cold_start_max_s"].outcome == "pass"
    # A ceiling on something that was not measured cannot pass.
    results = {r.rule: r for r in STAGE.evaluate(LoadPolicy(cold_start_max_s=10), _evidence())}
    assert results["load.cold_start_max_s"].outcome == "fail"


def serve_command(*extra: str) -> dict[str, object]:
    return {
        "source": "command",
        "command": [sys.executable, str(EXAMPLE / "serve.py"), "--port", "{port}", *extra],
    }


def test_champion_and_candidate_are_loaded_in_interleaved_rounds(
    tmp_path: Path, server: Server
) -> None:
    # The champion answers 10 ms slower: the candidate is a clear improvement, and swapped,
    # the same pair is a regression the gate fails. Five rounds, not three: with two degrees of
    # freedom (t > 4.3) a burst of load on one side's round left p near 0.02 on a loaded
    # 2-core machine; with four (t > 2.78) the same t gives about 0.003.
    better = run(
        tmp_path,
        serve=serve_command(),
        champion=serve_command("--delay-ms", "10"),
        payload=PAYLOAD,
        users=2,
        rounds=5,
        timeout=300,
    )
    assert better.status == "passed", better.reason
    comparison = better.data["comparison"]
    assert comparison["baseline"] == "champion (interleaved A/B)" and comparison["rounds"] == 5
    assert comparison["method"] == "paired rounds"
    assert comparison["baseline_samples"] > 100 and comparison["candidate_samples"] > 100
    assert {m["metric"]: m["decision"] for m in comparison["metrics"]}["p50"] == "improvement"
    assert better.data["champion"]["cold_start_s"] > 0
    # Both sides' samples are kept, round by round, so the comparison can be re-checked.
    champion = read_samples(tmp_path / "ev" / better.data["champion_samples_artifact"])
    candidate = read_samples(tmp_path / "ev" / "load.json")
    assert len(champion.rounds) == len(candidate.rounds) == 5
    assert champion.values.size == comparison["baseline_samples"]
    again = {c.metric: c for c in stats.compare_rounds(champion.windows, candidate.windows)}
    for entry in comparison["metrics"]:
        assert entry["ci"] == pytest.approx(list(again[entry["metric"]].ci))
    (tmp_path / "swap").mkdir()
    worse = run(
        tmp_path / "swap",
        serve=serve_command("--delay-ms", "10"),
        champion=serve_command(),
        payload=PAYLOAD,
        users=2,
        rounds=5,
        timeout=300,
    )
    (rule,) = [r for r in STAGE.evaluate(LoadPolicy(), worse) if r.rule == "load.no_regression"]
    assert rule.outcome == "fail", rule.reason
    assert children(server) == []  # both servers of both runs are gone


def test_open_loop_champion_takes_turns_request_by_request(tmp_path: Path, server: Server) -> None:
    # One generator, both servers at the rate each, in turn: a noisy moment hits both alike.
    worse = run(
        tmp_path,
        serve=serve_command("--delay-ms", "10"),
        champion=serve_command(),
        payload=PAYLOAD,
        rate=40,
        rounds=4,
        duration=4,
        timeout=120,
    )
    assert worse.status == "passed", worse.reason
    comparison = worse.data["comparison"]
    assert comparison["interleaving"] == "requests in turn, fresh servers every round"
    assert comparison["method"] == "paired rounds" and comparison["rounds"] == 4
    assert worse.data["server_starts"] == 4
    # Each side got its own rate over the measured window.
    assert 140 <= comparison["candidate_samples"] <= 160
    assert 140 <= comparison["baseline_samples"] <= 160
    assert {m["metric"]: m["decision"] for m in comparison["metrics"]}["p50"] == "regression"
    champion = read_samples(tmp_path / "ev" / worse.data["champion_samples_artifact"])
    assert len(champion.rounds) == 4
    assert children(server) == []


def counted_serve_command(pids: Path) -> dict[str, object]:
    """The example server, each start of it writing its process id to `pids`."""
    wrapper = pids.with_suffix(".py")
    wrapper.write_text(
        "import os, sys\n"
        "with open(sys.argv[1], 'a') as f:\n"
        "    f.write(f'{os.getpid()}\\n')\n"
        "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
    )
    server = [str(EXAMPLE / "serve.py"), "--port", "{port}"]
    return {"source": "command", "command": [sys.executable, str(wrapper), str(pids), *server]}


@pytest.mark.parametrize("rate", [40, None], ids=["open-loop", "closed-loop"])
def test_every_round_runs_on_a_fresh_pair_of_servers(
    tmp_path: Path, server: Server, rate: int | None
) -> None:
    # What sets one server process apart from an identical one then varies between rounds.
    def started(fresh: bool) -> tuple[ev.Evidence, list[str], list[str]]:
        where = tmp_path / str(fresh)
        where.mkdir()
        evidence = run(
            where,
            serve=counted_serve_command(where / "candidate"),
            champion=counted_serve_command(where / "champion"),
            payload=PAYLOAD,
            fresh_servers=fresh,
            rounds=3,
            warmup=0.5,
            duration=3,
            timeout=120,
            **({"rate": rate} if rate else {"users": 2}),
        )
        assert evidence.status == "passed", evidence.reason
        return (
            evidence,
            (where / "candidate").read_text().split(),
            (where / "champion").read_text().split(),
        )

    fresh, candidates, champions = started(True)
    assert len(set(candidates)) == len(set(champions)) == 3
    assert fresh.data["server_starts"] == 3
    comparison = fresh.data["comparison"]
    assert comparison["interleaving"].endswith(", fresh servers every round")
    assert comparison["rounds"] == 3
    champion = read_samples(tmp_path / "True" / "ev" / fresh.data["champion_samples_artifact"])
    candidate = read_samples(tmp_path / "True" / "ev" / "load.json")
    assert len(champion.rounds) == len(candidate.rounds) == 3
    assert all(len(r) > 0 for r in (*champion.rounds, *candidate.rounds))
    assert fresh.metrics["requests"] == candidate.values.size == comparison["candidate_samples"]
    assert fresh.metrics["cold_start_s"] and fresh.metrics["server_peak_memory_bytes"]
    assert fresh.data["champion"]["cold_start_s"] > 0
    if rate:  # the schedule fixes the count: 40 per second for the 3 measured seconds
        assert fresh.metrics["requests"] == 120
    once, candidates, champions = started(False)
    assert len(candidates) == len(champions) == 1
    assert "server_starts" not in once.data
    assert not once.data["comparison"]["interleaving"].endswith("fresh servers every round")
    assert children(server) == []


def test_open_loop_targets_swap_order_every_cycle(tmp_path: Path, server: Server) -> None:
    # A B, B A, A B, ...: neither side is always the first of its pair. (The generator runs as
    # the stage runs it, in a child: locust patches the standard library as it is imported.)
    from mlgate import loadgen

    loadgen.LoadSpec(
        url=server.url,
        path="/invocations",
        payload=PAYLOAD,
        locustfile=None,
        users=None,
        rate=20,
        warmup=0,
        duration=1,
        request_timeout=10,
        max_in_flight=100,
        budget=60,
        other_urls=[server.url],
    ).write(tmp_path / "spec.json")
    subprocess.run(
        [sys.executable, "-m", "mlgate.loadgen", "--spec", str(tmp_path / "spec.json")],
        check=True,
        timeout=120,
    )
    records = loadgen.read_records(tmp_path / loadgen.RECORDS_FILE)
    assert all(r.ok for r in records)
    order = [r.target for r in sorted(records, key=lambda r: r.offset_s)]
    assert order == [0, 1, 1, 0] * 10  # 20 per second each, for a second


def test_champion_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not both"):
        LoadConfig(
            url="http://127.0.0.1:9", champion=serve_command(), baseline="b.txt", payload=PAYLOAD
        )
    with pytest.raises(ValueError, match="interleaved champion comparison"):
        LoadConfig(url="http://127.0.0.1:9", champion=serve_command(), payload=PAYLOAD, timeout=40)


def test_the_baseline_can_come_from_the_base_branchs_last_run(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import json
    import zipfile

    from tests.helpers import github_with_pull

    (tmp_path / "main").mkdir()
    base = run(tmp_path / "main", url=server.url, payload=PAYLOAD, users=1)
    assert base.status == "passed", base.reason
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("load.json", SAMPLES_FILE):
            bundle.write(tmp_path / "main" / "ev" / name, f"evidence/{name}")
    with github_with_pull("octo/model", "a" * 40, "tok") as gh:
        gh.add_workflow_run(
            "octo/model",
            workflow="mlgate.yml",
            branch="main",
            artifacts={"mlgate-report": archive.getvalue()},
        )
        (tmp_path / "event.json").write_text(
            json.dumps(
                {"pull_request": {"number": 7, "head": {"sha": "a" * 40}, "base": {"ref": "main"}}}
            )
        )
        for key, value in {
            "GITHUB_API_URL": gh.url,
            "GITHUB_TOKEN": "tok",
            "GITHUB_REPOSITORY": "octo/model",
            "GITHUB_EVENT_NAME": "pull_request",
            "GITHUB_EVENT_PATH": str(tmp_path / "event.json"),
        }.items():
            monkeypatch.setenv(key, value)
        evidence = run(
            tmp_path,
            url=server.url,
            payload=PAYLOAD,
            users=1,
            baseline={"github": {"workflow": "mlgate.yml"}},
        )
    assert evidence.status == "passed", evidence.reason
    comparison = evidence.data["comparison"]
    assert comparison["baseline"].endswith("baseline/evidence/load.json")
    assert comparison["baseline_samples"] == base.metrics["requests"] - base.metrics["errors"]
