"""Calibrate mlgate's latency comparison: false alarms on A/A data, detection of +10% p95 on A/B.

Real load (mlgate's load generator, i.e. locust, as the load stage runs it) against the example
model server (examples/iris/serve.py) on 127.0.0.1. Run:

    .venv/bin/python benchmarks/bench_compare_calibration.py [--pairs 12] [--rate 100]
        [--seconds 60] [--rounds-per-trial 6] [--work-ms MS] [--save F | --load F...] [--quick]

Trials are what the load stage's champion mode does, run after run: ``--rounds-per-trial``
rounds (the load stage's `rounds: 6`), each on a fresh pair of servers, each an open-loop run of
the generator sending to the candidate and the champion in turn, request by request (A B, B A,
...), at ``--rate`` requests per second each, ``--warmup`` seconds dropped, then
``--seconds`` / rounds measured (``--seconds`` in all: the load stage's `duration: 60`).
Whatever slows the machine for a moment slows both sides alike.

Servers. A1 and A2 are serve.py started twice (the same server: a champion and an unchanged
candidate). The run alternates an A/A trial (candidate A2, champion A1) and an A/B trial
(candidate B, champion A1), ``--pairs`` times. B is serve.py with ``--cpu-ms``: busy work holding
the GIL, as a bigger model would add, sized as a share of A's p95 in the A/A trial just before.
The share comes from short A/B runs before the trials (`calibrate`) so that B's p95 is +10%
(work of 10% of A's p95 moves the client's p95 by less); ``--work-ms`` fixes the work instead,
e.g. to judge the change a quiet run calibrated on a busy machine. The achieved shift is
printed. A sleep would not do: waking up takes the scheduler ~0.2 ms here, which alone is +10%
of this server's p95.

Decisions. Paired rounds (`mlgate.stats.compare_rounds`, what the load stage and `mlgate
compare` use on such data), defaults: p50, p95, mean; the default tolerance; 95% t interval,
two-sided decisions (the gate's one-sided rule and `rounds: auto`:
bench_sequential_calibration.py). A false alarm is any metric decided "regression" on an A/A
trial; "A/A gate fails" counts "regression" or "inconclusive", as the two-sided gate before
issue 12 did. A detection is p95 decided "regression" on an A/B trial. The trials' rates carry
95% Clopper-Pearson intervals; as hours of load would be needed for hundreds of trials, the
script also draws many trials of rounds picked at random from all A/A (or A/B) trials' rounds
(every round runs on its own pair of servers, so rounds are independent units) and prints those
rates as estimates, judged by the rule `compare_rounds` applies, with a 95% interval from
resampling the measured rounds.

For contrast, on the same data: comparing independent samples (`mlgate.stats.compare`, what a
baseline file measured at another time gets: the candidate of one trial against the champion A1
of the next A/A trial), and github-action-benchmark's rule (alert when candidate / baseline of
one value, the trial's p95 or mean, exceeds its default 200% or a tight 110%).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from mlgate import loadgen, stats
from mlgate.stages.load.config import LoadConfig
from mlgate.stages.load.measure import generate
from mlgate.stats import DEFAULT_TOLERANCE

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
PAYLOAD = EXAMPLE / "payloads.jsonl"
SHIFT = 0.10  # the injected p95 shift the targets are about
FALSE_ALARM_TARGET = 0.01
DETECTION_TARGET = 0.95
GAB_THRESHOLDS = (2.00, 1.10)  # github-action-benchmark's default alert threshold, and a tight one
DRAWN_TRIALS = 2000  # trials of randomly picked rounds
# Drawn trials per resample of the rounds, for a drawn rate's interval (cost: resamples x this).
INTERVAL_DRAWS = 500
AA, AB = "A/A", "A/B"
FloatArray = npt.NDArray[np.float64]


@dataclass
class Server:
    name: str
    added_ms: float
    process: subprocess.Popen[str] | None = None
    url: str = ""
    log: Path | None = None


_servers: list[Server] = []


def start(server: Server, scratch: Path) -> None:
    server.log = scratch / f"server-{server.name}.log"
    with server.log.open("w") as log:
        server.process = subprocess.Popen(
            [
                sys.executable,
                "serve.py",
                "--port",
                "0",
                "--threads",
                "0",
                "--cpu-ms",
                f"{server.added_ms:.6f}",
            ],
            cwd=EXAMPLE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # Its own process group, so cleanup can take down the server whatever it spawned,
            # and so a Ctrl-C reaches this script, which then stops it in order.
            start_new_session=True,
        )
    _servers.append(server)
    assert server.process.stdout is not None
    ready, _, _ = select.select([server.process.stdout], [], [], 60)
    line = server.process.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        raise SystemExit(
            f"serve.py ({server.name}) did not start: {line!r}; see {server.log.read_text()!r}"
        )
    server.url = line.removeprefix("listening on ").strip()


def stop_servers(only: Server | None = None) -> None:
    """Stop every server started (or just `only`), newest first."""
    for server in [s for s in reversed(_servers) if only is None or s is only]:
        _servers.remove(server)
        if server.process is None or server.process.poll() is not None:
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM takes the same way out as Ctrl-C: the load stage stops its locust child on
    # KeyboardInterrupt, and the `finally` below stops the servers.
    raise KeyboardInterrupt


def load(
    candidate: str, champion: str, args: argparse.Namespace, scratch: Path
) -> list[loadgen.Record]:
    """One real open-loop run of mlgate's load generator, as the load stage's champion mode
    makes it (candidate and champion in turn, request by request): one round; its records."""
    config = LoadConfig(
        url=candidate,
        payload=str(PAYLOAD),
        duration=round_seconds(args),
        warmup=args.warmup,
        rate=args.rate,
        timeout=args.warmup + round_seconds(args) + 120,
    )
    generated = generate(
        config, candidate, scratch, PAYLOAD, None, config.timeout, other_urls=[champion]
    )
    if isinstance(generated, str):
        raise SystemExit(f"load run failed: {generated}")
    records, _ = generated
    failed = sum(1 for r in records if not r.ok)
    if failed:
        print(f"  note: {failed} failed requests", flush=True)
    return records


def round_seconds(args: argparse.Namespace) -> float:
    return float(args.seconds) / int(args.rounds_per_trial)


@dataclass
class Trial:
    """One load run: the champion's (A1) and the candidate's rounds, in step."""

    kind: str  # A/A or A/B
    added_ms: float  # the candidate's injected work (0 for A/A)
    champion: list[FloatArray] = field(default_factory=list)
    candidate: list[FloatArray] = field(default_factory=list)

    def pooled(self, side: str) -> FloatArray:
        return np.concatenate(self.champion if side == "champion" else self.candidate)


def cut(records: list[loadgen.Record], args: argparse.Namespace) -> tuple[FloatArray, FloatArray]:
    """The successful latencies of one round's measured window: candidate's, champion's."""
    end = args.warmup + round_seconds(args)
    sides: list[list[float]] = [[], []]
    for r in records:
        if r.ok and args.warmup <= r.offset_s < end:
            sides[r.target].append(r.latency_ms)
    return np.array(sides[0], dtype=np.float64), np.array(sides[1], dtype=np.float64)


