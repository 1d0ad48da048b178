"""Evidence bundles: one canonical JSON document tying a model version to the verdict about it.

A bundle names the model version and the sha256 of its files, the commit and workflow run, the
data digests, the whole configuration (so the verdict can be re-evaluated), the verdict with
every rule, the digest of every evidence file and of the files those list, and tool versions.
It is written canonically (sorted keys, no spaces), so the file's sha256 is the bundle's
identity. Verifying recomputes every digest and re-evaluates the verdict from the evidence;
the first difference is the error, naming the path that differs.

Layout, on disk and in the registry (the model version's run, `mlgate/bundles/<id>/`):

    bundle.json
    evidence/<stage>.json and the files each lists (samples, SARIF, SBOM)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mlgate import __version__, bundle_subject, config, policy
from mlgate import evidence as ev
from mlgate.bundle_shape import BundleShape
from mlgate.errors import ConfigError, MlgateError
from mlgate.verdict import Verdict

if TYPE_CHECKING:
    from mlgate.registry.mlflow_registry import Registry

SCHEMA = "mlgate.bundle/1"
BUNDLE_FILE = "bundle.json"
EVIDENCE_DIR = "evidence"
# The model version tag holding the digest of its latest bundle, and where that bundle is.
DIGEST_TAG = "mlgate.bundle"
PATH_TAG = "mlgate.bundle.path"


class BundleError(MlgateError):
    """A bundle that cannot be made, read or verified; the message names what differs."""


@dataclass(frozen=True)
class Verified:
    document: dict[str, Any]
    digest: str
    outcome: str

    @property
    def model(self) -> dict[str, Any]:
        model: dict[str, Any] = self.document["model"]
        return model

    @property
    def created_at(self) -> datetime:
        """When the bundle was made; an unreadable time counts as the oldest (fail closed)."""
        try:
            made = datetime.fromisoformat(str(self.document.get("created_at")))
        except ValueError:
            made = datetime.min
        return made if made.tzinfo else datetime.min.replace(tzinfo=timezone.utc)


def canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def create(
    cfg: config.MlgateConfig,
    verdict_path: Path,
    evidence_dir: Path,
    registry: Registry,
    name: str,
    version: str,
    output: Path,
) -> tuple[Path, str]:
    """Write the bundle directory `output` (bundle.json + evidence); its path and digest.
    Everything is checked before anything is written: a refused bundle leaves `output` as it was."""
    from mlgate.registry.mlflow_registry import files_digest

    verdict = policy.read(verdict_path)
    if verdict.config_digest != cfg.digest:
        raise BundleError(
            f"{verdict_path}: the verdict was made with another configuration: run 'mlgate gate'"
        )
    found, broken = ev.scan(evidence_dir)
    if broken:
        path, reason = broken[0]
        raise BundleError(f"{path}: {reason}")
    _check_judged(verdict, found, evidence_dir)
    model_version = registry.model_version(name, version)
    version = model_version.version  # as the registry spells it ("2", not "02")
    files = registry.model_files(name, version)
    problem = bundle_subject.mismatch(
        {stage: evidence for stage, (_, evidence) in found.items()},
        name,
        version,
        files_digest(files),
    )
    if problem:
        raise BundleError(f"models:/{name}/{version} gets no bundle: {problem}")
    copies: list[tuple[Path, str]] = []  # (source, path inside the bundle's evidence directory)
    evidence_entries = []
    tools: dict[str, str] = {}
    for stage, (path, stage_evidence) in sorted(found.items()):
        bundled = _artifacts(path, stage_evidence)
        copies += [(path, path.name), *bundled]
        evidence_entries.append(
            {
                "stage": stage,
                "file": path.name,
                "sha256": ev.sha256_file(path),
                "artifacts": [inside for _, inside in bundled],
            }
        )
        tools |= stage_evidence.provenance.tool_versions
    provenance = next(iter(found.values()))[1].provenance if found else None
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "model": {
            "name": name,
            "version": version,
            "uri": f"models:/{name}/{version}",
            "run_id": model_version.run_id,
            "source": model_version.source,
            "files": [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files],
            "digest": files_digest(files),
        },
        "source": {
            "repository": os.environ.get("GITHUB_REPOSITORY")
            or (provenance.repository if provenance else None),
            "git_sha": verdict.commit,
            "ref": provenance.ref if provenance else None,
            "workflow_run": verdict.run,
            "run_url": _run_url(),
        },
        "data": [_data_entry(Path(p)) for p in cfg.promotion.data],
        "config": {
            "digest": cfg.digest,
            "policy_digest": cfg.policy_digest,
            "document": cfg.model_dump(mode="json", by_alias=True),
        },
        "verdict": verdict.model_dump(mode="json"),
        "evidence": evidence_entries,
        "tools": dict(sorted(tools.items())) | {"mlgate": __version__},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    raw = canonical(document)
    _write(output, raw, copies)
    return output, digest_of(raw)


def verify(
    directory: Path, registry: Registry | None = None, expected_digest: str | None = None
) -> Verified:
    """Recompute every digest and re-evaluate the verdict; BundleError names what differs."""
    path = directory / BUNDLE_FILE if directory.is_dir() else directory
    directory = path.parent
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror or exc}") from None
    digest = digest_of(raw)
    if expected_digest and digest != expected_digest:
        raise BundleError(f"{path}: sha256 is {digest}, the registry recorded {expected_digest}")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: not a bundle (not JSON: {exc})") from None
    except RecursionError:
        raise BundleError(f"{path}: not a bundle (nested too deeply)") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BundleError(f"{path}: not an mlgate bundle (schema is not {SCHEMA})")
    if canonical(document) != raw:
        raise BundleError(f"{path}: not in canonical form: edited after it was made")
    where = f"{path}: malformed bundle"
    try:  # the shape first: a crafted bundle is refused in one line, never a traceback
        shape = BundleShape.model_validate(document)
        where += ": verdict"
        verdict = Verdict.model_validate(document["verdict"])
        cfg = config.parse(shape.config.document, f"{path} config")
    except ValidationError as exc:
        raise BundleError(config.describe(exc, where)) from None
    except ConfigError as exc:
        raise BundleError(str(exc)) from None
    entries, model = shape.evidence, shape.model
    if cfg.digest != shape.config.digest or cfg.digest != verdict.config_digest:
        raise BundleError(f"{path}: config: its digest does not match the verdict's")
    evidence_dir = directory / EVIDENCE_DIR
    on_disk = sorted(p.name for p in evidence_dir.glob("*.json"))
    listed = sorted(e.file for e in entries)
    if on_disk != listed:
        raise BundleError(f"{evidence_dir}: holds {on_disk}, the bundle lists {listed}")
    for entry in entries:
        file = evidence_dir / entry.file
        try:
            actual = ev.sha256_file(file)
            evidence_read = ev.read(file)
        except OSError as exc:
            raise BundleError(f"{file}: cannot read: {exc.strerror or exc}") from None
        except MlgateError as exc:
            raise BundleError(str(exc)) from None
        if actual != entry.sha256:
            raise BundleError(f"{file}: sha256 {actual}, the bundle says {entry.sha256}")
        recorded = {a.path: a.sha256 for a in evidence_read.artifacts}
        for name in entry.artifacts:
            listed_file = _artifact_path(evidence_dir, name)
            if name not in recorded or listed_file is None or not listed_file.is_file():
                raise BundleError(f"{file}: lists {name}, which is missing from the bundle")
            if ev.sha256_file(listed_file) != recorded[name]:
                raise BundleError(f"{listed_file}: sha256 differs from {file}'s record")
    again = policy.evaluate(
        cfg, evidence_dir, commit=verdict.commit, judge_commit=verdict.commit is not None
    )
    before = [(r.rule, r.outcome) for r in verdict.rules]
    after = [(r.rule, r.outcome) for r in again.rules]
    if again.outcome != verdict.outcome or before != after:
        changed = next(
            (f"{a[0]} is {a[1]} now" for a, b in zip(after, before, strict=False) if a != b),
            f"{len(after)} rules now, {len(before)} then",
        )
        raise BundleError(
            f"{path}: the verdict re-evaluated from the evidence is {again.outcome}, the bundle "
            f"says {verdict.outcome} ({changed})"
        )
    found, _ = ev.scan(evidence_dir)
    problem = bundle_subject.mismatch(
        {stage: evidence for stage, (_, evidence) in found.items()},
        model.name,
        model.version,
        model.digest,
    )
    if problem:
        raise BundleError(f"{path}: its evidence is not about the bundled version: {problem}")
    if registry is not None:
        from mlgate.registry.mlflow_registry import files_digest

        files = registry.model_files(model.name, model.version)
        if files_digest(files) != model.digest:
            recorded = {f.path: f.sha256 for f in model.files}
            now = {f.path: f.sha256 for f in files}
            differs = sorted(
                p for p in recorded.keys() | now.keys() if recorded.get(p) != now.get(p)
            )
            raise BundleError(
                f"models:/{model.name}/{model.version}: model files changed since the "
                f"bundle: {differs[0] if differs else '(file list)'}"
            )
    return Verified(document=document, digest=digest, outcome=verdict.outcome)


def register(registry: Registry, directory: Path, digest: str) -> str:
    """Store the bundle with its model version: the run's artifacts, and the digest as a tag."""
    document = json.loads((directory / BUNDLE_FILE).read_bytes())
    name, version = document["model"]["name"], document["model"]["version"]
    run_id = document["model"]["run_id"]
    if not run_id:
        raise BundleError(f"models:/{name}/{version} has no run to store the bundle with")
    artifact_path = f"mlgate/bundles/{digest.removeprefix('sha256:')[:16]}"
    registry.log_artifacts(run_id, directory, artifact_path)
    registry.set_version_tag(name, version, PATH_TAG, artifact_path)
    registry.set_version_tag(name, version, DIGEST_TAG, digest)
    return artifact_path


