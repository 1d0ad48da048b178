"""Who may promote a model: repository permission, team membership, environment approvals.

Every answer comes from GitHub. A read that fails raises (NotPermitted, Rejected or
Unreachable, through with_retry) instead of deciding: the caller refuses the promotion, so no
answer is never a yes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from mlgate.errors import ConfigError
from mlgate.github.client import with_retry

if TYPE_CHECKING:
    from github.Repository import Repository

Permission = Literal["read", "triage", "write", "maintain", "admin"]

_RANKS: dict[str, int] = {"read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}


@dataclass(frozen=True)
class AccessRule:
    permission: Permission | None = "write"  # the actor's repository role must be at least this
    teams: tuple[str, ...] = ()  # "org/team-slug"; if given, the actor must be active in one
    approvals: int = 0  # approvals required from people other than the actor
    approvers: tuple[str, ...] = ()  # if given, only these logins' approvals count (N-of-M)

    def __post_init__(self) -> None:
        if self.permission is not None and self.permission not in _RANKS:
            raise ConfigError(f"access rule: unknown permission {self.permission!r}")
        for team in self.teams:
            org, _, slug = team.partition("/")
            if not org or not slug or "/" in slug:
                raise ConfigError(f"access rule: team {team!r} is not 'org/team-slug'")
        if self.approvals < 0:
            raise ConfigError(f"access rule: approvals is {self.approvals}, below 0")
        if self.approvers and self.approvals > len(set(a.casefold() for a in self.approvers)):
            raise ConfigError(
                f"access rule: {self.approvals} approvals can never come from "
                f"{len(self.approvers)} approvers"
            )


@dataclass(frozen=True)
class Approval:
    login: str
    state: str  # approved or rejected
    environments: tuple[str, ...]
    comment: str


@dataclass(frozen=True)
class AccessDecision:
    allowed: bool
    reason: str  # one line: what failed, or what was satisfied
    permission: str | None  # the actor's role as GitHub names it; None when not read
    approvals: tuple[Approval, ...]  # the approvals that counted toward the rule


def check(
    repo: Repository,
    actor: str,
    rule: AccessRule,
    *,
    run_id: int | None,
    environment: str | None,
) -> AccessDecision:
    """Whether `actor` may promote to `environment` under `rule`: permission, then teams,
    then approvals; the first unmet requirement is the reason. A rule that needs approvals is
    refused without a request when there is no workflow run to read them from."""
    promoting = f"promoting to {environment}" if environment else "promoting"
    permission: str | None = None

    def refuse(reason: str) -> AccessDecision:
        return AccessDecision(False, reason, permission, ())

    # Needs no request: a run-less promotion (a laptop, another CI) cannot show approvals.
    if rule.approvals > 0 and run_id is None:
        return refuse("approvals need the workflow run: promote from GitHub Actions")

    satisfied: list[str] = []
    if rule.permission is not None:
        role = _role(repo, actor)
        if role is None:
            return refuse(
                f"{actor} is not a collaborator on {repo.full_name}; "
                f"{promoting} needs {rule.permission}"
            )
        permission = role.name
        if role.rank < _RANKS[rule.permission]:
            return refuse(
                f"{actor} has {role} permission on {repo.full_name}; "
                f"{promoting} needs {rule.permission}"
            )
        satisfied.append(f"{actor} has {role} permission on {repo.full_name}")

    if rule.teams:
        team, pending = _active_team(repo, actor, rule.teams)
        if team is None:
            teams = " or ".join(rule.teams)
            detail = (
                f"(invitation to {', '.join(pending)} pending)"
                if pending
                # GitHub answers 404 alike for a non-member and for a team the token cannot
                # see, which is every team for the workflow's GITHUB_TOKEN.
                else "(or the token cannot see the team: it needs the members: read permission)"
            )
            return refuse(f"{actor} is not an active member of {teams} {detail}")
        satisfied.append(f"{actor} is an active member of {team}")

    counted: tuple[Approval, ...] = ()
    if rule.approvals > 0 and run_id is not None:  # no run: refused above
        tally = _tally(_run_approvals(repo, run_id), actor, rule, environment)
        counted = tally.counted
        if len(counted) < rule.approvals:
            return refuse(tally.shortfall(rule, actor, environment or "promoting"))
        satisfied.append(f"approved by {_logins(counted)}")

    reason = "; ".join(satisfied) if satisfied else "the access rule requires nothing"
    return AccessDecision(True, reason, permission, counted)


@dataclass(frozen=True)
class _Role:
    name: str  # as GitHub names it, a custom role included
    rank: int  # of the built-in role it grants at least

    def __str__(self) -> str:
        base = next((name for name, rank in _RANKS.items() if rank == self.rank), None)
        if base is None:  # GitHub's "none": no access beyond what the public has
            return "no"
        return self.name if self.name == base else f"{self.name} ({base})"


def _role(repo: Repository, actor: str) -> _Role | None:
    """The actor's repository role; None when GitHub says they are not a collaborator."""
    document = _get_or_none(
        repo,
        f"{repo.url}/collaborators/{quote(actor, safe='')}/permission",
        f"read {actor}'s permission on {repo.full_name}",
    )
    if document is None:
        return None
    role_name = document.get("role_name")
    # `role_name` names maintain and triage too, but also custom roles; for those, the legacy
    # `permission` (admin, write, read or none) is the floor they grant.
    if isinstance(role_name, str) and role_name in _RANKS:
        return _Role(role_name, _RANKS[role_name])
    legacy = str(document.get("permission") or "none")
    name = role_name if isinstance(role_name, str) and role_name else legacy
    return _Role(name, _RANKS.get(legacy, 0))


