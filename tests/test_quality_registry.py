"""A quality stage pointed at no registry, an empty one or an unreachable one - a CI job whose
registry secret or variable is missing or wrong - is an error that says so, and the gate fails
on it: it never passes on the floors alone. Real sqlite registries, real CLI runs in-process."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mlgate.evidence import Evidence
from mlgate.stages.interface import RunContext
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.stage import QualityStage
from tests.helpers import mlgate_in_process as mlgate

STAGE = QualityStage()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "holdout.csv").write_text("x0,x1,label\n0.1,0.2,0\n0.9,0.8,1\n")
    monkeypatch.chdir(tmp_path)  # the default registry, .mlgate/mlflow.db, lands here
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def run(project: Path, **overrides: object) -> Evidence:
    settings = {
        "candidate": "models:/iris@candidate",
        "data": "holdout.csv",
        "target": "label",
        "working_directory": str(project),
    }
    config = QualityConfig.model_validate(settings | overrides)
    return STAGE.run(config, RunContext(project / "evidence", None))


def test_an_empty_registry_is_an_error_that_says_it_is_empty(project: Path) -> None:
    uri = f"sqlite:///{(project / 'team.db').as_posix()}"
    evidence = run(project, tracking_uri=uri)
    assert evidence.status == "error"
    assert evidence.reason == (
        f"candidate: registered model iris does not exist in {uri} "
        "(that registry holds no registered models at all)"
    )


@pytest.mark.parametrize("variable", ["unset", "empty"])
def test_no_registry_configured_is_an_error_that_says_so(
    project: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # A GitHub variable or secret that is not set expands to an empty value.
    if variable == "empty":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "")
    evidence = run(project)
    assert evidence.status == "error"
    assert evidence.reason is not None
    assert evidence.reason.startswith("candidate: registered model iris does not exist in ")
    assert "no registry is configured (quality.tracking_uri or MLFLOW_TRACKING_URI)" in (
        evidence.reason
    )
    assert "holds no registered models at all" in evidence.reason


def test_an_unreachable_registry_is_an_error(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    evidence = run(project, tracking_uri=f"http://127.0.0.1:{port}")
    assert evidence.status == "error"
    assert evidence.reason is not None
    assert f"MLflow registry at http://127.0.0.1:{port} is not reachable" in evidence.reason


def test_the_gate_fails_on_it_with_the_reason_instead_of_passing_on_floors(
    project: Path,
) -> None:
    (project / "mlgate.yml").write_text(
        "version: 1\n"
        "stages:\n"
        "  quality:\n"
        "    candidate: models:/iris@candidate\n"
        "    data: holdout.csv\n"
        "    target: label\n"
        "policy:\n"
        "  quality:\n"
        "    floors: {accuracy: 0.5}\n"
    )
    ran = mlgate("run")
    assert ran.exit_code == 4, ran.output  # a stage error
    gated = mlgate("gate")
    assert gated.exit_code == 1, gated.output
    assert "no registry is configured" in gated.stderr
    assert "registered model iris does not exist" in gated.stderr
