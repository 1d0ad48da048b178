"""Calibrate the load gate, old mode beside new: fixed 6 rounds judged two-sided against
`rounds: auto` judged one-sided by the confidence sequence, on the same real load.

Real servers (examples/iris/serve.py, a fresh pair every round) loaded by mlgate's generator
in open loop, candidate and champion in turn, as bench_compare_calibration.py does (its
servers, rounds and +10% p95 sizing are reused). Run:

    .venv/bin/python benchmarks/bench_sequential_calibration.py [--pairs 10] [--seconds 60]
        [--max-seconds S] [--rate 100] [--work-ms MS] [--unchanged-only | --changed-only]
        [--quick]

A trial is one `rounds: auto` comparison: rounds of ``--seconds`` / 6 each, at least
``--min-rounds``, then one more while the gate (`load.no_regression` at the default 10%
tolerance, every metric of p50, p95, mean) is undecided, until ``--max-seconds`` (default:
3x the time of the first 6 rounds of the first trial, the issue's busy-machine budget). The
**old mode** is judged on the first 6 rounds of the same trial: a fixed-6-round t interval,
the gate passing when every metric's two-sided decision is "no change" or "improvement" (the
decision now reads the interval alone; ae9cde2 also required a BH-adjusted p-value). The
**new mode**: the confidence sequence over all rounds run, one-sided (`decision.non_inferiority`),
each round's log-ratio the mean over its time windows of about 5 s (`rounds.time_windows`), as
the load stage compares open-loop rounds now. Between them, **before**: the same sequence on each
round's log-ratio of its whole samples (the rule until time windows), replayed on the same rounds.

Trials alternate A/A (the same server twice) and A/B (B does busy work sized to +10% p95).
Printed per mode, each with a 95% Clopper-Pearson interval: A/A gate pass rate (target >= 95%),
A/B gate pass rate (false pass, target <= 5%), A/A two-sided false regression (any metric;
target <= 1%), A/B p95 detected two-sided (target >= 95%), the average time and rounds to a
decision, and the load average seen. Then estimates from resampling the measured rounds
(every round runs on its own pair of servers: rounds are independent units): trials of rounds
drawn from all A/A (A/B) rounds, judged by both modes, with an interval from resampling the
rounds.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_compare_calibration import (
    AA,
    AB,
    FloatArray,
    Server,
    _terminate,
    calibrate,
    load,
    rate_text,
    round_seconds,
    start,
    stop_servers,
)

from mlgate import sequential, stats
from mlgate.decision import decide, non_inferiority
from mlgate.stages.load import rounds as load_rounds

FIXED_ROUNDS = 6
TOLERANCE = stats.DEFAULT_TOLERANCE
METRICS = stats.DEFAULT_METRICS
INTERVAL_RESAMPLES = 40
RESAMPLED_DRAWS = 200


@dataclass
class Judged:
    """One mode's verdict on one trial."""

    gate: str  # pass, fail, inconclusive
    false_regression: bool  # any metric decided "regression", two-sided
    p95_regression: bool
    seconds: float
    rounds: int


@dataclass
class Trial:
    kind: str
    added_ms: float
    # Per round: p50, p95, mean, each the mean of its time windows' log-ratios (mlgate's rule)...
    logs: list[list[float]] = field(default_factory=list)
    # ...and of the whole round's samples (the rule before time windows; [] in runs before).
    whole: list[list[float]] = field(default_factory=list)
    round_seconds: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average per round
    champion_p95: list[float] = field(default_factory=list)  # A's p95 per round, ms
    stopped: str = ""


