"""A stateful fake of GitHub's REST API that checks every request against GitHub's description.

Requests the description does not allow (unknown path or method, bad parameter, body failing the
operation's schema, or a limit GitHub enforces outside the schema) are answered with GitHub's error
shape and recorded in :attr:`FakeGitHub.violations`, so a test can assert ``gh.violations == []``.
Valid operations the fake does not implement answer 501 and are recorded in
:attr:`FakeGitHub.unimplemented`.

Simplifications, chosen so tests stay short: every registered token can read every repository;
any 40-hex SHA names an existing commit; branch names resolve through the seeded branches
(add_branch), then the seeded pull requests. File contents exist only where add_branch put them.

Artifact archives are served the way GitHub serves them: ``GET .../artifacts/{id}/zip`` answers
302 to a storage URL on another host name (``localhost`` instead of ``127.0.0.1``: the same
server, but a client must treat it as foreign and not send its token there). The storage URL is
outside the API description and needs no token; :attr:`FakeGitHub.blob_downloads` records
whether one was sent anyway.
"""

from __future__ import annotations

import base64
import dataclasses
import fnmatch
import gzip
import hashlib
import json
import re
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple, TypeVar
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from . import openapi
from .openapi import InvalidRequest

TokenKind = Literal["app", "pat", "readonly"]
T = TypeVar("T")

GHES_PREFIX = "/api/v3"
BLOB_PREFIX = "/_blobs/"  # where artifact archives are stored, outside the API
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
RATE_LIMIT = 5000
NOT_ACCESSIBLE = "Resource not accessible by integration"
# Limits GitHub enforces that the OpenAPI schemas do not express.
MAX_COMMENT_BODY = 65536
MAX_STATUS_DESCRIPTION = 140
MAX_DISPATCH_INPUTS_CHARS = 65535  # workflow_dispatch inputs, as JSON
MAX_CLIENT_PAYLOAD_BYTES = 64 * 1024  # repository_dispatch client_payload must be smaller
# A repository role and the legacy permission GitHub reports beside it.
_LEGACY_PERMISSION = {
    "read": "read",
    "triage": "read",
    "write": "write",
    "maintain": "write",
    "admin": "admin",
}
_SHA = re.compile(r"[0-9a-fA-F]{40}")


class LoggedRequest(NamedTuple):
    method: str
    path: str  # without the optional /api/v3 prefix and without the query string
    status: int


@dataclass(frozen=True)
class User:
    login: str
    id: int
    type: Literal["User", "Bot", "Organization"]


@dataclass(frozen=True)
class Token:
    user: User
    kind: TokenKind
    can_read_user: bool
    can_read_teams: bool  # org permission `members: read`; the workflow's GITHUB_TOKEN lacks it


@dataclass
class Pull:
    number: int
    head_sha: str
    base_sha: str
    head_ref: str
    base_ref: str
    title: str
    author: User
    id: int
    created_at: str
    head_owner: str | None = None  # a fork's owner; None: a branch of the repository itself


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: str
    completed_at: str | None
    details_url: str | None
    external_id: str | None
    app: User
    output: dict[str, Any]  # title, summary, text, annotations (all of them), images
    actions: list[dict[str, Any]]


@dataclass
class Status:
    id: int
    sha: str
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: User
    created_at: str


@dataclass
class Comment:
    id: int
    issue_number: int
    body: str
    user: User
    created_at: str
    updated_at: str


@dataclass
class Artifact:
    id: int
    name: str
    data: bytes  # the zip archive
    expired: bool
    created_at: str


@dataclass
class WorkflowRun:
    id: int
    run_number: int
    workflow: str  # the workflow's file name in .github/workflows
    workflow_id: int
    head_branch: str
    head_sha: str
    event: str
    status: str
    conclusion: str | None
    created_at: str
    artifacts: list[Artifact]
    approvals: list[RunApproval] = field(default_factory=list)  # environment reviews, in order
    actor: User | None = None  # who started it (also its triggering actor); None: not shown
    attempt: int = 1
    jobs: list[RunJob] = field(default_factory=list)


@dataclass
class RunJob:
    id: int
    name: str
    status: str
    conclusion: str | None
    started_at: str
    environment: str | None  # `environment:` of the job: GitHub Actions deploys to it


@dataclass
class RunApproval:
    user: User
    state: Literal["approved", "rejected"]
    environments: tuple[str, ...]
    comment: str


@dataclass
class Collaborator:
    user: User
    role_name: str  # read, triage, write, maintain, admin or a custom role
    base: str  # the role itself, or the one a custom role builds on


@dataclass
class TeamMembership:
    state: Literal["active", "pending"]
    role: Literal["member", "maintainer"]


@dataclass
class Team:
    id: int
    members: dict[str, TeamMembership] = field(default_factory=dict)  # lower-case login ->


@dataclass
class DeploymentStatus:
    id: int
    state: str
    description: str
    environment: str
    log_url: str
    environment_url: str
    creator: User
    created_at: str


@dataclass
class Deployment:
    id: int
    sha: str
    ref: str
    task: str
    payload: dict[str, Any] | str
    environment: str
    original_environment: str
    description: str | None
    transient_environment: bool
    production_environment: bool
    # As sent: GitHub acts on them at creation and does not return them.
    auto_merge: bool
    required_contexts: list[str] | None
    creator: User
    created_at: str
    updated_at: str
    statuses: list[DeploymentStatus] = field(default_factory=list)  # oldest first


@dataclass
class Repo:
    id: int
    owner: User
    name: str
    default_branch: str
    private: bool
    created_at: str
    pulls: dict[int, Pull] = field(default_factory=dict)
    check_runs: dict[int, CheckRun] = field(default_factory=dict)
    statuses: list[Status] = field(default_factory=list)
    comments: dict[int, Comment] = field(default_factory=dict)
    workflows: dict[str, int] = field(default_factory=dict)  # file name -> workflow id
    workflow_runs: dict[int, WorkflowRun] = field(default_factory=dict)
    code_scanning: bool = True  # GitHub Advanced Security / code scanning enabled
    sarif_uploads: list[dict[str, Any]] = field(default_factory=list)
    collaborators: dict[str, Collaborator] = field(default_factory=dict)  # lower-case login ->
    environments: dict[str, int] = field(default_factory=dict)  # name -> id
    deployments: dict[int, Deployment] = field(default_factory=dict)
    # Workflows with a workflow_dispatch trigger: id -> (declared inputs or None for any,
    # required inputs).
    dispatchable: dict[int, tuple[tuple[str, ...] | None, tuple[str, ...]]] = field(
        default_factory=dict
    )
    dispatches: list[dict[str, Any]] = field(default_factory=list)  # accepted, in order
    branches: dict[str, str] = field(default_factory=dict)  # name -> head commit
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit -> path -> bytes

    @property
    def full_name(self) -> str:
        return f"{self.owner.login}/{self.name}"


