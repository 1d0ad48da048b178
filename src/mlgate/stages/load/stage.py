"""The load stage: load a running model endpoint with locust and record its latency under load.

The load itself runs in a child process (`mlgate.loadgen`), because locust patches the
standard library with gevent when it is imported; this module only checks the input, waits
for the server to be healthy, starts the child with a deadline and turns its raw records into
evidence. Requests of the warm-up period load the server but are left out of the statistics.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import math
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from mlgate import evidence as ev
from mlgate import loadgen, model_identity, process, sequential, serving
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence, Finding
from mlgate.fields import HttpUrl, UrlPath
from mlgate.report.comparison import Comparison
from mlgate.serving import ServeSpec
from mlgate.serving import output as server_output
from mlgate.serving.mlflow_direct import prepared_sources
from mlgate.serving.together import ServerStartError, serve_together
from mlgate.stages import model_guard
from mlgate.stages.load import report as load_report
from mlgate.stages.load import rounds as load_rounds
from mlgate.stages.baseline import Baseline, baseline_path
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.stages.load.warmup import warm_up_together
from mlgate.verdict import RuleResult

# Written next to the evidence: one successful measured latency in ms per line, in the order
# the requests started, for comparisons against a baseline.
SAMPLES_FILE = "load-samples.txt.gz"
CHAMPION_SAMPLES_FILE = "load-champion-samples.txt.gz"
_DEFAULT_USERS = 4
_HEALTH_POLL_S = 0.25
_HEALTH_REQUEST_TIMEOUT_S = 2.0
# The child needs this long beyond warm-up and duration to start (importing locust) and to
# write its records.
_STARTUP_S = 3.0
_PERCENTILES = (("p50_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99))


class LoadConfig(StageConfig):
    url: HttpUrl | None = Field(
        default=None,
        description="Base URL of a running server, e.g. http://127.0.0.1:8080 (or give serve).",
    )
    serve: ServeSpec | None = Field(
        default=None,
        description="Start the server for the load and stop it afterwards: an MLflow model, a "
        "command, or a URL; its cold start, peak memory and CPU are recorded.",
    )
    path: UrlPath = Field(
        default="/invocations", description="Endpoint the requests are posted to."
    )
    payload: str | None = Field(
        default=None,
        description="JSON-lines file, one request body per line, posted round-robin by the "
        "built-in scenario (relative to working_directory). A locustfile finds its path in the "
        "MLGATE_LOAD_PAYLOAD environment variable.",
    )
    locustfile: str | None = Field(
        default=None,
        description="A locust scenario to run instead of the built-in one (closed loop only); "
        "its User classes get the url as their host.",
    )
    users: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description=f"Closed loop: concurrent users, each sending its next request when the "
        f"previous one answered (default {_DEFAULT_USERS} unless rate is given).",
    )
    rate: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="Open loop: requests per second, sent on schedule whatever the answers; "
        "latency counts from the scheduled time, so a server's queueing is measured.",
    )
    duration: float = Field(
        default=30, gt=0, description="Seconds measured, after the warm-up (the run lasts both)."
    )
    warmup: float = Field(
        default=5,
        ge=0,
        description="Seconds of load before measuring, left out of statistics. With fresh "
        "servers for a champion comparison, the most each round's warm-up may take: both "
        "servers get requests one after another until their latency settles, then the round's "
        "load generator warms up for a second (less if warmup is shorter).",
    )
    health_path: UrlPath | None = Field(
        default="/ping",
        description="Polled until it answers 200 before the load starts; null skips the check.",
    )
    health_timeout: float = Field(
        default=60, gt=0, description="Seconds the server has to become healthy."
    )
    request_timeout: float = Field(
        default=10, gt=0, description="Seconds a request may take; a slower one is an error."
    )
    champion: ServeSpec | None = Field(
        default=None,
        description="Baseline served side by side (e.g. the MLflow model at alias champion): "
        "both servers are loaded in interleaved rounds (A B, B A, ...), so machine drift hits "
        "both, and the candidate is compared with it.",
    )
    champion_alias: str | None = Field(
        default="production",
        description="When serve is a registered MLflow model (models:/NAME@ALIAS or "
        "models:/NAME/VERSION) and neither champion nor baseline is given, the version this "
        "alias of the same model points at, if any and if another, is served side by side as "
        "the champion. null turns this off.",
    )
    rounds: int | Literal["auto"] = Field(
        default=6,
        description="Interleaved rounds with a champion (2 to 100); each side gets "
        "duration / rounds seconds per round (see fresh_servers). auto: at least min_rounds "
        "rounds of duration / min_rounds seconds, then one more while the gate's "
        "no_regression is undecided, until max_seconds; judged by an always-valid confidence "
        "sequence.",
    )
    min_rounds: int = Field(
        default=sequential.DEFAULT_MIN_ROUNDS,
        ge=2,
        le=100,
        description="rounds: auto: the rounds always run before the comparison may stop.",
    )
    max_seconds: float = Field(
        default=sequential.DEFAULT_MAX_SECONDS,
        gt=0,
        description="rounds: auto: no round is started that would end after this many seconds "
        "of rounds (server starts included; the stage's timeout still applies).",
    )
    fresh_servers: bool = Field(
        default=True,
        description="With a champion, when mlgate starts both servers: a fresh candidate and "
        "champion server for every round, each round warmed up again, so what sets one server "
        "process apart from an identical one (measured: up to 7% in p95 for a whole run) "
        "varies between rounds, where the comparison's interval sees it, instead of biasing "
        "every round alike. Costs two server starts per round.",
    )
    baseline: Baseline | None = Field(
        default=None,
        description="Baseline to compare against: load evidence (its samples artifact) or a raw "
        "sample file (one latency in ms per line), relative to working_directory; or "
        "{github: {workflow: mlgate.yml}}, the report artifact of the latest successful run on "
        "the PR's base branch, fetched through the GitHub API.",
    )
    max_in_flight: int = Field(
        default=1000,
        ge=1,
        description="Open loop: requests waiting for an answer at most; a request due beyond "
        "that is not sent and counts as an error.",
    )

    @model_validator(mode="after")
    def _one_mode(self) -> LoadConfig:
        if (self.url is None) == (self.serve is None):
            raise ValueError("give url (a running server) or serve (one to start), exactly one")
        if self.users is not None and self.rate is not None:
            raise ValueError("give users (closed loop) or rate (open loop), not both")
        if self.rate is not None and self.locustfile is not None:
            raise ValueError(
                "rate (open loop) drives the built-in scenario only; a locustfile "
                "runs closed loop with users"
            )
        if self.payload is None and self.locustfile is None:
            raise ValueError("payload is required unless a locustfile drives the load")
        if self.champion is not None and self.baseline is not None:
            raise ValueError("give champion (served side by side) or baseline (a file), not both")
        if self.champion is not None and self.locustfile is not None:
            raise ValueError(
                "a champion is loaded by the built-in scenario (payload), not a locustfile"
            )
        if isinstance(self.rounds, int) and not 2 <= self.rounds <= 100:
            raise ValueError(f"rounds must be auto or 2 to 100, got {self.rounds}")
        if self.rounds == "auto" and self.min_rounds < sequential.first_bounded_round():
            raise ValueError(
                f"min_rounds must be at least {sequential.first_bounded_round()} with rounds: "
                f"auto (got {self.min_rounds}): fewer rounds' confidence sequence is unbounded"
            )
        open_loop_pair = self.champion is not None and self.rate is not None
        if self.rounds == "auto" and open_loop_pair and not self.fresh_servers_apply:
            raise ValueError(
                "rounds: auto adds rounds one at a time; in open loop that needs "
                "fresh_servers with both servers started by mlgate (serve and champion)"
            )
        if self.champion is not None and self.fresh_servers_apply:
            # Every round, after both servers start, warms them at once (the warmup its
            # generator does not take, at most) and starts its generator(s) with their own
            # warm-up: one in open loop, one per side in closed loop.
            sides = 1 if self.rate is not None else 2
            ramp = load_rounds.generator_warmup(self.warmup)
            per_round = self.warmup - ramp + sides * (_STARTUP_S + ramp)
            needed = self.planned_rounds * per_round + sides * self.duration
            if self.rounds == "auto" and self.max_seconds <= needed:
                raise ValueError(
                    f"max_seconds ({self.max_seconds:g} s) must exceed {needed:g} s, what "
                    f"min_rounds ({self.min_rounds}) rounds need (warmup and start-up every "
                    "round, the duration, and the servers' starts on top)"
                )
            if self.timeout <= needed:
                raise ValueError(
                    f"timeout ({self.timeout:g} s) must exceed {needed:g} s for a champion "
                    "comparison on fresh servers (at most warmup and start-up every round, the "
                    "duration, and the servers' starts on top)"
                )
        elif self.champion is not None:
            # Both sides warm up and run every round, each run starting its own generator.
            needed = 2 * (self.warmup + self.duration) + (2 * self.planned_rounds + 2) * _STARTUP_S
            if self.rounds == "auto" and self.max_seconds <= needed:
                raise ValueError(
                    f"max_seconds ({self.max_seconds:g} s) must exceed {needed:g} s, what "
                    f"min_rounds ({self.min_rounds}) interleaved rounds need"
                )
            if self.timeout <= needed:
                raise ValueError(
                    f"timeout ({self.timeout:g} s) must exceed {needed:g} s for an interleaved "
                    "champion comparison (both sides' warmup + duration, plus start-up per round)"
                )
        elif self.timeout <= self.warmup + self.duration + _STARTUP_S:
            raise ValueError(
                f"timeout ({self.timeout:g} s) must exceed warmup + duration "
                f"({self.warmup + self.duration:g} s) by more than {_STARTUP_S:g} s"
            )
        return self

    @property
    def planned_rounds(self) -> int:
        """The rounds known before the run: all of them, or (auto) the minimum."""
        return self.min_rounds if self.rounds == "auto" else self.rounds

    @property
    def round_seconds(self) -> float:
        """Seconds each side is measured per round."""
        return self.duration / self.planned_rounds

    @property
    def fresh_servers_apply(self) -> bool:
        """Whether a champion comparison starts fresh servers every round: asked for, and
        both sides are started by mlgate (a running URL cannot be restarted)."""
        return (
            self.fresh_servers
            and self.serve is not None
            and self.champion is not None
            and "url" not in (self.serve.source, self.champion.source)
        )

    @property
    def closed_loop_users(self) -> int | None:
        """The users of a closed loop (the default when no rate is given), None in open loop.

        Resolved here rather than stored, so a config can switch to `rate` without having to
        clear a default `users` first."""
        if self.rate is not None:
            return None
        return self.users if self.users is not None else _DEFAULT_USERS


class LoadPolicy(StagePolicy):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    p95_ms_max: float | None = Field(default=None, gt=0, description="p95 latency SLO, ms.")
    p99_ms_max: float | None = Field(default=None, gt=0, description="p99 latency SLO, ms.")
    error_rate_max: float = Field(
        default=0.01, ge=0, le=1, description="Failed share of the measured requests allowed."
    )
    throughput_min_rps: float | None = Field(
        default=None, ge=0, description="Successful requests per second required."
    )
    min_requests: int = Field(
        default=100,
        ge=0,
        description="Fewer successful measured requests fails the gate: too little evidence.",
    )
    memory_max_mb: float | None = Field(
        default=None, gt=0, description="Ceiling on the server's peak memory, MiB (served only)."
    )
    cold_start_max_s: float | None = Field(
        default=None,
        gt=0,
        description="Ceiling on the server's cold start, s: process start to first healthy answer "
        "(served only).",
    )
    regression_tolerance: float = Field(
        default=0.10,
        ge=0,
        le=10,
        description="Slowdown tolerated against the baseline or champion (0.10 = 10%): "
        "no_regression passes when every compared metric's interval lies below +tolerance, "
        "fails when one lies entirely above it, and is inconclusive otherwise.",
    )
    regression_fdr: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Unused (kept so existing policies load): decisions follow the intervals "
        "alone, and the gate needs every metric to pass, which needs no multiplicity correction.",
    )
    require_baseline: bool = Field(
        default=False,
        description="Fail when the evidence holds no comparison with a baseline.",
    )


class LoadStage(Stage[LoadConfig, LoadPolicy]):
    name = "load"
    title = "Load"
    config_model = LoadConfig
    policy_model = LoadPolicy
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
            return _evidence(context, started, config, reason=f"champion: {exc}")
        if found is not None:
            config = config.model_copy(update={"champion": found})
        try:
            serve, candidate = model_identity.pin_served(config.serve)
        except MlgateError as exc:
            return _evidence(context, started, config, reason=f"candidate: {exc}")
        # Pinned before the scan, so the version scanned is the version served.
        config = config.model_copy(update={"serve": serve})
        if refused := model_guard.served_refusal(context, self.name, config.serve, config.champion):
            return _evidence(context, started, config, reason=refused)
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
            return self._prepared_fresh_rounds(config, config.serve, config.champion, context)
        started = ev.now()
        deadline = time.monotonic() + config.timeout

        with contextlib.ExitStack() as stack:
            try:
                server = (
                    stack.enter_context(
                        serving.serve(_within(config.serve, deadline), _log(context, "candidate"))
                    )
                    if config.serve
                    else None
                )
                champion = (
                    stack.enter_context(
                        serving.serve(_within(config.champion, deadline), _log(context, "champion"))
                    )
                    if config.champion
                    else None
                )
            except serving.ServingError as exc:
                return _evidence(context, started, config, reason=f"serving: {exc}")
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
                self._interleaved(running, champion.url, context)
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

    def _prepared_fresh_rounds(
        self, config: LoadConfig, candidate: ServeSpec, champion: ServeSpec, context: RunContext
    ) -> Evidence:
        """Fresh rounds, MLflow models downloaded once beforehand (serving.mlflow_direct) and
        started directly every round rather than through `mlflow models serve`."""
        started = ev.now()
        deadline = time.monotonic() + config.timeout
        specs = {"candidate": candidate, "champion": champion}
        try:
            with prepared_sources(specs, deadline) as sources:
                left = config.model_copy(update={"timeout": deadline - time.monotonic()})
                evidence = self._fresh_rounds(left, candidate, champion, context, sources)
        except ServerStartError as exc:
            return _evidence(context, started, config, reason=f"serving ({exc.server}): {exc}")
        return evidence.model_copy(update={"started_at": started})

    def _fresh_rounds(
        self,
        config: LoadConfig,
        candidate: ServeSpec,
        champion: ServeSpec,
        context: RunContext,
        sources: dict[str, serving.ServingSource],
    ) -> Evidence:
        """Every round on a fresh pair of servers: start both together (in alternating order),
        warm both up at once until their latency settles (load_warmup), load one round as the
        side-by-side modes do (open loop: requests in turn; closed loop: A then B, B then A),
        stop both. The rounds are put on one timeline, each measured window after the last,
        and judged as one run."""
        attempt = _Attempt.begin(config, context)
        inputs = _inputs(config)
        if isinstance(inputs, str):
            return attempt.error(inputs)
        payload, _ = inputs
        assert payload is not None  # a champion is loaded by the built-in scenario
        bodies = loadgen.read_payload(payload)
        origin = time.monotonic()
        span = config.round_seconds
        ramp = load_rounds.generator_warmup(config.warmup)
        specs = {"candidate": candidate, "champion": champion}
        records: dict[str, list[loadgen.Record]] = {"candidate": [], "champion": []}
        rounds: dict[str, list[list[float]]] = {"candidate": [], "champion": []}
        usage: dict[str, list[dict[str, float | None]]] = {"candidate": [], "champion": []}
        starts: list[dict[str, object]] = []
        warmup_requests = 0
        result = loadgen.Result()
        digest: str | None = None
        plan = _round_plan(config, context, attempt.left())
        for index in plan.indices(sequential.so_far(rounds["champion"], rounds["candidate"])):
            order = list(specs) if index % 2 == 0 else list(reversed(list(specs)))
            with contextlib.ExitStack() as stack:
                # Both at once: a round's servers start in about the time of the slower one.
                try:
                    servers = stack.enter_context(
                        serve_together(
                            {n: _within(specs[n], attempt.deadline) for n in order},
                            sources,
                            {n: _log(attempt.context, n) for n in order},
                        )
                    )
                except ServerStartError as exc:
                    return attempt.error(f"serving ({exc.server}), round {index + 1}: {exc}")
                urls = {name: server.url + config.path for name, server in servers.items()}
                limit = min(config.warmup - ramp, attempt.left())
                warmed = warm_up_together(urls, bodies, limit, config.request_timeout)
                starts.append(load_rounds.round_starts(index, servers, warmed, origin))
                warmup_requests += warmed["candidate"].requests
                before = {name: server.resources() for name, server in servers.items()}
                running = config.model_copy(
                    update={"duration": span, "warmup": ramp, "timeout": attempt.left()}
                )
                got = _one_round(
                    running, servers, order, attempt.workdir, payload, attempt.deadline
                )
                if isinstance(got, str):
                    return attempt.error(f"round {index + 1}: {got}")
                round_records, result = got
            warmup_requests += sum(1 for r in round_records["candidate"] if r.offset_s < ramp)
            for name, server in servers.items():
                usage[name].append(serving.server_metrics(server, since=before[name]))
            # What a container ran, exactly (the same image every round).
            digest = getattr(servers["candidate"], "image_digest", None) or digest
            for name in specs:
                kept = load_rounds.on_timeline(
                    round_records[name], index, span, config.warmup, ramp
                )
                records[name] += kept
                rounds[name].append([r.latency_ms for r in kept if r.ok])
        attempt = attempt.measured(plan, span)
        evidence = attempt.judge(records["candidate"], result, rounds["candidate"])
        if evidence.status == "passed":
            champion_failed = sum(
                1 for r in records["champion"] if not r.ok and r.offset_s >= config.warmup
            )
            interleaving = (
                "requests in turn" if config.rate is not None else "rounds in turn (A B, B A, ...)"
            )
            evidence = self._with_champion(
                evidence,
                context,
                rounds["champion"],
                rounds["candidate"],
                f"{interleaving}, fresh servers every round",
                champion_failed,
                plan,
            )
        metrics = dict(evidence.metrics) | load_rounds.merged_usage(usage["candidate"])
        data = dict(evidence.data) | {
            "serve": candidate.model_dump(mode="json"),
            "champion": champion.model_dump(mode="json")
            | {"cold_start_s": load_rounds.merged_usage(usage["champion"])["cold_start_s"]},
            "server_starts": plan.rounds,
            "round_starts": starts,
            # The candidate's warm-up requests: before its generator, and the generator's own.
            "warmup_requests": warmup_requests,
        }
        if digest:
            data["serve"]["image_digest"] = digest
        return evidence.model_copy(
            update={"started_at": attempt.started, "metrics": metrics, "data": data}
        )

    def _interleaved(self, config: LoadConfig, champion_url: str, context: RunContext) -> Evidence:
        """Champion (A) and candidate (B) loaded in alternating rounds, A B then B A, so slow
        drift of the machine lands on both; the candidate's evidence carries the comparison."""
        assert config.url is not None
        attempt = _Attempt.begin(config, context)
        inputs = _inputs(config)
        if isinstance(inputs, str):
            return attempt.error(inputs)
        payload, _ = inputs
        if config.rate is not None:
            return self._side_by_side(config, champion_url, context, payload, attempt)
        sides = {"champion": champion_url, "candidate": config.url}
        records: dict[str, list[loadgen.Record]] = {"champion": [], "candidate": []}
        # Successful latencies of each side, round by round: the comparison pairs the rounds.
        rounds: dict[str, list[list[float]]] = {"champion": [], "candidate": []}
        result = loadgen.Result()
        if config.warmup:
            for name, url in sides.items():
                warmed = _generate(
                    config,
                    url,
                    attempt.workdir,
                    payload,
                    None,
                    attempt.left(),
                    0,
                    config.warmup,
                )
                if isinstance(warmed, str):
                    return attempt.error(f"{name}: {warmed}")
        span = config.round_seconds
        plan = _round_plan(config, context, attempt.left())
        for index in plan.indices(sequential.so_far(rounds["champion"], rounds["candidate"])):
            order = list(sides) if index % 2 == 0 else list(reversed(list(sides)))
            for name in order:
                generated = _generate(
                    config,
                    sides[name],
                    attempt.workdir,
                    payload,
                    None,
                    attempt.left(),
                    0,
                    span,
                )
                if isinstance(generated, str):
                    return attempt.error(f"{name}, round {index + 1}: {generated}")
                round_records, result = generated
                # On one timeline: round i's measured window follows round i-1's.
                shift = config.warmup + index * span
                kept = [
                    loadgen.Record(r.offset_s + shift, r.latency_ms, r.ok, r.outcome)
                    for r in round_records
                    if r.offset_s < span
                ]
                records[name] += kept
                rounds[name].append([r.latency_ms for r in kept if r.ok])
        attempt = attempt.measured(plan, span)
        evidence = attempt.judge(records["candidate"], result, rounds["candidate"])
        if evidence.status != "passed":
            return evidence
        champion_failed = sum(1 for r in records["champion"] if not r.ok)
        return self._with_champion(
            evidence,
            context,
            rounds["champion"],
            rounds["candidate"],
            "rounds in turn (A B, B A, ...)",
            champion_failed,
            plan,
        )

    def _side_by_side(
        self,
        config: LoadConfig,
        champion_url: str,
        context: RunContext,
        payload: Path | None,
        attempt: _Attempt,
    ) -> Evidence:
        """Open loop: one generator sends to candidate and champion in turn, request by
        request, each at the configured rate, so a noisy moment hits both sides alike; the
        measured window is cut into `rounds` time bins, compared pair by pair."""
        assert config.url is not None and config.rate is not None
        generated = _generate(
            config,
            config.url,
            Path(config.working_directory),
            payload,
            None,
            attempt.left(),
            other_urls=[champion_url],
        )
        if isinstance(generated, str):
            return attempt.error(generated)
        records, result = generated
        span = config.round_seconds
        bins: dict[int, list[list[float]]] = {0: [], 1: []}
        for target in bins:
            bins[target] = [[] for _ in range(config.planned_rounds)]
        for r in records:
            index = math.floor((r.offset_s - config.warmup) / span)
            if r.ok and 0 <= index < config.planned_rounds:
                bins[r.target][index].append(r.latency_ms)
        candidate = [r for r in records if r.target == 0]
        evidence = attempt.judge(candidate, result, bins[0])
        if evidence.status != "passed":
            return evidence
        champion_failed = sum(
            1 for r in records if r.target == 1 and not r.ok and r.offset_s >= config.warmup
        )
        return self._with_champion(
            evidence, context, bins[1], bins[0], "requests in turn", champion_failed
        )

    def _with_champion(
        self,
        evidence: Evidence,
        context: RunContext,
        champion: list[list[float]],
        candidate: list[list[float]],
        interleaving: str,
        champion_failed: int,
        plan: sequential.RoundPlan | None = None,
    ) -> Evidence:
        """The candidate's evidence with the paired comparison and the champion's samples;
        `plan`: how the rounds were chosen (None: a fixed number, binned from one run)."""
        plan = plan or sequential.RoundPlan.of_fixed(len(candidate))
        try:
            comparison = _compare_rounds(champion, candidate, plan)
        except MlgateError as exc:
            return evidence.model_copy(
                update={"status": "error", "reason": f"champion: {exc}", "artifacts": []}
            )
        comparison["interleaving"] = interleaving
        comparison["champion_failed_requests"] = champion_failed
        champion_samples = context.evidence_dir / CHAMPION_SAMPLES_FILE
        _write_samples(champion_samples, champion)
        artifact = ev.artifact(
            champion_samples, "the champion's latencies, same format, same rounds"
        ).model_copy(update={"path": CHAMPION_SAMPLES_FILE})
        data = evidence.data | {
            "comparison": comparison,
            "champion_samples_artifact": CHAMPION_SAMPLES_FILE,
        }
        return evidence.model_copy(
            update={"data": data, "artifacts": [*evidence.artifacts, artifact]}
        )

    def _load(self, config: LoadConfig, context: RunContext) -> Evidence:
        """Load the running server at config.url."""
        assert config.url is not None  # LoadConfig requires url or serve; serve was resolved
        attempt = _Attempt.begin(config, context)
        inputs = _inputs(config)
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
        if budget <= load_s + _STARTUP_S:
            return attempt.error(
                f"the stage timeout of {config.timeout:g} s leaves {budget:.1f} s after the "
                f"health check, too little for warmup + duration ({load_s:g} s)"
            )
        generated = _generate(config, config.url, attempt.workdir, payload, locustfile, budget)
        if isinstance(generated, str):
            return attempt.error(generated)
        records, result = generated
        return attempt.judge(records, result)

    def evaluate(self, policy: LoadPolicy, evidence: Evidence) -> list[RuleResult]:
        problem = _inconsistency(evidence)
        if problem:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [_rule("evidence", False, f"load: {problem}")]
        m = evidence.metrics
        requests, errors = int(m["requests"] or 0), int(m["errors"] or 0)
        succeeded = requests - errors
        error_rate = float(m["error_rate"] or 0)
        results = [
            _rule(
                "min_requests",
                succeeded >= policy.min_requests,
                f"load: {succeeded} successful requests measured, "
                f"at least {policy.min_requests} required",
            ),
            _rule(
                "error_rate_max",
                error_rate <= policy.error_rate_max,
                f"load: error rate {error_rate:.2%} ({errors} of {requests}), "
                f"at most {policy.error_rate_max:.2%} allowed",
            ),
        ]
        for key, label, limit in (
            ("p95_ms", "p95", policy.p95_ms_max),
            ("p99_ms", "p99", policy.p99_ms_max),
        ):
            if limit is not None:
                value = float(m[key] or 0)
                results.append(
                    _rule(
                        f"{key}_max",
                        value <= limit,
                        f"load: {label} {value:.1f} ms, at most {limit:g} ms allowed",
                    )
                )
        results += _regression_rules(policy, evidence)
        results += _server_rules(policy, m)
        if policy.throughput_min_rps is not None:
            throughput = float(m["throughput_rps"] or 0)
            results.append(
                _rule(
                    "throughput_min_rps",
                    throughput >= policy.throughput_min_rps,
                    f"load: throughput {throughput:.1f} req/s, "
                    f"at least {policy.throughput_min_rps:g} req/s required",
                )
            )
        return results

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


