"""A bundle and a promotion need evidence about *this* version under *this* policy: real sqlite
MLflow registry, real scikit-learn model versions, the real tests, quality, bench and scan
stages, real bundles; the CLI in subprocesses for its exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlgate import bundle, config, policy, promotion
from mlgate import evidence as ev
from mlgate.registry.ledger import Ledger
from mlgate.registry.mlflow_registry import Registry
from mlgate.stages.bench import ROUNDS_ARTIFACT, BenchStage
from mlgate.stages.bench_config import BenchConfig
from mlgate.stages.interface import RunContext
from mlgate.stages.quality.config import QualityConfig
from mlgate.stages.quality.stage import QualityStage
from mlgate.stages.scan.config import ScanConfig
from mlgate.stages.scan.stage import ScanStage
from tests.test_promotion import (
    CONFIG,
    MODEL,
    ROOT,
    evaluate,
    gate_and_bundle,
    make_model_template,
    make_project,
    new_version,
    promote,
)

BENCH_JSON = ROOT / "tests" / "data" / "bench" / "pytest-benchmark.json"


@pytest.fixture(scope="module")
def model_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_template: Path) -> Path:
    return make_project(tmp_path, monkeypatch, model_template)


@pytest.fixture
def registry(project: Path) -> Registry:
    return Registry.connect()


def with_config(project: Path, **changes: Any) -> Path:
    """The project's mlgate.yml: CONFIG with these top-level sections instead."""
    document = json.loads(json.dumps(CONFIG)) | changes
    (project / "mlgate.yml").write_text(json.dumps(document))
    return project / "mlgate.yml"


def make_bundle(registry: Registry, project: Path, version: str) -> tuple[Path, str]:
    return bundle.create(
        config.load(project / "mlgate.yml"),
        project / ".mlgate" / "verdict.json",
        project / ".mlgate" / "evidence",
        registry,
        MODEL,
        version,
        project / ".mlgate" / "bundle",
    )


