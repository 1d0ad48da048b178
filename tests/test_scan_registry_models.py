"""The scan stage scans what is served and promoted: registered model versions, resolved and
downloaded from a real sqlite MLflow registry, identified in the evidence by their files
digest; a clean local file cannot stand in for a registered version carrying a payload."""

from __future__ import annotations

import os
import pickle
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlgate.evidence import Evidence
from mlgate.registry import Registry
from mlgate.stages.interface import RunContext
from mlgate.stages.scan.config import ScanConfig, ScanPolicy
from mlgate.stages.scan.stage import ScanStage
from tests.test_registry import new_version, unique

STAGE = ScanStage()


class _Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


MLMODEL = b"artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry.connect(f"sqlite:///{tmp_path}/mlflow.db")


@pytest.fixture
def experiment(registry: Registry, tmp_path: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    location = (tmp_path / "artifacts").as_uri()
    return str(client.create_experiment(unique("scan"), artifact_location=location))


@pytest.fixture
def model(registry: Registry, experiment: str) -> str:
    """Version 1 benign, version 2 carries a payload; @candidate points at version 2."""
    from mlflow import MlflowClient

    name = unique("scanned")
    MlflowClient(registry.uri, registry.uri).create_registered_model(name)
    benign = pickle.dumps({"coef": [0.5, -0.25], "intercept": 0.1})
    assert new_version(registry, experiment, name, {"MLmodel": MLMODEL, "model.pkl": benign}) == "1"
    evil = pickle.dumps(_Payload())
    assert new_version(registry, experiment, name, {"MLmodel": MLMODEL, "model.pkl": evil}) == "2"
    registry.set_alias(name, "candidate", "2")
    return name


def _scan(workdir: Path, registry: Registry, models: list[str]) -> Evidence:
    config = ScanConfig.model_validate(
        {"models": models, "tracking_uri": registry.uri, "working_directory": str(workdir)}
    )
    return STAGE.run(config, RunContext(workdir / "evidence", None))


def _passes(evidence: Evidence) -> bool:
    rules = STAGE.evaluate(ScanPolicy(), evidence)
    return evidence.status == "passed" and all(r.outcome == "pass" for r in rules)


def test_a_registered_payload_is_caught_where_a_clean_local_file_passes(
    tmp_path: Path, registry: Registry, model: str
) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    (workdir / "model.pkl").write_bytes(pickle.dumps({"coef": [0.5, -0.25], "intercept": 0.1}))
    assert _passes(_scan(workdir, registry, ["model.pkl"]))  # the stand-in alone is clean

    evidence = _scan(workdir, registry, ["model.pkl", f"models:/{model}@candidate"])

    assert evidence.status == "passed", evidence.reason
    assert not _passes(evidence)
    caught = {(f.tool, f.path) for f in evidence.findings if f.severity == "critical"}
    assert caught == {
        ("picklescan", f"models:/{model}/2/model/model.pkl"),
        ("fickling", f"models:/{model}/2/model/model.pkl"),
    }
    assert evidence.data["model_targets"] == [
        {
            "uri": f"models:/{model}@candidate",
            "resolved": f"models:/{model}/2",
            "registered_model": model,
            "version": "2",
            "digest": registry.model_digest(model, "2"),
        }
    ]


def test_a_benign_registered_version_passes_and_is_identified(
    tmp_path: Path, registry: Registry, model: str
) -> None:
    evidence = _scan(tmp_path, registry, [f"models:/{model}/01"])

    assert _passes(evidence), evidence.findings
    (target,) = evidence.data["model_targets"]
    assert (target["uri"], target["version"]) == (f"models:/{model}/01", "1")
    assert target["resolved"] == f"models:/{model}/1"  # the registry's spelling of the version
    assert target["digest"] == registry.model_digest(model, "1")
    assert target["digest"] != registry.model_digest(model, "2")
    # Downloaded into the project's scratch, fresh for each scan, and read by every engine.
    downloaded = f".mlgate/scanned-models/{model}/1/model/model.pkl"
    assert downloaded in evidence.data["fickling"]["files"]
    assert downloaded in evidence.data["picklescan"]["files"]


def test_registry_problems_are_errors_naming_the_model(
    tmp_path: Path, registry: Registry, model: str
) -> None:
    cases = {
        f"models:/{model}@production": f"alias production of model {model} is not set",
        f"models:/{model}/9": "does not exist",
        "models:/no-such-model/1": "registered model no-such-model does not exist",
    }
    for uri, reason in cases.items():
        evidence = _scan(tmp_path, registry, [uri])
        assert evidence.status == "error"
        assert evidence.reason is not None
        assert evidence.reason.startswith(f"model {uri}: ") and reason in evidence.reason
        assert not _passes(evidence)


def test_an_unreachable_registry_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config = ScanConfig.model_validate(
        {
            "models": ["models:/iris@candidate"],
            "tracking_uri": f"http://127.0.0.1:{port}",
            "working_directory": str(tmp_path),
        }
    )
    evidence = STAGE.run(config, RunContext(tmp_path / "evidence", None))

    assert evidence.status == "error"
    assert evidence.reason is not None
    assert evidence.reason.startswith("model models:/iris@candidate: ")
    assert "not reachable" in evidence.reason


@pytest.mark.parametrize("uri", ["models:/iris", "models:/iris/latest", "models:/iris@"])
def test_a_registry_uri_that_names_no_version_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="models:/NAME@ALIAS or models:/NAME/VERSION"):
        ScanConfig.model_validate({"models": [uri]})
