"""Calibrate `mlgate compare`: false alarms on A/A data, detection of a +10% p95 shift on A/B.

Real load runs (mlgate's load stage, i.e. locust) against the example model server
(examples/iris/serve.py) on 127.0.0.1. Run:

    .venv/bin/python benchmarks/bench_compare_calibration.py [--windows 6] [--window-seconds 60]
        [--rate 100 | --users 4] [--quick]

Servers. Three processes of serve.py: A1 and A2 (the same server, started twice, as a baseline
and an unchanged candidate are in CI) and B (the same server with ``--delay-ms``). A short
calibration run measures A's p95 first; B then adds a constant delay of 10% of it. A constant
added delay moves every quantile by that delay, so it moves p95 by +10% (and p50 and the mean
by more, relative to their smaller values); the achieved shift is printed, because the delay
only adds up exactly if it causes no queueing. To that end every server runs with
``--threads 0`` (a thread per connection, no limit on concurrent predictions): the delay is a
`time.sleep`, which releases the GIL, so requests overlap in it instead of queueing behind it.

Load. Open loop at a fixed rate well below capacity (default 100 req/s; an answer takes a few
ms): requests go out on schedule whatever the answers do and latency counts from the
scheduled time, so the samples are independent of each other and a slower server cannot lower
its own load (a closed loop would send fewer requests to B, and its users' back-to-back
requests correlate). It also makes the samples cuttable by time: request k of a run was due at
k / rate, and the samples are in that order. ``--users N`` runs a closed loop instead (windows
are then cut by count, an approximation of time).

Windows. Repeating 60 s runs hundreds of times would take hours, so the script records long
runs and cuts them into consecutive, non-overlapping windows. Each round loads A1, A2 and B for
``--windows-per-run`` windows each, in an order rotated from round to round so slow drift of
the machine and any position effect hit all three alike. Window i of A1 against window i of A2
is an A/A pair (same round, separate runs, separate processes); window i of A1 against window
i of B is an A/B pair. Each row of the tables cuts the same runs into windows of a given
length: the full ``--window-seconds`` (the 60 s budget per side) and shorter ones, which give
more pairs and a harder test (fewer samples per side).

Decisions. `mlgate.stats.compare` with its defaults (p50, p95, mean; tolerance 10%). A false
alarm is any metric decided "regression" on an A/A pair; a detection is p95 decided
"regression" on an A/B pair. Rates carry 95% Clopper-Pearson intervals: with few pairs the
interval says how little a rate of 0 proves. github-action-benchmark's rule is applied to the
same windows: alert when candidate / baseline of one value (the window's p95, or mean)
exceeds the threshold, its default 200% or a tight 110%.
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
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats  # type: ignore[import-untyped]

from mlgate import evidence as ev
from mlgate import stats
from mlgate.samples import read_samples
from mlgate.stages.interface import RunContext
from mlgate.stages.load import LoadConfig, LoadStage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
PAYLOAD = EXAMPLE / "payloads.jsonl"
SHIFT = 0.10  # the injected p95 shift the targets are about
FALSE_ALARM_TARGET = 0.01
DETECTION_TARGET = 0.95
GAB_THRESHOLDS = (2.00, 1.10)  # github-action-benchmark's default alert threshold, and a tight one
SUB_WINDOWS = (30.0, 15.0, 10.0, 5.0)  # shorter windows than --window-seconds, for more pairs
SIDES = ("A1", "A2", "B")
FloatArray = npt.NDArray[np.float64]


@dataclass
class Server:
    name: str
    delay_ms: float
    process: subprocess.Popen[str] | None = None
    url: str = ""
    log: Path | None = None


@dataclass
class Side:
    """All the runs of one server, each run's samples in the order the requests were due."""

    runs: list[FloatArray] = field(default_factory=list)
    errors: int = 0


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
                "--delay-ms",
                f"{server.delay_ms:.6f}",
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


def stop_servers() -> None:
    while _servers:
        server = _servers.pop()
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


def load(url: str, seconds: float, args: argparse.Namespace, scratch: Path) -> FloatArray:
    """One real load run through mlgate's load stage; its successful latencies in ms."""
    config = LoadConfig(
        url=url,
        payload=str(PAYLOAD),
        duration=seconds,
        warmup=args.warmup,
        users=args.users,
        rate=None if args.users else args.rate,
        timeout=args.warmup + seconds + 60,
    )
    with tempfile.TemporaryDirectory(dir=scratch) as directory:
        evidence = LoadStage().run(config, RunContext(Path(directory), None))
        if evidence.status == "error":
            raise SystemExit(f"load run against {url} failed: {evidence.reason}")
        path = ev.write(evidence, Path(directory))
        values = np.array(read_samples(path).values, dtype=np.float64)
    errors = int(evidence.metrics.get("errors") or 0)
    if errors:
        # Failed requests are missing from the samples, so windows cut by count shift a bit.
        print(f"  note: {errors} failed requests in a run against {url}", flush=True)
    return values


