"""Round mechanics of a champion comparison on fresh servers (champion.py's `_fresh_rounds`):
each round's records put on the stage's one timeline, and what each round's server starts did.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlgate import loadgen
from mlgate.serving import Server
from mlgate.stages.load.warmup import Warmup

# A round's generator is a fresh process: its first second is its own warm-up, left out. In
# closed loop locust spawns the users over that second (spawn_rate = users), so it runs fewer
# users than configured; in open loop, where a late send counts as latency, the sender has
# just started (imports done, its first connections opening): on a busy machine a window's
# first 0.8 s once held a cluster of requests over 100 ms.
GENERATOR_WARMUP_S = 1.0


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