@dataclass
class Fault:
    """An injected response; ``remaining`` counts down to 0 (None: answers forever)."""

    method: str
    path: str | re.Pattern[str]
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    remaining: int | None
    landed: bool = False  # the request takes effect before the fault answers

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method):
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.fullmatch(path) is not None
        return fnmatch.fnmatchcase(path, self.path)


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class ApiError(Exception):
    """An answer GitHub gives to a valid request in the current state (404, 401, 403...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Call:
    """A validated request, as handlers see it."""

    operation: openapi.Operation
    path: str
    query: dict[str, list[str]]
    params: dict[str, str]
    body: Any
    token: Token
    api: str  # base of API URLs in responses: keeps the /api/v3 prefix when the client used it
    html: str

    def query_int(self, name: str, default: int) -> int:
        values = self.query.get(name)
        return int(values[-1]) if values else default  # validated as an integer already

    def query_str(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


Handler = Callable[["FakeGitHub", Call], Reply]
_HANDLERS: dict[tuple[str, str], Handler] = {}


def route(method: str, template: str) -> Callable[[Handler], Handler]:
    """Register the method implementing one operation of the description."""

    def register(handler: Handler) -> Handler:
        _HANDLERS[method, template] = handler
        return handler

    return register


def implemented_operations() -> list[tuple[str, str]]:
    return sorted(_HANDLERS)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _node_id(kind: str, number: int) -> str:
    # GitHub's legacy global ids: base64 of "<len(kind)>:<kind><id>", e.g. "08:CheckRun4".
    return base64.b64encode(f"{len(kind):02d}:{kind}{number}".encode()).decode()


def _error(status: int, message: str, documentation_url: str = openapi.DOCS_URL) -> Reply:
    return Reply(status, {"message": message, "documentation_url": documentation_url})


class FakeGitHub:
    """GitHub's REST API on 127.0.0.1, for tests: ``with FakeGitHub() as gh: ... gh.url``."""

    def __init__(
        self, *, port: int = 0, on_change: Callable[[FakeGitHub], None] | None = None
    ) -> None:
        """``on_change`` runs (under the state lock) after every request and every seeding."""
        self._port = port
        self._on_change = on_change
        self._spec = openapi.load()
        self._lock = threading.RLock()
        self._ids = iter(range(1000, 1 << 62))
        self._repos: dict[str, Repo] = {}
        self._tokens: dict[str, Token] = {}
        self._users: dict[str, User] = {}  # people seeded by login (lower case)
        self._teams: dict[tuple[str, str], Team] = {}  # (org, team slug), lower case
        self._faults: list[Fault] = []
        self._requests: list[LoggedRequest] = []
        self._api_prefixes: list[str] = []  # per API request: "/api/v3" (GHES) or ""
        self._violations: list[str] = []
        self._unimplemented: list[str] = []
        self._blob_downloads: list[tuple[int, bool]] = []
        self._rate_used = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        self._server = _Server(("127.0.0.1", self._port), _RequestHandler)
        self._server.fake = self
        # A short poll interval keeps shutdown() (which waits for one poll) fast.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL for ``github.Github(base_url=...)``; ``url + "/api/v3"`` works too."""
        if self._server is None:
            raise RuntimeError("FakeGitHub is not running: use start() or a with-block")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- seeding -----------------------------------------------------------------------------

    def set_token(
        self,
        token: str,
        login: str = "github-actions[bot]",
        kind: TokenKind = "app",
        *,
        can_read_user: bool | None = None,
        can_read_teams: bool | None = None,
    ) -> None:
        """Accept ``token``. ``kind``: "app" is a GitHub App installation token such as the
        workflow's GITHUB_TOKEN; "readonly" is the read-only GITHUB_TOKEN of a fork pull request;
        "pat" is a personal access token. ``GET /user`` answers 403 for installation tokens, as
        on GitHub, unless ``can_read_user`` says otherwise; teams are invisible to them (team
        endpoints answer 404) unless ``can_read_teams`` says otherwise."""
        user_type: Literal["User", "Bot"] = "User" if kind == "pat" else "Bot"
        with self._lock:
            user = User(login, self._next_id(), user_type)
            readable = kind == "pat" if can_read_user is None else can_read_user
            teams = kind == "pat" if can_read_teams is None else can_read_teams
            self._tokens[token] = Token(user, kind, readable, teams)
            self._changed()

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        private: bool = False,
        code_scanning: bool = True,
    ) -> None:
        owner, name = full_name.split("/")
        with self._lock:
            self._repos[full_name.lower()] = Repo(
                id=self._next_id(),
                owner=User(owner, self._next_id(), "Organization"),
                name=name,
                default_branch=default_branch,
                private=private,
                created_at=_now(),
                code_scanning=code_scanning,
            )
            self._changed()

    def add_pull(
        self,
        repo: str,
        *,
        number: int,
        head_sha: str,
        base_sha: str,
        head_ref: str = "feature",
        base_ref: str | None = None,
        title: str = "A pull request",
        author: str = "octo-dev",
        head_owner: str | None = None,
    ) -> None:
        """Seed an open pull request (``base_ref`` defaults to the default branch); with
        ``head_owner``, its head is that owner's fork (same repository name)."""
        with self._lock:
            state = self._repo_named(repo)
            state.pulls[number] = Pull(
                number=number,
                head_sha=head_sha.lower(),
                base_sha=base_sha.lower(),
                head_ref=head_ref,
                base_ref=base_ref or state.default_branch,
                title=title,
                author=User(author, self._next_id(), "User"),
                id=self._next_id(),
                created_at=_now(),
                head_owner=head_owner,
            )
            self._changed()

    def add_branch(
        self, repo: str, name: str, *, sha: str, files: Mapping[str, bytes] | None = None
    ) -> None:
        """Seed (or move) branch ``name`` to commit ``sha``, whose tree holds ``files`` (path ->
        bytes; served by the contents API at that commit or branch)."""
        with self._lock:
            state = self._repo_named(repo)
            state.branches[name] = sha.lower()
            state.files[sha.lower()] = dict(files or {})
            self._changed()

    def delete_branch(self, repo: str, name: str) -> None:
        with self._lock:
            del self._repo_named(repo).branches[name]
            self._changed()

    def add_workflow_run(
        self,
        repo: str,
        *,
        workflow: str = "mlgate.yml",
        branch: str = "main",
        conclusion: str | None = "success",
        event: str = "push",
        head_sha: str | None = None,
        artifacts: Mapping[str, bytes] | None = None,
        expired: tuple[str, ...] = (),
        actor: str | None = None,
        attempt: int = 1,
        started_at: str | None = None,
    ) -> int:
        """Seed a run of ``workflow`` on ``branch`` and return its id. ``conclusion`` None is a
        run still in progress; ``artifacts`` maps names to zip archives, those in ``expired``
        have passed their retention period; ``actor`` started it (``attempt``) at ``started_at``
        (default now, GitHub's whole seconds). Later runs are newer."""
        with self._lock:
            state = self._repo_named(repo)
            workflow_id = state.workflows.setdefault(workflow, self._next_id())
            now = started_at or _now()
            run = WorkflowRun(
                id=self._next_id(),
                run_number=len(state.workflow_runs) + 1,
                workflow=workflow,
                workflow_id=workflow_id,
                head_branch=branch,
                head_sha=(head_sha or f"{len(state.workflow_runs) + 1:040x}").lower(),
                event=event,
                status="in_progress" if conclusion is None else "completed",
                conclusion=conclusion,
                created_at=now,
                artifacts=[
                    Artifact(self._next_id(), name, data, name in expired, now)
                    for name, data in (artifacts or {}).items()
                ],
                actor=self._user(actor) if actor else None,
                attempt=attempt,
            )
            state.workflow_runs[run.id] = run
            self._changed()
            return run.id

    def add_run_job(
        self,
        repo: str,
        run_id: int,
        name: str = "promote",
        *,
        environment: str | None = None,
        status: str = "in_progress",
        deployer: str = "github-actions[bot]",
    ) -> int:
        """Seed a job of the run and return its id. With ``environment``, what GitHub Actions
        does for a job declaring it: a deployment of the run's commit to that environment,
        created by ``deployer`` (the Actions app), whose status is ``in_progress`` while the job
        is and whose log_url links the job."""
        with self._lock:
            state = self._repo_named(repo)
            run = state.workflow_runs[run_id]
            job = RunJob(self._next_id(), name, status, None, _now(), environment)
            run.jobs.append(job)
            if environment is not None:
                creator = self._user(deployer, "Bot" if deployer.endswith("[bot]") else "User")
                now = _now()
                deployment = Deployment(
                    id=self._next_id(),
                    sha=run.head_sha,
                    ref=run.head_branch,
                    task="deploy",
                    payload={},
                    environment=environment,
                    original_environment=environment,
                    description=None,
                    transient_environment=False,
                    production_environment=False,
                    auto_merge=False,
                    required_contexts=None,
                    creator=creator,
                    created_at=now,
                    updated_at=now,
                )
                job_url = f"{self.url}/{state.full_name}/actions/runs/{run_id}/job/{job.id}"
                deployment.statuses.append(
                    DeploymentStatus(
                        self._next_id(),
                        "in_progress" if status == "in_progress" else "success",
                        "",
                        environment,
                        job_url,
                        "",
                        creator,
                        now,
                    )
                )
                state.environments.setdefault(environment, self._next_id())
                state.deployments[deployment.id] = deployment
            self._changed()
            return job.id

    def add_workflow(
        self,
        repo: str,
        workflow: str = "mlgate.yml",
        *,
        inputs: tuple[str, ...] | None = None,
        required: tuple[str, ...] = (),
    ) -> int:
        """Seed a workflow file with an ``on: workflow_dispatch`` trigger declaring ``inputs``
        (None: accept any) of which ``required`` must be given; its id."""
        with self._lock:
            state = self._repo_named(repo)
            workflow_id = state.workflows.setdefault(workflow, self._next_id())
            state.dispatchable[workflow_id] = (inputs, required)
            self._changed()
            return workflow_id

    def set_permission(
        self, repo: str, login: str, role: str | None, *, base: str | None = None
    ) -> None:
        """Make ``login`` a collaborator of ``repo`` with ``role`` (read, triage, write,
        maintain, admin, or a custom role built on the ``base`` role); None removes them."""
        custom = role is not None and role not in _LEGACY_PERMISSION
        if custom and base not in ("read", "triage", "write", "maintain"):
            raise ValueError(f"custom role {role!r} needs base: read, triage, write or maintain")
        with self._lock:
            state = self._repo_named(repo)
            if role is None:
                state.collaborators.pop(login.lower(), None)
            else:
                built_on = str(base) if custom else role
                collaborator = Collaborator(self._user(login), role, built_on)
                state.collaborators[login.lower()] = collaborator
            self._changed()

    def add_team_member(
        self,
        org: str,
        team_slug: str,
        login: str,
        state: Literal["active", "pending"] = "active",
        role: Literal["member", "maintainer"] = "member",
    ) -> None:
        """Add ``login`` to the team (made on first use); "pending": invited, not yet joined."""
        with self._lock:
            team = self._teams.setdefault((org.lower(), team_slug.lower()), Team(self._next_id()))
            team.members[login.lower()] = TeamMembership(state, role)
            self._changed()

    def add_run_approval(
        self,
        repo: str,
        run_id: int,
        login: str,
        state: Literal["approved", "rejected"] = "approved",
        environments: tuple[str, ...] = ("production",),
        comment: str = "",
    ) -> None:
        """Record a review of the run's pending deployments to ``environments``."""
        with self._lock:
            stored = self._repo_named(repo)
            run = stored.workflow_runs.get(run_id)
            if run is None:
                raise KeyError(f"no workflow run {run_id}: seed it with add_workflow_run()")
            for name in environments:
                stored.environments.setdefault(name, self._next_id())
            run.approvals.append(RunApproval(self._user(login), state, environments, comment))
            self._changed()

    def seed(self, document: Mapping[str, Any]) -> None:
        """Apply ``{"tokens": [...], "repos": [...], "pulls": [...]}``: each item holds the
        keyword arguments of set_token, add_repo, add_pull (``repo`` and ``full_name`` too)."""
        for item in document.get("tokens", ()):
            self.set_token(**item)
        for item in document.get("repos", ()):
            self.add_repo(**item)
        for item in document.get("pulls", ()):
            self.add_pull(**item)

    # -- fault injection ---------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str | re.Pattern[str],
        status: int = 502,
        *,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        landed: bool = False,
    ) -> Fault:
        """Answer the next ``times`` matching valid requests (None: all) with ``status``.

        ``method`` is an HTTP method or "*"; ``path`` is a glob (``*`` spans slashes) or a
        compiled regex, matched in full against the path without /api/v3 and query. Faults
        apply after validation, so an invalid request is still reported, and before any state
        changes, so a retried request sees the state the first attempt saw; with ``landed``
        the request takes effect first, as when GitHub did the work and a proxy answered 502.
        """
        fault = Fault(
            method=method.upper(),
            path=path,
            status=status,
            body=body if body is not None else {"message": HTTPStatus(status).phrase},
            headers=headers or {},
            remaining=times,
            landed=landed,
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    # -- introspection -----------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def api_prefixes(self) -> set[str]:
        """The path prefixes API requests came with: {"/api/v3"} when every one was addressed
        as to GitHub Enterprise Server, "" for github.com's layout."""
        with self._lock:
            return set(self._api_prefixes)

    @property
    def violations(self) -> list[str]:
        """One line per refused request: method, path and why GitHub would refuse it."""
        with self._lock:
            return list(self._violations)

    @property
    def unimplemented(self) -> list[str]:
        with self._lock:
            return list(self._unimplemented)

    @property
    def blob_downloads(self) -> list[tuple[int, bool]]:
        """Artifact archives fetched from storage: (artifact id, whether a token was sent)."""
        with self._lock:
            return list(self._blob_downloads)

    def reset_log(self) -> None:
        """Forget requests, violations and unimplemented calls (state and faults stay)."""
        with self._lock:
            self._blob_downloads.clear()
            self._requests.clear()
            self._api_prefixes.clear()
            self._violations.clear()
            self._unimplemented.clear()

    def check_runs(self, repo: str) -> list[dict[str, Any]]:
        """Check runs in creation order, each with all its annotations."""
        with self._lock:
            return [dataclasses.asdict(run) for run in self._repo_named(repo).check_runs.values()]

    def set_code_scanning(self, repo: str, enabled: bool) -> None:
        with self._lock:
            self._repo_named(repo).code_scanning = enabled
            self._changed()

    def sarif_uploads(self, repo: str) -> list[dict[str, Any]]:
        """Accepted SARIF uploads in order: commit_sha, ref and the decoded SARIF log."""
        with self._lock:
            return [dict(u) for u in self._repo_named(repo).sarif_uploads]

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        with self._lock:
            comments = self._repo_named(repo).comments.values()
            return [dataclasses.asdict(c) for c in comments if c.issue_number == number]

    def statuses(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """Commit statuses of ``sha`` in creation order."""
        with self._lock:
            statuses = self._repo_named(repo).statuses
            return [dataclasses.asdict(s) for s in statuses if s.sha == sha.lower()]

    def deployments(self, repo: str) -> list[dict[str, Any]]:
        """Deployments in creation order, each with its statuses oldest first."""
        with self._lock:
            deployments = self._repo_named(repo).deployments.values()
            return [dataclasses.asdict(d) for d in deployments]

    def dispatches(self, repo: str) -> list[dict[str, Any]]:
        """Accepted workflow_dispatch and repository_dispatch events, in order: ``event``,
        then ``workflow``, ``ref``, ``inputs`` or ``event_type``, ``client_payload``; and
        ``actor``."""
        with self._lock:
            return [dict(d) for d in self._repo_named(repo).dispatches]

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-ready data (what ``--state-file`` holds)."""
        with self._lock:
            return {
                "repos": {
                    repo.full_name: {
                        "pulls": [dataclasses.asdict(p) for p in repo.pulls.values()],
                        "check_runs": [dataclasses.asdict(r) for r in repo.check_runs.values()],
                        "statuses": [dataclasses.asdict(s) for s in repo.statuses],
                        "comments": [dataclasses.asdict(c) for c in repo.comments.values()],
                        "deployments": [dataclasses.asdict(d) for d in repo.deployments.values()],
                        "dispatches": list(repo.dispatches),
                    }
                    for repo in self._repos.values()
                },
                "requests": [list(r) for r in self._requests],
                "violations": list(self._violations),
                "unimplemented": list(self._unimplemented),
            }

    # -- request processing ------------------------------------------------------------------

    def handle(self, method: str, target: str, authorization: str | None, body: bytes) -> Reply:
        """Answer one HTTP request (``target`` is the request line's path and query)."""
        split = urlsplit(target)
        prefix = GHES_PREFIX if split.path.startswith(GHES_PREFIX + "/") else ""
        path = split.path[len(prefix) :]
        query = parse_qs(split.query, keep_blank_values=True)
        with self._lock:
            try:
                if split.path.startswith(BLOB_PREFIX):
                    reply = self._blob(method, split.path, authorization)
                else:
                    reply = self._reply(method, path, query, authorization, body, prefix)
            except Exception:  # a bug in the fake: fail the test that asserts no violations
                self._violations.append(
                    f"{method} {path}: fakegithub bug: {traceback.format_exc()}"
                )
                reply = _error(500, "fakegithub internal error")
            self._requests.append(LoggedRequest(method, path, reply.status))
            if not split.path.startswith(BLOB_PREFIX):
                self._api_prefixes.append(prefix)
            self._rate_used += 1
            reply.headers.update(self._rate_headers())
            self._changed()
        return reply

    def _reply(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        authorization: str | None,
        body: bytes,
        prefix: str,
    ) -> Reply:
        try:
            operation, params = self._spec.resolve(method, path)
            payload = operation.validate(params, query, body)
        except InvalidRequest as exc:
            self._violations.append(f"{method} {path}: {exc.message}")
            return _error(exc.status, exc.message, exc.documentation_url)
        fault = next((f for f in self._faults if f.matches(method, path)), None)
        if fault is not None:
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
            if fault.landed:
                self._dispatch(
                    method, path, query, operation, params, payload, authorization, prefix
                )
            return Reply(fault.status, dict(fault.body), dict(fault.headers))
        return self._dispatch(
            method, path, query, operation, params, payload, authorization, prefix
        )

    def _dispatch(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        operation: openapi.Operation,
        params: dict[str, str],
        payload: Any,
        authorization: str | None,
        prefix: str,
    ) -> Reply:
        handler = _HANDLERS.get((method, operation.template))
        if handler is None:
            self._unimplemented.append(f"{method} {operation.template}")
            return _error(501, f"fakegithub does not implement {method} {operation.template}")
        try:
            token = self._authenticate(authorization)
            if token.kind == "readonly" and method in WRITE_METHODS:
                raise ApiError(403, NOT_ACCESSIBLE)
            call = Call(operation, path, query, params, payload, token, self.url + prefix, self.url)
            return handler(self, call)
        except ApiError as exc:
            return _error(exc.status, exc.message, operation.documentation_url)
        except InvalidRequest as exc:  # refused by a rule the schema does not express
            self._violations.append(f"{method} {path}: {exc.message}")
            return _error(exc.status, exc.message, exc.documentation_url)

    def _blob(self, method: str, path: str, authorization: str | None) -> Reply:
        """Artifact storage: outside the API (no description, no token), like GitHub's."""
        artifact_id = path.removeprefix(BLOB_PREFIX)
        artifact = next(
            (
                artifact
                for repo in self._repos.values()
                for run in repo.workflow_runs.values()
                for artifact in run.artifacts
                if str(artifact.id) == artifact_id and not artifact.expired
            ),
            None,
        )
        if method != "GET" or artifact is None:
            return Reply(404, {"message": "The specified blob does not exist."})
        self._blob_downloads.append((artifact.id, authorization is not None))
        return Reply(200, artifact.data, {"Content-Type": "application/zip"})

    def _authenticate(self, authorization: str | None) -> Token:
        if not authorization:
            raise ApiError(401, "Requires authentication")
        scheme, _, secret = authorization.partition(" ")
        token = self._tokens.get(secret.strip())
        if scheme.lower() not in ("token", "bearer") or token is None:
            raise ApiError(401, "Bad credentials")
        return token

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(max(RATE_LIMIT - self._rate_used, 0)),
            "X-RateLimit-Used": str(self._rate_used),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Resource": "core",
        }

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def _next_id(self) -> int:
        return next(self._ids)

    def _user(self, login: str, kind: Literal["User", "Bot", "Organization"] = "User") -> User:
        """The one account named ``login`` (logins are case-insensitive), made on first use."""
        return self._users.setdefault(login.lower(), User(login, self._next_id(), kind))

    def _repo_named(self, full_name: str) -> Repo:
        try:
            return self._repos[full_name.lower()]
        except KeyError:
            raise KeyError(f"no repository {full_name!r}: seed it with add_repo()") from None

    def _repo(self, call: Call) -> Repo:
        repo = self._repos.get(f"{call.params['owner']}/{call.params['repo']}".lower())
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def _resolve_sha(self, repo: Repo, ref: str) -> str:
        if _SHA.fullmatch(ref):
            return ref.lower()
        branch = ref.removeprefix("heads/")
        if branch in repo.branches:
            return repo.branches[branch]
        for pull in repo.pulls.values():
            if branch == pull.head_ref:
                return pull.head_sha
            if branch == pull.base_ref:
                return pull.base_sha
        raise ApiError(422, f"No commit found for SHA: {ref}")

    def _paginate(self, call: Call, items: list[T]) -> tuple[list[T], dict[str, str]]:
        """One page of ``items`` and its Link header, as GitHub's REST API pages lists."""
        per_page = min(max(call.query_int("per_page", 30), 1), 100)
        page = max(call.query_int("page", 1), 1)
        last = max((len(items) + per_page - 1) // per_page, 1)
        rels: dict[str, int] = {}
        if page < last:
            rels |= {"next": page + 1, "last": last}
        if page > 1:
            rels |= {"prev": page - 1, "first": 1}
        query = {key: values[-1] for key, values in call.query.items()}
        links = [
            f'<{call.api}{call.path}?{urlencode({**query, "page": number})}>; rel="{rel}"'
            for rel, number in rels.items()
        ]
        headers = {"Link": ", ".join(links)} if links else {}
        return items[(page - 1) * per_page : page * per_page], headers

    # -- response bodies ---------------------------------------------------------------------

    def _user_json(self, call: Call, user: User) -> dict[str, Any]:
        login = quote(user.login)
        api = f"{call.api}/users/{login}"
        return {
            "login": user.login,
            "id": user.id,
            "node_id": _node_id(user.type, user.id),
            "avatar_url": f"{call.html}/avatars/{login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{call.html}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": user.type,
            "site_admin": False,
        }

    def _repo_json(self, call: Call, repo: Repo) -> dict[str, Any]:
        # The documented example holds some 40 URL templates; rewrite its base, keep the rest.
        example = self._spec.operation("GET", "/repos/{owner}/{repo}").response_template(200)
        api, html = f"{call.api}/repos/{repo.full_name}", f"{call.html}/{repo.full_name}"
        document = {
            key: re.sub(r"https?://api\.github\.com/repos/octocat/Hello-World", api, value)
            if isinstance(value, str)
            else value
            for key, value in example.items()
        }
        return {
            **document,
            "id": repo.id,
            "node_id": _node_id("Repository", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": self._user_json(call, repo.owner),
            "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": html,
            "clone_url": f"{html}.git",
            "git_url": f"{html}.git",
            "ssh_url": f"git@{urlsplit(call.html).netloc}:{repo.full_name}.git",
            "svn_url": html,
            "mirror_url": None,
            "license": None,
            "homepage": None,
            "description": None,
            "language": None,
            "default_branch": repo.default_branch,
            "has_downloads": True,  # required where a pull request embeds the repository
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
            "pushed_at": repo.created_at,
        }

    def _pull_json(self, call: Call, repo: Repo, pull: Pull) -> dict[str, Any]:
        example = self._spec.operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
        api = f"{call.api}/repos/{repo.full_name}"
        html = f"{call.html}/{repo.full_name}/pull/{pull.number}"
        links = {
            "self": f"{api}/pulls/{pull.number}",
            "html": html,
            "issue": f"{api}/issues/{pull.number}",
            "comments": f"{api}/issues/{pull.number}/comments",
            "review_comments": f"{api}/pulls/{pull.number}/comments",
            "review_comment": f"{api}/pulls/comments{{/number}}",
            "commits": f"{api}/pulls/{pull.number}/commits",
            "statuses": f"{api}/statuses/{pull.head_sha}",
        }
        repo_json = self._repo_json(call, repo)

        def branch(ref: str, sha: str, owner: str | None = None) -> dict[str, Any]:
            held = repo_json
            if owner is not None:  # a fork: the same repository under its owner
                fork_owner = self._user_json(call, self._user(owner))
                held = {
                    **repo_json,
                    "full_name": f"{owner}/{repo.name}",
                    "owner": fork_owner,
                    "fork": True,
                }
            return {
                "label": f"{held['owner']['login']}:{ref}",
                "ref": ref,
                "sha": sha,
                "repo": held,
                "user": held["owner"],
            }

        return {
            **example.response_template(200),
            "id": pull.id,
            "node_id": _node_id("PullRequest", pull.id),
            "number": pull.number,
            "state": "open",
            "locked": False,
            "draft": False,
            "title": pull.title,
            "body": None,
            "user": self._user_json(call, pull.author),
            "author_association": "CONTRIBUTOR",
            "assignee": None,
            "labels": [],
            "milestone": None,
            "auto_merge": None,
            "merged": False,
            "merged_at": None,
            "merged_by": None,
            "comments": sum(1 for c in repo.comments.values() if c.issue_number == pull.number),
            "merge_commit_sha": None,
            "mergeable": None,
            "mergeable_state": "unknown",
            "closed_at": None,
            "created_at": pull.created_at,
            "updated_at": pull.created_at,
            "head": branch(pull.head_ref, pull.head_sha, pull.head_owner),
            "base": branch(pull.base_ref, pull.base_sha),
            "_links": {rel: {"href": href} for rel, href in links.items()},
            "url": links["self"],
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": links["issue"],
            "comments_url": links["comments"],
            "commits_url": links["commits"],
            "review_comments_url": links["review_comments"],
            "review_comment_url": links["review_comment"],
            "statuses_url": links["statuses"],
        }

    def _app_json(self, call: Call, app: User) -> dict[str, Any]:
        slug = app.login.removesuffix("[bot]")
        return {
            "id": app.id,
            "slug": slug,
            "node_id": _node_id("Integration", app.id),
            "owner": self._user_json(call, User("github", 9919, "Organization")),
            "name": "GitHub Actions" if slug == "github-actions" else slug,
            "description": "",
            "external_url": f"{call.html}/apps/{slug}",
            "html_url": f"{call.html}/apps/{slug}",
            "created_at": "2018-07-30T09:30:17Z",
            "updated_at": "2018-07-30T09:30:17Z",
            "permissions": {"checks": "write", "statuses": "write", "issues": "write"},
            "events": [],
        }

    def _check_run_json(self, call: Call, repo: Repo, run: CheckRun) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}/check-runs/{run.id}"
        html = f"{call.html}/{repo.full_name}/runs/{run.id}"
        output = run.output
        pulls = [p for p in repo.pulls.values() if p.head_sha == run.head_sha]
        repo_ref = {"id": repo.id, "url": f"{call.api}/repos/{repo.full_name}", "name": repo.name}
        return {
            "id": run.id,
            "node_id": _node_id("CheckRun", run.id),
            "head_sha": run.head_sha,
            "external_id": run.external_id,
            "url": api,
            "html_url": html,
            "details_url": run.details_url or html,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": run.started_at,
            "completed_at": run.completed_at,
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(output["annotations"]),
                "annotations_url": f"{api}/annotations",
            },
            "name": run.name,
            # One suite per commit: what mlgate sees when all its runs share a token.
            "check_suite": {"id": int(run.head_sha[:7], 16)},
            "app": self._app_json(call, run.app),
            "pull_requests": [
                {
                    "url": f"{call.api}/repos/{repo.full_name}/pulls/{p.number}",
                    "id": p.id,
                    "number": p.number,
                    "head": {"ref": p.head_ref, "sha": p.head_sha, "repo": repo_ref},
                    "base": {"ref": p.base_ref, "sha": p.base_sha, "repo": repo_ref},
                }
                for p in pulls
            ],
        }

    def _annotation_json(
        self, call: Call, repo: Repo, run: CheckRun, annotation: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = quote(annotation["path"])
        return {
            "path": annotation["path"],
            "blob_href": f"{call.html}/{repo.full_name}/blob/{run.head_sha}/{path}",
            "start_line": annotation["start_line"],
            "end_line": annotation["end_line"],
            "start_column": annotation.get("start_column"),
            "end_column": annotation.get("end_column"),
            "annotation_level": annotation["annotation_level"],
            "title": annotation.get("title"),
            "message": annotation["message"],
            "raw_details": annotation.get("raw_details"),
        }

    def _status_json(self, call: Call, repo: Repo, status: Status) -> dict[str, Any]:
        creator = self._user_json(call, status.creator)
        return {
            "url": f"{call.api}/repos/{repo.full_name}/statuses/{status.sha}",
            "avatar_url": creator["avatar_url"],
            "id": status.id,
            "node_id": _node_id("StatusContext", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "creator": creator,
        }

    def _comment_json(self, call: Call, repo: Repo, comment: Comment) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}/issues"
        html = f"{call.html}/{repo.full_name}/pull/{comment.issue_number}"
        return {
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "url": f"{api}/comments/{comment.id}",
            "html_url": f"{html}#issuecomment-{comment.id}",
            "issue_url": f"{api}/{comment.issue_number}",
            "body": comment.body,
            "user": self._user_json(call, comment.user),
            "author_association": "NONE" if comment.user.type == "Bot" else "CONTRIBUTOR",
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
        }

    def _commit_json(self, call: Call, repo: Repo, sha: str) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}"
        person = {"name": "Octo Dev", "email": "dev@example.com", "date": repo.created_at}
        return {
            "url": f"{api}/commits/{sha}",
            "sha": sha,
            "node_id": _node_id("Commit", int(sha[:12], 16)),
            "html_url": f"{call.html}/{repo.full_name}/commit/{sha}",
            "comments_url": f"{api}/commits/{sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{sha}",
                "author": person,
                "committer": person,
                "message": f"Commit {sha[:7]}",
                "tree": {"sha": sha, "url": f"{api}/git/trees/{sha}"},
                "comment_count": 0,
            },
            "author": None,
            "committer": None,
            "parents": [],
            "files": [],
        }

    # -- handlers: repository, user, rate limit ----------------------------------------------

    @route("GET", "/repos/{owner}/{repo}")
    def _get_repo(self, call: Call) -> Reply:
        return Reply(200, self._repo_json(call, self._repo(call)))

    @route("GET", "/user")
    def _get_user(self, call: Call) -> Reply:
        if not call.token.can_read_user:
            raise ApiError(403, NOT_ACCESSIBLE)
        profile = {
            "name": None,
            "company": None,
            "blog": "",
            "location": None,
            "email": None,
            "hireable": None,
            "bio": None,
            "twitter_username": None,
            "public_repos": 0,
            "public_gists": 0,
            "followers": 0,
            "following": 0,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
        }
        return Reply(200, {**self._user_json(call, call.token.user), **profile})

    @route("GET", "/rate_limit")
    def _get_rate_limit(self, call: Call) -> Reply:
        document = call.operation.response_template(200)
        core = {
            "limit": RATE_LIMIT,
            "used": self._rate_used,
            "remaining": max(RATE_LIMIT - self._rate_used, 0),
            "reset": int(time.time()) + 3600,
        }
        document["resources"]["core"] = core
        document["rate"] = core
        return Reply(200, document)

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}")
    def _get_commit(self, call: Call) -> Reply:
        repo = self._repo(call)
        sha = self._resolve_sha(repo, call.params["ref"])
        return Reply(200, self._commit_json(call, repo, sha))

    @route("GET", "/repos/{owner}/{repo}/git/ref/{ref}")
    def _get_git_ref(self, call: Call) -> Reply:
        """Branches only (``heads/<name>``), as add_branch seeded them."""
        repo = self._repo(call)
        ref = call.params["ref"]
        sha = repo.branches.get(ref.removeprefix("heads/")) if ref.startswith("heads/") else None
        if sha is None:
            raise ApiError(404, "Not Found")
        api = f"{call.api}/repos/{repo.full_name}"
        return Reply(
            200,
            {
                "ref": f"refs/{ref}",
                "node_id": _node_id("Ref", int(sha[:12], 16)),
                "url": f"{api}/git/refs/{quote(ref)}",
                "object": {"type": "commit", "sha": sha, "url": f"{api}/git/commits/{sha}"},
            },
        )

    @route("GET", "/repos/{owner}/{repo}/contents/{path}")
    def _get_contents(self, call: Call) -> Reply:
        """A file seeded by add_branch, at ``ref`` (a commit or a branch; default: the default
        branch); base64 as GitHub sends files up to 1 MB (a directory or a larger file: 404)."""
        repo = self._repo(call)
        ref = call.query_str("ref") or repo.default_branch
        sha = ref.lower() if _SHA.fullmatch(ref) else repo.branches.get(ref.removeprefix("heads/"))
        path = call.params["path"].strip("/")
        data = repo.files.get(sha or "", {}).get(path)
        if data is None:
            raise ApiError(404, "Not Found")
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        api = f"{call.api}/repos/{repo.full_name}"
        html = f"{call.html}/{repo.full_name}/blob/{quote(ref)}/{quote(path)}"
        links = {
            "self": f"{api}/contents/{quote(path)}?ref={quote(ref)}",
            "git": f"{api}/git/blobs/{blob}",
            "html": html,
        }
        return Reply(
            200,
            {
                "type": "file",
                "encoding": "base64",
                "size": len(data),
                "name": path.rsplit("/", 1)[-1],
                "path": path,
                "content": base64.encodebytes(data).decode("ascii"),
                "sha": blob,
                "url": links["self"],
                "git_url": links["git"],
                "html_url": html,
                "download_url": None,
                "_links": links,
            },
        )

    @route("GET", "/repos/{owner}/{repo}/pulls")
    def _list_pulls(self, call: Call) -> Reply:
        """Open pull requests (seeded ones are all open), filtered by ``head`` as
        ``owner:branch``, ``base`` and ``state``."""
        repo = self._repo(call)
        state, head, base = (call.query_str(k) for k in ("state", "head", "base"))
        pulls = [
            pull
            for pull in sorted(repo.pulls.values(), key=lambda p: p.number, reverse=True)
            if state in (None, "open", "all")
            and (head is None or head == f"{pull.head_owner or repo.owner.login}:{pull.head_ref}")
            and (base is None or base == pull.base_ref)
        ]
        page, headers = self._paginate(call, pulls)
        return Reply(200, [self._pull_json(call, repo, pull) for pull in page], headers)

    @route("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
    def _get_pull(self, call: Call) -> Reply:
        repo = self._repo(call)
        pull = repo.pulls.get(int(call.params["pull_number"]))
        if pull is None:
            raise ApiError(404, "Not Found")
        return Reply(200, self._pull_json(call, repo, pull))

    # -- handlers: check runs ----------------------------------------------------------------

    @staticmethod
    def _require_app(call: Call) -> None:
        if call.token.kind == "pat":
            raise ApiError(403, "You must authenticate via a GitHub App.")

    def _check_run(self, call: Call, repo: Repo) -> CheckRun:
        run = repo.check_runs.get(int(call.params["check_run_id"]))
        if run is None:
            raise ApiError(404, "Not Found")
        return run

    @staticmethod
    def _apply_check_run_fields(run: CheckRun, body: Mapping[str, Any]) -> None:
        """Apply create/update fields; the rules below are GitHub's, beyond the schema."""
        for name in ("name", "details_url", "external_id", "started_at", "actions"):
            if name in body:
                setattr(run, name, body[name])
        if "status" in body:
            run.status = body["status"]
            if run.status != "completed":
                run.conclusion = run.completed_at = None
        if "conclusion" in body:
            # Providing a conclusion sets the status to completed.
            run.conclusion, run.status = body["conclusion"], "completed"
        if "completed_at" in body:
            run.completed_at = body["completed_at"]
        if run.status == "completed" and run.completed_at is None:
            run.completed_at = _now()
        if run.conclusion is None and (run.status == "completed" or run.completed_at):
            raise InvalidRequest(
                422, "conclusion is required with status completed or completed_at"
            )
        if body.get("conclusion") == "stale":
            raise InvalidRequest(422, "only GitHub can set the conclusion stale")
        if run.conclusion == "action_required" and not run.details_url:
            raise InvalidRequest(422, "conclusion action_required needs a details_url")
        output = body.get("output")
        if output is not None:
            # title, summary, text and images are replaced; annotations accumulate.
            for name in ("title", "summary", "text", "images"):
                if name in output:
                    run.output[name] = output[name]
            run.output["annotations"].extend(output.get("annotations", ()))

    @route("POST", "/repos/{owner}/{repo}/check-runs")
    def _create_check_run(self, call: Call) -> Reply:
        self._require_app(call)
        repo = self._repo(call)
        run = CheckRun(
            id=self._next_id(),
            name=call.body["name"],
            head_sha=self._resolve_sha(repo, call.body["head_sha"]),
            status="queued",
            conclusion=None,
            started_at=_now(),
            completed_at=None,
            details_url=None,
            external_id=None,
            app=call.token.user,
            output={"title": None, "summary": None, "text": None, "annotations": [], "images": []},
            actions=[],
        )
        self._apply_check_run_fields(run, call.body)
        repo.check_runs[run.id] = run
        return Reply(201, self._check_run_json(call, repo, run))

    @route("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
    def _update_check_run(self, call: Call) -> Reply:
        self._require_app(call)
        repo = self._repo(call)
        run = self._check_run(call, repo)
        # Validate on a copy: a refused update must leave the run as it was.
        updated = dataclasses.replace(
            run, output={**run.output, "annotations": list(run.output["annotations"])}
        )
        self._apply_check_run_fields(updated, call.body)
        repo.check_runs[run.id] = updated
        return Reply(200, self._check_run_json(call, repo, updated))

    @route("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
    def _get_check_run(self, call: Call) -> Reply:
        repo = self._repo(call)
        return Reply(200, self._check_run_json(call, repo, self._check_run(call, repo)))

    @route("GET", "/repos/{owner}/{repo}/check-runs/{check_run_id}/annotations")
    def _list_annotations(self, call: Call) -> Reply:
        repo = self._repo(call)
        run = self._check_run(call, repo)
        page, headers = self._paginate(call, run.output["annotations"])
        return Reply(200, [self._annotation_json(call, repo, run, a) for a in page], headers)

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
    def _list_check_runs(self, call: Call) -> Reply:
        repo = self._repo(call)
        sha = self._resolve_sha(repo, call.params["ref"])
        runs = [run for run in repo.check_runs.values() if run.head_sha == sha]
        name, status = call.query_str("check_name"), call.query_str("status")
        app_id = call.query_str("app_id")
        runs = [
            run
            for run in runs
            if (name is None or run.name == name)
            and (status is None or run.status == status)
            and (app_id is None or run.app.id == int(app_id))
        ]
        if call.query_str("filter") != "all":  # "latest": the newest run of each name
            newest = {run.name: run for run in runs}
            runs = list(newest.values())
        runs.sort(key=lambda run: run.id, reverse=True)
        page, headers = self._paginate(call, runs)
        body = {
            "total_count": len(runs),
            "check_runs": [self._check_run_json(call, repo, run) for run in page],
        }
        return Reply(200, body, headers)

    # -- handlers: code scanning ------------------------------------------------------------

    @route("POST", "/repos/{owner}/{repo}/code-scanning/sarifs")
    def _upload_sarif(self, call: Call) -> Reply:
        """GitHub's rules beyond the schema: code scanning must be enabled; the SARIF is gzip
        then base64, at most 10 MB gzipped, 20 runs, 25,000 results per run, and one run per
        category per upload."""
        repo = self._repo(call)
        if not repo.code_scanning:
            raise ApiError(403, "Code scanning is not enabled for this repository.")
        try:
            packed = base64.b64decode(call.body["sarif"], validate=True)
        except ValueError:
            raise InvalidRequest(400, "sarif is not valid base64") from None
        if len(packed) > 10 * 1024 * 1024:
            raise InvalidRequest(413, "SARIF upload is too large (10 MB gzipped at most)")
        try:
            log = json.loads(gzip.decompress(packed))
        except (OSError, ValueError):
            raise InvalidRequest(400, "sarif is not gzip-compressed SARIF JSON") from None
        runs = log.get("runs") if isinstance(log, dict) else None
        if log.get("version") != "2.1.0" or not isinstance(runs, list):
            raise InvalidRequest(400, "not a SARIF 2.1.0 log")
        if len(runs) > 20:
            raise InvalidRequest(400, "a SARIF upload may hold at most 20 runs")
        categories = [r.get("automationDetails", {}).get("id", "") for r in runs]
        if len(set(categories)) != len(categories):
            raise InvalidRequest(400, "several runs with the same category in one upload")
        for run in runs:
            if len(run.get("results", [])) > 25_000:
                raise InvalidRequest(400, "a SARIF run may hold at most 25,000 results")
            for result in run.get("results", []):
                if not result.get("locations"):
                    raise InvalidRequest(400, "every result needs a location")
        upload_id = f"{self._next_id():x}-sarif"
        repo.sarif_uploads.append(
            {
                "id": upload_id,
                "commit_sha": call.body["commit_sha"],
                "ref": call.body["ref"],
                "sarif": log,
            }
        )
        url = f"{call.api}/repos/{repo.full_name}/code-scanning/sarifs/{upload_id}"
        return Reply(202, {"id": upload_id, "url": url})

    # -- handlers: commit statuses -----------------------------------------------------------

    @route("POST", "/repos/{owner}/{repo}/statuses/{sha}")
    def _create_status(self, call: Call) -> Reply:
        repo = self._repo(call)
        description = call.body.get("description")
        if description is not None and len(description) > MAX_STATUS_DESCRIPTION:
            raise InvalidRequest(
                422, f"description is too long (maximum is {MAX_STATUS_DESCRIPTION} characters)"
            )
        status = Status(
            id=self._next_id(),
            sha=self._resolve_sha(repo, call.params["sha"]),
            state=call.body["state"],
            context=call.body.get("context", "default"),
            description=description,
            target_url=call.body.get("target_url"),
            creator=call.token.user,
            created_at=_now(),
        )
        repo.statuses.append(status)
        return Reply(201, self._status_json(call, repo, status))

    def _statuses_of(self, call: Call, repo: Repo) -> list[Status]:
        """Statuses of the ref in the path, newest first."""
        sha = self._resolve_sha(repo, call.params["ref"])
        return [s for s in reversed(repo.statuses) if s.sha == sha]

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}/statuses")
    def _list_statuses(self, call: Call) -> Reply:
        repo = self._repo(call)
        page, headers = self._paginate(call, self._statuses_of(call, repo))
        return Reply(200, [self._status_json(call, repo, s) for s in page], headers)

    @route("GET", "/repos/{owner}/{repo}/commits/{ref}/status")
    def _combined_status(self, call: Call) -> Reply:
        repo = self._repo(call)
        sha = self._resolve_sha(repo, call.params["ref"])
        latest: dict[str, Status] = {}
        for status in self._statuses_of(call, repo):
            latest.setdefault(status.context, status)
        states = {s.state for s in latest.values()}
        if states & {"error", "failure"}:
            state = "failure"
        elif not states or "pending" in states:
            state = "pending"
        else:
            state = "success"
        page, headers = self._paginate(call, list(latest.values()))
        api = f"{call.api}/repos/{repo.full_name}"
        body = {
            "state": state,
            "sha": sha,
            "total_count": len(latest),
            "statuses": [
                {k: v for k, v in self._status_json(call, repo, s).items() if k != "creator"}
                for s in page
            ],
            "repository": self._repo_json(call, repo),
            "commit_url": f"{api}/commits/{sha}",
            "url": f"{api}/commits/{sha}/status",
        }
        return Reply(200, body, headers)

    # -- handlers: issue comments ------------------------------------------------------------

    @staticmethod
    def _check_comment_body(body: str) -> None:
        if len(body) > MAX_COMMENT_BODY:
            raise InvalidRequest(
                422, f"Body is too long (maximum is {MAX_COMMENT_BODY} characters)"
            )

    def _comment(self, call: Call, repo: Repo) -> Comment:
        comment = repo.comments.get(int(call.params["comment_id"]))
        if comment is None:
            raise ApiError(404, "Not Found")
        return comment

    def _issue_number(self, call: Call, repo: Repo) -> int:
        # Pull requests are the only issues the fake knows.
        number = int(call.params["issue_number"])
        if number not in repo.pulls:
            raise ApiError(404, "Not Found")
        return number

    @route("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def _list_comments(self, call: Call) -> Reply:
        repo = self._repo(call)
        number = self._issue_number(call, repo)
        since = call.query_str("since")
        comments = [
            c
            for c in repo.comments.values()
            if c.issue_number == number
            and (since is None or _parse_time(c.updated_at) >= _parse_time(since))
        ]
        page, headers = self._paginate(call, comments)
        return Reply(200, [self._comment_json(call, repo, c) for c in page], headers)

    @route("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
    def _create_comment(self, call: Call) -> Reply:
        repo = self._repo(call)
        number = self._issue_number(call, repo)
        self._check_comment_body(call.body["body"])
        now = _now()
        comment = Comment(self._next_id(), number, call.body["body"], call.token.user, now, now)
        repo.comments[comment.id] = comment
        return Reply(201, self._comment_json(call, repo, comment))

    @route("GET", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def _get_comment(self, call: Call) -> Reply:
        repo = self._repo(call)
        return Reply(200, self._comment_json(call, repo, self._comment(call, repo)))

    @route("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def _update_comment(self, call: Call) -> Reply:
        repo = self._repo(call)
        comment = self._comment(call, repo)
        self._check_comment_body(call.body["body"])
        comment.body, comment.updated_at = call.body["body"], _now()
        return Reply(200, self._comment_json(call, repo, comment))

    @route("DELETE", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
    def _delete_comment(self, call: Call) -> Reply:
        repo = self._repo(call)
        del repo.comments[self._comment(call, repo).id]
        return Reply(204)

    # -- handlers: workflow runs and artifacts -----------------------------------------------

    def _workflow_run_json(self, call: Call, repo: Repo, run: WorkflowRun) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}"
        repo_json = self._repo_json(call, repo)
        person = {"name": "Octo Dev", "email": "dev@example.com"}
        return {
            "id": run.id,
            "name": run.workflow.rsplit(".", 1)[0],
            "node_id": _node_id("WorkflowRun", run.id),
            "head_branch": run.head_branch,
            "head_sha": run.head_sha,
            "path": f".github/workflows/{run.workflow}",
            "display_title": f"Commit {run.head_sha[:7]}",
            "run_number": run.run_number,
            "run_attempt": 1,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": run.workflow_id,
            "url": f"{api}/actions/runs/{run.id}",
            "html_url": f"{call.html}/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": [],
            "created_at": run.created_at,
            "updated_at": run.created_at,
            "run_started_at": run.created_at,
            "jobs_url": f"{api}/actions/runs/{run.id}/jobs",
            "logs_url": f"{api}/actions/runs/{run.id}/logs",
            "check_suite_url": f"{api}/check-suites/{run.id}",
            "artifacts_url": f"{api}/actions/runs/{run.id}/artifacts",
            "cancel_url": f"{api}/actions/runs/{run.id}/cancel",
            "rerun_url": f"{api}/actions/runs/{run.id}/rerun",
            "workflow_url": f"{api}/actions/workflows/{run.workflow_id}",
            "head_commit": {
                "id": run.head_sha,
                "tree_id": run.head_sha,
                "message": f"Commit {run.head_sha[:7]}",
                "timestamp": run.created_at,
                "author": person,
                "committer": person,
            },
            "repository": repo_json,
            "head_repository": repo_json,
        } | (
            {
                "run_attempt": run.attempt,
                "actor": self._user_json(call, run.actor),
                "triggering_actor": self._user_json(call, run.actor),
            }
            if run.actor is not None
            else {}
        )

    def _workflow_run(self, call: Call, repo: Repo) -> WorkflowRun:
        run = repo.workflow_runs.get(int(call.params["run_id"]))
        if run is None:
            raise ApiError(404, "Not Found")
        return run

    @route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}")
    def _get_workflow_run(self, call: Call) -> Reply:
        repo = self._repo(call)
        return Reply(200, self._workflow_run_json(call, repo, self._workflow_run(call, repo)))

    @route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs")
    def _list_run_jobs(self, call: Call) -> Reply:
        """The jobs of the run's latest attempt (``filter`` latest, the default, or all)."""
        repo = self._repo(call)
        run = self._workflow_run(call, repo)
        page, headers = self._paginate(call, run.jobs)
        api = f"{call.api}/repos/{repo.full_name}"
        body = {
            "total_count": len(run.jobs),
            "jobs": [
                {
                    "id": job.id,
                    "run_id": run.id,
                    "run_url": f"{api}/actions/runs/{run.id}",
                    "run_attempt": run.attempt,
                    "node_id": _node_id("Job", job.id),
                    "head_sha": run.head_sha,
                    "url": f"{api}/actions/jobs/{job.id}",
                    "html_url": f"{call.html}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
                    "status": job.status,
                    "conclusion": job.conclusion,
                    "created_at": job.started_at,
                    "started_at": job.started_at,
                    "completed_at": None,
                    "name": job.name,
                    "steps": [],
                    "check_run_url": f"{api}/check-runs/{job.id}",
                    "labels": ["ubuntu-latest"],
                    "runner_id": 1,
                    "runner_name": "GitHub Actions 1",
                    "runner_group_id": 2,
                    "runner_group_name": "GitHub Actions",
                    "workflow_name": run.workflow.rsplit(".", 1)[0],
                    "head_branch": run.head_branch,
                }
                for job in page
            ],
        }
        return Reply(200, body, headers)

    def _artifact_json(self, call: Call, repo: Repo, artifact: Artifact) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}/actions/artifacts/{artifact.id}"
        return {
            "id": artifact.id,
            "node_id": _node_id("Artifact", artifact.id),
            "name": artifact.name,
            "size_in_bytes": len(artifact.data),
            "url": api,
            "archive_download_url": f"{api}/zip",
            "expired": artifact.expired,
            "created_at": artifact.created_at,
            "expires_at": artifact.created_at if artifact.expired else "2099-01-01T00:00:00Z",
            "updated_at": artifact.created_at,
        }

    def _artifact(self, call: Call, repo: Repo) -> Artifact:
        wanted = int(call.params["artifact_id"])
        for run in repo.workflow_runs.values():
            for artifact in run.artifacts:
                if artifact.id == wanted:
                    return artifact
        raise ApiError(404, "Not Found")

    @route("GET", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/runs")
    def _list_workflow_runs(self, call: Call) -> Reply:
        repo = self._repo(call)
        workflow = call.params["workflow_id"]
        workflow_id = int(workflow) if workflow.isdigit() else repo.workflows.get(workflow)
        if workflow_id not in repo.workflows.values():
            raise ApiError(404, "Not Found")
        branch, status = call.query_str("branch"), call.query_str("status")
        runs = [
            run
            for run in repo.workflow_runs.values()
            if run.workflow_id == workflow_id
            and (branch is None or run.head_branch == branch)
            # `status` takes a status or a conclusion.
            and (status is None or status in (run.status, run.conclusion))
        ]
        runs.sort(key=lambda run: run.id, reverse=True)  # newest first
        page, headers = self._paginate(call, runs)
        body = {
            "total_count": len(runs),
            "workflow_runs": [self._workflow_run_json(call, repo, run) for run in page],
        }
        return Reply(200, body, headers)

    @route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts")
    def _list_run_artifacts(self, call: Call) -> Reply:
        repo = self._repo(call)
        run = repo.workflow_runs.get(int(call.params["run_id"]))
        if run is None:
            raise ApiError(404, "Not Found")
        name = call.query_str("name")
        artifacts = [a for a in run.artifacts if name is None or a.name == name]
        page, headers = self._paginate(call, artifacts)
        body = {
            "total_count": len(artifacts),
            "artifacts": [self._artifact_json(call, repo, a) for a in page],
        }
        return Reply(200, body, headers)

    @route("GET", "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}")
    def _get_artifact(self, call: Call) -> Reply:
        repo = self._repo(call)
        return Reply(200, self._artifact_json(call, repo, self._artifact(call, repo)))

    @route("GET", "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/{archive_format}")
    def _download_artifact(self, call: Call) -> Reply:
        repo = self._repo(call)
        artifact = self._artifact(call, repo)
        if call.params["archive_format"] != "zip":
            raise ApiError(404, "Not Found")
        if artifact.expired:
            raise ApiError(410, "Artifact has expired")
        port = urlsplit(call.html).port
        return Reply(302, None, {"Location": f"http://localhost:{port}{BLOB_PREFIX}{artifact.id}"})

    # -- handlers: dispatches ----------------------------------------------------------------

    @route("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches")
    def _create_workflow_dispatch(self, call: Call) -> Reply:
        """GitHub's rules beyond the schema: the workflow must exist (404) and have a
        workflow_dispatch trigger (seed it with add_workflow), the ref must exist, inputs must be
        declared by the workflow and include the required ones (422), and take at most 65,535
        characters. With ``return_run_details`` the run is made and described (200)."""
        repo = self._repo(call)
        workflow = call.params["workflow_id"]
        workflow_id = int(workflow) if workflow.isdigit() else repo.workflows.get(workflow)
        if workflow_id not in repo.workflows.values():
            raise ApiError(404, "Not Found")
        assert workflow_id is not None
        if workflow_id not in repo.dispatchable:
            raise ApiError(422, "Workflow does not have 'workflow_dispatch' trigger")
        ref = call.body["ref"]
        branch = ref.removeprefix("refs/heads/")
        if branch == repo.default_branch:
            sha = next((p.base_sha for p in repo.pulls.values() if p.base_ref == branch), "d" * 40)
        else:
            try:
                sha = self._resolve_sha(repo, branch)
            except ApiError:
                raise ApiError(422, f"No ref found for: {ref}") from None
        inputs = call.body.get("inputs", {})
        if len(json.dumps(inputs)) > MAX_DISPATCH_INPUTS_CHARS:
            raise InvalidRequest(
                422, f"inputs are too large (maximum is {MAX_DISPATCH_INPUTS_CHARS} characters)"
            )
        declared, required = repo.dispatchable[workflow_id]
        unexpected = sorted(set(inputs) - set(declared)) if declared is not None else []
        if unexpected:
            raise ApiError(422, f"Unexpected inputs provided: {json.dumps(unexpected)}")
        missing = [name for name in required if name not in inputs]
        if missing:
            raise ApiError(422, f"Required input '{missing[0]}' not provided")
        name = next(n for n, i in repo.workflows.items() if i == workflow_id)
        repo.dispatches.append(
            {
                "event": "workflow_dispatch",
                "workflow": name,
                "ref": ref,
                "inputs": inputs,
                "actor": call.token.user.login,
            }
        )
        if not call.body.get("return_run_details"):
            return Reply(204)
        run = WorkflowRun(
            id=self._next_id(),
            run_number=len(repo.workflow_runs) + 1,
            workflow=name,
            workflow_id=workflow_id,
            head_branch=branch,
            head_sha=sha,
            event="workflow_dispatch",
            status="queued",
            conclusion=None,
            created_at=_now(),
            artifacts=[],
            actor=call.token.user,
        )
        repo.workflow_runs[run.id] = run
        api = f"{call.api}/repos/{repo.full_name}/actions/runs/{run.id}"
        html = f"{call.html}/{repo.full_name}/actions/runs/{run.id}"
        return Reply(200, {"workflow_run_id": run.id, "run_url": api, "html_url": html})

    @route("POST", "/repos/{owner}/{repo}/dispatches")
    def _create_repository_dispatch(self, call: Call) -> Reply:
        """GitHub's rule beyond the schema: the client_payload is under 64 KB of JSON."""
        repo = self._repo(call)
        payload = call.body.get("client_payload", {})
        if len(json.dumps(payload).encode()) >= MAX_CLIENT_PAYLOAD_BYTES:
            raise InvalidRequest(422, "client_payload is too large (must be less than 64KB)")
        repo.dispatches.append(
            {
                "event": "repository_dispatch",
                "event_type": call.body["event_type"],
                "client_payload": payload,
                "actor": call.token.user.login,
            }
        )
        return Reply(204)

    # -- handlers: collaborators, teams, environment approvals -------------------------------

    @route("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
    def _get_collaborator_permission(self, call: Call) -> Reply:
        repo = self._repo(call)
        collaborator = repo.collaborators.get(call.params["username"].lower())
        if collaborator is None:
            raise ApiError(404, "Not Found")
        rank = list(_LEGACY_PERMISSION).index(collaborator.base)
        grants = ("pull", "triage", "push", "maintain", "admin")  # in _LEGACY_PERMISSION's order
        user = {
            **self._user_json(call, collaborator.user),
            "permissions": {name: rank >= index for index, name in enumerate(grants)},
            "role_name": collaborator.role_name,
        }
        body = {
            "permission": _LEGACY_PERMISSION[collaborator.base],
            "role_name": collaborator.role_name,
            "user": user,
        }
        return Reply(200, body)

    @route("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}")
    def _get_team_membership(self, call: Call) -> Reply:
        org, login = call.params["org"], call.params["username"]
        team = self._teams.get((org.lower(), call.params["team_slug"].lower()))
        # "The team must be visible to the authenticated user": 404 otherwise, not 403.
        if team is None or not call.token.can_read_teams:
            raise ApiError(404, "Not Found")
        membership = team.members.get(login.lower())
        if membership is None:
            raise ApiError(404, "Not Found")
        org_id = self._user(org, "Organization").id
        url = f"{call.api}/organizations/{org_id}/team/{team.id}/memberships/{quote(login)}"
        return Reply(200, {"url": url, "role": membership.role, "state": membership.state})

    def _environment_json(self, call: Call, repo: Repo, name: str) -> dict[str, Any]:
        environment_id = repo.environments[name]
        return {
            "id": environment_id,
            "node_id": _node_id("Environment", environment_id),
            "name": name,
            "url": f"{call.api}/repos/{repo.full_name}/environments/{quote(name)}",
            "html_url": f"{call.html}/{repo.full_name}/deployments/activity_log"
            f"?environments_filter={quote(name)}",
            "created_at": repo.created_at,
            "updated_at": repo.created_at,
        }

    @route("GET", "/repos/{owner}/{repo}/actions/runs/{run_id}/approvals")
    def _list_run_approvals(self, call: Call) -> Reply:
        repo = self._repo(call)
        run = repo.workflow_runs.get(int(call.params["run_id"]))
        if run is None:
            raise ApiError(404, "Not Found")
        body = [
            {
                "environments": [self._environment_json(call, repo, n) for n in a.environments],
                "state": a.state,
                "user": self._user_json(call, a.user),
                "comment": a.comment,
            }
            for a in run.approvals
        ]
        return Reply(200, body)

    # -- handlers: deployments ---------------------------------------------------------------

    def _deployment(self, call: Call, repo: Repo) -> Deployment:
        deployment = repo.deployments.get(int(call.params["deployment_id"]))
        if deployment is None:
            raise ApiError(404, "Not Found")
        return deployment

    def _performed_via(self, call: Call, creator: User) -> dict[str, Any] | None:
        return self._app_json(call, creator) if creator.type == "Bot" else None

    def _deployment_json(self, call: Call, repo: Repo, deployment: Deployment) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}"
        return {
            "url": f"{api}/deployments/{deployment.id}",
            "id": deployment.id,
            "node_id": _node_id("Deployment", deployment.id),
            "sha": deployment.sha,
            "ref": deployment.ref,
            "task": deployment.task,
            "payload": deployment.payload,
            "original_environment": deployment.original_environment,
            "environment": deployment.environment,
            "description": deployment.description,
            "creator": self._user_json(call, deployment.creator),
            "created_at": deployment.created_at,
            "updated_at": deployment.updated_at,
            "statuses_url": f"{api}/deployments/{deployment.id}/statuses",
            "repository_url": api,
            "transient_environment": deployment.transient_environment,
            "production_environment": deployment.production_environment,
            "performed_via_github_app": self._performed_via(call, deployment.creator),
        }

    def _deployment_status_json(
        self, call: Call, repo: Repo, deployment: Deployment, status: DeploymentStatus
    ) -> dict[str, Any]:
        api = f"{call.api}/repos/{repo.full_name}"
        return {
            "url": f"{api}/deployments/{deployment.id}/statuses/{status.id}",
            "id": status.id,
            "node_id": _node_id("DeploymentStatus", status.id),
            "state": status.state,
            "creator": self._user_json(call, status.creator),
            "description": status.description,
            "environment": status.environment,
            "target_url": status.log_url,  # log_url replaces target_url; both hold the same
            "log_url": status.log_url,
            "environment_url": status.environment_url,
            "created_at": status.created_at,
            "updated_at": status.created_at,
            "deployment_url": f"{api}/deployments/{deployment.id}",
            "repository_url": api,
            "performed_via_github_app": self._performed_via(call, status.creator),
        }

    @route("POST", "/repos/{owner}/{repo}/deployments")
    def _create_deployment(self, call: Call) -> Reply:
        """GitHub's rules beyond the schema: the ref must exist; unless ``required_contexts``
        is [], the listed status contexts (default: every context on the commit) must have
        succeeded, else 409. ``auto_merge`` is recorded but not acted on."""
        repo = self._repo(call)
        body = call.body
        ref = body["ref"]
        try:
            sha = self._resolve_sha(repo, ref.removeprefix("refs/"))
        except ApiError:
            raise ApiError(422, f"No ref found for: {ref}") from None
        required = body.get("required_contexts")
        latest: dict[str, str] = {}
        for status in reversed(repo.statuses):
            if status.sha == sha:
                latest.setdefault(status.context, status.state)
        unmet = [
            c for c in (latest if required is None else required) if latest.get(c) != "success"
        ]
        if unmet:
            raise ApiError(409, f"Conflict: Commit status checks failed for {ref}.")
        environment = body.get("environment", "production")
        now = _now()
        deployment = Deployment(
            id=self._next_id(),
            sha=sha,
            ref=ref,
            task=body.get("task", "deploy"),
            payload=body.get("payload", {}),
            environment=environment,
            original_environment=environment,
            description=body.get("description", ""),
            transient_environment=body.get("transient_environment", False),
            production_environment=body.get("production_environment", environment == "production"),
            auto_merge=body.get("auto_merge", True),
            required_contexts=required,
            creator=call.token.user,
            created_at=now,
            updated_at=now,
        )
        repo.environments.setdefault(environment, self._next_id())
        repo.deployments[deployment.id] = deployment
        return Reply(201, self._deployment_json(call, repo, deployment))

    @route("GET", "/repos/{owner}/{repo}/deployments")
    def _list_deployments(self, call: Call) -> Reply:
        repo = self._repo(call)
        wanted = {name: call.query_str(name) for name in ("sha", "ref", "task", "environment")}
        deployments = [
            d
            for d in reversed(repo.deployments.values())  # newest first
            if all(value is None or getattr(d, name) == value for name, value in wanted.items())
        ]
        page, headers = self._paginate(call, deployments)
        return Reply(200, [self._deployment_json(call, repo, d) for d in page], headers)

    @route("GET", "/repos/{owner}/{repo}/deployments/{deployment_id}")
    def _get_deployment(self, call: Call) -> Reply:
        repo = self._repo(call)
        return Reply(200, self._deployment_json(call, repo, self._deployment(call, repo)))

    @route("POST", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
    def _create_deployment_status(self, call: Call) -> Reply:
        """GitHub's rules beyond the schema: a description of at most 140 characters; log_url
        and target_url are one field; a status may move the deployment to another environment;
        a success marks prior successful deployments to the same environment inactive (unless
        ``auto_inactive`` is false; transient and production deployments are left alone)."""
        repo = self._repo(call)
        deployment = self._deployment(call, repo)
        body = call.body
        description = body.get("description", "")
        if len(description) > MAX_STATUS_DESCRIPTION:
            raise InvalidRequest(
                422, f"description is too long (maximum is {MAX_STATUS_DESCRIPTION} characters)"
            )
        if "environment" in body:
            deployment.environment = body["environment"]
            repo.environments.setdefault(deployment.environment, self._next_id())
        now = _now()
        status = DeploymentStatus(
            id=self._next_id(),
            state=body["state"],
            description=description,
            environment=deployment.environment,
            log_url=body.get("log_url", body.get("target_url", "")),
            environment_url=body.get("environment_url", ""),
            creator=call.token.user,
            created_at=now,
        )
        deployment.statuses.append(status)
        deployment.updated_at = now
        if status.state == "success" and body.get("auto_inactive", True):
            for prior in repo.deployments.values():
                if (
                    prior.id < deployment.id
                    and prior.environment == deployment.environment
                    and not (prior.transient_environment or prior.production_environment)
                    and prior.statuses
                    and prior.statuses[-1].state == "success"
                ):
                    inactive = dataclasses.replace(
                        status, id=self._next_id(), state="inactive", description="", log_url=""
                    )
                    prior.statuses.append(inactive)
        return Reply(201, self._deployment_status_json(call, repo, deployment, status))

    @route("GET", "/repos/{owner}/{repo}/deployments/{deployment_id}/statuses")
    def _list_deployment_statuses(self, call: Call) -> Reply:
        repo = self._repo(call)
        deployment = self._deployment(call, repo)
        newest_first = list(reversed(deployment.statuses))
        page, headers = self._paginate(call, newest_first)
        body = [self._deployment_status_json(call, repo, deployment, s) for s in page]
        return Reply(200, body, headers)


class _Server(ThreadingHTTPServer):
    # ThreadingHTTPServer's handler threads are daemons, which server_close() does not join:
    # a client that connects and never sends a request cannot block stop().
    fake: FakeGitHub


class _RequestHandler(BaseHTTPRequestHandler):
    # HTTP/1.0 (the default): one request per connection, so no idle keep-alive connection
    # holds a handler thread when the server stops.
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        reply = self.server.fake.handle(
            self.command, self.path, self.headers.get("Authorization"), body
        )
        if isinstance(reply.body, bytes):  # an artifact archive, its type among the headers
            payload = reply.body
        else:
            payload = b"" if reply.body is None else json.dumps(reply.body).encode()
            if payload:
                reply.headers["Content-Type"] = "application/json; charset=utf-8"
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: ``requests`` and ``violations`` tell tests what happened."""