@dataclass(frozen=True)
class _Attempt:
    """What every way of loading starts from: when it started, its deadline, where its samples
    go, and how it ends in error."""

    config: LoadConfig
    context: RunContext
    started: datetime
    deadline: float  # time.monotonic() by which the stage must be done
    samples: Path

    @classmethod
    def begin(cls, config: LoadConfig, context: RunContext) -> _Attempt:
        samples = context.evidence_dir / SAMPLES_FILE
        # Samples of an earlier run must never sit next to this run's evidence.
        samples.unlink(missing_ok=True)
        return cls(config, context, ev.now(), time.monotonic() + config.timeout, samples)

    @property
    def workdir(self) -> Path:
        return Path(self.config.working_directory)

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    def error(self, reason: str) -> Evidence:
        return _evidence(self.context, self.started, self.config, reason=reason)

    def measured(self, plan: sequential.RoundPlan, span: float) -> _Attempt:
        """The attempt as judged: with rounds chosen as they went, the duration measured is
        that of the rounds run."""
        if plan.fixed is not None:
            return self
        return replace(self, config=self.config.model_copy(update={"duration": span * plan.rounds}))

    def judge(
        self,
        records: list[loadgen.Record],
        result: loadgen.Result,
        rounds: list[list[float]] | None = None,
    ) -> Evidence:
        """The evidence of the measured run (see `_judge_run`)."""
        return _judge_run(
            self.config, self.context, self.started, records, result, self.samples, rounds
        )


