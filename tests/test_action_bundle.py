"""scripts/action-bundle.sh, the body of actions/bundle, run as the action runs it: on a report
artifact downloaded from a job that ran the pull request's code, with the config of its own
checkout (the base branch's) and a real sqlite MLflow registry. The artifact's verdict is not
trusted: the evidence is judged again, and a pull request that relaxed its own mlgate.yml
gets no bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlgate import bundle
from mlgate.registry.mlflow_registry import Registry
from tests.test_promotion import CONFIG, MODEL, evaluate, make_model_template, new_version

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "action-bundle.sh"


@pytest.fixture(scope="module")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_template: Path) -> Path:
    """The MLflow sqlite registry both jobs reach, with the model template versions are made of
    (new_version's `project`)."""
    store = tmp_path / "store"
    (store / ".mlgate").mkdir(parents=True)
    shutil.copytree(model_template / "model", store / "model-template")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / '.mlgate' / 'mlflow.db'}")
    return store


@pytest.fixture
def base(tmp_path: Path, store: Path) -> Path:
    """The bundle job's checkout of the base branch: its mlgate.yml allows no failed test."""
    checkout = tmp_path / "base"
    checkout.mkdir()
    (checkout / "mlgate.yml").write_text(json.dumps(CONFIG))
    return checkout


def gate_job_report(
    tmp_path: Path, model_template: Path, version: str, failed: int, max_failures: int = 0
) -> Path:
    """What the gate job uploads (its .mlgate): evidence of its tests and of its quality stage
    over `version` (the candidate), and the verdict it made with the pull request's own
    mlgate.yml, which may allow `max_failures`."""
    head = tmp_path / "head"
    relaxed = {**CONFIG, "policy": {"tests": {"max_failures": max_failures}}}
    (head / ".mlgate").mkdir(parents=True)
    (head / "mlgate.yml").write_text(json.dumps(relaxed))
    shutil.copy(model_template / "holdout.csv", head / "holdout.csv")
    evaluate(Registry.connect(), head, version, failed)
    work = tmp_path / "runner-temp" / "mlgate-bundle"
    shutil.copytree(head / ".mlgate", work / "report")
    return work


def run_bundle_action(base: Path, work: Path, version: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "MLGATE_CONFIG": "mlgate.yml",
        "MLGATE_MODEL_VERSION": version,
        "MLGATE_EVIDENCE_DIR": "evidence",
    }
    return subprocess.run(
        ["bash", str(SCRIPT), str(work)],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_passing_evidence_gets_a_registered_bundle(
    base: Path, store: Path, tmp_path: Path, model_template: Path
) -> None:
    registry = Registry.connect()
    version = new_version(registry, store)
    work = gate_job_report(tmp_path, model_template, version, failed=0)
    result = run_bundle_action(base, work, version)
    assert result.returncode == 0, result.stderr
    digest = registry.model_version(MODEL, version).tags[bundle.DIGEST_TAG]
    verified = bundle.verify(work / "bundle", registry, expected_digest=digest)
    assert verified.outcome == "pass" and str(verified.model["version"]) == version
    assert json.loads((work / "verdict.json").read_text())["outcome"] == "pass"


def test_evidence_that_passed_only_a_relaxed_head_config_gets_no_bundle(
    base: Path, store: Path, tmp_path: Path, model_template: Path
) -> None:
    registry = Registry.connect()
    version = new_version(registry, store)
    # The pull request allowed 5 failures in its own mlgate.yml: its verdict says pass.
    work = gate_job_report(tmp_path, model_template, version, failed=2, max_failures=5)
    assert json.loads((work / "report" / "verdict.json").read_text())["outcome"] == "pass"
    result = run_bundle_action(base, work, version)
    assert result.returncode == 1, result.stderr
    assert "no bundle: the report's evidence does not pass this checkout's policy" in (
        result.stdout
    )
    assert "tests: 2 failed, 0 allowed" in result.stderr
    assert bundle.DIGEST_TAG not in registry.model_version(MODEL, version).tags
    assert not (work / "bundle").exists()


def test_a_report_without_evidence_is_bad_input(base: Path, tmp_path: Path) -> None:
    work = tmp_path / "runner-temp" / "mlgate-bundle"
    (work / "report").mkdir(parents=True)
    result = run_bundle_action(base, work, "1")
    assert result.returncode == 2
    assert "the report artifact has no evidence/ directory" in result.stdout
