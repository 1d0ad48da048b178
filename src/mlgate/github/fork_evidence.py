"""Fork pull requests: the evidence a pull request's run uploaded, taken into a workflow_run job.

A fork's `pull_request` run gets a read-only token, so a second workflow, on `workflow_run` of
the first (base repository, the default branch's workflow file, a write token), publishes.
Everything it reads from the fork's run is untrusted, so this module:

- finds the pull request through the API from the run's head repository, branch and commit
  (GitHub leaves `workflow_run.pull_requests` empty for forks) and requires its head to be the
  run's commit, else nothing is published on it (a stale run must not replace a newer verdict),
  nor when another repository's open pull request has that commit at its head (checks belong
  to the commit: they would replace that pull request's own);
- downloads the run's report artifact through the API and takes from it only what mlgate
  writes: `<member_dir>/<stage>.json` evidence and the files that evidence lists. A name that
  climbs out, is absolute or holds a control character, a link, a file over the size limit,
  a name twice (spelled apart or in another case), an encrypted member, a compression other
  than upload-artifact's (stored, deflated), an archive zipfile cannot read or one with no
  mlgate evidence refuses the whole artifact (`EvidenceRefused`);
- replaces what the fork decides that the base branch should: the scan evidence's waivers
  become the base branch's (github.base_config), its baseline is dropped (under `new_only`
  every finding then counts, and the reason says so), and no other evidence keeps a waiver
  mark.

The gate then judges the evidence with the base branch's config and policy; its commit check
refuses evidence made for another commit than the run's.
"""

from __future__ import annotations

import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

from mlgate import artifact_paths
from mlgate import evidence as ev
from mlgate.errors import EvidenceError, MlgateError
from mlgate.github.artifacts import (
    UNREADABLE_ZIP,
    declared_entries,
    download_archive,
    named_artifact,
    staged,
)
from mlgate.stages.scan.rules import without_baseline

if TYPE_CHECKING:
    from github.Repository import Repository

    from mlgate.waivers import Waiver

MAX_MEMBERS = 1_000
MAX_FILE_BYTES = 32 * 1024 * 1024  # one evidence document or sample file
MAX_TOTAL_BYTES = 128 * 1024 * 1024
_CHUNK = 1024 * 1024
_SCAN = "scan"
# What actions/upload-artifact writes; other methods are more decompressors to trust.
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_ENCRYPTED = 0x1


class NotPublishable(MlgateError):
    """No pull request this run's verdict may be published on: nothing is published."""

    exit_code = 1


class EvidenceRefused(MlgateError):
    """The run's artifact is not mlgate evidence that may be judged: a failing check says why."""

    exit_code = 1


@dataclass(frozen=True)
class TriggeringRun:
    """The pull request run a workflow_run event is about, as GitHub's payload names it."""

    id: int
    head_sha: str
    head_branch: str
    head_repository: str  # owner/name; a fork's differs from the base repository

    @property
    def head_owner(self) -> str:
        return self.head_repository.split("/")[0]


def triggering_run(payload: dict[str, Any]) -> TriggeringRun:
    """The run a workflow_run payload names; an MlgateError (bad input: nothing published)
    naming the first missing or malformed field."""
    run = payload.get("workflow_run")
    if not isinstance(run, dict):
        raise MlgateError("the workflow_run event payload has no workflow_run object")
    head = run.get("head_repository")
    fields = {
        "id": run.get("id"),
        "head_sha": run.get("head_sha"),
        "head_branch": run.get("head_branch"),
        "head_repository.full_name": head.get("full_name") if isinstance(head, dict) else None,
    }
    for name, value in fields.items():
        usable = isinstance(value, int) if name == "id" else isinstance(value, str) and value
        if not usable or isinstance(value, bool):
            raise MlgateError(
                f"the workflow_run event payload has no usable workflow_run.{name}: "
                "nothing published"
            )
    sha = str(fields["head_sha"]).lower()
    if len(sha) != 40 or not all(c in "0123456789abcdef" for c in sha):
        raise MlgateError(f"workflow_run.head_sha {sha[:50]!r} is not a commit: nothing published")
    full_name = str(fields["head_repository.full_name"])
    if full_name.count("/") != 1:
        raise MlgateError(f"workflow_run.head_repository.full_name {full_name!r} is malformed")
    return TriggeringRun(int(str(fields["id"])), sha, str(fields["head_branch"]), full_name)


@dataclass(frozen=True)
class ResolvedPull:
    number: int
    base_ref: str  # the branch it would merge into: its config judges


