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
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.stage import QualityStage
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig
from tests.fakegithub import FakeGitHub
from tests.helpers import ExampleServer, error_lines, junit_xml, mlgate_in_process

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


SHA = "a" * 40  # the commit the promotion workflow runs on
RUNS: dict[tuple[int, str], int] = {}  # (id(fake), actor) -> that actor's promotion run


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as fake:
        fake.add_repo(REPO)
        fake.set_token(TOKEN)
        yield fake
        assert fake.violations == [], fake.violations
        assert fake.unimplemented == [], fake.unimplemented


def run_of(gh: FakeGitHub, actor: str = "bob", started_at: datetime | None = None) -> int:
    """The promotion workflow run `actor` started, in progress, with a job in each stage's
    environment (as `environment:` makes GitHub Actions deploy there)."""
    key = (id(gh), actor)
    if key not in RUNS:
        RUNS[key] = gh.add_workflow_run(
            REPO,
            workflow="promote.yml",
            event="workflow_dispatch",
            conclusion=None,
            head_sha=SHA,
            actor=actor,
            started_at=started_at.strftime("%Y-%m-%dT%H:%M:%SZ") if started_at else None,
        )
        for stage in ("staging", "production"):
            gh.add_run_job(REPO, RUNS[key], f"promote-{stage}", environment=stage)
    return RUNS[key]


def in_run_of(monkeypatch: pytest.MonkeyPatch, gh: FakeGitHub, actor: str) -> None:
    """This process is a step of `actor`'s run: its records carry that run's URL."""
    monkeypatch.setenv("GITHUB_SERVER_URL", gh.url)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPO)
    monkeypatch.setenv("GITHUB_RUN_ID", str(run_of(gh, actor)))


def github_who(gh: FakeGitHub, actor: str) -> promotion.Who:
    context = GitHubContext(
        token=TOKEN,
        api_url=gh.url,
        repository=REPO,
        sha=SHA,
        pr_number=None,
        run_url=None,
        run_key="77.1",
    )
    repo = connect(context, 0).get_repo(REPO)
    return promotion.Who(actor=actor, repo=repo, run_id=run_of(gh, actor), sha=SHA)


