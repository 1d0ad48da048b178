"""Baseline evidence from another branch: the artifact of that branch's latest successful run.

Every request to the API goes through PyGithub and `with_retry`. The archive itself is not an
API resource: GitHub answers the download request with 302 to a short-lived signed storage URL
on another host. PyGithub could follow it (`Requester.getStream`), but only to hosts under
github.com / githubusercontent.com (artifact storage is on blob.core.windows.net), so the
redirect is read from the API answer and followed here, without the token: the signed URL is
the credential, and the token must not reach a foreign host.
"""

from __future__ import annotations

import lzma
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from mlgate import artifact_paths
from mlgate.errors import MlgateError
from mlgate.github.client import (
    REQUEST_TIMEOUT_SECONDS,
    NotPermitted,
    Rejected,
    Unreachable,
    connect,
    with_retry,
)
from mlgate.github.context import GitHubContext

if TYPE_CHECKING:
    from github.Artifact import Artifact
    from github.Repository import Repository
    from github.WorkflowRun import WorkflowRun

# Limits on what one baseline may cost: evidence and its compressed samples are megabytes.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_EXTRACTED_BYTES = 1024 * 1024 * 1024
MAX_MEMBERS = 10_000
# Runs examined for one that is not a pull request's (see _latest_successful_run).
MAX_RUNS = 100
_CHUNK = 1024 * 1024


# What zipfile raises, beyond OSError, for an archive it cannot read: a corrupt directory or
# member, an encrypted member, a compression it lacks or bytes that are not that compression,
# a member name flagged UTF-8 that is not.
UNREADABLE_ZIP: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    RuntimeError,  # NotImplementedError too (a compression zipfile lacks)
    zlib.error,
    lzma.LZMAError,
    UnicodeDecodeError,
)


_END_RECORD = b"PK\x05\x06"  # end of central directory: entry count at offset 10
_END_RECORD_SPAN = 22 + 0xFFFF  # the record and the longest comment it may end with


def declared_entries(archive: IO[bytes]) -> int | None:
    """The entry count the archive's end record declares, read before zipfile parses its
    directory: an archive within a download cap can hold millions of empty entries, which
    zipfile would all parse (seconds, gigabytes) before a member limit applied. None without
    an end record (zipfile then refuses the archive); a zip64 archive declares 0xFFFF here."""
    archive.seek(0, 2)
    archive.seek(max(0, archive.tell() - _END_RECORD_SPAN))
    tail = archive.read()
    archive.seek(0)
    at = tail.rfind(_END_RECORD)
    if at < 0 or len(tail) < at + 12:
        return None
    return int.from_bytes(tail[at + 10 : at + 12], "little")