def fixed_mode(logs: FloatArray, seconds: float) -> Judged:
    judged = stats.judge_log_ratios(logs[:FIXED_ROUNDS], METRICS, TOLERANCE)
    gate = sequential.gate_outcome(
        ["pass" if j.decision in ("no change", "improvement") else "fail" for j in judged]
    )
    # The old gate: a regression fails, anything not "no change"/"improvement" is inconclusive.
    if gate == "fail" and not any(j.decision == "regression" for j in judged):
        gate = "inconclusive"
    return Judged(
        gate,
        any(j.decision == "regression" for j in judged),
        next(j for j in judged if j.metric == "p95").decision == "regression",
        seconds,
        FIXED_ROUNDS,
    )


def auto_mode(logs: FloatArray, seconds: float) -> Judged:
    intervals = {
        metric: sequential.relative_interval(
            sequential.confidence_sequence([float(v) for v in logs[:, j]])
        )
        for j, metric in enumerate(METRICS)
    }
    gate = sequential.gate_outcome([non_inferiority(ci, TOLERANCE) for ci in intervals.values()])
    two_sided = {m: decide(ci, TOLERANCE) for m, ci in intervals.items()}
    return Judged(
        gate,
        "regression" in two_sided.values(),
        two_sided["p95"] == "regression",
        seconds,
        len(logs),
    )


def round_log_ratios(
    candidate: Sequence[Sequence[float]], champion: Sequence[Sequence[float]]
) -> list[float]:
    """One round's log-ratios from its time windows (one window: the whole round)."""
    logs = stats.round_log_ratios(stats.paired_windows([champion], [candidate]), METRICS)
    return [float(v) for v in logs[0]]


def run_trial(kind: str, added_ms: float, args: argparse.Namespace, scratch: Path) -> Trial:
    """Rounds on fresh pairs of servers until the new mode's gate is decided (after the
    minimum) or the budget; the stop rule is mlgate's own (sequential.RoundPlan)."""
    trial = Trial(kind, added_ms)
    plan = sequential.RoundPlan(
        None, max(args.min_rounds, FIXED_ROUNDS), args.max_seconds, TOLERANCE
    )

    def so_far() -> dict[str, list[float]]:
        return {m: [r[j] for r in trial.logs] for j, m in enumerate(METRICS)}

    for index in plan.indices(so_far):
        began = time.monotonic()
        champion = Server("A1", 0.0)
        candidate = Server("A2" if kind == AA else "B", added_ms)
        try:
            for server in (candidate, champion) if index % 2 == 0 else (champion, candidate):
                start(server, scratch)
            records = load(candidate.url, champion.url, args, scratch)
        finally:
            stop_servers()
        sides = {"candidate": [r for r in records if r.target == 0]}
        sides["champion"] = [r for r in records if r.target == 1]
        windows = load_rounds.time_windows(sides, args.warmup, round_seconds(args))
        trial.logs.append(round_log_ratios(windows["candidate"], windows["champion"]))
        # The same samples whole: the rule before windows.
        cand, champ = (np.concatenate(windows[side]) for side in ("candidate", "champion"))
        trial.whole.append(round_log_ratios([cand.tolist()], [champ.tolist()]))
        trial.champion_p95.append(stats.point_estimate(np.sort(champ), "p95"))
        trial.round_seconds.append(time.monotonic() - began)
        trial.load.append(os.getloadavg()[0])
    trial.stopped = plan.stopped
    return trial


@dataclass
class Rates:
    judged: list[Judged] = field(default_factory=list)

    def count(self, test: Callable[[Judged], bool]) -> int:
        return sum(test(j) for j in self.judged)


