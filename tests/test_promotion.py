"""Gated promotion against real parts: an MLflow sqlite registry, real bundles of real evidence,
the fake GitHub server for permissions, approvals and deployments, and real concurrent
`mlgate promote` processes racing for one alias."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from mlgate import bundle, config, policy, promotion
from mlgate import evidence as ev
from mlgate.github.client import connect
from mlgate.github.context import GitHubContext
from mlgate.registry.ledger import Ledger
from mlgate.registry.mlflow_registry import Registry
from mlgate.stages.interface import RunContext
from mlgate.stages.quality import QualityConfig, QualityStage
from mlgate.stages.tests import TestsConfig, TestsStage
from tests.fakegithub import FakeGitHub
from tests.helpers import ExampleServer, junit_xml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
REPO = "octo/model"
TOKEN = "ghs_app_token"
MODEL = "fraud"
CONFIG: dict[str, Any] = {
    "stages": {
        "tests": {"junit": "junit.xml"},
        # The stage that evaluates the version a bundle is made for (a bundle needs one).
        "quality": {
            "candidate": f"models:/{MODEL}@candidate",
            "champion_alias": None,
            "data": "holdout.csv",
            "target": "label",
            "resamples": 100,
        },
    },
    "promotion": {
        "model": MODEL,
        "stages": ["staging", "production"],
        "access": {
            "staging": {"permission": None},
            "production": {"permission": "maintain", "approvals": 1},
        },
    },
}


@pytest.fixture(scope="module")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_template(tmp_path_factory.mktemp("template"))


def make_model_template(root: Path) -> Path:
    """A real scikit-learn MLflow model (model/) and the held-out data it is judged on."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    features = np.random.default_rng(0).normal(size=(60, 2))
    frame = pd.DataFrame(features, columns=["a", "b"])
    frame["label"] = (features[:, 0] > 0).astype(int)
    frame.to_csv(root / "holdout.csv", index=False)
    fitted = LogisticRegression().fit(frame[["a", "b"]], frame["label"])
    mlflow.sklearn.save_model(fitted, root / "model", pip_requirements=["scikit-learn"])
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_template: Path) -> Path:
    return make_project(tmp_path, monkeypatch, model_template)


def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_template: Path) -> Path:
    """A project directory with CONFIG, the template and a sqlite registry, worked in."""
    (tmp_path / ".mlgate").mkdir()
    shutil.copy(model_template / "holdout.csv", tmp_path / "holdout.csv")
    shutil.copytree(model_template / "model", tmp_path / "model-template")
    (tmp_path / "mlgate.yml").write_text(json.dumps(CONFIG))  # JSON is YAML
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / '.mlgate' / 'mlflow.db'}")
    return tmp_path


@pytest.fixture
def registry(project: Path) -> Registry:
    return Registry.connect()


def new_version(registry: Registry, project: Path, content: bytes = b"weights-1") -> str:
    """A model version made of real files in the store's artifact location: the template's
    MLflow model with `content` in model.bin, so versions differ."""
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    experiment = client.get_experiment_by_name("models")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("models", artifact_location=(project / "art").as_uri())
    )
    run_id = client.create_run(experiment_id).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(project / "model-template", Path(tmp) / "model")
        (Path(tmp) / "model" / "model.bin").write_bytes(content)
        registry.log_artifacts(run_id, Path(tmp) / "model", "model")
    try:
        client.get_registered_model(MODEL)
    except Exception:
        client.create_registered_model(MODEL)
    return str(client.create_model_version(MODEL, f"runs:/{run_id}/model", run_id).version)


def gate_and_bundle(registry: Registry, project: Path, version: str, failed: int = 0) -> str:
    """Evidence from a real JUnit report and a real quality run of the version, the gate's
    verdict, and the registered bundle."""
    evaluate(registry, project, version, failed)
    directory, digest = bundle.create(
        config.load(project / "mlgate.yml"),
        project / ".mlgate" / "verdict.json",
        project / ".mlgate" / "evidence",
        registry,
        MODEL,
        version,
        project / ".mlgate" / f"bundle-{version}",
    )
    bundle.register(registry, directory, digest)
    return digest


def evaluate(registry: Registry, project: Path, version: str, failed: int = 0) -> None:
    """The stages of the project's config over `version` (set as the candidate), and the gate."""
    cfg = config.load(project / "mlgate.yml")
    evidence_dir = project / ".mlgate" / "evidence"
    junit_xml(project / "junit.xml", passed=3, failed=failed)
    result = TestsStage().run(
        TestsConfig(junit=["junit.xml"], working_directory=str(project)),
        RunContext(evidence_dir, cfg.digest),
    )
    ev.write(result, evidence_dir)
    quality = cfg.stage_config("quality")
    if isinstance(quality, QualityConfig):
        registry.set_alias(MODEL, "candidate", version)
        quality = quality.model_copy(update={"working_directory": str(project)})
        ev.write(QualityStage().run(quality, RunContext(evidence_dir, cfg.digest)), evidence_dir)
    policy.write(policy.evaluate(cfg, evidence_dir), project / ".mlgate" / "verdict.json")