def windows_of(
    side: Side, length: float, run_seconds: float, per_second: float
) -> list[FloatArray]:
    """Consecutive non-overlapping windows of `length` seconds, run after run, in order."""
    size = round(length * per_second)
    count = math.floor(run_seconds / length + 1e-9)
    cut: list[FloatArray] = []
    for run in side.runs:
        cut.extend(run[i * size : (i + 1) * size] for i in range(count))
    return [w for w in cut if w.size >= stats.MIN_SAMPLES]


def interval(hits: int, trials: int) -> tuple[float, float]:
    if trials == 0:
        return (math.nan, math.nan)
    ci = scipy_stats.binomtest(hits, trials).proportion_ci(0.95, method="exact")
    return (float(ci.low), float(ci.high))


def rate_text(hits: int, trials: int) -> str:
    low, high = interval(hits, trials)
    share = hits / trials if trials else math.nan
    return f"{hits:>3}/{trials:<3} {share:6.1%} [{low:5.1%}, {high:5.1%}]"


def verdict(hits: int, trials: int, target: float, at_most: bool) -> str:
    """Met on the point estimate, and 'shown' when the whole 95% interval meets it too."""
    if trials == 0:
        return "n/a"
    low, high = interval(hits, trials)
    share = hits / trials
    met = share <= target if at_most else share >= target
    shown = high <= target if at_most else low >= target
    return "shown" if shown else ("met" if met else "NOT MET")


def relative(candidate: FloatArray, baseline: FloatArray, metric: str) -> float:
    return (
        stats.point_estimate(np.sort(candidate), metric)
        / stats.point_estimate(np.sort(baseline), metric)
        - 1.0
    )


@dataclass
class Row:
    length: float
    samples: int
    aa: list[list[stats.Comparison]]
    ab: list[list[stats.Comparison]]
    aa_windows: list[tuple[FloatArray, FloatArray]]
    ab_windows: list[tuple[FloatArray, FloatArray]]


def evaluate(
    sides: dict[str, Side], lengths: Sequence[float], run_s: float, per_s: float
) -> list[Row]:
    rows = []
    for length in lengths:
        a1, a2, b = (windows_of(sides[s], length, run_s, per_s) for s in SIDES)
        aa_windows = list(zip(a1, a2, strict=False))
        ab_windows = list(zip(a1, b, strict=False))
        if not aa_windows or not ab_windows:
            continue
        rows.append(
            Row(
                length=length,
                samples=min(w.size for pair in aa_windows + ab_windows for w in pair),
                aa=[stats.compare(x, y) for x, y in aa_windows],
                ab=[stats.compare(x, y) for x, y in ab_windows],
                aa_windows=aa_windows,
                ab_windows=ab_windows,
            )
        )
    return rows


def report(rows: list[Row]) -> None:
    print()
    print(
        "mlgate compare, default rule (metrics p50, p95, mean; tolerance 10%; 95% bootstrap CI;"
        " FDR 0.05)"
    )
    print(
        f"{'window':>7} {'samples':>8} | {'A/A false alarms (any metric)':<31} {'<=1%':<7} | "
        f"{'A/B p95 detected':<31} {'>=95%':<7}"
    )
    for row in rows:
        alarms = sum(any(c.decision == "regression" for c in pair) for pair in row.aa)
        detected = sum(_of(pair, "p95").decision == "regression" for pair in row.ab)
        print(
            f"{row.length:>6g}s {row.samples:>8} | {rate_text(alarms, len(row.aa)):<31} "
            f"{verdict(alarms, len(row.aa), FALSE_ALARM_TARGET, True):<7} | "
            f"{rate_text(detected, len(row.ab)):<31} "
            f"{verdict(detected, len(row.ab), DETECTION_TARGET, False):<7}"
        )
    print("(met: the rate meets the target; shown: its whole 95% Clopper-Pearson interval does)")
    print()
    print("per metric: A/A regression | A/A inconclusive | A/B regression")
    for row in rows:
        parts = []
        for metric in stats.DEFAULT_METRICS:
            aa_reg = sum(_of(p, metric).decision == "regression" for p in row.aa)
            aa_inc = sum(_of(p, metric).decision == "inconclusive" for p in row.aa)
            ab_reg = sum(_of(p, metric).decision == "regression" for p in row.ab)
            parts.append(
                f"{metric} {aa_reg}/{len(row.aa)} | {aa_inc}/{len(row.aa)} | {ab_reg}/{len(row.ab)}"
            )
        print(f"{row.length:>6g}s  " + ";  ".join(parts))
    print()
    print(
        "github-action-benchmark rule (alert when candidate / baseline of the window's value"
        " > threshold)"
    )
    print(f"{'window':>7} {'value':>5} {'threshold':>9} | {'A/A alerts':<31} | {'A/B alerts':<31}")
    for row in rows:
        for metric in ("p95", "mean"):
            for threshold in GAB_THRESHOLDS:
                aa = sum(relative(y, x, metric) + 1 > threshold for x, y in row.aa_windows)
                ab = sum(relative(y, x, metric) + 1 > threshold for x, y in row.ab_windows)
                print(
                    f"{row.length:>6g}s {metric:>5} {threshold:>9.0%} | "
                    f"{rate_text(aa, len(row.aa_windows)):<31} | "
                    f"{rate_text(ab, len(row.ab_windows)):<31}"
                )


