"""Reproduce ``github-rest-subset.json`` from GitHub's complete REST API description.

    python tests/fakegithub/spec/trim.py api.github.com.deref.json github-rest-subset.json

The input is ``generated/api.github.com.deref.json`` of the npm package ``@octokit/openapi``
23.0.2 (``npm pack @octokit/openapi@23.0.2``). The output keeps ``openapi``, ``info``,
``servers`` and the paths in PATHS, unchanged, in the serialisation of the input (compact,
ASCII). Trimming the vendored file again reproduces it byte for byte. To let the fake accept
another operation, add its path here and rerun on the complete description.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PATHS = (
    "/orgs/{org}/teams/{team_slug}/memberships/{username}",
    "/rate_limit",
    "/repos/{owner}/{repo}",
    "/repos/{owner}/{repo}/actions/artifacts",
    "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}",
    "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}",
    "/repos/{owner}/{repo}/actions/runs/{run_id}",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts",
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches",
    "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs",
    "/repos/{owner}/{repo}/check-runs",
    "/repos/{owner}/{repo}/check-runs/{check_run_id}",
    "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations",
    "/repos/{owner}/{repo}/check-runs/{check_run_id}/rerequest",
    "/repos/{owner}/{repo}/check-suites",
    "/repos/{owner}/{repo}/check-suites/preferences",
    "/repos/{owner}/{repo}/check-suites/{check_suite_id}",
    "/repos/{owner}/{repo}/check-suites/{check_suite_id}/check-runs",
    "/repos/{owner}/{repo}/check-suites/{check_suite_id}/rerequest",
    "/repos/{owner}/{repo}/code-scanning/sarifs",
    "/repos/{owner}/{repo}/code-scanning/sarifs/{sarif_id}",
    "/repos/{owner}/{repo}/collaborators/{username}/permission",
    "/repos/{owner}/{repo}/commits/{ref}/check-runs",
    "/repos/{owner}/{repo}/commits/{ref}/check-suites",
    "/repos/{owner}/{repo}/commits/{ref}/status",
    "/repos/{owner}/{repo}/commits/{ref}/statuses",
    "/repos/{owner}/{repo}/contents/{path}",
    "/repos/{owner}/{repo}/deployments",
    "/repos/{owner}/{repo}/deployments/{deployment_id}",
    "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
    "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses/{status_id}",
    "/repos/{owner}/{repo}/dispatches",
    "/repos/{owner}/{repo}/environments",
    "/repos/{owner}/{repo}/environments/{environment_name}",
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies",
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment-branch-policies/{branch_policy_id}",
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment_protection_rules",
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment_protection_rules/apps",
    "/repos/{owner}/{repo}/environments/{environment_name}/deployment_protection_rules/{protection_rule_id}",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets/public-key",
    "/repos/{owner}/{repo}/environments/{environment_name}/secrets/{secret_name}",
    "/repos/{owner}/{repo}/environments/{environment_name}/variables",
    "/repos/{owner}/{repo}/environments/{environment_name}/variables/{name}",
    "/repos/{owner}/{repo}/git/ref/{ref}",
    "/repos/{owner}/{repo}/git/refs",
    "/repos/{owner}/{repo}/git/refs/{ref}",
    "/repos/{owner}/{repo}/git/tags",
    "/repos/{owner}/{repo}/issues/comments/{comment_id}",
    "/repos/{owner}/{repo}/issues/{issue_number}/comments",
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/pulls/{pull_number}",
    "/repos/{owner}/{repo}/pulls/{pull_number}/files",
    "/repos/{owner}/{repo}/releases",
    "/repos/{owner}/{repo}/statuses/{sha}",
    "/user",
    "/orgs/{org}/teams/{team_slug}",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs",
    "/repos/{owner}/{repo}/actions/runs/{run_id}/pending_deployments",
    "/repos/{owner}/{repo}/branches/{branch}",
    "/repos/{owner}/{repo}/commits/{ref}",
    "/repos/{owner}/{repo}/git/commits/{commit_sha}",
    "/repos/{owner}/{repo}/teams",
)


def trim(document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "openapi": document["openapi"],
        "info": document["info"],
        "servers": document["servers"],
        "paths": {path: document["paths"][path] for path in PATHS},
    }


def serialize(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode("ascii")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.exit(__doc__)
    source, target = (Path(arg) for arg in argv)
    document = json.loads(source.read_text(encoding="utf-8"))
    target.write_bytes(serialize(trim(document)))


if __name__ == "__main__":
    main(sys.argv[1:])