def resolve_pull(repo: Repository, run: TriggeringRun, base_repository: str) -> ResolvedPull:
    """The open pull request whose head is the run's repository, branch and
    commit. NotPublishable when there is none, more than one, or its head has moved on, and
    for a fork's run when another repository's open pull request is at that commit too."""
    from mlgate.github.client import with_retry

    def open_pulls() -> list[Any]:
        head = f"{run.head_owner}:{run.head_branch}"
        found = repo.get_pulls(state="open", head=head)
        return [
            pull
            for pull in found
            if pull.head.repo is not None
            and pull.head.repo.full_name.lower() == run.head_repository.lower()
        ]

    where = f"{run.head_repository}:{run.head_branch}"
    pulls = with_retry(open_pulls, f"listing pull requests from {where}")
    if not pulls:
        raise NotPublishable(f"no open pull request from {where}: nothing published")
    if len(pulls) > 1:
        numbers = ", ".join(f"#{p.number}" for p in pulls)
        raise NotPublishable(
            f"several open pull requests from {where} ({numbers}): nothing published"
        )
    pull = pulls[0]
    if pull.head.sha.lower() != run.head_sha:
        raise NotPublishable(
            f"pull request #{pull.number} is now at {pull.head.sha[:12]}, the run's evidence is "
            f"about {run.head_sha[:12]}: nothing published on it (the newer run reports)"
        )
    from_fork = run.head_repository.lower() != base_repository.lower()
    sharing = from_fork and with_retry(
        lambda: _others_at(repo, run), f"listing pull requests at {where}"
    )
    if sharing:
        # Checks belong to the commit, not the pull request: the newest 'mlgate' check on it
        # is what every pull request at that commit requires. Any commit can be pushed to a
        # fork, so fork-made evidence would replace another pull request's own verdict.
        numbers = ", ".join(f"#{p.number}" for p in sharing)
        raise NotPublishable(
            f"commit {run.head_sha[:12]} is also the head of pull request {numbers} from "
            f"another repository: a verdict on {run.head_repository}'s evidence would replace "
            "its checks; nothing published"
        )
    return ResolvedPull(int(pull.number), str(pull.base.ref))


def _others_at(repo: Repository, run: TriggeringRun) -> list[Any]:
    """Open pull requests from another head repository than the run's, at the run's commit."""
    return [
        pull
        for pull in repo.get_pulls(state="open")
        if pull.head.sha.lower() == run.head_sha
        and (
            pull.head.repo is None
            or pull.head.repo.full_name.lower() != run.head_repository.lower()
        )
    ]


def fetch(
    repo: Repository,
    run: TriggeringRun,
    artifact_name: str,
    member_dir: str,
    destination: Path,
    waivers: list[Waiver],
) -> list[str]:
    """Download the run's artifact and take its evidence into `destination` (its previous
    contents replaced), under the base branch's `waivers` (see `take`); the names taken,
    relative to `destination`."""
    from mlgate.github.client import NotPermitted, Rejected, Unreachable, with_retry

    what = f"artifact {artifact_name!r} of run {run.id}"
    try:
        workflow_run = with_retry(lambda: repo.get_workflow_run(run.id), f"reading run {run.id}")
        if workflow_run.head_sha.lower() != run.head_sha:
            raise EvidenceRefused(f"run {run.id} is not about commit {run.head_sha[:12]}")
        artifact = with_retry(lambda: named_artifact(workflow_run, artifact_name), what)
        if artifact is None:
            raise EvidenceRefused(f"run {run.id} has no artifact named {artifact_name!r}")
        if artifact.expired:
            raise EvidenceRefused(f"{what} has expired")
        with tempfile.TemporaryFile() as archive:
            with_retry(lambda: download_archive(repo, artifact, archive), f"downloading {what}")
            return take(archive, destination, member_dir, what, waivers)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise EvidenceRefused(f"{what}: {exc}") from None
    except MlgateError as exc:  # artifacts.BaselineError: a download refused or too large
        if isinstance(exc, EvidenceRefused):
            raise
        raise EvidenceRefused(str(exc)) from None


def take(
    archive: IO[bytes], destination: Path, member_dir: str, what: str, waivers: list[Waiver]
) -> list[str]:
    """Extract the evidence documents under `member_dir` and the files they list, refusing the
    whole archive for anything hostile (see the module docstring), with the base branch's
    trust applied (`with_base_trust`, its `waivers`) before they replace `destination`: it
    never holds what the fork decided."""
    prefix = PurePosixPath(member_dir)
    if (declared_entries(archive) or 0) > MAX_MEMBERS:  # before zipfile reads them all
        raise EvidenceRefused(f"{what} holds more than {MAX_MEMBERS} files")
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = _checked_members(bundle, what)
            documents = {
                name: info
                for name, info in members.items()
                if PurePosixPath(name).parent == prefix
                and PurePosixPath(name).suffix == ".json"
                and not info.is_dir()
            }
            with staged(destination, ".fork-evidence-") as staging:
                parsed = _take_documents(bundle, documents, staging, what)
                listed = _take_listed(bundle, members, prefix, staging, parsed, what)
                for document in parsed.values():
                    trusted = with_base_trust(document, waivers)
                    if trusted is not document:
                        ev.write(trusted, staging)
                taken = list(parsed) + listed
    except UNREADABLE_ZIP as exc:
        raise EvidenceRefused(f"{what} is not a readable zip archive: {exc}") from None
    return taken