def _of(pair: list[stats.Comparison], metric: str) -> stats.Comparison:
    return next(c for c in pair if c.metric == metric)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--windows", type=int, default=6, help="windows per server (default 6, ~20 min in all)"
    )
    parser.add_argument(
        "--window-seconds", type=float, default=60.0, help="longest window: the budget per side"
    )
    parser.add_argument(
        "--windows-per-run", type=int, default=1, help="windows recorded by one load run"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--rate", type=float, default=100.0, help="open loop, requests per second")
    mode.add_argument("--users", type=int, default=None, help="closed loop with N users instead")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds dropped per run")
    parser.add_argument(
        "--calibration-seconds", type=float, default=20.0, help="the run that measures A's p95"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings (3 windows of 2 s in one run each)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.windows, args.window_seconds, args.windows_per_run = 3, 2.0, 3
        args.warmup, args.calibration_seconds = 0.5, 2.0
    if args.windows < 1 or args.windows_per_run < 1 or args.window_seconds <= 0:
        parser.error("--windows, --windows-per-run and --window-seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    atexit.register(stop_servers)
    rounds = math.ceil(args.windows / args.windows_per_run)
    run_s = args.windows_per_run * args.window_seconds
    mode = f"closed loop, {args.users} users" if args.users else f"open loop at {args.rate:g} req/s"
    print("mlgate compare calibration: real load runs against examples/iris/serve.py on 127.0.0.1")
    print(
        f"load: {mode} via mlgate's load stage (locust), {args.warmup:g} s warm-up per run; "
        f"{rounds} rounds of A1, A2, B (order rotated), {run_s:g} s per run",
        flush=True,
    )
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="mlgate-calibration-") as name:
            scratch = Path(name)
            a1, a2 = Server("A1", 0.0), Server("A2", 0.0)
            start(a1, scratch)
            start(a2, scratch)
            calibration = load(a1.url, args.calibration_seconds, args, scratch)
            p95 = stats.point_estimate(np.sort(calibration), "p95")
            delay = SHIFT * p95
            print(
                f"calibration: A p95 {p95:.3f} ms over {calibration.size} samples "
                f"({args.calibration_seconds:g} s) -> B runs with --delay-ms {delay:.3f} "
                f"(+{SHIFT:.0%} of A's p95)",
                flush=True,
            )
            b = Server("B", delay)
            start(b, scratch)
            servers = {"A1": a1, "A2": a2, "B": b}
            sides = {name: Side() for name in SIDES}
            for index in range(rounds):
                # Rotate the order, so no server always runs first (after the idle gap) or last.
                order = SIDES[index % 3 :] + SIDES[: index % 3]
                for side in order:
                    sides[side].runs.append(load(servers[side].url, run_s, args, scratch))
                print(
                    f"round {index + 1}/{rounds} ({' '.join(order)}) done, "
                    f"{time.monotonic() - started:.0f} s elapsed",
                    flush=True,
                )
    finally:
        stop_servers()

    # Windows are cut by count: `per_s` samples per second of a run (open loop: exactly the
    # rate, less failed requests; closed loop: the run's own average throughput).
    per_s = (
        args.rate
        if not args.users
        else min(r.size / run_s for side in sides.values() for r in side.runs)
    )
    print()
    print("achieved samples per run (successful requests, warm-up excluded):")
    for side in SIDES:
        counts = [r.size for r in sides[side].runs]
        print(f"  {side}: {', '.join(str(c) for c in counts)} (expected {round(per_s * run_s)})")
    pooled = {s: np.concatenate(sides[s].runs) for s in SIDES}
    pooled_a = np.concatenate([pooled["A1"], pooled["A2"]])
    print("achieved shift over all runs (relative change of the pooled samples):")
    for label, cand, base in (
        ("B vs A1+A2", pooled["B"], pooled_a),
        ("A2 vs A1", pooled["A2"], pooled["A1"]),
    ):
        changes = ", ".join(
            f"{m} {relative(cand, base, m):+.1%}" for m in ("p50", "p95", "p99", "mean")
        )
        print(f"  {label}: {changes}")
    for name in SIDES:
        points = ", ".join(
            f"{m} {stats.point_estimate(np.sort(pooled[name]), m):.3f}"
            for m in ("p50", "p95", "mean")
        )
        print(f"  {name} (ms): {points}")

    lengths = [args.window_seconds] + [s for s in SUB_WINDOWS if s < args.window_seconds]
    if args.quick:
        lengths = [args.window_seconds]
    rows = evaluate(sides, lengths, run_s, per_s)
    report(rows)
    print(f"\ntotal time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        stop_servers()
        print("interrupted; servers and load runs stopped", file=sys.stderr)
        sys.exit(130)
