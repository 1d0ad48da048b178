"""Facts about the current GitHub Actions run, read from its environment and event payload."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mlgate.errors import MlgateError

PULL_REQUEST_EVENTS = ("pull_request", "pull_request_target")


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


def pr_number(payload: dict[str, Any]) -> int | None:
    """MLGATE_PR when set (see commit_under_test), else the pull request of the event."""
    if os.environ.get("MLGATE_PR", "").isdigit():
        return int(os.environ["MLGATE_PR"])
    number = pull_request(payload).get("number")
    return number if isinstance(number, int) else None


def commit_under_test(payload: dict[str, Any] | None = None) -> str | None:
    """MLGATE_SHA when set (a workflow_run job publishing another run's results), else the
    PR's head commit (GITHUB_SHA is the merge commit on pull_request), else GITHUB_SHA."""
    if os.environ.get("MLGATE_SHA"):
        return os.environ["MLGATE_SHA"]
    head = pull_request(event_payload() if payload is None else payload).get("head")
    sha = head.get("sha") if isinstance(head, dict) else None
    return sha if isinstance(sha, str) and sha else os.environ.get("GITHUB_SHA")


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