def _active_team(
    repo: Repository, actor: str, teams: tuple[str, ...]
) -> tuple[str | None, list[str]]:
    """The first team in which the actor is an active member, and those merely invited."""
    pending: list[str] = []
    for team in teams:
        org, _, slug = team.partition("/")
        path = f"/orgs/{quote(org, safe='')}/teams/{quote(slug, safe='')}/memberships/"
        membership = _get_or_none(
            repo, path + quote(actor, safe=""), f"read {actor}'s membership of {team}"
        )
        if membership is None:
            continue
        if membership.get("state") == "active":
            return team, pending
        pending.append(team)
    return None, pending


def _run_approvals(repo: Repository, run_id: int) -> list[Approval]:
    def read() -> Any:
        _, data = repo.requester.requestJsonAndCheck(
            "GET", f"{repo.url}/actions/runs/{run_id}/approvals"
        )
        return data

    entries = with_retry(read, f"read the approvals of workflow run {run_id}")
    return [
        Approval(
            login=str(entry["user"]["login"]),
            state=str(entry["state"]),
            environments=tuple(str(env["name"]) for env in entry.get("environments") or ()),
            comment=str(entry.get("comment") or ""),
        )
        for entry in entries or ()
    ]


@dataclass(frozen=True)
class _Tally:
    counted: tuple[Approval, ...]
    self_approved: bool
    not_approvers: tuple[str, ...]

    def shortfall(self, rule: AccessRule, actor: str, what: str) -> str:
        wanted = f"{rule.approvals} approval{'s' if rule.approvals != 1 else ''}"
        among = f" among {', '.join(rule.approvers)}" if rule.approvers else ""
        have = f"{len(self.counted)} ({_logins(self.counted)})" if self.counted else "none"
        reason = f"{what} needs {wanted} by someone other than {actor}{among}; the run has {have}"
        if self.self_approved:
            reason += f"; {actor}'s own approval does not count"
        if self.not_approvers:
            reason += f"; not approvers: {', '.join(self.not_approvers)}"
        return reason


def _tally(
    approvals: list[Approval], actor: str, rule: AccessRule, environment: str | None
) -> _Tally:
    """Approvals of `environment` that count: one per person, never the actor's own, only
    listed approvers' when the rule names them. Logins and environment names are compared
    case-insensitively, as GitHub treats them."""
    approvers = {login.casefold() for login in rule.approvers}
    wanted = environment.casefold() if environment is not None else None
    counted: dict[str, Approval] = {}
    self_approved = False
    not_approvers: dict[str, None] = {}
    for approval in approvals:
        if approval.state != "approved":
            continue
        if wanted is not None and wanted not in (e.casefold() for e in approval.environments):
            continue
        login = approval.login.casefold()
        if login == actor.casefold():
            self_approved = True
        elif approvers and login not in approvers:
            not_approvers[approval.login] = None
        else:
            counted.setdefault(login, approval)  # a second approval by the same person is one
    return _Tally(tuple(counted.values()), self_approved, tuple(not_approvers))


def _get_or_none(repo: Repository, url: str, what: str) -> dict[str, Any] | None:
    """GET `url` through with_retry; None for a 404, which these endpoints use for "no"."""
    from github.GithubException import GithubException

    def read() -> dict[str, Any] | None:
        try:
            _, data = repo.requester.requestJsonAndCheck("GET", url)
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
        return dict(data)

    return with_retry(read, what)


def _logins(approvals: tuple[Approval, ...]) -> str:
    return ", ".join(a.login for a in approvals)
