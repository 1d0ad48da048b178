"""A champion comparison on fresh servers, round by round, against real server processes: both
servers of a round start together, each server start is warmed up once, until its latency
settles or the configured warmup runs out, and a round whose server fails is error evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlgate import evidence as ev
from mlgate import loadgen, stats
from mlgate.samples import read_samples
from mlgate.stages.interface import RunContext
from mlgate.stages.load import report as load_report
from mlgate.stages.load import rounds as load_rounds
from mlgate.stages.load.config import LoadConfig, LoadPolicy
from mlgate.stages.load.stage import LoadStage
from mlgate.stages.load.warmup import settled
from tests.test_serving import alive

STAGE = LoadStage()
PAYLOAD = str(Path(__file__).resolve().parents[1] / "examples" / "iris" / "payloads.jsonl")

# Answers POST /invocations after a delay that depends on how many requests this process has
# answered (n, from 0): `delay_ms(n)` given as a Python expression in argv[3]. Every request
# appends a line to argv[2]/<its process id>, so a test counts what each server start got.
COUNTING_SERVER = """
import http.server, json, math, os, pathlib, sys, threading, time
port, directory, delay = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]
directory.mkdir(parents=True, exist_ok=True)
log = directory / str(os.getpid())
lock, answered = threading.Lock(), [0]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.answer(b"")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            n = answered[0]
            answered[0] += 1
            with log.open("a") as f:
                f.write("request\\n")
        time.sleep(eval(delay, {"math": math}, {"n": n}) / 1000)
        self.answer(json.dumps({"predictions": [0]}).encode())

    def answer(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def counting_server(directory: Path, delay_ms: str, marker: str) -> dict[str, object]:
    return {
        "source": "command",
        "command": [sys.executable, "-c", COUNTING_SERVER, "{port}", str(directory), delay_ms],
        "env": {"MLGATE_TEST_SERVER": marker},
        "startup_timeout": 60,
    }


def run(tmp_path: Path, **config: object) -> ev.Evidence:
    settings: dict[str, object] = {
        "payload": PAYLOAD,
        "working_directory": str(tmp_path),
        "rate": 20,
        "rounds": 2,
        "duration": 2,
        "timeout": 120,
    }
    evidence = STAGE.run(
        LoadConfig.model_validate(settings | config), RunContext(tmp_path / "ev", None)
    )
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence  # the schema holds
    return evidence


def requests_per_start(directory: Path) -> list[int]:
    """How many requests each server process in `directory` answered, in ascending order."""
    return sorted(len(f.read_text().splitlines()) for f in directory.iterdir())


def test_a_rounds_servers_start_together_and_each_start_is_warmed_once(tmp_path: Path) -> None:
    # The first three answers of every start are slow, then it is warm.
    slow_first = "40 if n < 3 else 1"
    evidence = run(
        tmp_path,
        serve=counting_server(tmp_path / "candidate", slow_first, tmp_path.name),
        champion=counting_server(tmp_path / "champion", slow_first, tmp_path.name),
        warmup=30,
    )
    assert evidence.status == "passed", evidence.reason
    starts = evidence.data["round_starts"]
    assert [s["round"] for s in starts] == [1, 2]
    for start in starts:
        sides = [start["candidate"], start["champion"]]
        # Together: each was started before the other answered its health check.
        healthy = [s["started_s"] + s["cold_start_s"] for s in sides]
        assert max(s["started_s"] for s in sides) < min(healthy)
        for side in sides:
            # Settled long before the 30 s allowed, past the slow answers.
            assert side["warmup"]["settled"] is True and side["warmup"]["errors"] == 0
            assert 3 < side["warmup"]["requests"] < 100
    # Alternating order: the candidate started first in round 1, the champion in round 2.
    assert [list(s)[1] for s in starts] == ["candidate", "champion"]
    # Each start got its warm-up once, then its round's generator: its own warm-up second
    # and the measured second, 20 requests each (20 req/s), no more.
    for name in ("candidate", "champion"):
        warmed = [s[name]["warmup"]["requests"] for s in starts]
        assert requests_per_start(tmp_path / name) == sorted(w + 40 for w in warmed)
    warmed = sum(s["candidate"]["warmup"]["requests"] for s in starts)
    assert evidence.data["warmup_requests"] == warmed + 2 * 20
    assert evidence.metrics["requests"] == 40
    assert alive(tmp_path.name) == []


def test_a_closed_loop_round_leaves_its_users_ramp_out(tmp_path: Path) -> None:
    # Locust starts a closed loop's users over the generator's first second: those requests,
    # made with fewer users than configured, are warm-up, not measured.
    evidence = run(
        tmp_path,
        serve=counting_server(tmp_path / "candidate", "2", tmp_path.name),
        champion=counting_server(tmp_path / "champion", "2", tmp_path.name),
        rate=None,
        users=2,
        warmup=2,
    )
    assert evidence.status == "passed", evidence.reason
    warmed = sum(s["candidate"]["warmup"]["requests"] for s in evidence.data["round_starts"])
    ramp = evidence.data["warmup_requests"] - warmed
    assert ramp > 0
    answered = sum(requests_per_start(tmp_path / "candidate"))
    assert answered >= warmed + ramp + int(evidence.metrics["requests"] or 0)
    assert alive(tmp_path.name) == []


def test_a_server_that_never_settles_is_warmed_for_the_configured_warmup_at_most(
    tmp_path: Path,
) -> None:
    # Ever faster, by a tenth every answer: still warming up when the second is over.
    falling = "200 * 0.9 ** n"
    evidence = run(
        tmp_path,
        serve=counting_server(tmp_path / "candidate", falling, tmp_path.name),
        champion=counting_server(tmp_path / "champion", "1", tmp_path.name),
        warmup=2,  # 1 s for the servers, then 1 s for the round's generator
    )
    assert evidence.status == "passed", evidence.reason
    for start in evidence.data["round_starts"]:
        candidate, champion = start["candidate"]["warmup"], start["champion"]["warmup"]
        assert candidate["settled"] is False and candidate["seconds"] >= 1
        assert champion["settled"] is True
    assert alive(tmp_path.name) == []


def test_a_server_that_fails_to_start_in_a_later_round_is_error_evidence(tmp_path: Path) -> None:
    # The champion's second start exits at once; the candidate of that round must not outlive it.
    starts = tmp_path / "starts"
    flaky = (
        "import pathlib, sys\n"
        f"starts = pathlib.Path({str(starts)!r})\n"
        "with starts.open('a') as f:\n"
        "    f.write('start\\n')\n"
        "if len(starts.read_text().splitlines()) > 1:\n"
        "    sys.exit(3)\n"
        f"exec(compile({COUNTING_SERVER!r}, 'server', 'exec'))\n"
    )
    champion = {
        "source": "command",
        "command": [sys.executable, "-c", flaky, "{port}", str(tmp_path / "champion"), "1"],
        "env": {"MLGATE_TEST_SERVER": tmp_path.name},
    }
    evidence = run(
        tmp_path,
        serve=counting_server(tmp_path / "candidate", "1", tmp_path.name),
        champion=champion,
        warmup=1,
    )
    assert evidence.status == "error"
    assert evidence.reason is not None
    assert evidence.reason.startswith("serving (champion), round 2: ")
    assert "exited 3" in evidence.reason
    assert alive(tmp_path.name) == []  # the candidate of round 2 was stopped


@pytest.mark.parametrize(
    ("latencies", "warm"),
    [
        ([5.0] * 9, False),  # too few to tell
        ([5.0] * 10, True),
        ([60.0, 15, 12, 20, 25, 14, 11, 8, 7, 5], False),  # still falling
        ([60.0, 15, 12, 20, 25, 14, 11, 8, 7, 5, 9, 10, 8, 9, 7], True),
        ([200 * 0.9**n for n in range(40)], False),  # falling by a tenth every answer
        ([5.0, 6, 4, 5, 6, 5, 7, 6, 5, 6], True),  # noise, not a trend
        ([5.0] * 5 + [50.0] * 5, True),  # slower is warm: only a falling latency warms up
    ],
)
def test_the_settling_rule(latencies: list[float], warm: bool) -> None:
    assert settled(latencies) is warm


def test_the_timeout_check_counts_one_warmup_per_round() -> None:
    # Closed loop, 6 rounds: one warm-up of both servers per round (6 * 4 s, the warmup but
    # the generator's second), each side's generator starting and warming up every round
    # (12 * (3 + 1) s) and both sides' duration (2 * 60 s): 192 s (it was 216 s, all of the
    # warmup per side and round).
    def config(timeout: float) -> LoadConfig:
        server = counting_server(Path("unused"), "1", "unused")
        return LoadConfig.model_validate(
            {
                "serve": server,
                "champion": server,
                "payload": PAYLOAD,
                "users": 2,
                "rounds": 6,
                "warmup": 5,
                "duration": 60,
                "timeout": timeout,
            }
        )

    assert config(193).timeout == 193
    with pytest.raises(ValueError, match="must exceed 192 s for a champion comparison"):
        config(192)


def test_a_garbled_reply_during_warm_up_counts_as_an_error_not_a_crash() -> None:
    # http.client's BadStatusLine is no OSError: on the first merge of this work it killed the
    # warm-up thread and the round with a KeyError.
    import socket
    import threading

    from mlgate.stages.load.warmup import warm_up_together

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def garble() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    threading.Thread(target=garble, daemon=True).start()
    try:
        warmed = warm_up_together({"candidate": f"http://127.0.0.1:{port}/"}, ["{}"], 1.0, 1.0)
    finally:
        listener.close()
    assert warmed["candidate"].errors >= 1
    assert warmed["candidate"].requests >= 1


def records(*sent: tuple[float, int, float]) -> list[loadgen.Record]:
    """(offset_s, target, latency_ms) -> successful records."""
    return [loadgen.Record(offset, latency, True, "", target) for offset, target, latency in sent]


def test_time_windows_cut_both_sides_at_the_same_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_rounds, "WINDOW_S", 1.0)
    monkeypatch.setattr(load_rounds, "WINDOW_SAMPLES", 2)
    monkeypatch.setattr(load_rounds, "MIN_WINDOW_SAMPLES", 2)
    # 10 s measured from 5 s: four per second on each side, the candidate sent in reverse order.
    champion = records(*((5 + i / 4, 1, float(i)) for i in range(40)))
    candidate = records(*((5 + i / 4, 0, float(i)) for i in reversed(range(40))))
    failed = loadgen.Record(6.0, 1.0, False, "HTTPError")
    outside = records((4.9, 0, 99.0), (15.0, 0, 99.0))
    cut = load_rounds.time_windows(
        {"champion": [*champion, failed], "candidate": candidate + outside}, 5.0, 10.0
    )
    assert cut["champion"] == [[float(i) for i in range(k, k + 4)] for k in range(0, 40, 4)]
    assert cut["candidate"] == cut["champion"]  # in the order sent, the same seconds
    # Too few samples for that many windows: as many as they allow...
    monkeypatch.setattr(load_rounds, "WINDOW_SAMPLES", 8)
    assert len(load_rounds.time_windows({"a": champion, "b": candidate}, 5.0, 10.0)["a"]) == 5
    # ...and fewer when one window would hold fewer than the least: a gap of 3 s in one side.
    monkeypatch.setattr(load_rounds, "MIN_WINDOW_SAMPLES", 4)
    gap = [r for r in champion if not 9 <= r.offset_s < 12]
    widths = [len(w) for w in load_rounds.time_windows({"a": gap, "b": candidate}, 5.0, 10.0)["a"]]
    assert sum(widths) == len(gap) and min(widths) >= 4 and len(widths) == 2
    # Nothing sent: one empty window (the comparison then refuses the round).
    assert load_rounds.time_windows({"a": [], "b": []}, 5.0, 10.0) == {"a": [[]], "b": [[]]}


