"""Nothing runs the model before the scan has passed (stages.model_guard), with real files: a
malicious pickle (crafted opcodes reducing posix.system, never executed here) inside an MLflow
model directory written as MLflow writes one, served by MLflow or by a command, and judged by
the quality stage; the example model logged into a real sqlite registry as the benign one.
The payload would create a marker file: every refusal asserts that it was never created."""

from __future__ import annotations

import json
import os
import shlex
import signal
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlgate import evidence as ev
from mlgate.stages.interface import RunContext
from mlgate.stages.load.config import LoadConfig
from mlgate.stages.load.stage import LoadStage
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.stage import QualityStage
from tests.helpers import junit_xml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
HOLDOUT = EXAMPLE / "data" / "holdout.csv"
MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

# A model server command of the kind a project writes: it unpickles the model it is given,
# then answers /ping and /invocations.
LOADER = """
import pickle, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

with open(sys.argv[1] + "/model.pkl", "rb") as handle:
    pickle.load(handle)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"predictions": [0]}')

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(sys.argv[2])), Handler).serve_forever()
"""

MLMODEL = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: pickle
    sklearn_version: 1.3.0
mlflow_version: 3.1.0
model_uuid: 5d7c0b2a3f0e4b6c9a1d2e3f4a5b6c7d
utc_time_created: '2026-01-01 00:00:00.000000'
"""


def malicious_model(directory: Path, marker: Path) -> Path:
    """An MLflow sklearn model whose pickle calls posix.system('touch MARKER') when loaded:
    PROTO 2, GLOBAL posix.system, BINUNICODE command, TUPLE1, REDUCE, STOP."""
    directory.mkdir(parents=True)
    command = f"touch {shlex.quote(str(marker))}".encode()
    payload = b"\x80\x02cposix\nsystem\nX" + struct.pack("<I", len(command)) + command + b"\x85R."
    (directory / "model.pkl").write_bytes(payload)
    (directory / "MLmodel").write_text(MLMODEL)
    return directory


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "payload-ran"


@pytest.fixture
def evil(tmp_path: Path, marker: Path) -> Path:
    return malicious_model(tmp_path / "evil-model", marker)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The example model logged as `iris` with alias `candidate` into a fresh sqlite store."""
    directory = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{directory}/mlflow.db"
    done = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "log_model.py"),
            "--tracking-uri",
            uri,
            "--alias",
            "candidate",
        ],
        cwd=directory,
        env=os.environ | MLFLOW_ENV | {"PYTHONPATH": str(EXAMPLE)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return uri


def loader_command(tmp_path: Path, model: Path) -> list[str]:
    script = tmp_path / "serve_model.py"
    script.write_text(LOADER)
    return [sys.executable, str(script), str(model), "{port}"]


def payload(tmp_path: Path) -> str:
    path = tmp_path / "payloads.jsonl"
    path.write_text((EXAMPLE / "payloads.jsonl").read_text())
    return str(path)


def quality(tmp_path: Path, candidate: str, **keys: Any) -> ev.Evidence:
    config = QualityConfig(
        candidate=candidate,
        data=str(HOLDOUT),
        target="species",
        resamples=200,
        working_directory=str(tmp_path),
        champion_alias=None,
        **keys,
    )
    return QualityStage().run(config, RunContext(tmp_path / "evidence", None))


def load(tmp_path: Path, serve: dict[str, Any]) -> ev.Evidence:
    config = LoadConfig.model_validate(
        {
            "serve": {"working_directory": str(tmp_path), "startup_timeout": 60} | serve,
            "payload": payload(tmp_path),
            "users": 1,
            "warmup": 0,
            "duration": 1,
            "timeout": 120,
            "champion_alias": None,
        }
    )
    return LoadStage().run(config, RunContext(tmp_path / "evidence", None))


def mlgate(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *args],
        cwd=cwd,
        env=os.environ | MLFLOW_ENV | (env or {}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def read(tmp_path: Path, stage: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (tmp_path / ".mlgate" / "evidence" / f"{stage}.json").read_text()
    )
    return document


# -- no scan stage: the stages scan the files they load -----------------------------------


def test_quality_scans_the_model_before_loading_it(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    try:
        result = quality(tmp_path, str(evil))
    finally:  # unpickled, the payload runs first and the stage may crash after it
        assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None
    assert result.reason.startswith("candidate: model scan failed: evil-model:"), result.reason
    assert "system" in result.reason  # the finding is named
    assert result.reason.endswith("quality did not load the model")


def test_load_scans_the_model_mlflow_would_serve(tmp_path: Path, evil: Path, marker: Path) -> None:
    result = load(tmp_path, {"source": "mlflow", "model_uri": str(evil)})
    assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None and result.reason.startswith("model scan failed: evil-model:")
    assert "system" in result.reason and result.reason.endswith("load did not load the model")


def test_load_scans_the_model_a_server_command_names(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    result = load(tmp_path, {"source": "command", "command": loader_command(tmp_path, evil)})
    assert not marker.exists()
    assert result.status == "error"
    assert result.reason is not None and result.reason.startswith("model scan failed: evil-model:")


def test_the_benign_example_model_passes_through(tmp_path: Path, registry: str) -> None:
    """The guard scans the registry version's downloaded files and lets them load: a gate that
    blocks every real model is not a gate (the old code had no guard to pass, so this test
    guards against over-blocking rather than reproducing the defect)."""
    judged = quality(tmp_path, "models:/iris@candidate", tracking_uri=registry)
    assert judged.status == "passed", judged.reason
    served = load(
        tmp_path,
        {
            "source": "mlflow",
            "model_uri": "models:/iris@candidate",
            "env": {"MLFLOW_TRACKING_URI": registry},
        },
    )
    assert served.status == "passed", served.reason
    assert served.metrics["requests"]


# -- fail closed -----------------------------------------------------------------------------


def test_an_unreachable_registry_refuses_the_model(tmp_path: Path) -> None:
    result = load(
        tmp_path,
        {
            "source": "mlflow",
            "model_uri": "models:/iris@candidate",
            "env": {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        },
    )
    assert result.status == "error"
    assert result.reason is not None
    # The alias is pinned to its version before the scan (so the version scanned is the one
    # served): an unreachable registry stops the stage there, before any server starts.
    assert result.reason.startswith("candidate: MLflow registry at http://127.0.0.1:9 is not"), (
        result.reason
    )
    assert "cold_start_s" not in result.metrics  # no server was started


def test_a_missing_scanner_refuses_the_model(tmp_path: Path, registry: str) -> None:
    """picklescan made unimportable in the process that runs `mlgate quality`."""
    code = "import sys; sys.modules['picklescan'] = None; from mlgate.cli import main; main()"
    config = tmp_path / "mlgate.yml"
    config.write_text(
        "stages:\n  quality:\n    candidate: models:/iris@candidate\n"
        f"    data: {HOLDOUT}\n    target: species\n    champion_alias: null\n"
        f"    tracking_uri: {registry}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "quality"],
        cwd=tmp_path,
        env=os.environ | MLFLOW_ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr[-2000:]
    reason = read(tmp_path, "quality")["reason"]
    assert "model scan failed" in reason and "picklescan: not installed" in reason, reason


def test_a_scan_that_times_out_refuses_the_model(tmp_path: Path, registry: str) -> None:
    (tmp_path / "plain.pkl").write_bytes(b"\x80\x02}q\x00.")  # an empty dict
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  scan:\n    models: [plain.pkl]\n    tool_timeout: 0.000001\n"
        "  quality:\n    candidate: models:/iris@candidate\n"
        f"    data: {HOLDOUT}\n    target: species\n    champion_alias: null\n"
        f"    tracking_uri: {registry}\n"
    )
    done = mlgate("quality", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-2000:]
    reason = read(tmp_path, "quality")["reason"]
    assert "model scan failed: the scan stage: picklescan: timed out" in reason, reason
    assert read(tmp_path, "scan")["status"] == "error"


# -- a scan stage is configured: its evidence decides --------------------------------------


def test_run_scans_first_and_stops_only_the_stages_that_load_the_model(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    junit_xml(tmp_path / "junit.xml", passed=3)
    command = json.dumps(loader_command(tmp_path, evil))
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n"
        "  tests:\n    junit: junit.xml\n"
        "  load:\n"
        f"    serve: {{source: command, command: {command}}}\n"
        f"    payload: {payload(tmp_path)}\n"
        "    users: 1\n    warmup: 0\n    duration: 1\n    timeout: 60\n"
        "  scan:\n    models: [evil-model]\n"
        "  quality:\n"
        f"    candidate: evil-model\n    data: {HOLDOUT}\n    target: species\n"
    )
    done = mlgate("run", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-2000:]
    assert not marker.exists()
    scan = read(tmp_path, "scan")
    assert scan["status"] == "passed" and scan["metrics"]["critical"] >= 1
    for stage in ("load", "quality"):
        reason = read(tmp_path, stage)["reason"]
        assert read(tmp_path, stage)["status"] == "error"
        assert "model scan failed: the scan stage: " in reason, reason
        assert "at or above the policy's severity" in reason and "system" in reason
        assert f"{stage} did not load the model" in reason
    assert read(tmp_path, "tests")["status"] == "passed"  # it loads no model
    lines = done.stderr.splitlines()
    assert lines[0].startswith("mlgate: scan:"), done.stderr  # the scan ran first


def test_a_stage_run_alone_scans_first_when_there_is_no_scan_evidence(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  scan:\n    models: [evil-model]\n"
        f"  quality:\n    candidate: evil-model\n    data: {HOLDOUT}\n    target: species\n"
    )
    done = mlgate("quality", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-2000:]
    assert not marker.exists()
    assert read(tmp_path, "scan")["metrics"]["critical"] >= 1  # the scan ran, and was recorded
    assert "model scan failed: the scan stage:" in read(tmp_path, "quality")["reason"]


def test_a_passing_scan_of_other_files_does_not_vouch_for_the_model_loaded(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    (tmp_path / "plain.pkl").write_bytes(b"\x80\x02}q\x00.")  # an empty dict
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  scan:\n    models: [plain.pkl]\n"
        f"  quality:\n    candidate: plain-model\n    data: {HOLDOUT}\n    target: species\n"
    )
    assert mlgate("scan", cwd=tmp_path).returncode == 0
    assert read(tmp_path, "scan")["data"]["model_digests"]
    done = mlgate("quality", "--candidate", "evil-model", cwd=tmp_path)
    assert done.returncode == 4, done.stderr[-2000:]
    assert not marker.exists()
    reason = read(tmp_path, "quality")["reason"]
    assert "model scan failed: evil-model:" in reason and "system" in reason, reason


def test_mlgate_serve_refuses_a_model_the_scan_did_not_pass(
    tmp_path: Path, evil: Path, marker: Path
) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "mlgate", "serve", "--model-uri", str(evil)],
        cwd=tmp_path,
        env=os.environ | MLFLOW_ENV,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, stderr = server.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # it served the model: SIGTERM tears its server down
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert not marker.exists()
    assert server.returncode == 1, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("mlgate: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    assert errors[0].startswith("mlgate: error: model scan failed: evil-model:")
    assert errors[0].endswith("serve did not load the model")


def test_a_passing_scan_vouches_for_the_files_it_scanned(tmp_path: Path, registry: str) -> None:
    """The benign example model as a local MLflow model directory, scanned by the scan stage
    and then judged by the quality stage of the same run: the scan's evidence names the
    digest of exactly the files the quality stage loaded."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    client = MlflowClient(registry, registry)
    version = client.get_model_version_by_alias("iris", "candidate").version
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=str(client.get_model_version_download_uri("iris", version)),
        dst_path=str(tmp_path / "download"),
        tracking_uri=registry,
    )
    Path(local).rename(tmp_path / "iris-model")
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n  scan:\n    models: [iris-model]\n"
        f"  quality:\n    candidate: iris-model\n    data: {HOLDOUT}\n    target: species\n"
        "    resamples: 200\n"
    )
    done = mlgate("run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    judged = read(tmp_path, "quality")
    assert judged["status"] == "passed"
    assert judged["data"]["candidate"]["digest"] in read(tmp_path, "scan")["data"]["model_digests"]