def print_modes(trials: list[Trial]) -> None:
    by_mode: dict[str, dict[str, Rates]] = {
        mode: {AA: Rates(), AB: Rates()} for mode in ("old", "before", "new")
    }
    for t in trials:
        logs, whole = np.asarray(t.logs), np.asarray(t.whole or t.logs)
        by_mode["old"][t.kind].judged.append(fixed_mode(whole, sum(t.round_seconds[:6])))
        by_mode["new"][t.kind].judged.append(auto_mode(logs, sum(t.round_seconds)))
        # Replayed on the same rounds: stopped at its own first decision, or at the rounds
        # the trial ran (which the new rule chose; a later decision is not seen).
        if len(logs) < FIXED_ROUNDS:
            raise SystemExit(f"a trial of {len(logs)} rounds: a trial has at least {FIXED_ROUNDS}")
        for count in range(FIXED_ROUNDS, len(logs) + 1):
            before = auto_mode(whole[:count], sum(t.round_seconds[:count]))
            if before.gate != "inconclusive":
                break
        by_mode["before"][t.kind].judged.append(before)
    print()
    print(
        "mode (tolerance 10%; p50, p95, mean)        | A/A gate pass (>=95%)    | "
        "A/B +10% gate pass (<=5%) | A/A false regression (<=1%) | A/B p95 detected (>=95%) | "
        "time, rounds to decision"
    )
    for mode, label in (
        ("old", "fixed 6 rounds, t interval, two-sided"),
        ("before", "auto, whole rounds (replayed)"),
        ("new", "auto, rounds in 5-s windows"),
    ):
        aa, ab = by_mode[mode][AA], by_mode[mode][AB]
        every = aa.judged + ab.judged
        seconds = np.mean([j.seconds for j in every]) if every else math.nan
        rounds = np.mean([j.rounds for j in every]) if every else math.nan
        print(
            f"{label:<44} | {rate_text(aa.count(lambda j: j.gate == 'pass'), len(aa.judged)):<24} "
            f"| {rate_text(ab.count(lambda j: j.gate == 'pass'), len(ab.judged)):<25} "
            f"| {rate_text(aa.count(lambda j: j.false_regression), len(aa.judged)):<27} "
            f"| {rate_text(ab.count(lambda j: j.p95_regression), len(ab.judged)):<24} "
            f"| {seconds:.0f} s, {rounds:.1f} rounds"
        )
    loads = [v for t in trials for v in t.load]
    print(
        f"load average (1 min) over the rounds: min {min(loads):.1f}, median "
        f"{float(np.median(loads)):.1f}, max {max(loads):.1f} (os.getloadavg, {os.cpu_count()} "
        "CPUs)"
    )
    for kind in (AA, AB):
        p95_logs = [np.asarray(t.logs)[:, METRICS.index("p95")] for t in trials if t.kind == kind]
        spread = [float(np.std(v, ddof=1)) for v in p95_logs if len(v) > 1]
        shift = [math.expm1(float(np.mean(v))) for v in p95_logs]
        if spread:
            print(
                f"{kind}: p95 change per trial median {float(np.median(shift)):+.1%}; sd of a "
                f"round's p95 log-ratio median {float(np.median(spread)):.3f} "
                f"({min(spread):.3f} to {max(spread):.3f})"
            )
    stops: dict[str, int] = {}
    for t in trials:
        key = t.stopped.split(":")[0]
        stops[key] = stops.get(key, 0) + 1
    print("new mode stopped: " + ", ".join(f"{k} {v}" for k, v in sorted(stops.items())))


def drawn(
    pool: FloatArray, draws: int, budget_rounds: int, rng: np.random.Generator
) -> tuple[list[Judged], list[Judged], list[Judged]]:
    """Trials of rounds drawn at random from `pool` (rows: a round's whole-round log-ratios,
    then its windowed ones; with replacement when the budget asks for more rounds than the
    pool has): the old mode on 6 whole rounds; the auto modes (whole rounds, before; rounds in
    windows, new) adding drawn rounds while their gate is undecided, up to `budget_rounds`."""
    width = len(METRICS)
    old: list[Judged] = []
    before: list[Judged] = []
    new: list[Judged] = []
    for _ in range(draws):
        size = max(budget_rounds, FIXED_ROUNDS)
        if size <= len(pool):
            order = rng.permutation(len(pool))[:size]
        else:
            order = rng.integers(0, len(pool), size)
        old.append(fixed_mode(pool[order, :width], 0.0))
        for found, columns in ((before, slice(0, width)), (new, slice(width, 2 * width))):
            rounds = FIXED_ROUNDS
            while True:
                judged = auto_mode(pool[order[:rounds], columns], 0.0)
                if judged.gate != "inconclusive" or rounds >= len(order):
                    break
                rounds += 1
            found.append(judged)
    return old, before, new