def a_p95(trial: Trial) -> float:
    """A's p95 in a trial: the champion's, and the candidate's too when it is A2."""
    sides = [trial.pooled("champion")] + ([trial.pooled("candidate")] if trial.kind == AA else [])
    return stats.point_estimate(np.sort(np.concatenate(sides)), "p95")


def calibrate(args: argparse.Namespace, scratch: Path) -> float:
    """B's work as a share of A's p95 that moves B's p95 by +10%.

    Work added on the server moves the client's p95 by less than itself: the slowest answers
    are slow mostly for reasons the server's work does not add to (measured: 10% of A's p95
    as work gave +4-9%). So, before any trial, A/B runs of half a trial's rounds each measure
    the shift achieved per share of work, pooled over the steps (process-to-process variation
    makes a single step noisy), and the share is rescaled to +10%.
    """
    share = SHIFT
    calibration = argparse.Namespace(**vars(args))
    calibration.rounds_per_trial = max(2, args.rounds_per_trial // 2)
    calibration.seconds = calibration.rounds_per_trial * round_seconds(args)
    # A's p95 to size the first step's work; each step's champion then sizes the next.
    reference = a_p95(make_trial(AA, 0.0, run_trial(AA, 0.0, calibration, scratch), calibration))
    shares, achieved = [], []
    for step in range(args.calibration_steps):
        work = share * reference
        trial = make_trial(AB, work, run_trial(AB, work, calibration, scratch), calibration)
        reference = a_p95(trial)
        shares.append(work / reference)  # the share of this step's own A p95
        achieved.append(relative(trial.pooled("candidate"), trial.pooled("champion"), "p95"))
        print(
            f"  calibration {step + 1}: work {work:.3f} ms = {shares[-1]:.1%} of A's p95 -> "
            f"p95 {achieved[-1]:+.1%}",
            flush=True,
        )
        slope = sum(achieved) / sum(shares)  # p95 shift per share of work, pooled
        share = min(max(SHIFT / slope, share / 2), share * 4) if slope > 0 else share * 4
    print(f"calibrated: B's work is {share:.1%} of A's p95", flush=True)
    return share


def make_trial(
    kind: str, added_ms: float, runs: list[list[loadgen.Record]], args: argparse.Namespace
) -> Trial:
    trial = Trial(kind, added_ms)
    for records in runs:
        candidate, champion = cut(records, args)
        trial.candidate.append(candidate)
        trial.champion.append(champion)
    return trial


def run_trial(
    kind: str, added_ms: float, args: argparse.Namespace, scratch: Path
) -> list[list[loadgen.Record]]:
    """A trial as the load stage runs it: a fresh champion and candidate for every round, so
    what sets one server process apart from an identical one (measured: up to 7% in p95, for
    a whole run) varies from round to round, where the rounds' interval sees it. Like the load
    stage, it starts the candidate first in even rounds and the champion first in odd ones:
    with the champion always first, A2 measured 1.5% faster than A1 over five A/A trials."""
    runs = []
    for index in range(args.rounds_per_trial):
        champion = Server("A1", 0.0)
        candidate = Server("A2" if kind == AA else "B", added_ms)
        try:
            for server in (candidate, champion) if index % 2 == 0 else (champion, candidate):
                start(server, scratch)
            runs.append(load(candidate.url, champion.url, args, scratch))
        finally:
            stop_servers()
    return runs


def interval(hits: int, trials: int) -> tuple[float, float]:
    if trials == 0:
        return (math.nan, math.nan)
    ci = scipy_stats.binomtest(hits, trials).proportion_ci(0.95, method="exact")
    return (float(ci.low), float(ci.high))


def rate_text(
    hits: int, trials: int, exact: bool = True, between: tuple[float, float] | None = None
) -> str:
    """hits/trials and the share; with its exact 95% interval, or the one given; "-" when
    there were no trials of that kind (an --unchanged-only run has no A/B trials)."""
    if not trials:
        return "-"
    share = hits / trials
    if between is None and not exact:
        return f"{hits:>4}/{trials:<4} {share:6.1%}"
    low, high = between if between is not None else interval(hits, trials)
    return f"{hits:>4}/{trials:<4} {share:6.1%} [{low:5.1%}, {high:5.1%}]"


def verdict(
    hits: int,
    trials: int,
    target: float,
    at_most: bool,
    between: tuple[float, float] | None = None,
) -> str:
    """Met on the point estimate, and 'shown' when the whole 95% interval (exact, or the one
    given) meets it too."""
    if trials == 0:
        return "n/a"
    share = hits / trials
    low, high = between if between is not None else interval(hits, trials)
    if high <= target if at_most else low >= target:
        return "shown"
    return "met" if (share <= target if at_most else share >= target) else "NOT MET"


def relative(candidate: FloatArray, baseline: FloatArray, metric: str) -> float:
    return (
        stats.point_estimate(np.sort(candidate), metric)
        / stats.point_estimate(np.sort(baseline), metric)
        - 1.0
    )


Judged = stats.Comparison | stats.RoundsJudgement


def _of(results: Sequence[Judged], metric: str) -> Judged:
    return next(c for c in results if c.metric == metric)


@dataclass
class Tally:
    """Decisions over a set of trials of one kind."""

    trials: int = 0
    alarms: int = 0  # any metric decided regression
    failures: int = 0  # any metric decided regression or inconclusive: the gate fails
    detected: int = 0  # p95 decided regression
    by_metric: dict[str, list[int]] = field(default_factory=dict)  # [regression, inconclusive]

    def add(self, results: Sequence[Judged]) -> None:
        self.trials += 1
        self.alarms += any(c.decision == "regression" for c in results)
        self.failures += any(c.decision in ("regression", "inconclusive") for c in results)
        self.detected += _of(results, "p95").decision == "regression"
        for c in results:
            counts = self.by_metric.setdefault(c.metric, [0, 0])
            counts[0] += c.decision == "regression"
            counts[1] += c.decision == "inconclusive"


def tally(pairs: Sequence[tuple[list[FloatArray], list[FloatArray]]], tolerance: float) -> Tally:
    result = Tally()
    for champion, candidate in pairs:
        result.add(stats.compare_rounds(whole(champion), whole(candidate), tolerance=tolerance))
    return result


def round_logs(trials: list[Trial]) -> FloatArray:
    """Every round of these trials as its log-ratios (candidate / champion) of the default
    metrics: shape (rounds, metrics). A round keeps its two sides together."""
    pairs = [
        [(np.sort(champion), np.sort(candidate))]
        for t in trials
        for champion, candidate in zip(t.champion, t.candidate, strict=True)
    ]
    return stats.round_log_ratios(pairs, stats.DEFAULT_METRICS)


def whole(rounds: list[FloatArray]) -> list[list[FloatArray]]:
    """Each round as one time window: this script's rounds are time bins of one run."""
    return [[r] for r in rounds]


def drawn_tally(
    logs: FloatArray, per_trial: int, draws: int, rng: np.random.Generator, tolerance: float
) -> Tally:
    """Trials of `per_trial` rounds picked at random from these rounds, judged by the rule
    `compare_rounds` applies (`stats.judge_log_ratios`, from each round's log-ratios)."""
    result = Tally()
    for _ in range(draws):
        picked = rng.choice(len(logs), per_trial, replace=False)
        result.add(stats.judge_log_ratios(logs[picked], stats.DEFAULT_METRICS, tolerance))
    return result


def drawn_interval(
    logs: FloatArray,
    count: Callable[[Tally], int],
    args: argparse.Namespace,
    rng: np.random.Generator,
    tolerance: float,
) -> tuple[float, float]:
    """How uncertain a drawn-trials rate is, given that only these rounds were measured: the
    rate over drawn trials, again and again from the rounds resampled with replacement; the
    middle 95% of those rates."""
    draws = min(args.draws, INTERVAL_DRAWS)
    rates = []
    for _ in range(args.interval_resamples):
        pool = logs[rng.integers(0, len(logs), len(logs))]
        drawn = drawn_tally(pool, args.rounds_per_trial, draws, rng, tolerance)
        rates.append(count(drawn) / drawn.trials)
    return float(np.quantile(rates, 0.025)), float(np.quantile(rates, 0.975))


def report(trials: list[Trial], args: argparse.Namespace) -> None:
    by_kind = {kind: [t for t in trials if t.kind == kind] for kind in (AA, AB)}
    logs = {kind: round_logs(by_kind[kind]) for kind in (AA, AB)}
    own = {kind: [(t.champion, t.candidate) for t in by_kind[kind]] for kind in (AA, AB)}
    tolerances = [args.tolerance] + ([0.10] if args.tolerance != 0.10 else [])
    for tolerance in tolerances:
        rng = np.random.default_rng(args.seed)
        default = " (the default)" if tolerance == args.tolerance == DEFAULT_TOLERANCE else ""
        print()
        print(
            f"mlgate, paired rounds (p50, p95, mean; tolerance {tolerance:.0%}{default}; 95% t "
            f"interval, two-sided), trials of {args.rounds_per_trial} rounds"
        )
        print(
            f"{'trials':<26} | {'A/A false alarms (any metric)':<31} {'<=1%':<7} | "
            f"{'A/A gate fails':<16} | {'A/B p95 detected':<31} {'>=95%':<7}"
        )
        aa, ab = tally(own[AA], tolerance), tally(own[AB], tolerance)
        print(
            f"{'the trials (runs)':<26} | {rate_text(aa.alarms, aa.trials):<31} "
            f"{verdict(aa.alarms, aa.trials, FALSE_ALARM_TARGET, True):<7} | "
            f"{rate_text(aa.failures, aa.trials, False):<16} | "
            f"{rate_text(ab.detected, ab.trials):<31} "
            f"{verdict(ab.detected, ab.trials, DETECTION_TARGET, False):<7}"
        )
        per_trial = args.rounds_per_trial
        if min(len(logs[AA]), len(logs[AB])) < per_trial:
            print(f"{'(too few rounds to draw trials from)':<26}")
            continue
        aa = drawn_tally(logs[AA], per_trial, args.draws, rng, tolerance)
        ab = drawn_tally(logs[AB], per_trial, args.draws, rng, tolerance)
        alarms = drawn_interval(logs[AA], lambda t: t.alarms, args, rng, tolerance)
        detected = drawn_interval(logs[AB], lambda t: t.detected, args, rng, tolerance)
        label = f"{args.draws} of random rounds (est.)"
        print(
            f"{label:<26} | {rate_text(aa.alarms, aa.trials, between=alarms):<31} "
            f"{verdict(aa.alarms, aa.trials, FALSE_ALARM_TARGET, True, alarms):<7} | "
            f"{rate_text(aa.failures, aa.trials, False):<16} | "
            f"{rate_text(ab.detected, ab.trials, between=detected):<31} "
            f"{verdict(ab.detected, ab.trials, DETECTION_TARGET, False, detected):<7}"
        )
        metrics = ";  ".join(
            f"{m} {aa.by_metric[m][0]}|{aa.by_metric[m][1]}|{ab.by_metric[m][0]}"
            for m in aa.by_metric
        )
        print(f"{'':<26} |   per metric, A/A regression|inconclusive|A/B regression: {metrics}")
    print(
        "(met: the rate meets the target; shown: its whole 95% interval does: Clopper-Pearson for"
        " the trials; for drawn trials, the rates over the rounds resampled"
        f" {args.interval_resamples} times)"
    )

    # A baseline measured at another time: the champion of the next A/A trial.
    print()
    print(
        "for contrast, independent samples (mlgate.stats.compare, a baseline file from another"
        " time): each trial's candidate against A1 of the next A/A trial"
    )
    aa_alarms = ab_detected = compared = 0
    for index, later in enumerate(trials):
        if later.kind != AA:
            continue
        earlier = [t for t in trials[:index] if t.kind == AA][-1:] + [
            t for t in trials[:index] if t.kind == AB
        ][-1:]
        if len(earlier) < 2:
            continue
        compared += 1
        baseline = later.pooled("champion")
        unchanged = stats.compare(baseline, earlier[0].pooled("candidate"), resamples=1000)
        changed = stats.compare(baseline, earlier[1].pooled("candidate"), resamples=1000)
        aa_alarms += any(c.decision == "regression" for c in unchanged)
        ab_detected += _of(changed, "p95").decision == "regression"
    print(
        f"  A/A false alarms {rate_text(aa_alarms, compared)}; "
        f"A/B p95 detected {rate_text(ab_detected, compared)}"
    )
    print()
    print(
        "github-action-benchmark rule on the same trials (alert when candidate / baseline of the"
        " trial's value > threshold)"
    )
    print(f"{'value':>5} {'threshold':>9} | {'A/A alerts':<31} | {'A/B alerts':<31}")
    for metric in ("p95", "mean"):
        for threshold in GAB_THRESHOLDS:
            alerts = {
                kind: sum(
                    relative(t.pooled("candidate"), t.pooled("champion"), metric) + 1 > threshold
                    for t in by_kind[kind]
                )
                for kind in (AA, AB)
            }
            print(
                f"{metric:>5} {threshold:>9.0%} | {rate_text(alerts[AA], len(by_kind[AA])):<31} | "
                f"{rate_text(alerts[AB], len(by_kind[AB])):<31}"
            )


def summary(trials: list[Trial], args: argparse.Namespace) -> None:
    print()
    sizes = [r.size for t in trials for r in (*t.champion, *t.candidate)]
    print(
        f"{len(trials)} trials; successful requests per side and round: min {min(sizes)}, "
        f"median {int(np.median(sizes))}, max {max(sizes)}"
    )
    for kind, label in ((AA, "A2 vs A1"), (AB, "B vs A1")):
        of_kind = [t for t in trials if t.kind == kind]
        changes = {
            m: [relative(t.pooled("candidate"), t.pooled("champion"), m) for t in of_kind]
            for m in ("p50", "p95", "mean")
        }
        text = ", ".join(
            f"{m} {np.median(v):+.1%} ({min(v):+.1%} to {max(v):+.1%})" for m, v in changes.items()
        )
        print(f"  {kind} trials, {label}, median (range) over trials: {text}")
    champion_p95 = [stats.point_estimate(np.sort(t.pooled("champion")), "p95") for t in trials]
    print(
        f"  A1's p95 over the trials: {min(champion_p95):.2f} to {max(champion_p95):.2f} ms; "
        "injected work: " + ", ".join(f"{t.added_ms:.3f}" for t in trials if t.kind == AB) + " ms"
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--pairs",
        type=int,
        default=12,
        help="A/A + A/B trial pairs (default 12: about 27 minutes of load)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured load per side per trial (default 60)"
    )
    parser.add_argument(
        "--rounds-per-trial", type=int, default=6, help="rounds a trial is cut into (default 6)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of load dropped, every round"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="open loop, requests per second per side"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        help=f"the comparison's tolerance (default {DEFAULT_TOLERANCE:g}, mlgate's; 0.10 is "
        "printed as well)",
    )
    parser.add_argument(
        "--draws", type=int, default=DRAWN_TRIALS, help="trials of randomly picked rounds"
    )
    parser.add_argument("--seed", type=int, default=0, help="for the random trials")
    parser.add_argument(
        "--interval-resamples",
        type=int,
        default=200,
        help="resamples of the rounds for the drawn rates' 95%% intervals (default 200)",
    )
    parser.add_argument(
        "--calibration-steps",
        type=int,
        default=3,
        help="short A/B runs that size B's work for a +10%% p95 shift (default 3)",
    )
    parser.add_argument(
        "--work-ms",
        type=float,
        default=None,
        help="B's extra work per request in ms, fixed, instead of calibrating it: e.g. the work "
        "a quiet run calibrated, to see the same change judged on a busy machine",
    )
    parser.add_argument(
        "--save", type=Path, default=None, help="keep the load runs' records here (.npz)"
    )
    parser.add_argument(
        "--load",
        dest="records_files",
        type=Path,
        nargs="+",
        default=None,
        help="analyse records saved by --save (one run or several, in order) instead of "
        "loading servers",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings (2 pairs of 2-s trials of 2 rounds)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs, args.seconds, args.rounds_per_trial = 2, 2.0, 2
        args.warmup, args.draws, args.calibration_steps = 0.5, 50, 1
        args.interval_resamples = 5
    if args.rounds_per_trial < 2 or args.pairs < 1:
        parser.error("--rounds-per-trial must be at least 2, and --pairs at least 1")
    if args.seconds <= 0 or args.draws < 1 or args.rate <= 0 or args.tolerance < 0:
        parser.error("--seconds, --rate and --draws must be positive, --tolerance not negative")
    if args.interval_resamples < 1:
        parser.error("--interval-resamples must be at least 1")
    if args.work_ms is not None and not (math.isfinite(args.work_ms) and args.work_ms > 0):
        parser.error("--work-ms must be a positive number of milliseconds")
    return args


def save(path: Path, trials: list[Trial], runs: list[list[list[loadgen.Record]]]) -> None:
    flat = [
        (trial, index, r)
        for trial, rounds in enumerate(runs)
        for index, records in enumerate(rounds)
        for r in records
    ]
    np.savez_compressed(
        path,
        offset=np.array([r.offset_s for _, _, r in flat]),
        latency=np.array([r.latency_ms for _, _, r in flat]),
        ok=np.array([r.ok for _, _, r in flat]),
        target=np.array([r.target for _, _, r in flat]),
        trial=np.array([t for t, _, _ in flat]),
        round=np.array([i for _, i, _ in flat]),
        kind=np.array([t.kind for t in trials]),
        added=np.array([t.added_ms for t in trials]),
    )


def restore(path: Path, args: argparse.Namespace) -> list[Trial]:
    saved = np.load(path)
    trials = []
    for index, (kind, added) in enumerate(zip(saved["kind"], saved["added"], strict=True)):
        runs = []
        for number in range(args.rounds_per_trial):
            rows = (saved["trial"] == index) & (saved["round"] == number)
            runs.append(
                [
                    loadgen.Record(float(o), float(lat), bool(ok), "saved", int(t))
                    for o, lat, ok, t in zip(
                        saved["offset"][rows],
                        saved["latency"][rows],
                        saved["ok"][rows],
                        saved["target"][rows],
                        strict=True,
                    )
                ]
            )
        trials.append(make_trial(str(kind), float(added), runs, args))
    return trials


def progress(index: int, trial: Trial) -> None:
    p95 = relative(trial.pooled("candidate"), trial.pooled("champion"), "p95")
    decision = _of(stats.compare_rounds(whole(trial.champion), whole(trial.candidate)), "p95")
    print(
        f"  trial {index + 1:>3} {trial.kind}: A1 p95 "
        f"{stats.point_estimate(np.sort(trial.pooled('champion')), 'p95'):.2f} ms, candidate "
        f"{p95:+.1%}, rounds say {decision.relative_change:+.1%} "
        f"[{decision.ci[0]:+.1%}, {decision.ci[1]:+.1%}]: {decision.decision}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(stop_servers)
    print("mlgate latency calibration: real load runs against examples/iris/serve.py on 127.0.0.1")
    print(
        f"trials: open loop, candidate and champion in turn at {args.rate:g} req/s each, "
        f"{args.warmup:g} s of warm-up + {args.seconds:g} s in {args.rounds_per_trial} rounds; "
        f"{args.pairs} x (A/A, A/B)",
        flush=True,
    )
    started = time.monotonic()
    trials: list[Trial] = []
    if args.records_files is not None:
        trials = [t for path in args.records_files for t in restore(path, args)]
        print(f"trials: {len(trials)} from {', '.join(map(str, args.records_files))}")
    else:
        runs: list[list[list[loadgen.Record]]] = []
        with tempfile.TemporaryDirectory(prefix="mlgate-calibration-") as name:
            scratch = Path(name)
            share = calibrate(args, scratch) if args.work_ms is None else 0.0
            for _ in range(args.pairs):
                runs.append(run_trial(AA, 0.0, args, scratch))
                trials.append(make_trial(AA, 0.0, runs[-1], args))
                progress(len(trials) - 1, trials[-1])
                # Scaled to A's p95 under this very load, measured just before; or as given.
                added = share * a_p95(trials[-1]) if args.work_ms is None else args.work_ms
                runs.append(run_trial(AB, added, args, scratch))
                trials.append(make_trial(AB, added, runs[-1], args))
                progress(len(trials) - 1, trials[-1])
        print(f"load done, {time.monotonic() - started:.0f} s elapsed", flush=True)
        if args.save is not None:
            save(args.save, trials, runs)
    summary(trials, args)
    report(trials, args)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_servers()
        print("interrupted; servers and load runs stopped", file=sys.stderr)
        sys.exit(130)