def test_candidate_to_staging_to_production_and_back(
    registry: Registry, project: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The commit the promotion workflow runs on: the deployment is made for it.
    monkeypatch.setenv("GITHUB_SHA", SHA)
    in_run_of(monkeypatch, gh, "bob")
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    assert promote(registry, one, "staging").to_version == one
    gh.set_permission(REPO, "bob", "maintain")
    gh.add_run_approval(REPO, run_of(gh), "carol", environments=("production",))
    done = promote(registry, one, "production", who=github_who(gh, "bob"))
    assert (done.from_version, done.to_version) == (None, one) and done.warnings == []
    assert registry.alias(MODEL, "production") == one
    # The one mlgate recorded, beside those GitHub Actions made for the run's jobs.
    (deployment,) = [d for d in gh.deployments(REPO) if d["payload"]]
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
    monkeypatch.setenv("GITHUB_SHA", SHA)
    in_run_of(monkeypatch, gh, "bob")
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


# -- issue 10: rollback gate, proven runs, racing promoters, the ledger's chain ---------------


def mlgate(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The CLI in this process (as a step would run it): exit code and stderr."""
    from mlgate.cli import cli
    from tests.helpers import cli_runner

    result = cli_runner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("event_type", "problem"),
    [("", "at least 1 character"), ("d" * 101, "at most 100 characters")],
    ids=["empty", "too-long"],
)
def test_a_deploy_dispatch_github_would_not_take_is_one_config_error(
    tmp_path: Path, event_type: str, problem: str
) -> None:
    """An event type GitHub refuses (1 to 100 characters, as drift's repository_dispatch) is
    bad config, not a promotion rolled back later; an empty one is not silently no dispatch."""
    promotion_config = {"model": MODEL, "deploy_dispatch": event_type}
    document = {"stages": {"tests": {}}, "promotion": promotion_config}
    (tmp_path / "mlgate.yml").write_text(json.dumps(document))
    result = mlgate_in_process("config", "check", "--config", str(tmp_path / "mlgate.yml"))
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert error_lines(result) == [line]
    assert f"promotion.deploy_dispatch: String should have {problem}" in line, line


def test_rollback_goes_back_only_to_a_version_that_held_the_stage_and_is_not_blocked(
    registry: Registry, project: Path
) -> None:
    cfg = config.load(Path("mlgate.yml"))
    one, two, three, never = (new_version(registry, project, v) for v in (b"1", b"2", b"3", b"4"))
    for version in (one, two, three, never):
        gate_and_bundle(registry, project, version)
    for version in (one, two, three):
        promote(registry, version, "staging")
    # A version that never held staging (bundle or not) is no rollback target.
    with pytest.raises(promotion.PromotionRefused, match=f"version {never} never held staging"):
        promotion.rollback(cfg, registry, local(), MODEL, "staging", to=never)
    # 3 -> 2 blocks 3; rolling "back" to 3 is refused: it was rolled back from.
    promotion.rollback(cfg, registry, local(), MODEL, "staging")
    assert registry.alias(MODEL, "staging") == two
    with pytest.raises(promotion.PromotionRefused, match=rf"{three} was rolled back from"):
        promotion.rollback(cfg, registry, local(), MODEL, "staging", to=three)
    # One held staging, but its bundle is gone from the registry: no gate left to stand on.
    from mlflow import MlflowClient

    client = MlflowClient(registry.uri, registry.uri)
    digest = registry.model_version(MODEL, one).tags[bundle.DIGEST_TAG]
    client.delete_model_version_tag(MODEL, one, bundle.DIGEST_TAG)
    with pytest.raises(promotion.PromotionRefused, match=f"version {one} has no registered bundle"):
        promotion.rollback(cfg, registry, local(), MODEL, "staging", to=one)
    registry.set_version_tag(MODEL, one, bundle.DIGEST_TAG, digest)
    # 2 -> 1 (by --to); now the previous-version path from 1 would re-instate blocked 2.
    promotion.rollback(cfg, registry, local(), MODEL, "staging", to=one)
    with pytest.raises(promotion.PromotionRefused, match=rf"{two} was rolled back from") as err:
        promotion.rollback(cfg, registry, local(), MODEL, "staging")
    assert "versions it may go back to: none" in str(err.value)
    assert registry.alias(MODEL, "staging") == one
    assert [r["kind"] for r in Ledger(registry, MODEL).records()].count("rollback") == 2


def test_rollback_override_is_recorded_and_needs_the_production_rule(
    registry: Registry, project: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_SHA", SHA)
    cfg = config.load(Path("mlgate.yml"))
    one, never = new_version(registry, project, b"1"), new_version(registry, project, b"n")
    gate_and_bundle(registry, project, one)
    promote(registry, one, "staging")
    # Bob's run starts after that promotion (a run decides when it starts: see the race test).
    promoted_at = datetime.fromisoformat(Ledger(registry, MODEL).records()[-1]["at"])
    run_of(gh, "bob", started_at=promoted_at + timedelta(seconds=1))
    # Locally nobody passes production's rule (maintain, one approval): no override.
    with pytest.raises(promotion.PromotionRefused, match="overriding: production needs GitHub"):
        promotion.rollback(
            cfg, registry, local(), MODEL, "staging", to=never, override_reason="hotfix"
        )
    with pytest.raises(promotion.PromotionRefused, match="override-reason is blank"):
        promotion.rollback(cfg, registry, local(), MODEL, "staging", to=never, override_reason=" ")
    gh.set_permission(REPO, "mallory", "write")  # may touch staging, not production
    with pytest.raises(
        promotion.PromotionRefused, match=r"overriding: production: .*needs maintain"
    ):
        mallory = github_who(gh, "mallory")
        promotion.rollback(cfg, registry, mallory, MODEL, "staging", never, "", "hotfix")
    assert registry.alias(MODEL, "staging") == one
    gh.set_permission(REPO, "bob", "maintain")
    # Production's rule counts approvals given in production's environment, not staging's.
    gh.add_run_approval(REPO, run_of(gh, "bob"), "carol", environments=("staging",))
    with pytest.raises(
        promotion.PromotionRefused, match=r"overriding: production: .*needs 1 approval.* none"
    ):
        promotion.rollback(cfg, registry, github_who(gh, "bob"), MODEL, "staging", never, "", "x")
    gh.add_run_approval(REPO, run_of(gh, "bob"), "carol", environments=("production",))
    done = promotion.rollback(
        cfg, registry, github_who(gh, "bob"), MODEL, "staging", to=never, override_reason="hotfix"
    )
    assert (done.from_version, done.to_version) == (one, never)
    record = Ledger(registry, MODEL).records()[-1]
    assert record["override"] == {
        "reason": "hotfix",
        "gate": f"version {never} never held staging (per the ledger)",
        "access": "production",
    }
    assert record["approvals"] == [{"login": "carol", "state": "approved"}]


def spoofed_env(gh: FakeGitHub, run_id: int, actor: str = "alice") -> dict[str, str]:
    """What anyone can export: Actions' variables naming someone else's run, and a token."""
    return {
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTOR": actor,
        "GITHUB_RUN_ID": str(run_id),
        "GITHUB_SHA": SHA,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": gh.url,
        "GITHUB_TOKEN": "ghp_someone_elses",
    }


def test_an_actor_and_approvals_count_only_from_a_run_the_api_proves(
    registry: Registry, project: Path, gh: FakeGitHub
) -> None:
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    promote(registry, one, "staging")
    gh.set_token("ghp_someone_elses", "mallory", "pat")
    gh.set_permission(REPO, "alice", "admin")
    # Run 777's approval for production, long finished.
    finished = gh.add_workflow_run(REPO, workflow="promote.yml", head_sha=SHA, actor="alice")
    gh.add_run_approval(REPO, finished, "carol", environments=("production",))
    promote_one = ("promote", "--version", one, "--to", "production")
    code, err = mlgate(*promote_one, env=spoofed_env(gh, finished))
    assert code == 1 and f"workflow run {finished} is completed (success), not in progress" in err
    # A running run, but started by someone else, of another commit, or not in production.
    by_bob = gh.add_workflow_run(REPO, head_sha=SHA, conclusion=None, actor="bob")
    other_commit = gh.add_workflow_run(REPO, head_sha="b" * 40, conclusion=None, actor="alice")
    no_environment = gh.add_workflow_run(REPO, head_sha=SHA, conclusion=None, actor="alice")
    gh.add_run_job(REPO, no_environment, "build")
    forged = gh.add_workflow_run(REPO, head_sha=SHA, conclusion=None, actor="alice")
    gh.add_run_job(REPO, forged, environment="production", deployer="mallory")  # not Actions
    staging_only = gh.add_workflow_run(REPO, head_sha=SHA, conclusion=None, actor="alice")
    gh.add_run_job(REPO, staging_only, environment="staging")
    for run_id, reason in (
        (by_bob, f"workflow run {by_bob} was started by bob, not alice"),
        (other_commit, f"workflow run {other_commit} is of commit {'b' * 12}, not GITHUB_SHA"),
        (no_environment, "has no job deploying aaaaaaaaaaaa to the environment production"),
        (forged, "has no job deploying"),
        (staging_only, "has no job deploying"),
        (424242, "workflow run 424242 does not exist"),
    ):
        if run_id != 424242:
            gh.add_run_approval(REPO, run_id, "carol")
        code, err = mlgate(*promote_one, env=spoofed_env(gh, run_id))
        assert code == 1 and reason in err, (run_id, err)
    # Actions' variables without a token cannot be proven at all.
    code, err = mlgate(*promote_one, env=spoofed_env(gh, by_bob) | {"GITHUB_TOKEN": ""})
    assert code == 1 and "cannot be verified without a GitHub token" in err, err
    assert registry.alias(MODEL, "production") is None
    # The real thing: alice's running run, its job in production, approved by carol.
    real = gh.add_workflow_run(REPO, head_sha=SHA, conclusion=None, actor="alice")
    gh.add_run_job(REPO, real, environment="production")
    gh.add_run_approval(REPO, real, "carol")
    code, err = mlgate(*promote_one, env=spoofed_env(gh, real))
    assert code == 0, err
    assert Ledger(registry, MODEL).records()[-1]["actor"] == "alice"


def test_simultaneous_promoters_with_the_default_have_exactly_one_winner(
    registry: Registry, project: Path
) -> None:
    """Ten promoters started together; all but the first are held (SIGSTOP) until the first
    has promoted — what a loaded runner does to processes waiting for a CPU. Deciding by the
    alias read when each got going let a late one take the winner's version for "current"
    and win too; decided when started, exactly one wins."""
    import signal

    versions = []
    for index in range(10):
        version = new_version(registry, project, f"model {index}".encode())
        gate_and_bundle(registry, project, version)
        versions.append(version)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    racers = []
    for index, version in enumerate(versions):
        argv = [sys.executable, "-m", "mlgate", "promote", "--version", version, "--to", "staging"]
        racer = subprocess.Popen(
            argv, cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        if index:
            os.kill(racer.pid, signal.SIGSTOP)
        racers.append(racer)
    try:
        first = racers[0].wait(timeout=300)
    finally:
        for racer in racers[1:]:
            os.kill(racer.pid, signal.SIGCONT)
    results = [(first, racers[0].stderr.read() if racers[0].stderr else "")]
    results += [(r.wait(timeout=300), r.stderr.read() if r.stderr else "") for r in racers[1:]]
    winners = [v for v, (code, _) in zip(versions, results, strict=True) if code == 0]
    assert winners == [versions[0]], results
    for code, stderr in results[1:]:
        assert code == 1 and "Traceback" not in stderr, stderr
        # Refused at the end, or while another held the lock (it waits only so long).
        reasons = ("moved after this promotion was decided", "another promotion of")
        assert any(reason in stderr for reason in reasons), stderr
    assert registry.alias(MODEL, "staging") == versions[0]
    assert len(Ledger(registry, MODEL).records()) == 1


def test_history_marks_an_edited_record_and_promotion_refuses_a_broken_ledger(
    registry: Registry, project: Path
) -> None:
    one, two = new_version(registry, project, b"1"), new_version(registry, project, b"2")
    for version in (one, two):
        gate_and_bundle(registry, project, version)
        promote(registry, version, "staging", reason="tested")
    code, err = mlgate("history")
    assert code == 0, err
    # Someone with registry access rewrites who promoted version one, and why.
    key = "mlgate.ledger.000001"
    record = json.loads(registry.model_tags(MODEL)[key]) | {"actor": "mallory", "reason": "ok"}
    registry.set_model_tag(MODEL, key, json.dumps(record, sort_keys=True, separators=(",", ":")))
    from mlgate.cli import cli
    from tests.helpers import cli_runner

    shown = cli_runner().invoke(cli, ["history"])
    assert shown.exit_code == 1, shown.output
    lines = shown.stdout.splitlines()
    assert "by mallory" in lines[0] and "CHAIN BROKEN" in lines[1], lines
    assert "the ledger of fraud is broken: record 2" in shown.stderr
    three = new_version(registry, project, b"3")
    gate_and_bundle(registry, project, three)
    code, err = mlgate("promote", "--version", three, "--to", "staging")
    assert code == 1 and "ledger of fraud is broken at record 2" in err, err
    code, err = mlgate("rollback", "--stage", "staging")
    assert code == 1 and "ledger of fraud is broken at record 2" in err, err
    assert registry.alias(MODEL, "staging") == two
