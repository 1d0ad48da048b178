"""Champion comparisons: the candidate and its champion loaded in interleaved rounds, paired."""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

from mlgate import evidence as ev
from mlgate import loadgen, sequential, serving
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence
from mlgate.serving import ServeSpec
from mlgate.serving.mlflow_direct import prepared_sources
from mlgate.serving.together import ServerStartError, serve_together
from mlgate.stages.interface import RunContext
from mlgate.stages.load import rounds as load_rounds
from mlgate.stages.load.comparison import compare_rounds
from mlgate.stages.load.config import (
    CHAMPION_SAMPLES_FILE,
    STARTUP_S,
    LoadConfig,
    LoadPolicy,
)
from mlgate.stages.load.measure import (
    Attempt,
    checked_inputs,
    generate,
    load_evidence,
    server_log,
    within,
    write_samples,
)
from mlgate.stages.load.warmup import warm_up_together


def prepared_fresh_rounds(
    config: LoadConfig, candidate: ServeSpec, champion: ServeSpec, context: RunContext
) -> Evidence:
    """Fresh rounds, MLflow models downloaded once beforehand (serving.mlflow_direct) and
    started directly every round rather than through `mlflow models serve`."""
    started = ev.now()
    deadline = time.monotonic() + config.timeout
    specs = {"candidate": candidate, "champion": champion}
    try:
        with prepared_sources(specs, deadline) as sources:
            left = config.model_copy(update={"timeout": deadline - time.monotonic()})
            evidence = _fresh_rounds(left, candidate, champion, context, sources)
    except ServerStartError as exc:
        return load_evidence(context, started, config, reason=f"serving ({exc.server}): {exc}")
    return evidence.model_copy(update={"started_at": started})