def test_open_loop_rounds_are_compared_in_time_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load_rounds, "WINDOW_S", 0.5)
    monkeypatch.setattr(load_rounds, "WINDOW_SAMPLES", 25)
    monkeypatch.setattr(load_rounds, "MIN_WINDOW_SAMPLES", 20)
    evidence = run(
        tmp_path,
        serve=counting_server(tmp_path / "candidate", "1", tmp_path.name),
        champion=counting_server(tmp_path / "champion", "1", tmp_path.name),
        rate=100,
        duration=3,
        rounds=3,
    )
    assert evidence.status == "passed", evidence.reason
    comparison = evidence.data["comparison"]
    assert comparison["windows"] == [2, 2, 2]
    # The samples files keep the windows: the comparison is recomputed from them alone.
    candidate = read_samples(tmp_path / "ev" / "load.json")
    champion = read_samples(tmp_path / "ev" / evidence.data["champion_samples_artifact"])
    assert [len(r) for r in candidate.windows] == [len(r) for r in champion.windows] == [2] * 3
    assert all(len(w) >= 20 for r in (*candidate.windows, *champion.windows) for w in r)
    again = {c.metric: c for c in stats.compare_rounds(champion.windows, candidate.windows)}
    for entry in comparison["metrics"]:
        assert entry["ci"] == pytest.approx(list(again[entry["metric"]].ci))
    # The report says how the rounds were compared.
    (shown,) = load_report.comparisons(evidence, LoadPolicy())
    assert " 3 interleaved rounds in 2 time windows each (" in shown.caption
    assert alive(tmp_path.name) == []