def fetch(registry: Registry, name: str, version: str, destination: Path) -> tuple[Path, str]:
    """The bundle registered with a model version, downloaded; its directory and the digest the
    registry recorded."""
    model_version = registry.model_version(name, version)
    digest = model_version.tags.get(DIGEST_TAG)
    artifact_path = model_version.tags.get(PATH_TAG)
    if not digest or not artifact_path or not model_version.run_id:
        raise BundleError(
            f"models:/{name}/{version} has no evidence bundle: run the gate and "
            "'mlgate bundle create --register' for it"
        )
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    got = registry.download_artifacts(model_version.run_id, artifact_path, destination)
    return got, digest


def _check_judged(
    verdict: Verdict, found: dict[str, tuple[Path, ev.Evidence]], evidence_dir: Path
) -> None:
    """The evidence is exactly what the gate judged: every file it judged is there, unchanged,
    and nothing was added."""
    judged = {Path(ref.path).name: ref.sha256 for ref in verdict.evidence}
    present = {path.name: path for path, _ in found.values()}
    missing = sorted(judged.keys() - present.keys())
    if missing:
        raise BundleError(
            f"{evidence_dir / missing[0]}: the gate judged it and it is missing: run the stage "
            "and 'mlgate gate' again"
        )
    for name, path in sorted(present.items()):
        if judged.get(name) != ev.sha256_file(path):
            raise BundleError(f"{path}: changed since the gate judged it: run 'mlgate gate' again")


