"""Which job holds which credential (docs/threat-model.md): the registry credential only in
jobs that run no code of the repository under test - a checkout read for mlgate.yml, Python,
and mlgate's own bundle or promote action - scoped to a GitHub environment, never required
as a repository secret; the job that runs the pull request's code never sees it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = sorted([ROOT / "action.yml", *(ROOT / "actions").glob("*/action.yml")])
WORKFLOWS = sorted(
    [*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / "workflows").glob("*.yml")]
)
REGISTRY_SECRET = re.compile(r"secrets\.(MLFLOW_\w+|mlflow-[\w-]+)", re.I)
SHA = r"@[0-9a-f]{40}"
# What a job holding the registry credential may run: nothing of the repository, only these.
CHECKOUT = re.compile(rf"actions/checkout{SHA}")
TRUSTED_STEPS = (
    CHECKOUT,
    re.compile(rf"actions/setup-python{SHA}"),
    re.compile(rf"(\$/|mlgate-dev/mlgate/)actions/(bundle|promote)({SHA})?"),
)
# GITHUB_TOKEN scopes such a job may have: reading the config, recording deployments, reading
# the run's environment approvals.
TRUSTED_PERMISSIONS = {"contents": "read", "deployments": "write", "actions": "read"}


def _load(path: Path) -> dict[Any, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    return document


def _jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in WORKFLOWS:
        for name, job in _load(path)["jobs"].items():
            yield str(path.relative_to(ROOT)), name, job


def _mentions_registry_secret(node: object) -> bool:
    return bool(REGISTRY_SECRET.search(yaml.safe_dump(node)))


def _credential_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, name, job) for path, name, job in _jobs() if _mentions_registry_secret(job)]


def test_the_registry_credential_reaches_only_bundle_and_promotion_jobs() -> None:
    found = {(path, name) for path, name, _ in _credential_jobs()}
    assert found == {
        (".github/workflows/mlgate-gate.yml", "bundle"),
        (".github/workflows/mlgate-promote.yml", "promote"),
        ("workflows/mlgate-pr.yml", "bundle"),
        ("workflows/mlgate-promote.yml", "promote"),
    }


@pytest.mark.parametrize(
    ("path", "name", "job"),
    [pytest.param(*found, id=f"{found[0]}:{found[1]}") for found in _credential_jobs()],
)
def test_a_job_holding_the_registry_credential_runs_no_repository_code(
    path: str, name: str, job: dict[str, Any]
) -> None:
    where = f"{path}: job {name}"
    assert job.get("environment"), f"{where}: the credential must be an environment's secret"
    assert "uses" not in job, f"{where}: hands the credential to another workflow"
    permissions = job.get("permissions")
    assert isinstance(permissions, dict), f"{where}: GITHUB_TOKEN scopes must be explicit"
    assert permissions.items() <= TRUSTED_PERMISSIONS.items(), f"{where}: {permissions}"
    for step in job["steps"]:
        assert "run" not in step, f"{where}: runs a command: {step['run']!r}"
        uses = step.get("uses", "")
        assert any(p.fullmatch(uses) for p in TRUSTED_STEPS), f"{where}: runs {uses}"
        if CHECKOUT.fullmatch(uses):
            options = step.get("with", {})
            assert options.get("persist-credentials") is False, f"{where}: token left in .git"
            ref = str(options.get("ref", ""))
            assert "head" not in ref, f"{where}: checks out the pull request's head: {ref}"


def test_no_workflow_requires_the_registry_credential_as_a_repository_secret() -> None:
    """A workflow_call secret, or a job passing one to a reusable workflow, comes from the
    caller's repository-level secrets: it cannot be scoped to an environment."""
    for path in WORKFLOWS:
        document = _load(path)
        triggers = document.get(True) or document.get("on") or {}  # YAML 1.1 reads `on` as True
        call = triggers.get("workflow_call") if isinstance(triggers, dict) else None
        declared = (call or {}).get("secrets") or {}
        assert not [s for s in declared if "mlflow" in s.lower()], f"{path}: declares {declared}"
    for path, name, job in _jobs():
        if "uses" in job:
            passed = job.get("secrets") or {}
            assert not _mentions_registry_secret(passed), f"{path}: job {name} passes {passed}"


def test_the_reusable_gate_workflow_registers_bundles_in_a_job_of_its_own() -> None:
    document = _load(ROOT / ".github" / "workflows" / "mlgate-gate.yml")
    inputs = (document.get(True) or document["on"])["workflow_call"]["inputs"]
    assert {"model-version", "registry-environment"} <= set(inputs)
    gate, bundle = document["jobs"]["gate"], document["jobs"]["bundle"]
    assert not _mentions_registry_secret(gate)
    assert bundle["needs"] == "gate" and "needs.gate.outputs.verdict == 'pass'" in bundle["if"]
    assert bundle["environment"] == "${{ inputs.registry-environment }}"
    assert [step.get("uses") for step in bundle["steps"]][-1] == "$/actions/bundle"


def test_the_bundle_action_runs_only_mlgate_on_the_downloaded_report() -> None:
    document = _load(ROOT / "actions" / "bundle" / "action.yml")
    runs = [step["run"] for step in document["runs"]["steps"] if "run" in step]
    scripts = [line for run in runs for line in run.splitlines() if "bash " in line]
    assert scripts == [
        'bash "$ACTION_PATH/../../scripts/action-install.sh"',
        'bash "$ACTION_PATH/../../scripts/action-bundle.sh" "$RUNNER_TEMP/mlgate-bundle"',
    ]
    script = (ROOT / "scripts" / "action-bundle.sh").read_text()
    commands = set(re.findall(r"^\s*mlgate (\w+)", script, re.M))
    assert commands == {"gate", "bundle"}  # judge again and bundle: no stage, no project command


def test_model_version_on_the_root_action_warns_that_it_is_deprecated() -> None:
    steps = _load(ROOT / "action.yml")["runs"]["steps"]
    warning = next(s for s in steps if s.get("name") == "Warn that model-version is deprecated")
    assert warning["if"] == "inputs.model-version != ''"
    assert "::warning" in warning["run"] and "actions/bundle" in warning["run"]


@pytest.mark.parametrize(
    "path", [*ACTIONS, *WORKFLOWS], ids=lambda path: str(path.relative_to(ROOT))
)
def test_no_action_or_workflow_sets_mlgate_today(path: Path) -> None:
    """MLGATE_TODAY re-dates waivers; a gate run must judge them as of the real day."""
    assert "MLGATE_TODAY" not in path.read_text()
