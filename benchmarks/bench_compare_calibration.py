"""Calibrate mlgate's latency comparison: false alarms on A/A data, detection of +10% p95 on A/B.

Real load (mlgate's load generator, i.e. locust, as the load stage runs it) against the example
model server (examples/iris/serve.py) on 127.0.0.1. Run:

    .venv/bin/python benchmarks/bench_compare_calibration.py [--rounds 144] [--round-seconds 10]
        [--rounds-per-trial 6] [--rate 100] [--quick]

Servers. Three processes of serve.py: A1 and A2 (the same server, started twice: a champion and
an unchanged candidate) and B (the same server with ``--cpu-ms``: busy work, as a bigger model
would add). A short calibration run measures A's p95 first; B then adds 10% of it to every
prediction. A constant addition moves every quantile by itself, so it moves p95 by +10% (p50
and the mean by more, relative to their smaller values); the achieved shift is printed, because
it only adds up exactly without queueing. A sleep would not do: waking up takes the scheduler
~0.2 ms here, which alone is +10% of this server's p95.

Load, as the load stage's champion mode makes it in open loop: one generator sends to A1, A2
and B in turn, request by request (A1 A2 B A1 A2 B ...), each at ``--rate`` requests per second,
so whatever slows the machine for a moment slows all three alike. Open loop: requests go out on
schedule whatever the answers do, and latency counts from the scheduled time.

Rounds and trials. The run is cut into rounds of ``--round-seconds``; a trial is
``--rounds-per-trial`` consecutive rounds, i.e. the load budget per side (default 6 x 10 s =
60 s, the load stage's `rounds: 6` over `duration: 60`): A1 against A2 over the same rounds is an
A/A trial, A1 against B an A/B trial. Trials of disjoint rounds are independent and their rates
carry 95% Clopper-Pearson intervals; as hours of load would be needed for hundreds of them, the
script also draws many trials of rounds picked at random from all recorded ones and prints
those rates as estimates.

Decisions. Paired rounds (`mlgate.stats.compare_rounds`, what the load stage and `mlgate
compare` use on interleaved data), defaults: p50, p95, mean; tolerance 10%; 95% t interval; FDR
0.05. A false alarm is any metric decided "regression" on an A/A trial; a detection is p95
decided "regression" on an A/B trial. For contrast, on the same data: comparing independent
samples (`mlgate.stats.compare`, what a baseline file measured at another time gets: A2 of one
trial against A1 of the next), and github-action-benchmark's rule (alert when candidate /
baseline of one value, the trial's p95 or mean, exceeds its default 200% or a tight 110%).
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from mlgate import loadgen, stats
from mlgate.stages.load import LoadConfig, _generate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
PAYLOAD = EXAMPLE / "payloads.jsonl"
SHIFT = 0.10  # the injected p95 shift the targets are about
FALSE_ALARM_TARGET = 0.01
DETECTION_TARGET = 0.95
GAB_THRESHOLDS = (2.00, 1.10)  # github-action-benchmark's default alert threshold, and a tight one
DRAWN_TRIALS = 2000  # trials of randomly picked rounds
SIDES = ("A1", "A2", "B")
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
    urls: list[str], seconds: float, warmup: float, rate: float, scratch: Path
) -> list[loadgen.Record]:
    """One real open-loop run of mlgate's load generator over `urls`, in turn; its records."""
    config = LoadConfig(
        url=urls[0],
        payload=str(PAYLOAD),
        duration=seconds,
        warmup=warmup,
        rate=rate,
        timeout=warmup + seconds + 120,
    )
    generated = _generate(
        config, urls[0], scratch, PAYLOAD, None, config.timeout, other_urls=urls[1:]
    )
    if isinstance(generated, str):
        raise SystemExit(f"load run failed: {generated}")
    records, _ = generated
    failed = sum(1 for r in records if not r.ok)
    if failed:
        print(f"  note: {failed} failed requests", flush=True)
    return records


def cut(
    records: list[loadgen.Record], targets: int, warmup: float, length: float, count: int
) -> list[list[FloatArray]]:
    """Per target, the successful latencies of each round of `length` seconds after warm-up."""
    bins: list[list[list[float]]] = [[[] for _ in range(count)] for _ in range(targets)]
    for r in records:
        index = math.floor((r.offset_s - warmup) / length)
        if r.ok and 0 <= index < count:
            bins[r.target][index].append(r.latency_ms)
    return [[np.array(b, dtype=np.float64) for b in side] for side in bins]


