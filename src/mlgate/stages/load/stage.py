"""The load stage: load a running model endpoint with locust and record its latency under load.

The load itself runs in a child process (`mlgate.loadgen`), because locust patches the
standard library with gevent when it is imported; this package only checks the input, waits
for the server to be healthy, starts the child with a deadline and turns its raw records into
evidence. Requests of the warm-up period load the server but are left out of the statistics.
"""

from __future__ import annotations

import contextlib
import re
import time
import urllib.error
import urllib.request

from pydantic import ValidationError

from mlgate import evidence as ev
from mlgate import model_identity, serving
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence
from mlgate.report.comparison import Comparison
from mlgate.serving import ServeSpec
from mlgate.serving import output as server_output
from mlgate.stages import model_guard
from mlgate.stages.interface import RunContext, Stage
from mlgate.stages.load import measure, rules
from mlgate.stages.load import report as load_report
from mlgate.stages.load.champion import interleaved, prepared_fresh_rounds
from mlgate.stages.load.config import (
    NAME,
    STARTUP_S,
    LoadConfig,
    LoadPolicy,
)
from mlgate.verdict import RuleResult

_HEALTH_POLL_S = 0.25
_HEALTH_REQUEST_TIMEOUT_S = 2.0


class LoadStage(Stage[LoadConfig, LoadPolicy]):
    name = NAME
    title = "Load"
    extras = ("load",)

    def extras_for(self, config: LoadConfig) -> tuple[str, ...]:
        from mlgate.serving import SOURCES

        served = SOURCES[config.serve.source].extras if config.serve else ()
        return self.extras + served

    def run(self, config: LoadConfig, context: RunContext) -> Evidence:
        started = ev.now()
        server_output.forget_logs(context.evidence_dir, self.name)
        try:
            found, note = _registry_champion(config)
        except MlgateError as exc:
            return measure.load_evidence(context, started, config, reason=f"champion: {exc}")
        if found is not None:
            try:
                config = config.with_champion(found)
            except ValidationError as exc:
                problem = exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
                return measure.load_evidence(
                    context, started, config, reason=f"champion {found.model_uri}: {problem}"
                )
        try:
            serve, candidate = model_identity.pin_served(config.serve)
        except MlgateError as exc:
            return measure.load_evidence(context, started, config, reason=f"candidate: {exc}")
        # Pinned before the scan, so the version scanned is the version served.
        config = config.model_copy(update={"serve": serve})
        if refused := model_guard.served_refusal(context, self.name, config.serve, config.champion):
            return measure.load_evidence(context, started, config, reason=refused)
        evidence = server_output.with_logs(
            self._run(config, context), context.evidence_dir, self.name
        )
        if candidate is not None:  # which version was served: a bundle must be about it
            data = evidence.data | {"candidate_model": candidate.as_dict()}
            evidence = evidence.model_copy(update={"data": data})
        if note:
            evidence = evidence.model_copy(update={"data": evidence.data | {"champion_note": note}})
        return evidence

    def _run(self, config: LoadConfig, context: RunContext) -> Evidence:
        if config.serve is None and config.champion is None:
            return self._load(config, context)
        if config.fresh_servers_apply:
            assert config.serve is not None and config.champion is not None
            return prepared_fresh_rounds(config, config.serve, config.champion, context)
        started = ev.now()
        deadline = time.monotonic() + config.timeout

        with contextlib.ExitStack() as stack:

            def start(spec: ServeSpec | None, role: str) -> serving.Server | None:
                if spec is None:
                    return None
                log = measure.server_log(context, role)
                return stack.enter_context(serving.serve(measure.within(spec, deadline), log))

            try:
                server = start(config.serve, "candidate")
                champion = start(config.champion, "champion")
            except serving.ServingError as exc:
                return measure.load_evidence(context, started, config, reason=f"serving: {exc}")
            before = server.resources() if server else None
            running = config.model_copy(
                update={
                    "url": server.url if server else config.url,
                    "serve": None,
                    "champion": None,
                    "health_path": None if server else config.health_path,
                    "timeout": deadline - time.monotonic(),
                }
            )
            evidence = (
                interleaved(running, champion.url, context)
                if champion
                else self._load(running, context)
            )
        metrics = dict(evidence.metrics)
        data = dict(evidence.data)
        if server is not None and config.serve is not None:
            metrics |= serving.server_metrics(server, since=before)
            data["serve"] = config.serve.model_dump(mode="json")
            digest = getattr(server, "image_digest", None)  # what a container ran, exactly
            if digest:
                data["serve"]["image_digest"] = digest
        if champion is not None and config.champion is not None:
            data["champion"] = config.champion.model_dump(mode="json") | {
                "cold_start_s": champion.cold_start_s
            }
        return evidence.model_copy(update={"started_at": started, "metrics": metrics, "data": data})

    def _load(self, config: LoadConfig, context: RunContext) -> Evidence:
        """Load the running server at config.url."""
        assert config.url is not None  # LoadConfig requires url or serve; serve was resolved
        attempt = measure.Attempt.begin(config, context)
        inputs = measure.checked_inputs(config)
        if isinstance(inputs, str):
            return attempt.error(inputs)
        payload, locustfile = inputs
        if config.health_path is not None:
            problem = _wait_healthy(
                config.url + config.health_path,
                min(config.health_timeout, attempt.left()),
            )
            if problem:
                return attempt.error(problem)
        budget = attempt.left()
        load_s = config.warmup + config.duration
        if budget <= load_s + STARTUP_S:
            return attempt.error(
                f"the stage timeout of {config.timeout:g} s leaves {budget:.1f} s after the "
                f"health check, too little for warmup + duration ({load_s:g} s)"
            )
        generated = measure.generate(
            config, config.url, attempt.workdir, payload, locustfile, budget
        )
        if isinstance(generated, str):
            return attempt.error(generated)
        records, result = generated
        return attempt.judge(records, result)

    def evaluate(self, policy: LoadPolicy, evidence: Evidence) -> list[RuleResult]:
        return rules.evaluate(policy, evidence)

    def report_markdown(self, evidence: Evidence) -> str:
        return load_report.markdown(evidence)

    def report_html(self, evidence: Evidence) -> str:
        return load_report.html(evidence)

    def comparisons(self, evidence: Evidence, policy: LoadPolicy) -> list[Comparison]:
        return load_report.comparisons(evidence, policy)

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        m = evidence.metrics
        users = m.get("users")
        load = (
            f"{users} user{'' if users == 1 else 's'}"
            if m.get("mode") == "closed"
            else f"open loop at {_number(m.get('rate'))} req/s"
        )
        return (
            f"p50 {_number(m.get('p50_ms'))} ms, p95 {_number(m.get('p95_ms'))} ms, "
            f"p99 {_number(m.get('p99_ms'))} ms, {_number(m.get('throughput_rps'))} req/s, "
            f"{_share(m.get('error_rate'))} errors ({m.get('requests')} requests, {load}, "
            f"{_number(m.get('duration_s'))} s)"
        )