def local(actor: str = "alice") -> promotion.Who:
    return promotion.Who(actor=actor, repo=None, run_id=None)


def promote(
    registry: Registry, version: str, stage: str, who: promotion.Who | None = None, **kwargs: object
) -> promotion.Outcome:
    cfg = config.load(Path("mlgate.yml"))
    return promotion.promote(cfg, registry, who or local(), MODEL, version, stage, **kwargs)  # type: ignore[arg-type]


RUNS: dict[int, int] = {}  # id(fake) -> the promotion workflow run seeded in it


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.set_token(TOKEN)
        RUNS[id(fake)] = fake.add_workflow_run(
            REPO, workflow="promote.yml", event="workflow_dispatch", conclusion=None
        )
        yield fake
        assert fake.violations == [], fake.violations
        assert fake.unimplemented == [], fake.unimplemented


def run_of(gh: FakeGitHub) -> int:
    return RUNS[id(gh)]


def github_who(gh: FakeGitHub, actor: str) -> promotion.Who:
    context = GitHubContext(
        token=TOKEN,
        api_url=gh.url,
        repository=REPO,
        sha="a" * 40,
        pr_number=None,
        run_url=None,
        run_key="77.1",
    )
    repo = connect(context, 0).get_repo(REPO)
    return promotion.Who(actor=actor, repo=repo, run_id=run_of(gh))