def interval(hits: int, trials: int) -> tuple[float, float]:
    if trials == 0:
        return (math.nan, math.nan)
    ci = scipy_stats.binomtest(hits, trials).proportion_ci(0.95, method="exact")
    return (float(ci.low), float(ci.high))


def rate_text(hits: int, trials: int, exact: bool = True) -> str:
    share = hits / trials if trials else math.nan
    if not exact:
        return f"{hits:>4}/{trials:<4} {share:6.1%}"
    low, high = interval(hits, trials)
    return f"{hits:>4}/{trials:<4} {share:6.1%} [{low:5.1%}, {high:5.1%}]"


def verdict(hits: int, trials: int, target: float, at_most: bool, exact: bool = True) -> str:
    """Met on the point estimate, and 'shown' when the whole 95% interval meets it too."""
    if trials == 0:
        return "n/a"
    share = hits / trials
    met = share <= target if at_most else share >= target
    if exact:
        low, high = interval(hits, trials)
        if high <= target if at_most else low >= target:
            return "shown"
    return "met" if met else "NOT MET"


def relative(candidate: FloatArray, baseline: FloatArray, metric: str) -> float:
    return (
        stats.point_estimate(np.sort(candidate), metric)
        / stats.point_estimate(np.sort(baseline), metric)
        - 1.0
    )


@dataclass
class Tally:
    """Outcomes over a set of trials."""

    trials: int = 0
    alarms: int = 0  # A/A: any metric decided regression
    detected: int = 0  # A/B: p95 decided regression
    by_metric: dict[str, list[int]] | None = None  # metric -> [A/A reg, A/A inconclusive, A/B reg]

    def add(self, aa: list[stats.Comparison], ab: list[stats.Comparison]) -> None:
        if self.by_metric is None:
            self.by_metric = {c.metric: [0, 0, 0] for c in aa}
        self.trials += 1
        self.alarms += any(c.decision == "regression" for c in aa)
        self.detected += _of(ab, "p95").decision == "regression"
        for c in aa:
            self.by_metric[c.metric][0] += c.decision == "regression"
            self.by_metric[c.metric][1] += c.decision == "inconclusive"
        for c in ab:
            self.by_metric[c.metric][2] += c.decision == "regression"


def _of(results: list[stats.Comparison], metric: str) -> stats.Comparison:
    return next(c for c in results if c.metric == metric)


def trial(
    rounds: dict[str, list[FloatArray]], picked: Sequence[int]
) -> tuple[list[stats.Comparison], list[stats.Comparison]]:
    a1 = [rounds["A1"][i] for i in picked]
    a2 = [rounds["A2"][i] for i in picked]
    b = [rounds["B"][i] for i in picked]
    return stats.compare_rounds(a1, a2), stats.compare_rounds(a1, b)


