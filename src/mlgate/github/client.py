"""A PyGithub client and the one retry policy every publishing operation goes through.

PyGithub's own retry is off: it would retry a POST whose effect already landed (duplicating
a comment) and does not honour Retry-After on 403. Instead each *operation* is idempotent
(it finds what it made before it makes anything) and is retried whole.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from mlgate.github.context import GitHubContext

if TYPE_CHECKING:
    from github import Github
    from github.GithubException import GithubException

T = TypeVar("T")

ATTEMPTS = 5
# Caps on one wait and on all attempts of one operation: a report must not stall a job for
# minutes on a misbehaving server.
MAX_WAIT_SECONDS = 60.0
OPERATION_BUDGET_SECONDS = 90.0
REQUEST_TIMEOUT_SECONDS = 10
PAGE_SIZE = 100


class NotPermitted(Exception):
    """The token may not do this: 403 that is not a rate limit (a personal token creating
    check runs, a fork's read-only token). Publishing falls back to what is allowed."""


class Rejected(Exception):
    """GitHub refused the request (401, 404, 422, ...): this operation failed, others may not."""


class Unreachable(Exception):
    """GitHub could not be reached, or kept failing, after every retry: stop publishing."""


def connect(context: GitHubContext, write_delay: float) -> Github:
    with _jwt_deferred():
        from github import Auth, Github

    return Github(
        auth=Auth.Token(context.token),
        base_url=context.api_url,
        retry=None,
        timeout=REQUEST_TIMEOUT_SECONDS,
        seconds_between_requests=0,
        seconds_between_writes=write_delay,
        lazy=True,  # objects are fetched only when read: no request for what is only written to
        # GitHub's largest page (PyGithub asks for 30): finding the sticky comment on a busy
        # pull request, or a fork's pull request among the open ones, takes a third the requests.
        per_page=PAGE_SIZE,
    )


@contextlib.contextmanager
def _jwt_deferred() -> Iterator[None]:
    """PyGithub imports PyJWT, and with it cryptography, only to sign GitHub App keys, which
    mlgate never uses: while PyGithub is imported, `jwt` is a stand-in that imports the real
    module when first read from. That is 35 ms of every `mlgate report`. Afterwards only
    PyGithub holds the stand-in: any other `import jwt` gets the real module. (importlib's
    LazyLoader would not do: `import jwt` itself reads the module's __spec__, which loads it.)"""
    stand_in = None if "jwt" in sys.modules else _DeferredModule("jwt")
    if stand_in is not None:
        sys.modules["jwt"] = stand_in
    try:
        yield
    finally:
        if stand_in is not None and sys.modules.get("jwt") is stand_in:
            del sys.modules["jwt"]


class _DeferredModule(types.ModuleType):
    """A module imported on first attribute read, from then on read through."""

    def __getattr__(self, attribute: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # read while PyGithub is being imported
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), attribute)


def with_retry(operation: Callable[[], T], what: str) -> T:
    """Run `operation`; retry 5xx, rate limits and connection failures with backoff."""
    import requests
    from github.GithubException import GithubException

    deadline = time.monotonic() + OPERATION_BUDGET_SECONDS
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return operation()
        except GithubException as exc:
            wait = _retry_wait(exc, attempt)
            if wait is None:
                message = f"{what}: GitHub answered {exc.status} {_message(exc)}"
                raise (NotPermitted if exc.status == 403 else Rejected)(message) from None
            failure = f"{exc.status} {_message(exc)}"
        except requests.RequestException as exc:
            # Connection failures get short waits: an unreachable server should fail in seconds.
            wait = 0.25 * 2.0 ** (attempt - 1)
            failure = type(exc).__name__
        if attempt == ATTEMPTS or time.monotonic() + wait > deadline:
            break
        time.sleep(wait)
    raise Unreachable(f"{what}: gave up after {attempt} attempts (last: {failure})")


def _retry_wait(exc: GithubException, attempt: int) -> float | None:
    """Seconds to wait before retrying, or None when retrying cannot help."""
    headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
    backoff = min(2.0 ** (attempt - 1), MAX_WAIT_SECONDS)
    if exc.status in (403, 429):
        retry_after = headers.get("retry-after")
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), MAX_WAIT_SECONDS)
            except ValueError:
                return backoff
        if headers.get("x-ratelimit-remaining") == "0" or "rate limit" in _message(exc).lower():
            reset = headers.get("x-ratelimit-reset")
            if reset and reset.isdigit():
                return min(max(int(reset) - time.time(), 1.0), MAX_WAIT_SECONDS)
            return backoff
        return None
    if exc.status >= 500:
        return backoff
    return None


def _message(exc: GithubException) -> str:
    data = exc.data
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return str(data)[:200]