def test_candidate_to_staging_to_production_and_back(
    registry: Registry, project: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit the promotion workflow runs on: the deployment is made for it.
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    assert promote(registry, one, "staging").to_version == one
    gh.set_permission(REPO, "bob", "maintain")
    gh.add_run_approval(REPO, run_of(gh), "carol", environments=("production",))
    done = promote(registry, one, "production", who=github_who(gh, "bob"))
    assert (done.from_version, done.to_version) == (None, one) and done.warnings == []
    assert registry.alias(MODEL, "production") == one
    (deployment,) = gh.deployments(REPO)
    assert deployment["environment"] == "production"
    # A second version goes the same way, then production is rolled back to the first.
    two = new_version(registry, project, b"two")
    gate_and_bundle(registry, project, two)
    promote(registry, two, "staging")
    promote(registry, two, "production", who=github_who(gh, "bob"))
    cfg = config.load(Path("mlgate.yml"))
    back = promotion.rollback(cfg, registry, github_who(gh, "bob"), MODEL, "production")
    assert (back.from_version, back.to_version) == (two, one)
    assert registry.alias(MODEL, "production") == one
    records = Ledger(registry, MODEL).records()
    assert [(r["kind"], r["stage"], r["from_version"], r["to_version"]) for r in records] == [
        ("promotion", "staging", None, one),
        ("promotion", "production", None, one),
        ("promotion", "staging", one, two),
        ("promotion", "production", one, two),
        ("rollback", "production", two, one),
    ]
    assert records[1]["approvals"] == [{"login": "carol", "state": "approved"}]
    # The version rolled away from needs a new bundle before it is promoted again.
    with pytest.raises(promotion.PromotionRefused, match="rolled back; promoting it again"):
        promote(registry, two, "production", who=github_who(gh, "bob"))


def test_unauthorized_actor_and_missing_or_self_approval(
    registry: Registry, project: Path, gh: FakeGitHub
) -> None:
    one = new_version(registry, project)
    gate_and_bundle(registry, project, one)
    promote(registry, one, "staging")
    gh.set_permission(REPO, "mallory", "write")
    with pytest.raises(promotion.PromotionRefused, match="needs maintain"):
        promote(registry, one, "production", who=github_who(gh, "mallory"))
    gh.set_permission(REPO, "bob", "admin")
    with pytest.raises(promotion.PromotionRefused, match="approval"):
        promote(registry, one, "production", who=github_who(gh, "bob"))
    gh.add_run_approval(REPO, run_of(gh), "bob", environments=("production",))
    with pytest.raises(promotion.PromotionRefused, match="own approval does not count"):
        promote(registry, one, "production", who=github_who(gh, "bob"))
    # Without GitHub, a stage whose rule needs it cannot be promoted at all.
    with pytest.raises(promotion.PromotionRefused, match="needs GitHub"):
        promote(registry, one, "production")
    assert registry.alias(MODEL, "production") is None
    assert len(Ledger(registry, MODEL).records()) == 1  # the staging promotion only


def test_failed_verdict_wrong_order_and_stale_bundle_are_refused(
    registry: Registry, project: Path
) -> None:
    failing = new_version(registry, project, b"bad")
    gate_and_bundle(registry, project, failing, failed=2)
    with pytest.raises(promotion.PromotionRefused, match=r"verdict .* is fail"):
        promote(registry, failing, "staging")
    good = new_version(registry, project, b"good")
    gate_and_bundle(registry, project, good)
    with pytest.raises(promotion.PromotionRefused, match="production takes only the version"):
        promote(registry, good, "production")
    later = datetime.now(timezone.utc) + timedelta(days=8)
    with pytest.raises(promotion.PromotionRefused, match="h old"):
        promote(registry, good, "staging", now=later)
    assert registry.alias(MODEL, "staging") is None
    assert Ledger(registry, MODEL).records() == []


def test_tampered_evidence_and_changed_model_files_are_refused(
    registry: Registry, project: Path
) -> None:
    one = new_version(registry, project, b"one")
    digest = gate_and_bundle(registry, project, one)
    directory = project / ".mlgate" / f"bundle-{one}"
    assert bundle.verify(directory, registry, expected_digest=digest).outcome == "pass"
    # An evidence file edited after the bundle: the bundle names it.
    evidence_file = directory / "evidence" / "tests.json"
    document = json.loads(evidence_file.read_text())
    document["metrics"]["failed"] = 0
    evidence_file.write_text(json.dumps(document) + " ")
    with pytest.raises(bundle.BundleError, match=r"evidence/tests\.json: sha256"):
        bundle.verify(directory, registry)
    # The model's files in the registry's artifact store changed after the bundle was made.
    (stored,) = (project / "art").rglob("model.bin")
    stored.write_bytes(b"swapped weights")
    with pytest.raises(promotion.PromotionRefused, match="model files changed since the bundle"):
        promote(registry, one, "staging")
    assert registry.alias(MODEL, "staging") is None


def test_ten_concurrent_promotions_to_one_alias_have_exactly_one_winner(
    registry: Registry, project: Path
) -> None:
    versions = []
    for index in range(10):
        version = new_version(registry, project, f"model {index}".encode())
        gate_and_bundle(registry, project, version)
        versions.append(version)
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}  # this checkout's mlgate
    racers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlgate",
                "promote",
                "--version",
                v,
                "--to",
                "staging",
                "--expect-current",
                "none",
            ],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions
    ]
    results = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in racers]
    winners = [v for v, (code, _) in zip(versions, results, strict=True) if code == 0]
    assert len(winners) == 1, results
    for code, stderr in results:
        assert code in (0, 1), stderr
        assert "Traceback" not in stderr
        if code == 1:
            assert "another promotion" in stderr, stderr
    assert registry.alias(MODEL, "staging") == winners[0]
    (record,) = Ledger(registry, MODEL).records()
    assert record["to_version"] == winners[0]


