"""Serving against real servers on 127.0.0.1: the example's serve.py, and MLflow's
`mlflow models serve` of the example model logged into a sqlite store."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from mlgate import evidence as ev
from mlgate.serving import ServeSpec, ServingError, serve, server_metrics
from mlgate.serving.command import ProcessServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "iris"
SERVE_PY = [sys.executable, "serve.py", "--port", "{port}"]
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.fixture
def marker() -> str:
    """An environment variable given to a server; its children inherit it, so /proc tells
    whether any process of that server is still alive."""
    return f"MLGATE_TEST_SERVER={uuid.uuid4().hex}"


def alive(marker: str) -> list[int]:
    """Processes (not zombies) whose environment holds `marker`."""
    found = []
    needle = marker.encode() + b"\0"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry))
    return found


def spec(marker: str, env: dict[str, str] | None = None, **keys: object) -> ServeSpec:
    """A spec (a command by default, run in the example) whose processes carry `marker`."""
    name, value = marker.split("=")
    defaults = {"source": "command", "working_directory": str(EXAMPLE)}
    return ServeSpec.model_validate(defaults | keys | {"env": {name: value, **(env or {})}})


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url + "/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as reply:
        return json.loads(reply.read())


PAYLOAD = json.loads((EXAMPLE / "payloads.jsonl").read_text().splitlines()[0])


@pytest.fixture
def running(marker: str) -> Iterator[str]:
    """serve.py started by the test itself, for the url source."""
    with serve(spec(marker, command=SERVE_PY)) as server:
        yield server.url


def test_url_source_checks_health_and_leaves_the_server_running(running: str) -> None:
    with serve(ServeSpec(source="url", url=running + "/")) as server:
        assert server.url == running
        assert post(server.url, PAYLOAD)["predictions"] == [1]
    assert server_metrics(server) == {
        "cold_start_s": None,
        "server_peak_memory_bytes": None,
        "server_cpu_seconds": None,
    }
    assert post(running, PAYLOAD)["predictions"] == [1]  # not ours to stop


def test_command_source_serves_measures_and_stops(marker: str) -> None:
    with serve(spec(marker, command=" ".join(SERVE_PY))) as server:
        assert isinstance(server, ProcessServer)
        assert server.url.startswith("http://127.0.0.1:")
        assert post(server.url, PAYLOAD)["predictions"] == [1]
        assert alive(marker) == [server.pid]
        assert server.cold_start_s is not None and server.cold_start_s > 0
        before_load = server.resources()
        assert before_load is not None and before_load.cpu_seconds > 0
        post(server.url, PAYLOAD)
    assert (server_metrics(server, since=before_load)["server_cpu_seconds"] or 0) >= 0
    metrics = server_metrics(server)
    print("command cold start:", metrics)
    assert metrics["cold_start_s"] == round(server.cold_start_s, 3)
    assert (metrics["server_peak_memory_bytes"] or 0) > 10_000_000  # python + scikit-learn
    assert (metrics["server_cpu_seconds"] or 0) > 0
    assert alive(marker) == []


def test_a_given_port_is_used(marker: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve(spec(marker, command=SERVE_PY, port=port)) as server:
        assert server.url == f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "SIGTERM", "exception"])
def test_the_server_is_stopped_however_the_body_ends(marker: str, how: str) -> None:
    expected = KeyboardInterrupt if how != "exception" else ValueError
    with pytest.raises(expected), serve(spec(marker, command=SERVE_PY)):
        assert alive(marker)
        if how == "SIGTERM":
            # serve turned the default SIGTERM into an unwinding KeyboardInterrupt.
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            os.kill(os.getpid(), signal.SIGTERM)
        raise KeyboardInterrupt if how == "KeyboardInterrupt" else ValueError("body")
    assert alive(marker) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


# A server that leaves a child behind in its process group, complains and exits 3.
EXITS = [
    sys.executable,
    "-c",
    "import subprocess, sys; subprocess.Popen(['sleep', '300']); "
    "print('loading...', file=sys.stderr); print('model file is corrupt', file=sys.stderr); "
    "sys.exit(3)",
    "{port}",
]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        (
            {"command": ["no-such-server-xyz", "{port}"]},
            "command not found: no-such-server-xyz",
        ),
        (
            {"command": EXITS},
            "server exited 3: loading... | model file is corrupt, before GET http",
        ),
        (
            {
                "command": [sys.executable, "-c", "import time; time.sleep(60)", "{port}"],
                "startup_timeout": 1,
            },
            "server not healthy within 1 s: GET http://127.0.0.1:",
        ),
        (
            {"command": SERVE_PY, "working_directory": "/no/such/dir"},
            "working directory /no/such/dir is not a directory",
        ),
    ],
)
def test_a_server_that_cannot_start_is_one_line_and_leaves_nothing(
    marker: str, keys: dict[str, Any], message: str
) -> None:
    with pytest.raises(ServingError) as caught, serve(spec(marker, **keys)):
        pytest.fail("the server should not have become healthy")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert alive(marker) == []


def test_health_never_200_names_the_answer(marker: str, tmp_path: Path) -> None:
    # A server that listens within a fraction of a second (serve.py trains its model first,
    # seconds on a loaded machine) and answers 404 to the health path until the timeout.
    files = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"]
    with (
        pytest.raises(ServingError, match=r"GET http://\S+/missing answered 404$"),
        serve(
            spec(
                marker,
                command=files,
                working_directory=str(tmp_path),
                health_path="/missing",
                startup_timeout=6,
            )
        ),
    ):
        pass
    assert alive(marker) == []


def test_a_port_in_use_is_refused_before_anything_starts(marker: str, running: str) -> None:
    port = int(running.rsplit(":", 1)[1])
    with (
        pytest.raises(ServingError, match=f"^port {port} on 127.0.0.1 is already in use$"),
        serve(spec(marker, command=SERVE_PY, port=port)),
    ):
        pass
    with (
        pytest.raises(ServingError, match="already in use"),
        serve(spec(marker, source="mlflow", model_uri="models:/iris/1", port=port)),
    ):
        pass


def test_an_unreachable_url_is_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with (
        pytest.raises(ServingError) as caught,
        serve(ServeSpec(source="url", url=url, startup_timeout=1)),
    ):
        pass
    assert str(caught.value) == (
        f"server unreachable for 1 s: GET {url}/ping failed: Connection refused"
    )


def test_a_local_model_directory_must_be_an_mlflow_model(tmp_path: Path) -> None:
    with (
        pytest.raises(ServingError, match="is not an MLflow model directory"),
        serve(ServeSpec(source="mlflow", model_uri=str(tmp_path))),
    ):
        pass


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"source": "command"}, "source command needs command"),
        ({"source": "mlflow", "command": "x"}, "source mlflow needs model_uri"),
        ({"source": "url", "url": "http://h", "model_uri": "m"}, "does not use model_uri"),
        ({"source": "url", "url": "ftp://h"}, "must be an http:// or https:// URL"),
        ({"source": "command", "command": "serve --port 80"}, "with '{port}' in an argument"),
        ({"source": "command", "command": "serve '{port}"}, "cannot be split"),
        ({"source": "mlflow", "model_uri": "m", "health_path": "ping"}, "must start with '/'"),
        ({"source": "docker"}, "Input should be 'url', 'command', 'mlflow' or 'container'"),
        ({"source": "container"}, "source container needs image or build"),
    ],
)
def test_spec_errors_are_clear(keys: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServeSpec.model_validate(keys)


def test_port_placeholders_are_substituted_and_other_braces_kept() -> None:
    from mlgate.serving.interface import with_port

    assert with_port(["--port={port}", '{"a": 1}', "{port}"], 81) == [
        "--port=81",
        '{"a": 1}',
        "81",
    ]


def test_serving_imports_without_mlflow() -> None:
    code = "import sys, mlgate.serving; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example model logged as `iris` with alias `champion` into a fresh sqlite store."""
    directory = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{directory}/mlflow.db"
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "log_model.py"), "--tracking-uri", uri],
        cwd=directory,
        env=os.environ | MLFLOW_ENV | {"PYTHONPATH": str(EXAMPLE)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "models:/iris@champion"
    return uri


def test_mlflow_serves_a_registered_model_by_alias(marker: str, mlflow_store: str) -> None:
    keys = {"source": "mlflow", "model_uri": "models:/iris@champion"}
    env = MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store}
    with serve(spec(marker, **keys, env=env)) as server:
        rows = [json.loads(line) for line in (EXAMPLE / "payloads.jsonl").read_text().splitlines()]
        frame = rows[0]["dataframe_split"]
        frame["data"] = [row["dataframe_split"]["data"][0] for row in rows[:5]]
        answer = post(server.url, {"dataframe_split": frame})
        assert len(answer["predictions"]) == 5
        # mlflow, and the uvicorn it started, are both in the group.
        assert len(alive(marker)) >= 2
    metrics = server_metrics(server)
    print("mlflow cold start:", metrics)
    assert (metrics["server_peak_memory_bytes"] or 0) > 0
    assert alive(marker) == []