def _checked_members(bundle: zipfile.ZipFile, what: str) -> dict[str, zipfile.ZipInfo]:
    infos = bundle.infolist()
    if len(infos) > MAX_MEMBERS:
        raise EvidenceRefused(f"{what} holds more than {MAX_MEMBERS} files")
    members: dict[str, zipfile.ZipInfo] = {}
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        refusal = artifact_paths.lexical_refusal(name) or _control_refusal(name)
        if refusal is not None:
            raise EvidenceRefused(f"{what} holds an unsafe name {name[:200]!r}: {refusal}")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise EvidenceRefused(f"{what} holds a link {name[:200]!r}: links are not taken")
        if info.flag_bits & _ENCRYPTED:
            raise EvidenceRefused(
                f"{what} holds {name[:200]!r} encrypted: encrypted members are not taken"
            )
        if info.compress_type not in _COMPRESSIONS:
            raise EvidenceRefused(
                f"{what} holds {name[:200]!r} compressed with method {info.compress_type}: "
                f"only {' or '.join(_COMPRESSIONS.values())} members are taken"
            )
        if info.file_size > MAX_FILE_BYTES:
            raise EvidenceRefused(
                f"{what} holds {name[:200]!r} of {info.file_size} bytes, more than the "
                f"{MAX_FILE_BYTES} allowed for one file"
            )
        # One file however spelled ('a//b', 'a/./b', 'a/') and in any case or Unicode form
        # (a case-insensitive or normalising file system would make them one).
        key = str(PurePosixPath(name))
        folded = unicodedata.normalize("NFC", key).casefold()
        if folded in seen:
            raise EvidenceRefused(f"{what} holds {name[:200]!r} twice")
        seen.add(folded)
        members[key] = info
    if sum(info.file_size for info in infos) > MAX_TOTAL_BYTES:
        raise EvidenceRefused(f"{what} expands beyond {MAX_TOTAL_BYTES} bytes")
    return members


def _control_refusal(name: str) -> str | None:
    """Why a name holding a line break or other control character is refused: the names taken
    are logged by this trusted job, and a line of them starting '::' would be a workflow
    command."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
        return "a control character or line break"
    return None


def _take_documents(
    bundle: zipfile.ZipFile, documents: dict[str, zipfile.ZipInfo], staging: Path, what: str
) -> dict[str, ev.Evidence]:
    """Each document, parsed once: by its file name in `staging`."""
    taken = {}
    for name, info in sorted(documents.items()):
        target = staging / PurePosixPath(name).name
        _extract(bundle, info, target, what)
        try:
            document = ev.read(target)
        except EvidenceError as exc:
            raise EvidenceRefused(f"{what}: {name} is not mlgate evidence: {exc}") from None
        if document.stage != target.stem:
            raise EvidenceRefused(f"{what}: {name} holds evidence of stage {document.stage!r}")
        taken[target.name] = document
    if not taken:
        raise EvidenceRefused(f"{what} holds no mlgate evidence (<dir>/<stage>.json)")
    return taken


def _take_listed(
    bundle: zipfile.ZipFile,
    members: dict[str, zipfile.ZipInfo],
    prefix: PurePosixPath,
    staging: Path,
    documents: dict[str, ev.Evidence],
    what: str,
) -> list[str]:
    """The files the evidence lists as written by its stage (samples, SARIF), where present;
    the reporters still check each one's digest before reading it."""
    taken = []
    for document in documents.values():
        for listed in document.artifacts:
            if listed.input or artifact_paths.lexical_refusal(listed.path) is not None:
                continue
            info = members.get(str(prefix / listed.path))
            target = staging.joinpath(*PurePosixPath(listed.path).parts)
            if info is None or info.is_dir() or target.exists():
                continue
            _extract(bundle, info, target, what)
            taken.append(listed.path)
    return taken


def _extract(bundle: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, what: str) -> None:
    """Copy one member, counting the bytes really written (zip sizes are claims)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sink = target.open("xb")
    except (FileExistsError, NotADirectoryError):  # 'a' taken as a file, now 'a/b'
        raise EvidenceRefused(
            f"{what} holds {info.filename[:200]!r}: it cannot be placed where another file "
            "it holds already is"
        ) from None
    written = 0
    with bundle.open(info) as source, sink:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > MAX_FILE_BYTES:
                raise EvidenceRefused(
                    f"{what} holds {info.filename[:200]!r} larger than the {MAX_FILE_BYTES} "
                    "bytes allowed for one file"
                )
            sink.write(chunk)


def with_base_trust(document: ev.Evidence, waivers: list[Waiver]) -> ev.Evidence:
    """What the fork decided that the base branch decides: the scan's waivers become the base
    branch's `waivers` and its baseline is dropped (scan.rules.without_baseline); no other
    evidence keeps a waiver mark. `document` itself when there is nothing to replace."""
    if document.stage == _SCAN:
        data = without_baseline(document.data, "the baseline came from a fork's run")
        data["waivers"] = [w.model_dump(mode="json") for w in waivers]
        return document.model_copy(update={"data": data})
    if any(finding.waived_by for finding in document.findings):
        findings = [f.model_copy(update={"waived_by": None}) for f in document.findings]
        return document.model_copy(update={"findings": findings})
    return document
