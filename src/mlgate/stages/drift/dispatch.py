"""The retraining trigger: the drift summary sent to GitHub as a workflow_dispatch or a
repository_dispatch when more features drifted than allowed."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mlgate.errors import MlgateError
from mlgate.evidence import Evidence
from mlgate.stages.drift.config import (
    MAX_CLIENT_PAYLOAD_BYTES,
    MAX_WORKFLOW_INPUTS_CHARS,
    DispatchTarget,
    InputValue,
)
from mlgate.stages.drift.entries import checked_entries
from mlgate.stages.drift.errors import Invalid

if TYPE_CHECKING:
    from mlgate.github.context import GitHubContext


class DispatchError(MlgateError):
    """The dispatch could not be sent; the message is the one-line reason."""


def dispatch(
    evidence: Evidence,
    target: DispatchTarget,
    github_context: GitHubContext,
    *,
    max_drifted_features: int = 0,
) -> str:
    """Start retraining on GitHub when more than `max_drifted_features` features drifted; one
    line saying what was sent, or why nothing was. Raises DispatchError (one line).

    Not retried: a dispatch that failed with a 5xx may have started the workflow already, and a
    retry would start a second one.
    """
    if evidence.status == "error":
        raise DispatchError(f"drift dispatch: the drift stage errored: {evidence.reason}")
    try:
        entries = checked_entries(evidence)
    except Invalid as exc:
        raise DispatchError(f"drift dispatch: {str(exc).removeprefix('drift: ')}") from None
    drifted = sorted((e for e in entries if e["drifted"]), key=lambda e: -float(e["psi"]))
    if len(drifted) <= max_drifted_features:
        return (
            f"no dispatch: {len(drifted)} of {len(entries)} features drifted, "
            f"at most {max_drifted_features} allowed"
        )
    names = [str(e["feature"]) for e in drifted]
    max_psi = max(float(e["psi"]) for e in entries)
    summary = f"{len(names)} of {len(entries)} features drifted (max PSI {max_psi:.3g})"
    if target.workflow is not None:
        inputs = _workflow_inputs(target, names, max_psi)
        what = f"workflow_dispatch of {target.workflow} on {target.ref}"

        def send(repo: Any) -> None:
            repo.get_workflow(target.workflow).create_dispatch(target.ref, inputs, throw=True)

    else:
        payload = _client_payload(target, evidence, names, max_psi, len(entries))
        what = f"repository_dispatch {target.repository_dispatch!r}"

        def send(repo: Any) -> None:
            # create_repository_dispatch() hides GitHub's answer (it returns False on any
            # error); the same request through the requester raises with status and message.
            body = {"event_type": target.repository_dispatch, "client_payload": payload}
            repo.requester.requestJsonAndCheck("POST", f"{repo.url}/dispatches", input=body)

    _send(github_context, send, what)
    return f"sent {what} to {github_context.repository}: {summary}"


def _workflow_inputs(target: DispatchTarget, names: list[str], max_psi: float) -> dict[str, str]:
    inputs = {key: _as_input(value) for key, value in target.inputs.items()}
    inputs["max_psi"] = f"{max_psi:.6g}"
    inputs["drifted_features"] = ""
    budget = MAX_WORKFLOW_INPUTS_CHARS - len(json.dumps(inputs))
    if budget < 0:
        raise DispatchError(
            f"drift dispatch: the workflow inputs exceed GitHub's {MAX_WORKFLOW_INPUTS_CHARS} "
            "characters before the drift summary"
        )
    # Names as JSON text (escapes included), joined by ", ", cut with a "(+N more)" tail.
    sizes = [len(json.dumps(name)) - 2 for name in names]
    if sum(sizes) + 2 * (len(names) - 1) <= budget:
        inputs["drifted_features"] = ", ".join(names)
        return inputs
    used, kept = 0, 0
    for size in sizes:
        tail = len(f" (+{len(names) - kept - 1} more)")
        if used + (2 if kept else 0) + size + tail > budget:
            break
        used += (2 if kept else 0) + size
        kept += 1
    inputs["drifted_features"] = f"{', '.join(names[:kept])} (+{len(names) - kept} more)".strip()
    return inputs


def _client_payload(
    target: DispatchTarget, evidence: Evidence, names: list[str], max_psi: float, compared: int
) -> dict[str, Any]:
    def side(role: str) -> object:
        entry = evidence.data.get(role)
        return entry.get("sha256") if isinstance(entry, dict) else None

    drift: dict[str, Any] = {
        "drifted_count": len(names),
        "features_compared": compared,
        "reference_sha256": side("reference"),
        "current_sha256": side("current"),
        "commit": evidence.provenance.git_sha,
        "drifted_features_left_out": 0,
    }
    payload: dict[str, Any] = dict(target.inputs) | {
        "drifted_features": [],
        "max_psi": max_psi,
        "drift": drift,
    }
    budget = MAX_CLIENT_PAYLOAD_BYTES - len(json.dumps(payload).encode())
    if budget < 0:
        raise DispatchError("drift dispatch: the client_payload exceeds GitHub's 64 KB limit")
    used, kept = 0, 0
    for name in names:
        size = len(json.dumps(name).encode()) + (2 if kept else 0)
        if used + size > budget - 8:  # room for the left-out count's digits
            break
        used += size
        kept += 1
    payload["drifted_features"] = names[:kept]
    drift["drifted_features_left_out"] = len(names) - kept
    return payload


def _as_input(value: InputValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _send(context: GitHubContext, send: Any, what: str) -> None:
    import requests
    from github.GithubException import GithubException

    from mlgate.github.client import connect

    repo = connect(context, write_delay=0).get_repo(context.repository)
    try:
        send(repo)
    except GithubException as exc:
        data = exc.data
        message = data.get("message") if isinstance(data, dict) else None
        detail = " ".join(str(message or data or "").split())[:200]
        maybe = " (not retried: it may have been sent)" if exc.status >= 500 else ""
        raise DispatchError(f"{what}: GitHub answered {exc.status} {detail}{maybe}") from None
    except requests.RequestException as exc:
        raise DispatchError(
            f"{what}: GitHub unreachable at {context.api_url}: {type(exc).__name__} "
            "(not retried: it may have been sent)"
        ) from None