def test_a_prepared_mlflow_model_answers_as_mlflow_models_serve_does(
    marker: str, mlflow_store: str
) -> None:
    """Started directly (downloaded once, MLflow's own scoring-server command) the model's
    /ping and /invocations answer exactly as under `mlflow models serve`, good and bad bodies."""
    from mlgate.serving.mlflow_direct import prepared_sources
    from mlgate.serving.together import serve_together

    keys = {"source": "mlflow", "model_uri": "models:/iris@champion"}
    model = spec(marker, **keys, env=MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store})
    rows = [json.loads(line) for line in (EXAMPLE / "payloads.jsonl").read_text().splitlines()]
    bodies: list[Any] = [*rows[:5], {"dataframe_split": {"columns": ["x"], "data": [[1]]}}, {}]

    def answers(url: str) -> list[tuple[int, str]]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        got = []
        for body in [None, *bodies]:
            request = urllib.request.Request(
                url + ("/ping" if body is None else "/invocations"),
                data=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            try:
                with opener.open(request, timeout=30) as reply:
                    got.append((reply.status, reply.read().decode()))
            except urllib.error.HTTPError as exc:
                got.append((exc.code, json.loads(exc.read())["error_code"]))
        return got

    with (
        prepared_sources({"direct": model}, time.monotonic() + 120) as sources,
        serve_together({"cli": model, "direct": model}, sources) as servers,
    ):
        cli, direct = answers(servers["cli"].url), answers(servers["direct"].url)
    assert direct == cli
    assert [status for status, _ in cli] == [200] * 6 + [400, 400]
    assert alive(marker) == []


def test_a_model_that_is_not_there_is_one_line_naming_its_side(
    tmp_path: Path, mlflow_store: str
) -> None:
    """A registered candidate that is not there is the stage's error, naming the side and the
    registry's reason, before any server starts: the alias is pinned (and the version scanned)
    before fresh rounds download anything."""
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    def model(uri: str) -> ServeSpec:
        env = MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store}
        return ServeSpec(source="mlflow", model_uri=uri, env=env)

    config = LoadConfig(
        serve=model("models:/nope@candidate"),
        champion=model("models:/iris@champion"),
        payload=str(EXAMPLE / "payloads.jsonl"),
        rate=10,
        rounds=2,
        warmup=0,
        duration=2,
        timeout=120,
    )
    evidence = LoadStage().run(config, RunContext(tmp_path / "ev", None))
    assert evidence.status == "error"
    assert evidence.reason is not None and "\n" not in evidence.reason
    assert evidence.reason.startswith("candidate: "), evidence.reason
    assert "nope" in evidence.reason
    assert "cold_start_s" not in evidence.metrics  # no server was started