def mlgate(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlgate", *args],
        cwd=project,
        # The mlgate under test (PYTHONPATH when set), not the one the virtualenv installed.
        env=os.environ | {"PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("mlgate:")]
    return line


# -- 1. the evidence must be about the bundled version -----------------------------------------


def test_a_version_no_stage_evaluated_gets_no_bundle(registry: Registry, project: Path) -> None:
    one = new_version(registry, project, b"one")
    two = new_version(registry, project, b"two")
    evaluate(registry, project, one)  # quality judged version one
    with pytest.raises(
        bundle.BundleError,
        match=rf"models:/{MODEL}/{two} gets no bundle: the quality stage evaluated "
        rf"models:/{MODEL}/{one} \(sha256:\w+\), not models:/{MODEL}/{two}",
    ):
        make_bundle(registry, project, two)
    assert not (project / ".mlgate" / "bundle").exists()
    refused = mlgate(project, "bundle", "create", "--version", two, "--no-register")
    assert refused.returncode == 2 and "gets no bundle" in one_line(refused)
    # Without a stage that loads a registered model, no version can get a bundle.
    with_config(project, stages={"tests": {"junit": "junit.xml"}})
    (project / ".mlgate" / "evidence" / "quality.json").unlink()
    evaluate(registry, project, one)
    with pytest.raises(bundle.BundleError, match=f"no stage's evidence evaluated models:/{MODEL}"):
        make_bundle(registry, project, one)


def test_a_bundle_relabelled_for_another_version_neither_verifies_nor_promotes(
    registry: Registry, project: Path
) -> None:
    one = new_version(registry, project, b"one")
    two = new_version(registry, project, b"two")
    evaluate(registry, project, one)
    directory, _ = make_bundle(registry, project, one)
    assert bundle.verify(directory, registry).outcome == "pass"
    # bundle.json rewritten (canonically) to name version two and its files.
    document = json.loads((directory / bundle.BUNDLE_FILE).read_bytes())
    files = registry.model_files(MODEL, two)
    document["model"] |= {
        "version": two,
        "run_id": registry.model_version(MODEL, two).run_id,
        "uri": f"models:/{MODEL}/{two}",
        "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files],
        "digest": registry.model_digest(MODEL, two),
    }
    raw = bundle.canonical(document)
    (directory / bundle.BUNDLE_FILE).write_bytes(raw)
    with pytest.raises(bundle.BundleError, match="its evidence is not about the bundled version"):
        bundle.verify(directory, registry)
    bundle.register(registry, directory, bundle.digest_of(raw))
    with pytest.raises(promotion.PromotionRefused, match="not about the bundled version"):
        promote(registry, two, "staging")
    assert registry.alias(MODEL, "staging") is None


# -- 2. judged by the promoting config ---------------------------------------------------------


def test_a_bundle_made_under_a_laxer_config_is_refused(registry: Registry, project: Path) -> None:
    one = new_version(registry, project, b"one")
    # Made where 5 failures are allowed: 2 failing tests pass that gate.
    lax = config.load(with_config(project, policy={"tests": {"max_failures": 5}}))
    gate_and_bundle(registry, project, one, failed=2)
    strict = config.load(with_config(project))
    assert strict.policy_digest != lax.policy_digest
    with pytest.raises(promotion.PromotionRefused) as refused:
        promote(registry, one, "staging")
    assert (
        f"under this configuration's policy ({strict.policy_digest}; the bundle was judged under "
        f"{lax.policy_digest}) the bundle's evidence is fail: tests.max_failures is fail"
    ) in str(refused.value)
    # A stage this config gates that the bundle lacks.
    two = new_version(registry, project, b"two")
    gate_and_bundle(registry, project, two)
    with_config(project, stages=CONFIG["stages"] | {"bench": {"json": "benchmark.json"}})
    with pytest.raises(promotion.PromotionRefused, match="the bundle has no bench evidence"):
        promote(registry, two, "staging")
    assert registry.alias(MODEL, "staging") is None
    with_config(project)
    assert promote(registry, two, "staging").to_version == two


# -- 3. promotion.require_model_scan ------------------------------------------------------------


def scan_evidence(registry: Registry, project: Path, version: str, *, registered: bool) -> None:
    """The real scan stage over the version's files: as the registered version itself
    (`models:/NAME/V`, which the stage records in data["model_targets"]), or as a local copy of
    its files, which stands for no registered version."""
    cfg = config.load(project / "mlgate.yml")
    if registered:
        target = f"models:/{MODEL}/{version}"
    else:
        files = project / f"scanned-{version}"
        registry.download_artifacts(
            registry.model_version(MODEL, version).run_id or "", "model", files
        )
        target = str(files)
    evidence_dir = project / ".mlgate" / "evidence"
    scanned = ScanStage().run(
        ScanConfig(models=[target], tracking_uri=registry.uri), RunContext(evidence_dir, cfg.digest)
    )
    assert scanned.status == "passed", scanned.reason
    assert bool(scanned.data.get("model_targets")) is registered
    ev.write(scanned, evidence_dir)
    policy.write(policy.evaluate(cfg, evidence_dir), project / ".mlgate" / "verdict.json")
    bundle.register(registry, *make_bundle(registry, project, version))


def test_require_model_scan_needs_a_passing_scan_of_the_promoted_version(
    registry: Registry, project: Path
) -> None:
    with_config(project, promotion=CONFIG["promotion"] | {"require_model_scan": True})
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    with pytest.raises(promotion.PromotionRefused, match="require_model_scan: the bundle has no"):
        promote(registry, one, "staging")
    scan_evidence(registry, project, one, registered=False)  # a path, not the version
    with pytest.raises(
        promotion.PromotionRefused,
        match=rf"the scan scanned no registered model, not models:/{MODEL}/{one}",
    ):
        promote(registry, one, "staging")
    assert registry.alias(MODEL, "staging") is None
    scan_evidence(registry, project, one, registered=True)
    assert promote(registry, one, "staging").to_version == one


def test_require_model_scan_is_in_the_config_schema() -> None:
    schema = config.json_schema()
    promotion_keys = schema["$defs"]["PromotionConfig"]["properties"]
    assert promotion_keys["require_model_scan"]["default"] is False
    assert config.MlgateConfig().promotion.require_model_scan is False


# -- 4. and 5. what a bundle holds ---------------------------------------------------------------


def test_the_bench_rounds_file_is_bundled_and_digested(registry: Registry, project: Path) -> None:
    cfg = config.load(
        with_config(project, stages=CONFIG["stages"] | {"bench": {"json": str(BENCH_JSON)}})
    )
    one = new_version(registry, project, b"one")
    # As `mlgate run` does: the evidence directory relative to the project.
    evidence_dir = Path(cfg.evidence_dir)
    bench_config = cfg.stage_config("bench")
    assert isinstance(bench_config, BenchConfig)
    benched = BenchStage().run(bench_config, RunContext(evidence_dir, cfg.digest))
    assert benched.status == "passed", benched.reason
    ev.write(benched, evidence_dir)
    evaluate(registry, project, one)
    directory, _ = make_bundle(registry, project, one)
    rounds = directory / bundle.EVIDENCE_DIR / ROUNDS_ARTIFACT
    assert ev.sha256_file(rounds) == ev.sha256_file(evidence_dir / ROUNDS_ARTIFACT)
    document = json.loads((directory / bundle.BUNDLE_FILE).read_bytes())
    (entry,) = [e for e in document["evidence"] if e["stage"] == "bench"]
    assert entry["artifacts"] == [ROUNDS_ARTIFACT]
    assert bundle.verify(directory, registry).outcome == "pass"
    # The bundled rounds are checked: changed, the bundle no longer verifies.
    rounds.write_bytes(b"\x1f\x8b")
    with pytest.raises(bundle.BundleError, match=rf"{ROUNDS_ARTIFACT}: sha256 differs"):
        bundle.verify(directory, registry)


def test_missing_evidence_or_artifact_gets_no_bundle(registry: Registry, project: Path) -> None:
    with_config(project, stages=CONFIG["stages"] | {"bench": {"json": str(BENCH_JSON)}})
    one = new_version(registry, project, b"one")
    evidence_dir = project / ".mlgate" / "evidence"
    cfg = config.load(project / "mlgate.yml")
    bench_config = cfg.stage_config("bench")
    assert isinstance(bench_config, BenchConfig)
    ev.write(BenchStage().run(bench_config, RunContext(evidence_dir, cfg.digest)), evidence_dir)
    evaluate(registry, project, one)
    output = project / ".mlgate" / "bundle"
    output.mkdir(parents=True)
    (output / "kept").write_text("an earlier bundle")
    # An artifact the bench evidence lists is gone.
    (evidence_dir / ROUNDS_ARTIFACT).unlink()
    with pytest.raises(bundle.BundleError, match=rf"lists {ROUNDS_ARTIFACT}, which is missing"):
        make_bundle(registry, project, one)
    # An evidence file the gate judged is gone.
    evaluate(registry, project, one)
    ev.write(BenchStage().run(bench_config, RunContext(evidence_dir, cfg.digest)), evidence_dir)
    policy.write(policy.evaluate(cfg, evidence_dir), project / ".mlgate" / "verdict.json")
    (evidence_dir / "bench.json").unlink()
    with pytest.raises(bundle.BundleError, match=r"bench\.json: the gate judged it and it is"):
        make_bundle(registry, project, one)
    assert [p.name for p in output.iterdir()] == ["kept"]  # nothing written
    refused = mlgate(project, "bundle", "create", "--version", one, "--no-register")
    assert refused.returncode == 2 and "the gate judged it and it is missing" in one_line(refused)


# -- 6. and 7. config bounds and exit codes ------------------------------------------------------


def test_an_absurd_bundle_age_is_a_config_error(project: Path) -> None:
    with_config(project, promotion=CONFIG["promotion"] | {"max_bundle_age_hours": 1e308})
    checked = mlgate(project, "config", "check")
    assert checked.returncode == 2
    assert "promotion.max_bundle_age_hours: Input should be less than or equal to 87660" in (
        one_line(checked)
    )
    # The largest allowed age works where the date is computed.
    with_config(project, promotion=CONFIG["promotion"] | {"max_bundle_age_hours": 87660})
    assert mlgate(project, "config", "check").returncode == 0


def test_the_largest_bundle_age_promotes(registry: Registry, project: Path) -> None:
    with_config(project, promotion=CONFIG["promotion"] | {"max_bundle_age_hours": 87660})
    one = new_version(registry, project, b"one")
    gate_and_bundle(registry, project, one)
    assert promote(registry, one, "staging").to_version == one
    assert len(Ledger(registry, MODEL).records()) == 1


def test_promote_without_a_bundle_is_a_refusal(registry: Registry, project: Path) -> None:
    one = new_version(registry, project)
    refused = mlgate(project, "promote", "--version", one, "--to", "staging")
    assert refused.returncode == 1, refused.stderr  # README: 1 refused
    assert "refused: " in one_line(refused) and "has no evidence bundle" in one_line(refused)


def test_bundle_verify_of_no_bundle_is_bad_input(project: Path) -> None:
    missing = mlgate(project, "bundle", "verify", "no-such-bundle")
    assert missing.returncode == 2, missing.stderr  # README: 2 bad input
    assert "no-such-bundle: no bundle there" in one_line(missing)
    (project / "empty").mkdir()
    assert mlgate(project, "bundle", "verify", "empty").returncode == 2


# -- 8. waivers and baselines come from the promoting checkout, not from the bundle -------------

SYSTEM = f"{os.system.__module__}.system"
PAYLOAD_FINDINGS = [f"fickling:{SYSTEM}", f"pickle:{SYSTEM}"]  # both engines see the payload
PR_WAIVERS = {
    "waivers": [
        {
            "id": finding,
            "scope": {"path": "*model.bin"},
            "reason": "added by the pull request",
            "owner": "@someone",
            "expires": "2999-12-31",
            "allow_critical": True,
        }
        for finding in PAYLOAD_FINDINGS
    ]
}


class _RunsShellWhenUnpickled:
    """Pickles as a call to os.system; never unpickle what it makes."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo pwned",))


def payload_version(registry: Registry, project: Path) -> str:
    """A version whose files carry a pickle that runs a shell command: critical findings."""
    import pickle

    return new_version(registry, project, pickle.dumps(_RunsShellWhenUnpickled()))


def gate_with_scan(registry: Registry, project: Path, version: str) -> ev.Evidence:
    """As a pull request's `mlgate run` with the project's mlgate.yml: the real scan stage, the
    tests and quality stages (quality's model guard consults the scan evidence), a passing
    gate, and the registered bundle."""
    cfg = config.load(project / "mlgate.yml")
    evidence_dir = project / ".mlgate" / "evidence"
    scan_config = cfg.stage_config("scan")
    assert isinstance(scan_config, ScanConfig)
    scanned = ScanStage().run(scan_config, RunContext(evidence_dir, cfg.digest))
    assert scanned.status == "passed", scanned.reason
    ev.write(scanned, evidence_dir)
    evaluate(registry, project, version)  # tests, and the candidate alias quality loads
    quality = cfg.stage_config("quality")
    assert isinstance(quality, QualityConfig)
    guarded = RunContext(evidence_dir, cfg.digest, scan_config, cfg.stage_policy("scan"))
    ev.write(QualityStage().run(quality, guarded), evidence_dir)
    gated = policy.evaluate(cfg, evidence_dir)
    assert gated.outcome == "pass", [r.reason for r in gated.rules if r.outcome != "pass"]
    policy.write(gated, project / ".mlgate" / "verdict.json")
    bundle.register(registry, *make_bundle(registry, project, version))
    return scanned


def test_a_waiver_only_the_bundle_recorded_does_not_promote(
    registry: Registry, project: Path
) -> None:
    one = payload_version(registry, project)
    scan = {"models": [f"models:/{MODEL}/{one}"], "tracking_uri": registry.uri}
    # The pull request's checkout: its waivers file waives the critical pickle payload.
    (project / "pr-waivers.yml").write_text(json.dumps(PR_WAIVERS))
    with_config(project, stages=CONFIG["stages"] | {"scan": scan | {"waivers": "pr-waivers.yml"}})
    scanned = gate_with_scan(registry, project, one)
    critical = [f for f in scanned.findings if f.severity == "critical"]
    assert sorted(f.id for f in critical) == PAYLOAD_FINDINGS
    assert all(f.waived_by for f in critical)
    # The promoting checkout has no waivers: the bundle's own waivers do not count.
    (project / "pr-waivers.yml").unlink()
    with_config(project, stages=CONFIG["stages"] | {"scan": scan})
    with pytest.raises(promotion.PromotionRefused) as refused:
        promote(registry, one, "staging")
    assert "scan.findings is fail: scan: 2 findings at or above the policy's severity" in str(
        refused.value
    )
    lost = ", ".join(PAYLOAD_FINDINGS)
    assert f"waived only by the bundle's own waivers, not by the promoting checkout's: {lost}" in (
        str(refused.value)
    )
    assert registry.alias(MODEL, "staging") is None
    # The promoting checkout's own waivers file (the default one) waives them: promoted.
    (project / ".mlgate" / "waivers.yml").write_text(json.dumps(PR_WAIVERS))
    assert promote(registry, one, "staging").to_version == one


def test_a_baseline_only_the_bundle_recorded_does_not_promote(
    registry: Registry, project: Path
) -> None:
    one = payload_version(registry, project)
    scan = {"models": [f"models:/{MODEL}/{one}"], "tracking_uri": registry.uri}
    # The pull request's "base branch" scan evidence lists the payload's findings: under
    # new_only they are not new, and the pull request's gate passes.
    cfg = config.load(with_config(project, stages=CONFIG["stages"] | {"scan": scan}))
    scan_config = cfg.stage_config("scan")
    assert isinstance(scan_config, ScanConfig)
    ev.write(
        ScanStage().run(scan_config, RunContext(project / "base", cfg.digest)), project / "base"
    )
    with_config(
        project,
        stages=CONFIG["stages"] | {"scan": scan | {"baseline": "base/scan.json"}},
        policy={"scan": {"new_only": True}},
    )
    scanned = gate_with_scan(registry, project, one)
    assert len(scanned.data["baseline"]["fingerprints"]) >= 2
    # Promoted with the same config, the bundle's baseline is not trusted: every finding counts.
    with pytest.raises(promotion.PromotionRefused, match="scan: 2 findings at or above") as why:
        promote(registry, one, "staging")
    assert "not only new ones: the bundle's baseline is not trusted at promotion" in str(why.value)
    assert registry.alias(MODEL, "staging") is None
