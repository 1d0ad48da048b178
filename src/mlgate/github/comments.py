"""The one sticky pull-request comment: found by its hidden marker, edited in place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from mlgate.config import CommentMode
from mlgate.github.client import with_retry

if TYPE_CHECKING:
    from github import Github
    from github.IssueComment import IssueComment
    from github.Repository import Repository

Action = Literal["created", "updated", "unchanged", "skipped"]


def marker(key: str) -> str:
    return f"<!-- mlgate:comment:{key} -->"


def digest_marker(digest: str) -> str:
    return f"<!-- mlgate:digest:{digest} -->"


def upsert(
    gh: Github,
    repo: Repository,
    number: int,
    key: str,
    body: str,
    digest: str,
    failing: bool,
    mode: CommentMode,
) -> Action:
    """Write the comment per `mode`. `body` must already be escaped and start with marker(key)."""
    if mode == "off":
        return "skipped"
    # A pull request is an issue: the lazy issue object costs no request, where reading the
    # pull request would cost one.
    issue = repo.get_issue(number)
    ours = with_retry(lambda: _ours(gh, issue.get_comments(), key), "list PR comments")
    current = ours[0] if ours else None
    if current is None:
        if mode == "on-failure" and not failing:
            return "skipped"
        attempted = False

        # A retried POST may follow one that had in fact landed: list again before posting.
        def create() -> None:
            nonlocal attempted
            retried, attempted = attempted, True
            if not (retried and _ours(gh, issue.get_comments(), key)):
                issue.create_comment(body)

        with_retry(create, f"comment on #{number}")
        return "created"
    if mode == "on-change" and digest_marker(digest) in current.body:
        return "unchanged"
    # on-failure still updates an existing comment once the gate passes, so no stale
    # failure report lingers on the pull request.
    with_retry(lambda: current.edit(body), f"update comment on #{number}")
    return "updated"


def _ours(gh: Github, comments: object, key: str) -> list[IssueComment]:
    """Comments carrying our marker and written by this token's user (a forged marker in
    someone else's comment is ignored)."""
    from github.GithubException import GithubException

    tag = marker(key)
    candidates = [c for c in comments if c.body.startswith(tag)]  # type: ignore[attr-defined]
    if not candidates:
        return []
    bots = [c for c in candidates if c.user.type == "Bot"]
    if len(bots) == len(candidates):
        return bots
    try:
        me = gh.get_user().login  # a personal token writes as its user
    except GithubException:
        return bots  # GITHUB_TOKEN may not read /user; it writes as github-actions[bot]
    return [c for c in candidates if c.user.login == me]
