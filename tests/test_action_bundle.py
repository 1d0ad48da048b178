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

from mlgate import bundle, config, policy
from mlgate import evidence as ev
from mlgate.registry.mlflow_registry import Registry
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsConfig, TestsStage
from tests.helpers import junit_xml
from tests.test_promotion import CONFIG, MODEL, new_version

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "action-bundle.sh"


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The bundle job's checkout of the base branch: its mlgate.yml allows no failed test."""
    checkout = tmp_path / "base"
    (checkout / ".mlgate").mkdir(parents=True)
    (checkout / "mlgate.yml").write_text(json.dumps(CONFIG))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{checkout / '.mlgate' / 'mlflow.db'}")
    return checkout


def gate_job_report(tmp_path: Path, failed: int, max_failures: int = 0) -> Path:
    """What the gate job uploads (its .mlgate): tests evidence and the verdict it made with
    the pull request's own mlgate.yml, which may allow `max_failures`."""
    head = tmp_path / "head"
    relaxed = {**CONFIG, "policy": {"tests": {"max_failures": max_failures}}}
    (head / ".mlgate").mkdir(parents=True)
    (head / "mlgate.yml").write_text(json.dumps(relaxed))
    cfg = config.load(head / "mlgate.yml")
    junit_xml(head / "junit.xml", passed=3, failed=failed)
    evidence_dir = head / ".mlgate" / "evidence"
    result = TestsStage().run(
        TestsConfig(junit=["junit.xml"], working_directory=str(head)),
        RunContext(evidence_dir, cfg.digest),
    )
    ev.write(result, evidence_dir)
    policy.write(policy.evaluate(cfg, evidence_dir), head / ".mlgate" / "verdict.json")
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


def test_passing_evidence_gets_a_registered_bundle(base: Path, tmp_path: Path) -> None:
    registry = Registry.connect()
    version = new_version(registry, base)
    work = gate_job_report(tmp_path, failed=0)
    result = run_bundle_action(base, work, version)
    assert result.returncode == 0, result.stderr
    digest = registry.model_version(MODEL, version).tags[bundle.DIGEST_TAG]
    verified = bundle.verify(work / "bundle", registry, expected_digest=digest)
    assert verified.outcome == "pass" and str(verified.model["version"]) == version
    assert json.loads((work / "verdict.json").read_text())["outcome"] == "pass"


def test_evidence_that_passed_only_a_relaxed_head_config_gets_no_bundle(
    base: Path, tmp_path: Path
) -> None:
    registry = Registry.connect()
    version = new_version(registry, base)
    # The pull request allowed 5 failures in its own mlgate.yml: its verdict says pass.
    work = gate_job_report(tmp_path, failed=2, max_failures=5)
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
