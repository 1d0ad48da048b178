"""Where a busy round's spread comes from, and what comparing it in time windows does to it.

A/A rounds on fresh pairs of servers (examples/iris/serve.py), each loaded by mlgate's generator
in open loop, the two sides in turn (bench_compare_calibration's servers and load), and every
request kept with the second it was sent. Per round and metric (p50, p95, mean) the log-ratio
of the two sides is taken over the whole round, and as the mean over windows of 20, 10, 5, 2
and 1 s; printed: the sd of each over the rounds (the spread a comparison must see through),
the first and second halves' correlation, and how often the slow requests of one side fall in
the same seconds as the other's. Run beside whatever makes the machine busy:

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/bench_round_windows.py \
        [--rounds 14] [--seconds 40] [--save rounds.json] | [--analyze rounds.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_compare_calibration import Server, load, start, stop_servers

WARMUP_S = 2.0
WINDOWS_S = (20.0, 10.0, 5.0, 2.0, 1.0)
Row = tuple[float, int, float, bool]  # offset_s, target (0 A2, 1 A1), latency_ms, ok


def measure(rounds: int, seconds: float, save: Path | None) -> list[dict[str, object]]:
    args = argparse.Namespace(seconds=seconds, rounds_per_trial=1, warmup=WARMUP_S, rate=100.0)
    measured: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="mlgate-windows-") as name:
        for index in range(rounds):
            second, first = Server("A2", 0.0), Server("A1", 0.0)
            began = time.monotonic()
            try:
                for server in (second, first) if index % 2 == 0 else (first, second):
                    start(server, Path(name))
                records = load(second.url, first.url, args, Path(name))
            finally:
                stop_servers()
            rows = [(r.offset_s, r.target, r.latency_ms, r.ok) for r in records]
            measured.append(
                {"load": os.getloadavg()[0], "seconds": time.monotonic() - began, "rows": rows}
            )
            print(f"round {index + 1}: load average {os.getloadavg()[0]:.2f}", flush=True)
            if save is not None:
                save.write_text(json.dumps(measured))
    return measured


def side(rows: Sequence[Row], target: int, low: float, high: float) -> np.ndarray:
    return np.array([r[2] for r in rows if r[3] and r[1] == target and low <= r[0] < high])


def value(samples: np.ndarray, metric: str) -> float:
    if metric == "mean":
        return float(samples.mean())
    return float(np.percentile(samples, 50 if metric == "p50" else 95))


def log_ratio(rows: Sequence[Row], metric: str, seconds: float, window: float) -> float:
    count = max(1, int(seconds // window))
    edges = np.linspace(WARMUP_S, WARMUP_S + seconds, count + 1)
    return float(
        np.mean(
            [
                np.log(value(side(rows, 0, a, b), metric) / value(side(rows, 1, a, b), metric))
                for a, b in itertools.pairwise(edges)
            ]
        )
    )


def analyze(measured: list[dict[str, Any]], seconds: float) -> None:
    rounds: list[list[Row]] = [
        [(float(offset), int(target), float(ms), bool(ok)) for offset, target, ms, ok in m["rows"]]
        for m in measured
    ]
    loads = [float(m["load"]) for m in measured]
    print(
        f"{len(rounds)} A/A rounds of {seconds:g} s, open loop 100 req/s a side; load average "
        f"(1 min) after each: {min(loads):.1f}-{max(loads):.1f}, median {np.median(loads):.1f}\n"
    )
    print("sd over the rounds of a round's log-ratio, whole and as the mean over windows of:\n")
    print("| metric | whole | " + " | ".join(f"{w:g} s" for w in WINDOWS_S) + " |")
    print("|" + "---|" * (2 + len(WINDOWS_S)))
    for metric in ("p50", "p95", "mean"):
        cells = [
            np.std([log_ratio(rows, metric, seconds, w) for rows in rounds], ddof=1)
            for w in (seconds, *WINDOWS_S)
        ]
        print(f"| {metric} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    half = seconds / 2
    halves = np.array(
        [
            [
                log_ratio([(o - k * half, t, ms, ok) for o, t, ms, ok in rows], "p95", half, half)
                for k in (0, 1)
            ]
            for rows in rounds
        ]
    )
    together = []
    for rows in rounds:
        measured_rows = [r for r in rows if r[3] and WARMUP_S <= r[0] < WARMUP_S + seconds]
        slow = np.percentile([r[2] for r in measured_rows], 95)
        counts = np.zeros((2, int(seconds)))
        for offset, target, latency, _ in measured_rows:
            counts[target, min(int(offset - WARMUP_S), int(seconds) - 1)] += latency > slow
        together.append(np.corrcoef(counts[0], counts[1])[0, 1])
    print(
        f"\np95, first half of a round against its second half: correlation "
        f"{np.corrcoef(halves[:, 0], halves[:, 1])[0, 1]:.2f} over the rounds; the slow requests "
        f"(above the round's p95) per second, one side against the other: correlation "
        f"{np.median(together):.2f} (median over the rounds)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=14)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--analyze", type=Path, default=None, help="rounds saved by --save")
    args = parser.parse_args(argv)
    if args.analyze is not None:
        measured = json.loads(args.analyze.read_text())
    else:
        measured = measure(args.rounds, args.seconds, args.save)
    analyze(measured, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