def _fresh_rounds(
    config: LoadConfig,
    candidate: ServeSpec,
    champion: ServeSpec,
    context: RunContext,
    sources: dict[str, serving.ServingSource],
) -> Evidence:
    """Every round on a fresh pair of servers: start both together (in alternating order),
    warm both up at once until their latency settles (warmup.py), load one round as the
    side-by-side modes do (open loop: requests in turn; closed loop: A then B, B then A),
    stop both. The rounds are put on one timeline, each measured window after the last,
    and judged as one run."""
    attempt = Attempt.begin(config, context)
    inputs = checked_inputs(config)
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
    # Successful latencies of each side, round by round, in time windows (rounds.time_windows).
    rounds: dict[str, list[list[list[float]]]] = {"candidate": [], "champion": []}
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
                        {n: within(specs[n], attempt.deadline) for n in order},
                        sources,
                        {n: server_log(attempt.context, n) for n in order},
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
            got = _one_round(running, servers, order, attempt.workdir, payload, attempt.deadline)
            if isinstance(got, str):
                return attempt.error(f"round {index + 1}: {got}")
            round_records, result = got
        warmup_requests += sum(1 for r in round_records["candidate"] if r.offset_s < ramp)
        for name, server in servers.items():
            usage[name].append(serving.server_metrics(server, since=before[name]))
        # What a container ran, exactly (the same image every round).
        digest = getattr(servers["candidate"], "image_digest", None) or digest
        kept = {
            name: load_rounds.on_timeline(round_records[name], index, span, config.warmup, ramp)
            for name in specs
        }
        if config.rate is not None:  # requests in turn: the sides' seconds match
            windows = load_rounds.time_windows(kept, config.warmup + index * span, span)
        else:
            windows = {name: [[r.latency_ms for r in kept[name] if r.ok]] for name in specs}
        for name in specs:
            records[name] += kept[name]
            rounds[name].append(windows[name])
    attempt = attempt.measured(plan, span)
    evidence = attempt.judge(records["candidate"], result, rounds["candidate"])
    if evidence.status == "passed":
        champion_failed = sum(
            1 for r in records["champion"] if not r.ok and r.offset_s >= config.warmup
        )
        interleaving = (
            "requests in turn" if config.rate is not None else "rounds in turn (A B, B A, ...)"
        )
        evidence = _with_champion(
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


def interleaved(config: LoadConfig, champion_url: str, context: RunContext) -> Evidence:
    """Champion (A) and candidate (B) loaded in alternating rounds, A B then B A, so slow
    drift of the machine lands on both; the candidate's evidence carries the comparison."""
    assert config.url is not None
    attempt = Attempt.begin(config, context)
    inputs = checked_inputs(config)
    if isinstance(inputs, str):
        return attempt.error(inputs)
    payload, _ = inputs
    if config.rate is not None:
        return _side_by_side(config, champion_url, context, payload, attempt)
    sides = {"champion": champion_url, "candidate": config.url}
    records: dict[str, list[loadgen.Record]] = {"champion": [], "candidate": []}
    # Successful latencies of each side, round by round (one window each: the sides were
    # loaded one after the other): the comparison pairs the rounds.
    rounds: dict[str, list[list[list[float]]]] = {"champion": [], "candidate": []}
    result = loadgen.Result()
    if config.warmup:
        for name, url in sides.items():
            warmed = generate(
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
            generated = generate(
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
            rounds[name].append([[r.latency_ms for r in kept if r.ok]])
    attempt = attempt.measured(plan, span)
    evidence = attempt.judge(records["candidate"], result, rounds["candidate"])
    if evidence.status != "passed":
        return evidence
    champion_failed = sum(1 for r in records["champion"] if not r.ok)
    return _with_champion(
        evidence,
        context,
        rounds["champion"],
        rounds["candidate"],
        "rounds in turn (A B, B A, ...)",
        champion_failed,
        plan,
    )


def _side_by_side(
    config: LoadConfig,
    champion_url: str,
    context: RunContext,
    payload: Path | None,
    attempt: Attempt,
) -> Evidence:
    """Open loop: one generator sends to candidate and champion in turn, request by
    request, each at the configured rate, so a noisy moment hits both sides alike; the
    measured window is cut into `rounds` time bins, compared pair by pair."""
    assert config.url is not None and config.rate is not None
    generated = generate(
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
    # Each bin is a round of one window: the bins are the time windows of one run.
    windowed = {target: [[values] for values in bins[target]] for target in bins}
    evidence = attempt.judge(candidate, result, windowed[0])
    if evidence.status != "passed":
        return evidence
    champion_failed = sum(
        1 for r in records if r.target == 1 and not r.ok and r.offset_s >= config.warmup
    )
    return _with_champion(
        evidence, context, windowed[1], windowed[0], "requests in turn", champion_failed
    )


def _with_champion(
    evidence: Evidence,
    context: RunContext,
    champion: list[list[list[float]]],
    candidate: list[list[list[float]]],
    interleaving: str,
    champion_failed: int,
    plan: sequential.RoundPlan | None = None,
) -> Evidence:
    """The candidate's evidence with the paired comparison and the champion's samples;
    `plan`: how the rounds were chosen (None: a fixed number, binned from one run)."""
    plan = plan or sequential.RoundPlan.of_fixed(len(candidate))
    try:
        comparison = compare_rounds(champion, candidate, plan)
    except MlgateError as exc:
        return evidence.model_copy(
            update={"status": "error", "reason": f"champion: {exc}", "artifacts": []}
        )
    comparison["interleaving"] = interleaving
    comparison["champion_failed_requests"] = champion_failed
    champion_samples = context.evidence_dir / CHAMPION_SAMPLES_FILE
    write_samples(champion_samples, champion)
    artifact = ev.artifact(
        champion_samples, "the champion's latencies, same format, same rounds"
    ).model_copy(update={"path": CHAMPION_SAMPLES_FILE})
    data = evidence.data | {
        "comparison": comparison,
        "champion_samples_artifact": CHAMPION_SAMPLES_FILE,
    }
    return evidence.model_copy(update={"data": data, "artifacts": [*evidence.artifacts, artifact]})


def _round_plan(config: LoadConfig, context: RunContext, left: float) -> sequential.RoundPlan:
    """The rounds of a champion comparison; auto judges them by this stage's policy. `left`:
    seconds to the stage's deadline now, as the rounds begin (warm-ups may have gone before)."""
    if config.rounds != "auto":
        return sequential.RoundPlan(config.rounds)
    policy = context.stage_policy if isinstance(context.stage_policy, LoadPolicy) else LoadPolicy()
    # Within the stage's timeout too, with room to judge and stop.
    budget = min(config.max_seconds, left - 2 * STARTUP_S)
    return sequential.RoundPlan(None, config.min_rounds, budget, policy.regression_tolerance)


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
        generated = generate(
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
        generated = generate(
            config, servers[name].url, workdir, payload, None, deadline - time.monotonic()
        )
        if isinstance(generated, str):
            return f"{name}: {generated}"
        split[name], result = generated
    return split, result