def test_bad_input_is_one_line_and_changes_nothing(registry: Registry, project: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(ROOT / "src")}  # this checkout's mlgate

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlgate", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    one = new_version(registry, project)
    for args, message in (
        (("promote", "--version", "99", "--to", "staging"), "99"),
        (("promote", "--model", "nope", "--version", "1", "--to", "staging"), "nope"),
        (("promote", "--version", one, "--to", "canary"), "unknown stage 'canary'"),
        (("promote", "--version", one, "--to", "staging"), "has no evidence bundle"),
        (("rollback", "--stage", "staging"), "points at no version"),
    ):
        result = run(*args)
        assert result.returncode in (1, 2), result.stderr
        lines = [line for line in result.stderr.splitlines() if line.startswith("mlgate:")]
        assert len(lines) == 1 and message in lines[0], result.stderr
        assert "Traceback" not in result.stderr
    foreign = project / "foreign.json"
    foreign.write_text('{"schema": "something/else"}')
    result = run("bundle", "verify", str(foreign), "--offline")
    assert result.returncode == 1 and "not an mlgate bundle" in result.stderr
    closed = subprocess.run(
        [sys.executable, "-m", "mlgate", "history", "--json"],
        cwd=project,
        env=env | {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert closed.returncode == 2 and "not reachable" in closed.stderr, closed.stderr
    assert registry.alias(MODEL, "staging") is None


@pytest.fixture(scope="module")
def model_server() -> Iterator[str]:
    """The example's real model server on 127.0.0.1, standing in for the deployed stage."""
    running = ExampleServer()
    yield running.url
    running.stop()


def with_check(project: Path, **check: object) -> None:
    """The project's config with a post-promotion check of the given settings."""
    document = json.loads(json.dumps(CONFIG))
    document["promotion"]["check"] = {
        "payload": str(EXAMPLE / "payloads.jsonl"),
        "warmup": 0.5,
        "duration": 2,
        "rate": 20,
        "health_timeout": 5,
    } | check
    (project / "mlgate.yml").write_text(json.dumps(document))


def test_post_promotion_check_keeps_a_good_promotion_and_rolls_back_a_slow_one(
    registry: Registry, project: Path, model_server: str
) -> None:
    with_check(project, url=model_server, p95_ms_max=5000)
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    kept = promote(registry, one, "staging")
    assert (kept.kind, kept.to_version, kept.warnings) == ("promotion", one, [])
    assert registry.alias(MODEL, "staging") == one
    # The same server, now judged by a p95 limit no real server meets: moved back to one.
    with_check(project, url=model_server, p95_ms_max=0.001)
    two = new_version(registry, project, b"two")
    gate_and_bundle(registry, project, two)
    back = promote(registry, two, "staging")
    assert (back.kind, back.from_version, back.to_version) == ("auto-rollback", two, one)
    assert back.warnings and back.warnings[0].startswith(
        "rolled back: the post-promotion check failed: p95 latency "
    )
    assert registry.alias(MODEL, "staging") == one
    records = Ledger(registry, MODEL).records()
    assert [(r["kind"], r["from_version"], r["to_version"]) for r in records] == [
        ("promotion", None, one),
        ("promotion", one, two),
        ("auto-rollback", two, one),
    ]
    assert records[2]["reason"].startswith("the post-promotion check failed: p95 latency ")
    assert "is above 0.001 ms" in records[2]["reason"]
    with pytest.raises(promotion.PromotionRefused, match="rolled back; promoting it again"):
        promote(registry, two, "staging")


def test_post_promotion_check_of_an_unhealthy_server_rolls_back_to_no_version(
    registry: Registry, project: Path
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with_check(project, url=f"http://127.0.0.1:{port}", health_timeout=0.5)
    one = new_version(registry, project)
    gate_and_bundle(registry, project, one)
    back = promote(registry, one, "staging")
    assert (back.kind, back.from_version, back.to_version) == ("auto-rollback", one, None)
    assert registry.alias(MODEL, "staging") is None
    (_, record) = Ledger(registry, MODEL).records()
    assert record["reason"].startswith("the post-promotion check failed: not healthy within 0.5 s")
    assert f"GET http://127.0.0.1:{port}/health failed" in record["reason"]
    # A check that could not even run is refused before anything moves.
    with_check(project, url=f"http://127.0.0.1:{port}", payload="missing.jsonl")
    two = new_version(registry, project, b"two")
    gate_and_bundle(registry, project, two)
    with pytest.raises(promotion.PromotionRefused, match=r"payload missing\.jsonl is not a file"):
        promote(registry, two, "staging")
    assert registry.alias(MODEL, "staging") is None
    assert len(Ledger(registry, MODEL).records()) == 2


def test_deploy_dispatch_announces_the_promotion_and_a_refusal_rolls_it_back(
    registry: Registry, project: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", "a" * 40)
    document = json.loads((project / "mlgate.yml").read_text())
    document["promotion"]["deploy_dispatch"] = "deploy-model"
    (project / "mlgate.yml").write_text(json.dumps(document))
    gh.set_permission(REPO, "bob", "maintain")
    one = new_version(registry, project, b"one")
    digest = gate_and_bundle(registry, project, one)
    # Without GitHub the deploy event cannot be sent: refused before anything moves.
    with pytest.raises(promotion.PromotionRefused, match="deploy_dispatch needs GitHub"):
        promote(registry, one, "staging")
    done = promote(registry, one, "staging", who=github_who(gh, "bob"))
    assert done.kind == "promotion"
    (event,) = gh.dispatches(REPO)
    assert event["event_type"] == "deploy-model"
    assert event["client_payload"] | {"run_url": None} == {
        "model": MODEL,
        "version": one,
        "stage": "staging",
        "bundle_digest": digest,
        "run_url": None,
    }
    # GitHub refusing the event: the promotion is taken back and recorded as such.
    two = new_version(registry, project, b"two")
    gate_and_bundle(registry, project, two)
    gh.inject("POST", f"/repos/{REPO}/dispatches", 422, times=1)
    back = promote(registry, two, "staging", who=github_who(gh, "bob"))
    assert (back.kind, back.from_version, back.to_version) == ("auto-rollback", two, one)
    assert "the deploy dispatch failed: GitHub answered 422" in back.record["reason"]
    assert registry.alias(MODEL, "staging") == one