def _round_plan(config: LoadConfig, context: RunContext, left: float) -> sequential.RoundPlan:
    """The rounds of a champion comparison; auto judges them by this stage's policy. `left`:
    seconds to the stage's deadline now, as the rounds begin (warm-ups may have gone before)."""
    if config.rounds != "auto":
        return sequential.RoundPlan(config.rounds)
    policy = context.stage_policy if isinstance(context.stage_policy, LoadPolicy) else LoadPolicy()
    # Within the stage's timeout too, with room to judge and stop.
    budget = min(config.max_seconds, left - 2 * _STARTUP_S)
    return sequential.RoundPlan(None, config.min_rounds, budget, policy.regression_tolerance)


def _log(context: RunContext, role: str) -> Path:
    return server_output.log_file(context.evidence_dir, LoadStage.name, role)


def _within(spec: ServeSpec, deadline: float) -> ServeSpec:
    """The server's start-up timeout cut to what is left before the stage's deadline: starting
    counts against the stage's timeout like the load itself."""
    limit = max(deadline - time.monotonic(), 0.1)
    return spec.model_copy(update={"startup_timeout": min(spec.startup_timeout, limit)})


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


def _baseline_file(config: LoadConfig, context: RunContext) -> Path:
    assert config.baseline is not None
    return baseline_path(config.baseline, "load", config.working_directory, context.evidence_dir)