def print_drawn(trials: list[Trial], args: argparse.Namespace) -> None:
    every_pool = {
        kind: np.asarray(
            [
                w + r
                for t in trials
                if t.kind == kind
                for w, r in zip(t.whole or t.logs, t.logs, strict=True)
            ]
        )
        for kind in (AA, AB)
    }
    # With --unchanged-only there are no A/B rounds: only the A/A estimates are drawn.
    pools = {kind: pool for kind, pool in every_pool.items() if len(pool) >= FIXED_ROUNDS}
    if not pools:
        print("(too few rounds measured to draw trials from)")
        return
    every = [s for t in trials for s in t.round_seconds]
    budget_rounds = max(FIXED_ROUNDS, int(args.max_seconds // float(np.mean(every))))
    if args.drawn_rounds is not None:
        budget_rounds = args.drawn_rounds
    rng = np.random.default_rng(args.seed)
    print()
    print(
        f"estimates from the measured rounds ({len(every_pool[AA])} A/A, "
        f"{len(every_pool[AB])} A/B): "
        f"{args.draws} drawn trials each, the auto modes up to {budget_rounds} rounds ("
        f"{'as asked' if args.drawn_rounds else 'the budget at the mean round time'}); "
        f"[95% interval from {args.interval_resamples} resamples of the rounds]"
    )
    tests: dict[str, tuple[str, Callable[[Judged], bool]]] = {
        "A/A gate pass": (AA, lambda j: j.gate == "pass"),
        "A/B gate pass": (AB, lambda j: j.gate == "pass"),
        "A/A false regression": (AA, lambda j: j.false_regression),
        "A/B p95 detected": (AB, lambda j: j.p95_regression),
    }
    results = {kind: drawn(pool, args.draws, budget_rounds, rng) for kind, pool in pools.items()}
    resampled: dict[str, list[tuple[list[Judged], list[Judged], list[Judged]]]] = {AA: [], AB: []}
    for kind in pools:
        for _ in range(args.interval_resamples):
            pool = pools[kind][rng.integers(0, len(pools[kind]), len(pools[kind]))]
            resampled[kind].append(drawn(pool, RESAMPLED_DRAWS, budget_rounds, rng))
    for index, mode in enumerate(("old", "before", "new")):
        cells = []
        for name, (kind, test) in tests.items():
            if kind not in results:
                continue
            judged = results[kind][index]
            share = sum(map(test, judged)) / len(judged)
            rates = [sum(map(test, r[index])) / len(r[index]) for r in resampled[kind]]
            low, high = np.quantile(rates, [0.025, 0.975])
            cells.append(f"{name} {share:6.1%} [{low:5.1%}, {high:5.1%}]")
        rounds = np.mean([j.rounds for kind in results for j in results[kind][index]])
        print(f"  {mode} mode: " + "; ".join(cells) + f"; {rounds:.1f} rounds on average")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10, help="A/A + A/B trial pairs (10)")
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured per side in 6 rounds (60)"
    )
    parser.add_argument("--min-rounds", type=int, default=6, help="auto's minimum rounds (6)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=None,
        help="auto's budget per trial, s (default: 3x the first trial's first 6 rounds)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds dropped per round")
    parser.add_argument("--rate", type=float, default=100.0, help="open loop, req/s per side")
    parser.add_argument("--work-ms", type=float, default=None, help="B's fixed extra work, ms")
    parser.add_argument("--calibration-steps", type=int, default=3)
    parser.add_argument("--draws", type=int, default=2000, help="drawn trials per kind")
    parser.add_argument("--interval-resamples", type=int, default=INTERVAL_RESAMPLES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--drawn-rounds",
        type=int,
        default=None,
        help="the drawn trials' most rounds (default: the budget at the mean round time)",
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="write the trials' rounds here after each trial"
    )
    parser.add_argument(
        "--summarize",
        type=Path,
        default=None,
        help="print the summary of trials saved by --save (needs --max-seconds), run nothing",
    )
    parser.add_argument(
        "--unchanged-only",
        action="store_true",
        help="A/A trials only (--pairs of them): the unchanged pass rate on a busy machine, "
        "where +10%% rates come from another run",
    )
    parser.add_argument(
        "--changed-only",
        action="store_true",
        help="A/B trials only (--pairs of them, B's work from --work-ms): the +10%% rates, "
        "where unchanged ones come from another run",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 pair of 1-s rounds, a 60 s budget: a smoke run"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.seconds, args.warmup = 1, 6.0, 0.5
        args.max_seconds = args.max_seconds or 60.0
        args.calibration_steps, args.draws, args.interval_resamples = 1, 100, 5
    if args.pairs < 1 or args.seconds <= 0 or args.rate <= 0 or args.min_rounds < 2:
        parser.error("--pairs, --seconds, --rate must be positive, --min-rounds at least 2")
    if args.changed_only and (args.unchanged_only or args.work_ms is None):
        parser.error("--changed-only needs --work-ms and not --unchanged-only")
    if args.work_ms is not None and not (math.isfinite(args.work_ms) and args.work_ms > 0):
        parser.error("--work-ms must be a positive number of milliseconds")
    # What bench_compare_calibration's helpers read.
    args.rounds_per_trial = FIXED_ROUNDS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.summarize is not None:
        if args.max_seconds is None:
            print("--summarize needs the run's --max-seconds", file=sys.stderr)
            return 2
        saved = [Trial(**t) for t in json.loads(args.summarize.read_text())]
        print_modes(saved)
        print_drawn(saved, args)
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(stop_servers)
    started = time.monotonic()
    kinds = (AA,) if args.unchanged_only else (AB,) if args.changed_only else (AA, AB)
    print(
        f"mlgate gate calibration, old mode beside new: {args.pairs} x "
        f"({', '.join(kinds)}), open loop "
        f"{args.rate:g} req/s per side, rounds of {args.seconds / FIXED_ROUNDS:g} s "
        f"(+{args.warmup:g} s warm-up) on fresh servers; load average now "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-sequential-") as name:
        scratch = Path(name)
        sizing = args.work_ms is None and not args.unchanged_only  # A/A trials need no B
        share = calibrate(args, scratch) if sizing else 0.0
        budget_given = args.max_seconds is not None
        if not budget_given:
            args.max_seconds = math.inf  # until the first trial sets it
        for _ in range(args.pairs):
            for kind in kinds:
                added = 0.0
                if kind == AB:
                    # Given, or scaled to A's p95 in the A/A trial just before, as the old
                    # script does.
                    added = args.work_ms or share * float(np.median(trials[-1].champion_p95))
                trial = run_trial(kind, added, args, scratch)
                if not budget_given and math.isinf(args.max_seconds):
                    args.max_seconds = 3 * sum(trial.round_seconds[:FIXED_ROUNDS])
                    print(f"budget: {args.max_seconds:.0f} s per trial", flush=True)
                trials.append(trial)
                if args.save is not None:
                    args.save.write_text(json.dumps([t.__dict__ for t in trials]))
                print(
                    f"  trial {len(trials):>3} {kind} (B's work {added:.3f} ms): "
                    f"{len(trial.logs)} rounds in "
                    f"{sum(trial.round_seconds):.0f} s, {trial.stopped}; load average "
                    f"{trial.load[-1]:.1f}",
                    flush=True,
                )
    print_modes(trials)
    print_drawn(trials, args)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_servers()
        print("interrupted; servers and load runs stopped", file=sys.stderr)
        sys.exit(130)
