"""The load stage's configuration and policy: what is loaded, how, and the limits it is held to."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, NonNegativeFloat, PositiveFloat, model_validator

from mlgate import sequential
from mlgate.fields import Count, Fraction, HttpUrl, PositiveCount, Seconds, UrlPath
from mlgate.serving import ServeSpec
from mlgate.stages.baseline import Baseline
from mlgate.stages.interface import StageConfig, StagePolicy
from mlgate.stages.load import rounds as load_rounds

NAME = "load"

# Written next to the evidence: one successful measured latency in ms per line, in the order
# the requests started, for comparisons against a baseline.
SAMPLES_FILE = "load-samples.txt.gz"
CHAMPION_SAMPLES_FILE = "load-champion-samples.txt.gz"
_DEFAULT_USERS = 4
# The child needs this long beyond warm-up and duration to start (importing locust) and to
# write its records.
STARTUP_S = 3.0


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
    users: PositiveCount | None = Field(
        default=None,
        le=10_000,
        description=f"Closed loop: concurrent users, each sending its next request when the "
        f"previous one answered (default {_DEFAULT_USERS} unless rate is given).",
    )
    rate: PositiveFloat | None = Field(
        default=None,
        le=100_000,
        description="Open loop: requests per second, sent on schedule whatever the answers; "
        "latency counts from the scheduled time, so a server's queueing is measured.",
    )
    duration: Seconds = Field(
        default=30, description="Seconds measured, after the warm-up (the run lasts both)."
    )
    warmup: NonNegativeFloat = Field(
        default=5,
        description="Seconds of load before measuring, left out of statistics. With fresh "
        "servers for a champion comparison, the most each round's warm-up may take: both "
        "servers get requests one after another until their latency settles, then the round's "
        "load generator warms up for a second (less if warmup is shorter).",
    )
    health_path: UrlPath | None = Field(
        default="/ping",
        description="Polled until it answers 200 before the load starts; null skips the check.",
    )
    health_timeout: Seconds = Field(
        default=60, description="Seconds the server has to become healthy."
    )
    request_timeout: Seconds = Field(
        default=10, description="Seconds a request may take; a slower one is an error."
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
        "sequence. Calibrated with rounds of 10 to 40 s: on a busy runner give rounds of 20 s "
        "or more (duration: 120 with the default min_rounds); docs/sequential.md.",
    )
    min_rounds: int = Field(
        default=sequential.DEFAULT_MIN_ROUNDS,
        ge=2,
        le=100,
        description="rounds: auto: the rounds always run before the comparison may stop.",
    )
    max_seconds: Seconds = Field(
        default=sequential.DEFAULT_MAX_SECONDS,
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
        "the PR's base branch (the merge queue's base on a merge_group run), fetched through the "
        "GitHub API.",
    )
    max_in_flight: PositiveCount = Field(
        default=1000,
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
            per_round = self.warmup - ramp + sides * (STARTUP_S + ramp)
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
            needed = 2 * (self.warmup + self.duration) + (2 * self.planned_rounds + 2) * STARTUP_S
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
        elif self.timeout <= self.warmup + self.duration + STARTUP_S:
            raise ValueError(
                f"timeout ({self.timeout:g} s) must exceed warmup + duration "
                f"({self.warmup + self.duration:g} s) by more than {STARTUP_S:g} s"
            )
        return self

    def with_champion(self, champion: ServeSpec) -> LoadConfig:
        """This config with a champion found after it was validated (champion_alias), checked
        again as if written so: rounds: auto's budget and mode and the timeout depend on it.
        Raises pydantic's ValidationError."""
        return type(self).model_validate(dict(self) | {"champion": champion})

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

    p95_ms_max: PositiveFloat | None = Field(default=None, description="p95 latency SLO, ms.")
    p99_ms_max: PositiveFloat | None = Field(default=None, description="p99 latency SLO, ms.")
    error_rate_max: Fraction = Field(
        default=0.01, description="Failed share of the measured requests allowed."
    )
    throughput_min_rps: NonNegativeFloat | None = Field(
        default=None, description="Successful requests per second required."
    )
    min_requests: Count = Field(
        default=100,
        description="Fewer successful measured requests fails the gate: too little evidence.",
    )
    memory_max_mb: PositiveFloat | None = Field(
        default=None, description="Ceiling on the server's peak memory, MiB (served only)."
    )
    cold_start_max_s: Seconds | None = Field(
        default=None,
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