def _compare(baseline_path: Path, latencies: list[float]) -> dict[str, object]:
    from mlgate import samples

    if baseline_path.is_dir():
        # An evidence directory (e.g. an unpacked report artifact): its load evidence.
        inside = ev.evidence_path(baseline_path, LoadStage.name)
        if not inside.is_file():
            raise MlgateError(f"{baseline_path}: a directory without {inside.name}")
        baseline_path = inside
    baseline = samples.read_samples(baseline_path)
    return _compare_samples(str(baseline_path), list(baseline.values), latencies)


def _compare_samples(
    baseline_name: str, baseline: list[float], latencies: list[float]
) -> dict[str, object]:
    """The candidate's samples against the baseline's: intervals and p-values, which the
    policy turns into decisions with its own tolerance."""
    import numpy as np

    from mlgate import stats

    values = np.asarray(baseline, dtype=np.float64)
    results = stats.compare(values, latencies)
    return {
        "baseline": baseline_name,
        "method": "independent samples",
        "baseline_ms": {label: round(stats.point_estimate(values, label), 3) for label in _CHARTED},
        "baseline_samples": len(values),
        "candidate_samples": len(latencies),
        "metrics": [r.as_json() for r in results],
    }


def _compare_rounds(
    champion: list[list[float]], candidate: list[list[float]], plan: sequential.RoundPlan
) -> dict[str, object]:
    """Round i of the champion against round i of the candidate (see stats.compare_rounds):
    with the per-round log-ratios and how the rounds were chosen, which the gate judges."""
    import numpy as np

    from mlgate import stats

    results = stats.compare_rounds(champion, candidate, sequence=plan.fixed is None)
    pooled = np.sort(np.concatenate([np.asarray(r, dtype=np.float64) for r in champion]))
    return {
        "baseline": "champion (interleaved A/B)",
        "method": "paired rounds",
        "rounds": len(champion),
        "sequential": plan.as_json(),
        "log_ratios": sequential.so_far(champion, candidate)(),
        "baseline_ms": {label: round(stats.point_estimate(pooled, label), 3) for label in _CHARTED},
        "baseline_samples": int(pooled.size),
        "candidate_samples": sum(len(r) for r in candidate),
        "metrics": [r.as_json() for r in results],
    }