def report(rounds: dict[str, list[FloatArray]], per_trial: int, draws: int, seed: int) -> None:
    count = len(rounds["A1"])
    disjoint = [list(range(i, i + per_trial)) for i in range(0, count - per_trial + 1, per_trial)]
    rng = np.random.default_rng(seed)
    drawn = [sorted(rng.choice(count, per_trial, replace=False)) for _ in range(draws)]
    tallies = {"disjoint": Tally(), "drawn": Tally()}
    for name, trials in (("disjoint", disjoint), ("drawn", drawn)):
        for picked in trials:
            tallies[name].add(*trial(rounds, picked))

    print()
    print(
        f"mlgate, paired rounds (default rule: p50, p95, mean; tolerance 10%; 95% t interval;"
        f" FDR 0.05), trials of {per_trial} rounds"
    )
    print(
        f"{'trials':<28} | {'A/A false alarms (any metric)':<33} {'<=1%':<7} | "
        f"{'A/B p95 detected':<33} {'>=95%':<7}"
    )
    for name, label, exact in (
        ("disjoint", f"{len(disjoint)} of disjoint rounds", True),
        ("drawn", f"{draws} of random rounds (est.)", False),
    ):
        t = tallies[name]
        print(
            f"{label:<28} | {rate_text(t.alarms, t.trials, exact):<33} "
            f"{verdict(t.alarms, t.trials, FALSE_ALARM_TARGET, True, exact):<7} | "
            f"{rate_text(t.detected, t.trials, exact):<33} "
            f"{verdict(t.detected, t.trials, DETECTION_TARGET, False, exact):<7}"
        )
    print("(met: the rate meets the target; shown: its whole 95% Clopper-Pearson interval does)")
    print()
    print("per metric over the random trials: A/A regression | A/A inconclusive | A/B regression")
    by_metric = tallies["drawn"].by_metric or {}
    print(
        "  "
        + ";  ".join(
            f"{metric} {v[0]}/{draws} | {v[1]}/{draws} | {v[2]}/{draws}"
            for metric, v in by_metric.items()
        )
    )

    # The same trials' samples pooled, as if the baseline had been measured at another time.
    print()
    print(
        "for contrast, independent samples (mlgate.stats.compare, a baseline file from another"
        " time):"
    )
    print("  A/A: A2 of each disjoint trial against A1 of the next; A/B: B against A1 of the next")
    pooled = {
        side: [np.concatenate([rounds[side][i] for i in picked]) for picked in disjoint]
        for side in SIDES
    }
    pairs = len(disjoint) - 1
    aa_alarms = ab_detected = 0
    for i in range(pairs):
        aa = stats.compare(pooled["A1"][i + 1], pooled["A2"][i], resamples=1000)
        ab = stats.compare(pooled["A1"][i + 1], pooled["B"][i], resamples=1000)
        aa_alarms += any(c.decision == "regression" for c in aa)
        ab_detected += _of(ab, "p95").decision == "regression"
    print(
        f"  A/A false alarms {rate_text(aa_alarms, pairs)}; "
        f"A/B p95 detected {rate_text(ab_detected, pairs)}"
    )
    print()
    print(
        "github-action-benchmark rule on the same disjoint trials (alert when candidate /"
        " baseline of the trial's value > threshold)"
    )
    print(f"{'value':>5} {'threshold':>9} | {'A/A alerts':<33} | {'A/B alerts':<33}")
    count = len(disjoint)
    for metric in ("p95", "mean"):
        for threshold in GAB_THRESHOLDS:
            aa_alerts = sum(
                relative(pooled["A2"][i], pooled["A1"][i], metric) + 1 > threshold
                for i in range(count)
            )
            ab_alerts = sum(
                relative(pooled["B"][i], pooled["A1"][i], metric) + 1 > threshold
                for i in range(count)
            )
            print(
                f"{metric:>5} {threshold:>9.0%} | {rate_text(aa_alerts, count):<33} | "
                f"{rate_text(ab_alerts, count):<33}"
            )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=144, help="rounds recorded (default 144: 24 min of load)"
    )
    parser.add_argument(
        "--round-seconds", type=float, default=10.0, help="load per server per round (default 10)"
    )
    parser.add_argument(
        "--rounds-per-trial", type=int, default=6, help="rounds in one trial (default 6)"
    )
    parser.add_argument(
        "--draws", type=int, default=DRAWN_TRIALS, help="trials of randomly picked rounds"
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="open loop, requests per second per server"
    )
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load dropped")
    parser.add_argument(
        "--calibration-seconds", type=float, default=20.0, help="the run that measures A's p95"
    )
    parser.add_argument("--seed", type=int, default=0, help="for the random trials")
    parser.add_argument(
        "--save", type=Path, default=None, help="keep the load run's records here (.npz)"
    )
    parser.add_argument(
        "--load",
        dest="records_file",
        type=Path,
        default=None,
        help="analyse records saved by --save instead of loading servers (another --round-"
        "seconds or --rounds-per-trial on the same data)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings (6 rounds of 1 s, trials of 3)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.round_seconds, args.rounds_per_trial = 6, 1.0, 3
        args.warmup, args.calibration_seconds, args.draws = 0.5, 2.0, 50
    if args.rounds_per_trial < 2 or args.rounds < 2 * args.rounds_per_trial:
        parser.error("--rounds-per-trial must be at least 2, and --rounds at least twice that")
    if args.round_seconds <= 0 or args.draws < 1:
        parser.error("--round-seconds and --draws must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(stop_servers)
    seconds = args.rounds * args.round_seconds
    print("mlgate latency calibration: real load runs against examples/iris/serve.py on 127.0.0.1")
    print(
        f"load: open loop, A1 A2 B in turn at {args.rate:g} req/s each, {seconds:g} s after "
        f"{args.warmup:g} s of warm-up; {args.rounds} rounds of {args.round_seconds:g} s; trials "
        f"of {args.rounds_per_trial} rounds = {args.rounds_per_trial * args.round_seconds:g} s "
        "per side",
        flush=True,
    )
    started = time.monotonic()
    if args.records_file is not None:
        saved = np.load(args.records_file)
        records = [
            loadgen.Record(float(o), float(lat), bool(ok), "saved", int(t))
            for o, lat, ok, t in zip(
                saved["offset"], saved["latency"], saved["ok"], saved["target"], strict=True
            )
        ]
        print(f"records: {len(records)} from {args.records_file}")
        return analyse(records, args, started)
    try:
        with tempfile.TemporaryDirectory(prefix="mlgate-calibration-") as name:
            scratch = Path(name)
            a1, a2, plain = Server("A1", 0.0), Server("A2", 0.0), Server("B0", 0.0)
            for server in (a1, a2, plain):
                start(server, scratch)
            # A's p95 under the load the trials run at (three servers in turn): the shift is
            # 10% of that, not of a quieter machine's.
            measured = load(
                [a1.url, a2.url, plain.url], args.calibration_seconds, 2.0, args.rate, scratch
            )
            calibration = np.sort(
                [r.latency_ms for r in measured if r.ok and r.offset_s >= 2 and r.target < 2]
            )
            stop_servers(plain)
            p95 = stats.point_estimate(calibration, "p95")
            delay = SHIFT * p95
            print(
                f"calibration: A p95 {p95:.3f} ms over {calibration.size} samples "
                f"({args.calibration_seconds:g} s) -> B runs with --cpu-ms {delay:.3f} "
                f"(+{SHIFT:.0%} of A's p95)",
                flush=True,
            )
            b = Server("B", delay)
            start(b, scratch)
            records = load([a1.url, a2.url, b.url], seconds, args.warmup, args.rate, scratch)
    finally:
        stop_servers()
    print(f"load done, {time.monotonic() - started:.0f} s elapsed", flush=True)
    if args.save is not None:
        np.savez_compressed(
            args.save,
            offset=np.array([r.offset_s for r in records]),
            latency=np.array([r.latency_ms for r in records]),
            ok=np.array([r.ok for r in records]),
            target=np.array([r.target for r in records]),
        )
    return analyse(records, args, started)


def analyse(records: list[loadgen.Record], args: argparse.Namespace, started: float) -> int:
    if args.records_file is not None:
        # The last request is due one tick before the end: round to whole rounds.
        span = max(r.offset_s for r in records) - args.warmup
        args.rounds = round(span / args.round_seconds)
    bins = cut(records, 3, args.warmup, args.round_seconds, args.rounds)
    rounds: dict[str, list[FloatArray]] = dict(zip(SIDES, bins, strict=True))

    print()
    print("samples per round (successful requests):")
    for side in SIDES:
        sizes = [r.size for r in rounds[side]]
        print(f"  {side}: min {min(sizes)}, median {int(np.median(sizes))}, max {max(sizes)}")
    pooled = {s: np.concatenate(rounds[s]) for s in SIDES}
    pooled_a = np.concatenate([pooled["A1"], pooled["A2"]])
    print("achieved shift over all rounds (relative change of the pooled samples):")
    for label, cand, base in (
        ("B vs A1+A2", pooled["B"], pooled_a),
        ("A2 vs A1", pooled["A2"], pooled["A1"]),
    ):
        changes = ", ".join(
            f"{m} {relative(cand, base, m):+.1%}" for m in ("p50", "p95", "p99", "mean")
        )
        print(f"  {label}: {changes}")
    spread = [relative(rounds["A1"][i], rounds["A1"][0], "p95") for i in range(args.rounds)]
    paired = [relative(rounds["A2"][i], rounds["A1"][i], "p95") for i in range(args.rounds)]
    print(
        f"round-to-round p95 of A1 (vs its first round): {min(spread):+.1%} to {max(spread):+.1%};"
        f" A2 vs A1 within a round: {min(paired):+.1%} to {max(paired):+.1%}"
    )
    report(rounds, args.rounds_per_trial, args.draws, args.seed)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_servers()
        print("interrupted; servers and load runs stopped", file=sys.stderr)
        sys.exit(130)
