"""Facts about the current GitHub Actions run, read from its environment and event payload."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlgate.errors import MlgateError

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")
MERGE_GROUP_EVENT = "merge_group"
_HEX = frozenset("0123456789abcdef")


def in_actions() -> bool:
    return os.environ.get("GITHUB_ACTIONS") == "true"


def event_payload(strict: bool = False) -> dict[str, Any]:
    """The event payload; unreadable is {} unless `strict`, where it is an error."""
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        if strict:
            raise MlgateError(f"{path}: unreadable GitHub event payload: {exc}") from None
        return {}
    return loaded if isinstance(loaded, dict) else {}


def pull_request(payload: dict[str, Any]) -> dict[str, Any]:
    if os.environ.get("GITHUB_EVENT_NAME") not in PULL_REQUEST_EVENTS:
        return {}
    pull = payload.get("pull_request")
    return pull if isinstance(pull, dict) else {}


def merge_group(payload: dict[str, Any]) -> dict[str, Any]:
    """The merge queue's group on a merge_group event, else {}."""
    if os.environ.get("GITHUB_EVENT_NAME") != MERGE_GROUP_EVENT:
        return {}
    group = payload.get("merge_group")
    return group if isinstance(group, dict) else {}


def merge_group_problem(payload: dict[str, Any]) -> str | None:
    """Why a merge_group event's payload cannot say which commit the queue tests, or None
    (also None for any other event)."""
    if os.environ.get("GITHUB_EVENT_NAME") != MERGE_GROUP_EVENT:
        return None
    if _commit(merge_group(payload).get("head_sha")) is None:
        return (
            "the merge_group event payload has no merge_group.head_sha (a 40-hex commit): "
            "cannot tell which commit the merge queue tests"
        )
    return None


def base_branch(payload: dict[str, Any]) -> str | None:
    """The branch a pull request or merge queue group merges into, if the event names one."""
    base = pull_request(payload).get("base")
    ref = (base.get("ref") if isinstance(base, dict) else None) or merge_group(payload).get(
        "base_ref"
    )
    if not isinstance(ref, str) or not ref:
        return None
    return ref.removeprefix("refs/heads/")


def _commit(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 40 and set(value.lower()) <= _HEX:
        return value
    return None


def pr_number(payload: dict[str, Any]) -> int | None:
    """MLGATE_PR when set (see commit_under_test), else the pull request of the event."""
    if os.environ.get("MLGATE_PR", "").isdigit():
        return int(os.environ["MLGATE_PR"])
    number = pull_request(payload).get("number")
    return number if isinstance(number, int) else None


def commit_under_test(payload: dict[str, Any] | None = None) -> str | None:
    """MLGATE_SHA when set (a workflow_run job publishing another run's results), else the
    PR's head commit (GITHUB_SHA is the merge commit on pull_request), else the merge queue
    group's head commit (None when a merge_group payload lacks it: see merge_group_problem),
    else GITHUB_SHA."""
    if os.environ.get("MLGATE_SHA"):
        return os.environ["MLGATE_SHA"]
    payload = event_payload() if payload is None else payload
    if os.environ.get("GITHUB_EVENT_NAME") == MERGE_GROUP_EVENT:
        return _commit(merge_group(payload).get("head_sha"))
    head = pull_request(payload).get("head")
    sha = head.get("sha") if isinstance(head, dict) else None
    return sha if isinstance(sha, str) and sha else os.environ.get("GITHUB_SHA")


def named_commit(payload: dict[str, Any], given: str | None, consequence: str) -> str | None:
    """The commit a verdict or a report is about: `given` (--sha), else commit_under_test.
    When nothing names it and a merge_group payload lacks it, that is bad input (MlgateError,
    its message ending in `consequence`): evidence about any commit would pass."""
    problem = None if given or os.environ.get("MLGATE_SHA") else merge_group_problem(payload)
    if problem:
        raise MlgateError(f"{problem}; {consequence}")
    return given or commit_under_test(payload)


def run_url() -> str | None:
    env = os.environ
    server, repo, run = (
        env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if not (server and repo and run):
        return None
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    suffix = f"/attempts/{attempt}" if attempt and attempt != "1" else ""
    return f"{server}/{repo}/actions/runs/{run}{suffix}"


def set_output(name: str, value: str) -> None:
    """A step output, when running as a step (values here are single-line)."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path and "\n" not in value:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(f"{name}={value}\n")


def warning_command(title: str, message: str) -> str:
    """A `::warning` workflow command (an annotation on the run), its parts escaped as the
    runner unescapes them, so a reason quoting evidence stays one command's data."""

    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    return f"::warning title={prop(title)}::{data(message)}"