def _regression_rules(policy: LoadPolicy, evidence: Evidence) -> list[RuleResult]:
    comparison = evidence.data.get("comparison")
    if not isinstance(comparison, dict):
        if policy.require_baseline:
            return [
                _rule("no_regression", False, "load: no baseline was compared, one is required")
            ]
        return []
    tolerance = policy.regression_tolerance
    found = load_report.decisions(comparison, tolerance)
    if not found:
        return [_rule("no_regression", False, "load: the baseline comparison holds no metric")]
    outcome = load_report.outcome(load_report.gate(found))
    other = "champion" if load_report.is_champion(comparison) else "baseline"
    how = load_report.stopped(comparison)
    reason = (
        f"load: vs {other}, no slowdown beyond +{tolerance:.0%} on every metric "
        f"({load_report.interval_name(comparison)}{'; ' + how if how else ''}): "
        + load_report.reasons(comparison, found, tolerance)
    )
    return [
        RuleResult(
            stage=LoadStage.name,
            rule="load.no_regression",
            outcome=outcome,
            reason=reason,
            # Undecided by the measured rounds: `on_inconclusive: warn` may let it through.
            statistical=outcome == "inconclusive" and load_report.data_undecided(found),
        )
    ]


_CHARTED = ("p50", "p90", "p95", "p99")


