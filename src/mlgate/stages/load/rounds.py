"""Round mechanics of a champion comparison on fresh servers (champion.py's `_fresh_rounds`):
each round's records put on the stage's one timeline, and what each round's server starts did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlgate import loadgen
from mlgate.serving import Server
from mlgate.stages.load.warmup import Warmup

# A round's generator is a fresh process: its first second is its own warm-up, left out. In
# closed loop locust spawns the users over that second (spawn_rate = users), so it runs fewer
# users than configured; in open loop, where a late send counts as latency, the sender has
# just started (imports done, its first connections opening): on a busy machine a window's
# first 0.8 s once held a cluster of requests over 100 ms.
GENERATOR_WARMUP_S = 1.0


# Open loop, a round's two sides are sent requests in turn, so they can be compared in time
# windows: a burst of load on the runner then weighs in its own window instead of deciding the
# round's tail (stats.round_log_ratios). 5 s: on 14 busy A/A rounds of 40 s at 100 req/s a
# side, windows of 10, 5 and 2 s gave a p95 log-ratio sd of 0.053, 0.051 and 0.046 (0.103
# whole; benchmarks/round-windows-busy.md); shorter ones leave a window's tail to fewer samples.
WINDOW_S = 5.0
# Successful samples a window needs on each side, on average to be cut (its p95 then rests on
# a dozen or more), and at the least in every window, or the round is cut into fewer.
WINDOW_SAMPLES = 250
MIN_WINDOW_SAMPLES = 100


def time_windows(
    sides: Mapping[str, Sequence[loadgen.Record]], start: float, span: float
) -> dict[str, list[list[float]]]:
    """The successful latencies of each side sent from `start` for `span` seconds, in the
    same time windows on every side: as many of about WINDOW_S as the samples allow (one when
    they are too few), in the order sent."""
    sent = {
        name: sorted(
            (r for r in records if r.ok and start <= r.offset_s < start + span),
            key=lambda r: r.offset_s,
        )
        for name, records in sides.items()
    }
    fewest = min((len(kept) for kept in sent.values()), default=0)
    count = max(1, min(int(span // WINDOW_S), fewest // WINDOW_SAMPLES))
    while True:
        cut = {name: _cut(kept, start, span, count) for name, kept in sent.items()}
        if count == 1 or all(len(w) >= MIN_WINDOW_SAMPLES for ws in cut.values() for w in ws):
            return cut
        count -= 1


def _cut(records: list[loadgen.Record], start: float, span: float, count: int) -> list[list[float]]:
    windows: list[list[float]] = [[] for _ in range(count)]
    for r in records:
        windows[min(int((r.offset_s - start) * count / span), count - 1)].append(r.latency_ms)
    return windows


def generator_warmup(warmup: float) -> float:
    """The warm-up of a fresh round's generator, out of the round's `warmup`; the servers get
    the rest (warmup.py), before the generator starts."""
    return min(warmup, GENERATOR_WARMUP_S)


def on_timeline(
    records: list[loadgen.Record], index: int, span: float, warmup: float, skipped: float
) -> list[loadgen.Record]:
    """Round `index`'s measured records (its generator ran `skipped` seconds of warm-up of its
    own, then `span` seconds) on one timeline, as the judge of a single run reads it: the
    measured window starts after `warmup` seconds and round i's window follows round i-1's."""
    shift = warmup + index * span - skipped
    return [
        loadgen.Record(r.offset_s + shift, r.latency_ms, r.ok, r.outcome)
        for r in records
        if skipped <= r.offset_s < skipped + span
    ]


def round_starts(
    index: int, servers: Mapping[str, Server], warmups: Mapping[str, Warmup], origin: float
) -> dict[str, object]:
    """What round `index`'s servers did before they were loaded, by name: when each was
    started (seconds after `origin`, a time.monotonic()), its cold start and its warm-up."""
    facts: dict[str, object] = {"round": index + 1}
    for name, server in servers.items():
        started = server.started_at
        facts[name] = {
            "started_s": None if started is None else round(started - origin, 3),
            "cold_start_s": None if server.cold_start_s is None else round(server.cold_start_s, 3),
            "warmup": warmups[name].as_dict(),
        }
    return facts


def merged_usage(rounds: list[dict[str, float | None]]) -> dict[str, float | None]:
    """One server's metrics over its fresh starts: the first cold start (the later ones are
    no colder), the highest peak memory, the CPU time of all the rounds' load."""

    def present(key: str) -> list[float]:
        return [v for r in rounds if (v := r.get(key)) is not None]

    memory, cpu = present("server_peak_memory_bytes"), present("server_cpu_seconds")
    return {
        "cold_start_s": rounds[0].get("cold_start_s") if rounds else None,
        "server_peak_memory_bytes": max(memory) if memory else None,
        "server_cpu_seconds": round(sum(cpu), 3) if cpu else None,
    }