def test_an_unknown_mlflow_model_fails_fast(marker: str, mlflow_store: str) -> None:
    env = MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store}
    with (
        pytest.raises(ServingError) as caught,
        serve(spec(marker, source="mlflow", model_uri="models:/nope@champion", env=env)),
    ):
        pass
    assert "server exited 1: " in str(caught.value)
    # The server's own reason, as each MLflow words it (3.x; 2.x names the alias).
    assert re.search(
        "Registered Model with name=nope not found|Registered model alias champion not found",
        str(caught.value),
    ), caught.value
    assert alive(marker) == []


def test_locust_loads_the_model_mlflow_serves(tmp_path: Path, mlflow_store: str) -> None:
    """The load stage end to end on a real MLflow server: started, loaded, measured, stopped."""
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    config = LoadConfig(
        serve=ServeSpec(
            source="mlflow",
            model_uri="models:/iris@champion",
            env=MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store},
        ),
        payload=str(EXAMPLE / "payloads.jsonl"),
        users=2,
        warmup=1,
        duration=3,
        timeout=300,
    )
    evidence = LoadStage().run(config, RunContext(tmp_path / "ev", None))
    assert evidence.status == "passed", evidence.reason
    m = evidence.metrics
    assert m["errors"] == 0, (
        evidence.data["errors_by_status"],
        evidence.data["errors_by_exception"],
    )
    assert isinstance(m["requests"], int) and m["requests"] > 0
    assert isinstance(m["cold_start_s"], float) and m["cold_start_s"] > 0
    assert isinstance(m["server_peak_memory_bytes"], int) and m["server_peak_memory_bytes"] > 0
    # The alias is served pinned to the version it pointed at, and that version is recorded
    # with the digest of its files, as the registry computes it (a bundle checks them).
    from mlgate.registry import Registry

    registry = Registry.connect(mlflow_store)
    version = registry.alias("iris", "champion")
    assert evidence.data["serve"]["model_uri"] == f"models:/iris/{version}"
    assert evidence.data["candidate_model"] == {
        "uri": "models:/iris@champion",
        "resolved": f"models:/iris/{version}",
        "registered_model": "iris",
        "version": version,
        "digest": registry.model_digest("iris", str(version)),
    }


