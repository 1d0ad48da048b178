"""After a promotion moved the alias: the deploy dispatch, the deploy command, the post-promotion
check (health, then a short load of the deployed model) and the GitHub Deployment record. Each
step answers why it failed, or None; the caller decides (a failed step rolls the alias back)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlgate.config import PromotionCheck

if TYPE_CHECKING:
    from github.Repository import Repository

DEPLOY_TIMEOUT_S = 1800
_CHECK_MARGIN_S = 60  # the check's load may take this long beyond warmup + duration
_HEALTH_PATHS = ("/ping", "/health")
_HEALTH_POLL_S = 0.25


def dispatch(repo: Repository, event_type: str, record: dict[str, Any]) -> str | None:
    """Send the deploy event; why GitHub refused it, or None. Not retried: a dispatch that
    failed with a 5xx may still have started the deploying workflow."""
    from github.GithubException import GithubException

    payload = {
        "model": record["model"],
        "version": record["to_version"],
        "stage": record["stage"],
        "bundle_digest": record["bundle_digest"],
        "run_url": record.get("run_url"),
    }
    try:
        repo.requester.requestJsonAndCheck(
            "POST",
            f"{repo.url}/dispatches",
            input={"event_type": event_type, "client_payload": payload},
        )
    except GithubException as exc:
        message = exc.data.get("message") if isinstance(exc.data, dict) else None
        return f"GitHub answered {exc.status}: {message or exc}"
    except OSError as exc:  # connection refused, reset, DNS
        return f"GitHub is not reachable: {exc}"
    return None


def deploy(command: list[str], name: str, version: str, stage: str) -> str | None:
    """Run the deploy hook; why it failed, or None."""
    env = os.environ | {"MLGATE_MODEL": name, "MLGATE_VERSION": version, "MLGATE_STAGE": stage}
    try:
        done = subprocess.run(
            command, env=env, timeout=DEPLOY_TIMEOUT_S, capture_output=True, text=True
        )
    except FileNotFoundError:
        return f"command not found: {command[0]}"
    except subprocess.TimeoutExpired:
        return f"timed out after {DEPLOY_TIMEOUT_S} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"exit code {done.returncode}: {last[:300]}"
    return None


def check_unrunnable(check: PromotionCheck) -> str | None:
    """Why the post-promotion check could not even run, or None: asked before anything moves,
    so a missing tool never rolls back a good promotion."""
    if importlib.util.find_spec("locust") is None:
        return "promotion.check needs locust: pip install 'mlgate[load]'"
    if not Path(check.payload).is_file():
        return f"promotion.check.payload {check.payload} is not a file"
    return None


def post_check(check: PromotionCheck, stage: str) -> str | None:
    """Health, then a short open-loop load of the deployed model; why it failed, or None."""
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    url = check.url.replace("{stage}", stage)
    problem = wait_healthy(url, check.health_timeout)
    if problem:
        return problem
    load_config = LoadConfig.model_validate(
        {
            "url": url,
            "path": check.path,
            "payload": str(Path(check.payload).resolve()),
            "rate": check.rate,
            "duration": check.duration,
            "warmup": check.warmup,
            "health_path": None,  # checked above, on /ping or /health
            "timeout": check.warmup + check.duration + _CHECK_MARGIN_S,
        }
    )
    with tempfile.TemporaryDirectory(prefix="mlgate-check-") as scratch:
        evidence = LoadStage().run(load_config, RunContext(Path(scratch), None))
    if evidence.status == "error":
        return f"load of {url}{check.path}: {evidence.reason}"
    metrics = evidence.metrics
    requests, errors = int(metrics.get("requests") or 0), int(metrics.get("errors") or 0)
    if requests == 0:
        return f"no request to {url}{check.path} was measured"
    error_rate = float(metrics.get("error_rate") or 0)
    if error_rate > check.error_rate_max:
        return (
            f"error rate {error_rate:.2%} ({errors} of {requests} requests) is above "
            f"{check.error_rate_max:.2%}"
        )
    p95 = metrics.get("p95_ms")
    if check.p95_ms_max is not None:
        if not isinstance(p95, (int, float)):
            return "no p95 latency was measured"
        if p95 > check.p95_ms_max:
            return f"p95 latency {p95:g} ms is above {check.p95_ms_max:g} ms ({requests} requests)"
    return None


def wait_healthy(url: str, timeout: float) -> str | None:
    """None once GET url/ping or url/health answers 200; otherwise the last answer."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 as well
    end = time.monotonic() + timeout
    last = "no attempt"
    while True:
        for path in _HEALTH_PATHS:
            try:
                wait = max(0.1, min(2.0, end - time.monotonic()))
                with opener.open(url + path, timeout=wait) as reply:
                    if reply.status == 200:
                        return None
                    last = f"GET {url}{path} answered {reply.status}"
            except urllib.error.HTTPError as exc:
                last = f"GET {url}{path} answered {exc.code}"
            except urllib.error.URLError as exc:
                reason = exc.reason
                why = (reason.strerror or str(reason)) if isinstance(reason, OSError) else reason
                last = f"GET {url}{path} failed: {why}"
            except OSError as exc:  # a timeout or reset while reading the answer
                last = f"GET {url}{path} failed: {exc.strerror or type(exc).__name__}"
        if time.monotonic() + _HEALTH_POLL_S >= end:
            return f"not healthy within {timeout:g} s: {last}"
        time.sleep(_HEALTH_POLL_S)


def deployment_warning(
    repo: Repository | None, record: dict[str, Any], stage: str, kind: str, description: str
) -> str | None:
    """A GitHub Deployment for the stage's environment, linking the run (when GitHub is there).
    The promotion has happened by now: a refusal here is a warning (returned), not an undo."""
    if repo is None:
        return None
    from mlgate.github import deployments
    from mlgate.github.client import NotPermitted, Rejected, Unreachable

    ref = record.get("git_sha") or os.environ.get("GITHUB_SHA")
    if not ref:
        return "no commit to attach a GitHub deployment to"
    try:
        deployments.record(
            repo,
            ref=ref,
            environment=stage,
            description=description[:140],
            payload={k: v for k, v in record.items() if k != "approvals"},
            state="success" if kind == "promotion" else "inactive",
            log_url=record.get("run_url"),
        )
    except (NotPermitted, Rejected, Unreachable) as exc:
        return f"GitHub deployment not recorded: {exc}"
    return None