def _artifacts(path: Path, evidence: ev.Evidence) -> list[tuple[Path, str]]:
    """The files an evidence document lists that go into the bundle, as (source, path inside the
    evidence directory): those the stage wrote into its directory, each of which must exist with
    the digest the stage recorded. Inputs it read (a JUnit report) stay pinned by their digest in
    the evidence document: on another runner (the bundle job) they need not exist, and where
    they do, they must not have changed."""
    bundled = []
    for artifact in evidence.artifacts:
        if artifact.input:
            read = Path(artifact.path)
            if read.is_file() and ev.sha256_file(read) != artifact.sha256:
                raise BundleError(f"{read}: sha256 differs from {path}'s record of it")
            continue
        inside = _artifact_path(path.parent, artifact.path)
        if inside is None or not inside.is_file():
            raise BundleError(
                f"{path}: lists {artifact.path}, which is missing: run the stage and 'mlgate gate' "
                "again"
            )
        if ev.sha256_file(inside) != artifact.sha256:
            raise BundleError(f"{inside}: sha256 differs from {path}'s record of {artifact.path}")
        bundled.append((inside, artifact.path))
    return bundled


def _write(output: Path, raw: bytes, copies: list[tuple[Path, str]]) -> None:
    """bundle.json and the evidence files, written beside `output` and then moved in its place."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for source, inside in copies:
            target = staging / EVIDENCE_DIR / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        (staging / EVIDENCE_DIR).mkdir(exist_ok=True)
        (staging / BUNDLE_FILE).write_bytes(raw)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise BundleError(f"{output}: cannot write the bundle: {exc.strerror or exc}") from None


def _artifact_path(base: Path, name: str) -> Path | None:
    """An evidence artifact's file, only inside `base` (a bundle never reaches outside)."""
    candidate = (base / name).resolve()
    try:
        candidate.relative_to(base.resolve())
    except ValueError:
        return None
    return candidate


def _data_entry(path: Path) -> dict[str, str]:
    try:
        return {"path": str(path), "sha256": ev.sha256_file(path)}
    except OSError as exc:
        raise BundleError(f"{path}: data file: {exc.strerror or exc}") from None


def _run_url() -> str | None:
    from mlgate import actions_env

    return actions_env.run_url()