def _registry_champion(config: LoadConfig) -> tuple[ServeSpec | None, str | None]:
    """The registered champion to serve beside a registered candidate, or why there is none
    (a note for the evidence, when the registry was asked)."""
    serve = config.serve
    if (
        config.champion_alias is None
        or config.champion is not None
        or config.baseline is not None
        or serve is None
        or serve.source != "mlflow"
        or not serve.model_uri
    ):
        return None, None
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", serve.model_uri)
    if match is None:
        return None, None
    name, alias, version = match.groups()
    from mlgate.registry.mlflow_registry import Registry

    registry = Registry.connect(serve.env.get("MLFLOW_TRACKING_URI"))
    candidate = version or registry.alias(name, alias)
    champion = registry.alias(name, config.champion_alias)
    if champion is None:
        return None, f"models:/{name}@{config.champion_alias} is not set: no champion to compare"
    if champion == candidate:
        return None, f"the candidate is the champion (models:/{name}/{champion})"
    return serve.model_copy(update={"model_uri": f"models:/{name}/{champion}"}), None


def _number(value: object) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "?"


def _share(value: object) -> str:
    return f"{value:.2%}" if isinstance(value, (int, float)) else "?"


def _wait_healthy(url: str, timeout: float) -> str | None:
    """None once `url` answers 200; otherwise why it never did within `timeout` seconds."""
    # Proxies from the environment are bypassed, as they are for the load itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    end = time.monotonic() + timeout
    answered: int | None = None
    failure = "no attempt"
    while True:
        left = end - time.monotonic()
        try:
            with opener.open(url, timeout=max(0.1, min(_HEALTH_REQUEST_TIMEOUT_S, left))) as reply:
                if reply.status == 200:
                    return None
                answered = reply.status
        except urllib.error.HTTPError as exc:
            answered = exc.code
        except urllib.error.URLError as exc:
            reason = exc.reason
            failure = (
                (reason.strerror or str(reason)) if isinstance(reason, OSError) else str(reason)
            )
        except OSError as exc:  # a timeout or reset while reading the answer
            failure = exc.strerror or type(exc).__name__
        if time.monotonic() + _HEALTH_POLL_S >= end:
            break
        time.sleep(_HEALTH_POLL_S)
    if answered is not None:
        return f"health check GET {url} answered {answered}, not 200, within {timeout:.3g} s"
    return f"server unreachable: GET {url} failed for {timeout:.3g} s: {failure}"
