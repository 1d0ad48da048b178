"""Commit statuses: the fallback when the token may not create check runs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlgate.github.client import with_retry
from mlgate.github.context import GitHubContext
from mlgate.verdict import Outcome

if TYPE_CHECKING:
    from github.Repository import Repository

# A status has no neutral state: a warning does not block, and its description says warning.
_STATES: dict[Outcome, str] = {
    "pass": "success",
    "warn": "success",
    "fail": "failure",
    "inconclusive": "error",
}
_DESCRIPTION_LIMIT = 140  # GitHub truncates longer descriptions


def publish(
    repo: Repository, context: GitHubContext, name: str, outcome: Outcome, description: str
) -> None:
    # Statuses are keyed by context: setting the same context again replaces it, so this
    # is idempotent without a lookup.
    if len(description) > _DESCRIPTION_LIMIT:
        description = description[: _DESCRIPTION_LIMIT - 1] + "…"
    extra = {"target_url": context.run_url} if context.run_url else {}

    def create() -> None:
        repo.get_commit(context.sha).create_status(
            state=_STATES[outcome], description=description, context=name, **extra
        )

    with_retry(create, f"set status {name}")
