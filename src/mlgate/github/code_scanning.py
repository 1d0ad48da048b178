"""Upload SARIF to GitHub code scanning, one file (one category) per request.

Needs `security-events: write` and code scanning enabled; forks get neither. A refusal is a
notice, not a failure: the findings are in the checks, the comment and the artifact anyway.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import TYPE_CHECKING

from mlgate import artifact_paths
from mlgate.github.client import Rejected, with_retry
from mlgate.github.context import GitHubContext
from mlgate.report import sarif

if TYPE_CHECKING:
    from github.Repository import Repository


class Unfit(Exception):
    """The file is not a SARIF upload GitHub takes (not SARIF 2.1.0, too many runs, too
    large); nothing was sent."""


def upload(repo: Repository, context: GitHubContext, name: str, content: bytes) -> str:
    """Upload one SARIF document (its bytes, already read and checked by the caller); the
    upload's id. Raises Unfit, or NotPermitted or Rejected as publish expects (through
    with_retry)."""
    problem = _problem(content)
    if problem:
        raise Unfit(f"{artifact_paths.label(name)}: {problem}")
    packed = gzip.compress(content, mtime=0)
    if len(packed) > sarif.MAX_GZIPPED_BYTES:
        raise Unfit(
            f"{artifact_paths.label(name)}: {len(packed)} bytes gzipped, over GitHub's 10 MB"
        )
    commit, ref = _target(context)
    body = {
        "commit_sha": commit,
        "ref": ref,
        "sarif": base64.b64encode(packed).decode("ascii"),
        "tool_name": "mlgate",
    }

    def send() -> str:
        _, data = repo.requester.requestJsonAndCheck(
            "POST", f"{repo.url}/code-scanning/sarifs", input=body
        )
        return str(data.get("id", ""))

    return with_retry(send, f"upload {name} to code scanning")


def _problem(content: bytes) -> str | None:
    """Why GitHub would refuse this as a SARIF upload (checked here: the file may be anything
    a forged evidence lists), or None."""
    try:
        log = json.loads(content)
    except (ValueError, RecursionError):
        return "not JSON"
    runs = log.get("runs") if isinstance(log, dict) else None
    if not isinstance(log, dict) or log.get("version") != "2.1.0" or not isinstance(runs, list):
        return "not a SARIF 2.1.0 log"
    if len(runs) > sarif.MAX_RUNS:
        return f"{len(runs)} runs, over GitHub's {sarif.MAX_RUNS} per upload"
    return None


def _target(context: GitHubContext) -> tuple[str, str]:
    """The commit and ref code scanning files the analysis under, as upload-sarif does: the
    merge commit and merge ref on pull requests, else the pushed commit and ref."""
    merge = os.environ.get("GITHUB_SHA")
    if context.pr_number is not None and merge:
        return merge, f"refs/pull/{context.pr_number}/merge"
    ref = os.environ.get("GITHUB_REF")
    if not ref:
        raise Rejected("GITHUB_REF is not set: no ref to file the code-scanning analysis under")
    return context.sha, ref