@contextmanager
def staged(destination: Path, prefix: str) -> Iterator[Path]:
    """A fresh folder beside `destination` to extract into: it replaces `destination` when the
    block ends normally and is removed otherwise, so `destination` holds all or what it held."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=destination.parent))
    try:
        yield staging
        shutil.rmtree(destination, ignore_errors=True)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# A pull request from a fork's branch of the same name is a run "on" the branch too.
_PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target"})


class BaselineError(MlgateError):
    """No usable baseline artifact: the message says which step failed and why."""


def fetch_baseline(
    context: GitHubContext,
    *,
    workflow: str,
    branch: str,
    artifact_name: str,
    member: str,
    destination: Path,
) -> Path:
    """Download `artifact_name` of the latest successful run of `workflow` on `branch`.

    `workflow` is a workflow file name (`mlgate.yml`) or id. The archive is extracted into
    `destination`, whose previous contents are replaced; the result is the path of `member`
    (e.g. `evidence/load.json`) in it, with the rest of the archive (its samples) beside it.
    """
    member_path = _safe_name(member)
    if member_path is None:
        raise BaselineError(f"baseline member {member!r} is not a relative path inside the archive")
    repo = connect(context, write_delay=0).get_repo(context.repository)
    where = f"{workflow} on {branch} in {context.repository}"
    try:
        run = with_retry(
            lambda: _latest_successful_run(repo, workflow, branch), f"listing runs of {where}"
        )
        if run is None:
            raise BaselineError(f"no successful run of {where} to take a baseline from")
        artifact = with_retry(
            lambda: named_artifact(run, artifact_name), f"listing artifacts of run {run.id}"
        )
        if artifact is None:
            raise BaselineError(f"run {run.html_url} has no artifact named {artifact_name!r}")
        if artifact.expired:
            raise BaselineError(f"artifact {artifact_name!r} of run {run.html_url} has expired")
        with tempfile.TemporaryFile() as archive:
            with_retry(
                lambda: download_archive(repo, artifact, archive),
                f"downloading artifact {artifact_name!r} of run {run.id}",
            )
            what = f"artifact {artifact_name!r} of run {run.html_url}"
            _extract(archive, destination, member_path, what)
    except (NotPermitted, Rejected, Unreachable) as exc:
        raise BaselineError(f"baseline: {exc}") from None
    return destination.joinpath(*member_path.parts)


def _latest_successful_run(repo: Repository, workflow: str, branch: str) -> WorkflowRun | None:
    runs = repo.get_workflow(workflow).get_runs(branch=branch, status="success")
    # Newest first. A fork's pull request from a branch named like `branch` is listed too,
    # and its artifacts are whatever the fork wants: never a baseline.
    for index, run in enumerate(runs):
        if index == MAX_RUNS:
            break
        if run.event not in _PULL_REQUEST_EVENTS:
            return run
    return None


def named_artifact(run: WorkflowRun, name: str) -> Artifact | None:
    # A re-run may upload the name again; the newest (highest id) is the run's final word.
    matching = [artifact for artifact in run.get_artifacts() if artifact.name == name]
    return max(matching, key=lambda artifact: artifact.id, default=None)


def download_archive(repo: Repository, artifact: Artifact, archive: IO[bytes]) -> None:
    """Write the artifact's zip archive into `archive` (rewound first: this may be a retry)."""
    import requests

    # Answered 302 (raised as GithubException otherwise, e.g. 410 once expired): the JSON
    # helper is the Requester call that does not follow the redirect.
    headers, _ = repo.requester.requestJsonAndCheck("GET", artifact.archive_download_url)
    location = headers.get("location")
    if not location:
        raise BaselineError(f"GitHub gave no download location for artifact {artifact.name!r}")
    archive.seek(0)
    archive.truncate()
    with requests.get(location, stream=True, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        if response.status_code >= 500:
            response.raise_for_status()  # a RequestException: with_retry tries again
        if response.status_code != 200:
            raise BaselineError(
                f"artifact storage refused the download of {artifact.name!r}: "
                f"HTTP {response.status_code}"
            )
        written = 0
        for chunk in response.iter_content(_CHUNK):
            written += len(chunk)
            if written > MAX_ARCHIVE_BYTES:
                raise BaselineError(
                    f"artifact {artifact.name!r} is larger than {MAX_ARCHIVE_BYTES} bytes"
                )
            archive.write(chunk)
    archive.seek(0)


def _safe_name(name: str) -> PurePosixPath | None:
    """`name` as a relative path that stays inside the extraction directory, else None."""
    return None if artifact_paths.lexical_refusal(name) is not None else PurePosixPath(name)


def _extract(archive: IO[bytes], destination: Path, member: PurePosixPath, what: str) -> None:
    """Extract every file into a fresh `destination`, refusing what could escape it or exhaust
    the disk. Sizes in the zip directory are claims, so the bytes written are counted. Until
    all is extracted and `member` is found, `destination` keeps what it held."""
    if (declared_entries(archive) or 0) > MAX_MEMBERS:  # before zipfile reads them all
        raise BaselineError(f"{what} holds more than {MAX_MEMBERS} files")
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = bundle.infolist()
            if len(members) > MAX_MEMBERS:
                raise BaselineError(f"{what} holds more than {MAX_MEMBERS} files")
            paths = {}
            for info in members:
                path = _safe_name(info.filename)
                if path is None:
                    raise BaselineError(f"{what} holds an unsafe path {info.filename!r}")
                paths[info.filename] = path
            if sum(info.file_size for info in members) > MAX_EXTRACTED_BYTES:
                raise BaselineError(f"{what} expands beyond {MAX_EXTRACTED_BYTES} bytes")
            with staged(destination, ".baseline-") as staging:
                budget = MAX_EXTRACTED_BYTES
                for info in members:
                    target = staging.joinpath(*paths[info.filename].parts)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with bundle.open(info) as source, target.open("wb") as sink:
                        while chunk := source.read(_CHUNK):
                            budget -= len(chunk)
                            if budget < 0:
                                raise BaselineError(
                                    f"{what} expands beyond {MAX_EXTRACTED_BYTES} bytes"
                                )
                            sink.write(chunk)
                if not staging.joinpath(*member.parts).is_file():
                    raise BaselineError(f"{what} holds no file {str(member)!r}")
    except UNREADABLE_ZIP as exc:
        raise BaselineError(f"{what} is not a readable zip archive: {exc}") from None
    except OSError as exc:  # a corrupt bzip2 member; a name that is a file and a folder
        raise BaselineError(f"{what} cannot be extracted: {exc.strerror or exc}") from None