def _server_rules(policy: LoadPolicy, m: dict[str, ev.MetricValue]) -> list[RuleResult]:
    """Ceilings on what serving measured; a ceiling without the measurement fails closed."""
    results = []
    if policy.memory_max_mb is not None:
        peak = m.get("server_peak_memory_bytes")
        if isinstance(peak, (int, float)):
            mib = peak / 2**20
            results.append(
                _rule(
                    "memory_max_mb",
                    mib <= policy.memory_max_mb,
                    f"load: server peak memory {mib:.0f} MiB, "
                    f"at most {policy.memory_max_mb:g} MiB allowed",
                )
            )
        else:
            results.append(
                _rule("memory_max_mb", False, "load: server memory was not measured (use serve:)")
            )
    if policy.cold_start_max_s is not None:
        cold = m.get("cold_start_s")
        if isinstance(cold, (int, float)):
            results.append(
                _rule(
                    "cold_start_max_s",
                    cold <= policy.cold_start_max_s,
                    f"load: cold start {cold:.2f} s, at most {policy.cold_start_max_s:g} s allowed",
                )
            )
        else:
            results.append(
                _rule("cold_start_max_s", False, "load: cold start was not measured (use serve:)")
            )
    return results


def _rule(rule: str, ok: bool, reason: str) -> RuleResult:
    return RuleResult(
        stage=LoadStage.name, rule=f"load.{rule}", outcome="pass" if ok else "fail", reason=reason
    )


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


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _write_samples(path: Path, samples: list[float] | list[list[float]]) -> None:
    """Write atomically and reproducibly (no timestamp in the gzip header): same samples, same
    digest. Given rounds, each starts with a '# round N' line (samples.ROUND_MARKER)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples and isinstance(samples[0], list):
        text = "".join(
            f"# round {i}\n" + "".join(f"{x!r}\n" for x in values)
            for i, values in enumerate(samples, 1)
            if isinstance(values, list)
        )
    else:
        text = "".join(f"{x!r}\n" for x in samples)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(text.encode("ascii"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _inputs(config: LoadConfig) -> tuple[Path | None, Path | None] | str:
    """The payload and locustfile, checked before any load starts; or why they cannot be used."""
    workdir = Path(config.working_directory)
    if importlib.util.find_spec("locust") is None:
        return "locust is not installed: pip install 'mlgate[load]'"
    if not workdir.is_dir():
        return f"working directory {workdir} is not a directory"
    payload = (workdir / config.payload).resolve() if config.payload else None
    locustfile = (workdir / config.locustfile).resolve() if config.locustfile else None
    if payload is not None:
        try:
            loadgen.read_payload(payload)
        except loadgen.LoadError as exc:
            return str(exc)
    if locustfile is not None and not locustfile.is_file():
        return f"locustfile {loadgen.shown(locustfile)} does not exist"
    return payload, locustfile


def _generate(
    config: LoadConfig,
    url: str,
    workdir: Path,
    payload: Path | None,
    locustfile: Path | None,
    budget: float,
    warmup: float | None = None,
    duration: float | None = None,
    other_urls: list[str] | None = None,
) -> tuple[list[loadgen.Record], loadgen.Result] | str:
    """One load generator run (a child process); its records, or why it failed."""
    with tempfile.TemporaryDirectory(prefix="mlgate-load-") as scratch:
        directory = Path(scratch)
        spec = loadgen.LoadSpec(
            url=url,
            path=config.path,
            payload=str(payload) if payload else None,
            locustfile=str(locustfile) if locustfile else None,
            users=config.closed_loop_users,
            rate=config.rate,
            warmup=config.warmup if warmup is None else warmup,
            duration=config.duration if duration is None else duration,
            request_timeout=config.request_timeout,
            max_in_flight=config.max_in_flight,
            budget=budget,
            other_urls=other_urls or [],
        )
        spec.write(directory / "spec.json")
        command = [sys.executable, "-m", "mlgate.loadgen", "--spec", str(directory / "spec.json")]
        completed = process.run(command, workdir, budget)
        if completed.problem:
            # The only way this command fails to complete: it ran out of time.
            return f"load run did not finish within the stage timeout of {config.timeout:g} s"
        result_path = directory / loadgen.RESULT_FILE
        if not result_path.is_file():
            return f"load generator exited {completed.exit_code} without results"
        result = loadgen.read_result(result_path)
        if result.error:
            return result.error
        return loadgen.read_records(directory / loadgen.RECORDS_FILE), result


def _one_round(
    config: LoadConfig,
    servers: dict[str, serving.Server],
    order: list[str],
    workdir: Path,
    payload: Path | None,
    deadline: float,
) -> tuple[dict[str, list[loadgen.Record]], loadgen.Result] | str:
    """One round of a champion comparison on running servers, warm-up included: open loop,
    one generator in turn to both (records split by target); closed loop, each side in
    `order`, one after the other."""
    if config.rate is not None:
        generated = _generate(
            config,
            servers["candidate"].url,
            workdir,
            payload,
            None,
            deadline - time.monotonic(),
            other_urls=[servers["champion"].url],
        )
        if isinstance(generated, str):
            return generated
        records, result = generated
        return {
            "candidate": [r for r in records if r.target == 0],
            "champion": [r for r in records if r.target == 1],
        }, result
    split: dict[str, list[loadgen.Record]] = {}
    result = loadgen.Result()
    for name in order:
        generated = _generate(
            config, servers[name].url, workdir, payload, None, deadline - time.monotonic()
        )
        if isinstance(generated, str):
            return f"{name}: {generated}"
        split[name], result = generated
    return split, result


def _judge_run(
    config: LoadConfig,
    context: RunContext,
    started: datetime,
    records: list[loadgen.Record],
    result: loadgen.Result,
    samples: Path,
    rounds: list[list[float]] | None = None,
) -> Evidence:
    """Metrics, findings and the samples artifact of one measured run; `rounds`, when the run
    was interleaved, splits the latencies (in order) into its rounds for the samples file."""
    end = config.warmup + config.duration
    measured = [r for r in records if config.warmup <= r.offset_s < end]
    latencies = [r.latency_ms for r in measured if r.ok]
    failed = [r.outcome for r in measured if not r.ok]
    # Throughput is what the server delivered: answers completed inside the window. Counting
    # the requests started in it would credit an overloaded server with the offered rate.
    delivered = sum(
        1 for r in records if r.ok and config.warmup <= r.offset_s + r.latency_ms / 1000 < end
    )
    by_status = Counter(o for o in failed if o.isdigit())
    by_exception = Counter(o for o in failed if not o.isdigit())
    metrics: dict[str, ev.MetricValue] = {
        "requests": len(measured),
        "errors": len(failed),
        "error_rate": round(len(failed) / len(measured), 6) if measured else None,
        "throughput_rps": round(delivered / config.duration, 3),
    }
    data: dict[str, object] = {
        "errors_by_status": dict(by_status.most_common()),
        "errors_by_exception": dict(by_exception.most_common()),
        "warmup_requests": sum(1 for r in records if r.offset_s < config.warmup),
        "client_cpu_percent": result.client_cpu_percent,
    }
    if result.task_exceptions:
        data["task_exceptions"] = result.task_exceptions
    findings = [
        _finding(f"http-{status}", n, len(measured), f"answered HTTP {status}")
        for status, n in by_status.most_common()
    ] + [
        _finding(name, n, len(measured), f"failed with {name}")
        for name, n in by_exception.most_common()
    ]
    if not latencies:
        # Nothing to measure: that is a broken setup, never a latency to judge.
        if failed:
            worst, count = (by_status + by_exception).most_common(1)[0]
            what = f"HTTP {worst}" if worst.isdigit() else worst
            reason = (
                f"no request succeeded: {len(failed)} of {len(measured)} failed ({what}: {count})"
            )
        else:
            reason = "no request was made in the measured window"
        if result.task_exceptions:
            reason += f"; the locustfile's tasks raised {result.task_exceptions[0]['message']}"
        return _evidence(
            context, started, config, reason=reason, metrics=metrics, data=data, findings=findings
        )
    ordered = sorted(latencies)
    for key, q in _PERCENTILES:
        metrics[key] = round(_percentile(ordered, q), 3)
    metrics["max_ms"] = round(ordered[-1], 3)
    metrics["mean_ms"] = round(math.fsum(ordered) / len(ordered), 3)
    _write_samples(samples, rounds or latencies)
    artifact = ev.artifact(
        samples, "latency of each successful measured request, ms, one per line, gzip"
    ).model_copy(update={"path": SAMPLES_FILE})
    data["samples_artifact"] = SAMPLES_FILE
    if config.baseline:
        try:
            data["comparison"] = _compare(_baseline_file(config, context), latencies)
        except MlgateError as exc:
            return _evidence(context, started, config, reason=f"baseline: {exc}", metrics=metrics)
    return _evidence(
        context,
        started,
        config,
        status="passed",
        metrics=metrics,
        data=data,
        findings=findings,
        artifacts=[artifact],
    )


def _finding(key: str, count: int, requests: int, what: str) -> Finding:
    return Finding(
        id=f"load-error-{key}",
        severity="medium",
        rule="load-error",
        title=f"{count} requests {what}",
        message=f"{count} of {requests} measured requests ({count / requests:.2%}) {what}",
    )


def _evidence(
    context: RunContext,
    started: datetime,
    config: LoadConfig,
    *,
    status: ev.Status = "error",
    reason: str | None = None,
    metrics: dict[str, ev.MetricValue] | None = None,
    data: dict[str, object] | None = None,
    findings: list[Finding] | None = None,
    artifacts: list[ev.Artifact] | None = None,
) -> Evidence:
    mode = "open" if config.rate is not None else "closed"
    return Evidence(
        stage=LoadStage.name,
        status=status,
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=(metrics or {})
        | {
            "duration_s": config.duration,
            "warmup_s": config.warmup,
            "mode": mode,
            "users": config.closed_loop_users,
            "rate": config.rate,
        },
        findings=findings or [],
        artifacts=artifacts or [],
        data={
            "url": config.url,
            "path": config.path,
            "scenario": config.locustfile or "built-in",
            "payload": config.payload,
            "request_timeout_s": config.request_timeout,
        }
        | ({"max_in_flight": config.max_in_flight} if mode == "open" else {})
        | (data or {}),
        provenance=ev.collect_provenance(context.config_digest, _tool_versions()),
    )


def _tool_versions() -> dict[str, str]:
    try:
        return {"locust": version("locust")}
    except PackageNotFoundError:
        return {}


_METRIC_ORDER = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def _inconsistency(evidence: Evidence) -> str | None:
    """Why the evidence's numbers cannot be trusted, or None when they agree with each other."""
    m = evidence.metrics
    requests, errors = m.get("requests"), m.get("errors")
    if type(requests) is not int or type(errors) is not int or min(requests, errors) < 0:
        return "evidence lacks whole-number counts of requests and errors"
    if errors > requests:
        return "evidence counts more errors than requests"
    numbers = {k: m.get(k) for k in (*_METRIC_ORDER, "mean_ms", "throughput_rps", "error_rate")}
    bad = [
        k
        for k, v in numbers.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0
    ]
    if bad:
        return f"evidence lacks latency numbers: {', '.join(bad)}"
    ordered = [float(numbers[k] or 0) for k in _METRIC_ORDER]
    if ordered != sorted(ordered):
        return "evidence percentiles are not in increasing order"
    if requests and abs(float(m["error_rate"] or 0) - errors / requests) > 1e-5:
        return "evidence error rate does not match its counts"
    return None