def test_the_registered_champion_is_loaded_beside_the_candidate(
    tmp_path: Path, mlflow_store: str
) -> None:
    """With a `production` alias on another version, the load stage serves it beside the
    candidate by default and compares the two; without one it says so."""
    from mlflow import MlflowClient

    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    # A second version of the model, logged as the first was.
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "log_model.py"),
            "--tracking-uri",
            mlflow_store,
            "--alias",
            "candidate",
        ],
        cwd=tmp_path,
        env=os.environ | MLFLOW_ENV | {"PYTHONPATH": str(EXAMPLE)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    second = done.stdout.splitlines()[-2].removeprefix("version=")
    client = MlflowClient(mlflow_store, mlflow_store)
    first = str(int(second) - 1)

    def load(where: Path) -> ev.Evidence:
        config = LoadConfig(
            serve=ServeSpec(
                source="mlflow",
                model_uri="models:/iris@candidate",
                env=MLFLOW_ENV | {"MLFLOW_TRACKING_URI": mlflow_store},
            ),
            payload=str(EXAMPLE / "payloads.jsonl"),
            rate=30,
            rounds=3,
            warmup=2,  # with a champion: up to 1 s for the servers, 1 s for the generator
            duration=3,
            timeout=300,
        )
        return LoadStage().run(config, RunContext(where, None))

    alone = load(tmp_path / "alone")
    assert alone.status == "passed", alone.reason
    assert "comparison" not in alone.data
    assert alone.data["champion_note"] == (
        "models:/iris@production is not set: no champion to compare"
    )
    client.set_registered_model_alias("iris", "production", first)
    paired = load(tmp_path / "paired")
    assert paired.status == "passed", paired.reason
    assert paired.data["champion"]["model_uri"] == f"models:/iris/{first}"
    assert paired.data["comparison"]["interleaving"] == (
        "requests in turn, fresh servers every round"
    )
    assert paired.data["server_starts"] == 3
    # Every start of either model was warmed up, once, before its round's load.
    warmups = [
        s[n]["warmup"] for s in paired.data["round_starts"] for n in ("candidate", "champion")
    ]
    assert len(warmups) == 6 and all(w["requests"] > 0 for w in warmups)
    assert {m["metric"] for m in paired.data["comparison"]["metrics"]} == {"p50", "p95", "mean"}


# -- when a server does not start, say why ------------------------------------------------------

# Prints the real error mid-way (stdout and stderr), then a generic last line, and exits 3.
FAILING_SERVER = """
import sys
print("loading weights from https://bob:hunter2@models.example/w.bin", flush=True)
print("ValueError: the weights file is corrupt", file=sys.stderr, flush=True)
for i in range(30):
    print(f"cleanup step {i}", flush=True)
print("fatal: the server could not start", file=sys.stderr, flush=True)
sys.exit(3)
"""


def test_a_command_server_that_prints_an_error_and_exits_says_why(
    marker: str, tmp_path: Path
) -> None:
    log = tmp_path / "evidence" / "server.log"
    command = [sys.executable, "-c", FAILING_SERVER, "{port}"]
    with (
        pytest.raises(ServingError) as caught,
        serve(spec(marker, command=command, working_directory=str(tmp_path)), log=log),
    ):
        pytest.fail("the server should not have become healthy")
    reason = str(caught.value)
    # The tail: the last 20 lines, on one line, the credentials taken out.
    assert reason.startswith("server exited 3: cleanup step 11 | cleanup step 12 | "), reason
    assert reason.endswith(
        "cleanup step 29 | fatal: the server could not start, before GET "
        f"{reason.rsplit('GET ', 1)[1]}"
    )
    assert "\n" not in reason and len(reason) < 2300
    # The whole output, in order, as a file (the load stage lists it among its artifacts).
    kept = log.read_text()
    assert kept.splitlines()[0].startswith("== output of the command server, stopped ")
    assert kept.splitlines()[1:3] == [
        "loading weights from https://***@models.example/w.bin",
        "ValueError: the weights file is corrupt",
    ]
    assert kept.splitlines()[-1] == "fatal: the server could not start"
    assert "hunter2" not in kept
    assert alive(marker) == []


def test_a_server_that_never_gets_healthy_shows_what_it_printed(marker: str) -> None:
    code = "import sys, time; print('waiting for the GPU', flush=True); time.sleep(60)"
    with (
        pytest.raises(ServingError, match=r"within 1 s: .*; its output ends: waiting for the GPU$"),
        serve(spec(marker, command=[sys.executable, "-c", code, "{port}"], startup_timeout=1)),
    ):
        pass
    assert alive(marker) == []


def test_mlflow_serving_a_model_that_cannot_load_names_the_real_error(
    marker: str, tmp_path: Path
) -> None:
    """`mlflow models serve` starts a scoring server that fails to unpickle the model and ends
    with "... returned non zero return code": the reason must show the error above that."""
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n"
    )
    (model / "model.pkl").write_bytes(b"not a pickle\n")
    with (
        pytest.raises(ServingError) as caught,
        serve(spec(marker, source="mlflow", model_uri=str(model), env=MLFLOW_ENV)),
    ):
        pass
    assert "invalid load key" in str(caught.value), str(caught.value)
    assert alive(marker) == []


def test_the_load_stage_keeps_the_output_of_an_mlflow_server_that_failed(tmp_path: Path) -> None:
    """A model the scan passes (a plain dict pickled) whose flavour's loader does not exist:
    MLflow's own error is the stage's reason, and the server's whole output is an artifact of
    the evidence, in the evidence directory."""
    import pickle

    from mlgate import artifact_paths
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    model = tmp_path / "unloadable-model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.mlgate_no_such_loader\n"
        "    data: model.pkl\n"
    )
    (model / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    store = f"sqlite:///{tmp_path}/empty.db"
    config = LoadConfig(
        serve=ServeSpec(
            source="mlflow",
            model_uri=str(model),
            env=MLFLOW_ENV | {"MLFLOW_TRACKING_URI": store},
            working_directory=str(tmp_path),
        ),
        champion_alias=None,
        payload=str(EXAMPLE / "payloads.jsonl"),
        duration=3,
        timeout=120,
    )
    evidence_dir = tmp_path / "evidence"
    evidence = LoadStage().run(config, RunContext(evidence_dir, None))
    assert evidence.status == "error"
    assert evidence.reason is not None
    assert evidence.reason.startswith("serving: server exited 1: "), evidence.reason
    assert "No module named 'mlflow.mlgate_no_such_loader'" in evidence.reason
    [log] = [a for a in evidence.artifacts if a.path == "load-server-candidate.log"]
    data = artifact_paths.read(evidence_dir, evidence, log.path, max_bytes=2 << 20)
    assert b"Traceback (most recent call last)" in data
    assert b"No module named 'mlflow.mlgate_no_such_loader'" in data
    # A later run that starts no server (its registered model does not exist) leaves no stale
    # log.
    spec_without = config.serve.model_copy(update={"model_uri": "models:/nope/1"})
    without = LoadStage().run(
        config.model_copy(update={"serve": spec_without}), RunContext(evidence_dir, None)
    )
    assert without.reason is not None and without.reason.startswith("candidate: "), without.reason
    assert not (evidence_dir / "load-server-candidate.log").exists()
    assert without.artifacts == []
