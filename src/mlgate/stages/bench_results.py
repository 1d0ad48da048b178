"""pytest-benchmark JSON read into benchmarks, every number checked before it is trusted."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

# pytest-benchmark's per-call statistics, in seconds, that become `<fullname>.<stat>_ms`.
TIMES = ("mean", "median", "stddev", "min", "max")


class Invalid(Exception):
    """Input whose numbers cannot be trusted; the message is the one-line reason."""


@dataclass(frozen=True)
class Benchmark:
    name: str
    fullname: str
    group: str | None
    rounds: int
    iterations: int
    times_ms: dict[str, float]  # keyed by the names in TIMES
    ops: float
    rounds_ms: list[float] | None


@dataclass(frozen=True)
class Source:
    path: Path
    version: str | None
    machine: dict[str, str | int | None]
    benchmarks: list[Benchmark]


def read_json(path: Path, require_rounds: bool) -> Source:
    """One pytest-benchmark JSON file (from --benchmark-json or --benchmark-save)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise Invalid(f"benchmark JSON {path} is empty")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(f"benchmark JSON {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise Invalid(f"benchmark JSON {path} is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise Invalid(f"{path} is not pytest-benchmark JSON: not an object")
    machine_info = document.get("machine_info")
    entries = document.get("benchmarks")
    if not isinstance(machine_info, dict) or not isinstance(entries, list):
        raise Invalid(f"{path} is not pytest-benchmark JSON: no machine_info or benchmarks list")
    version = document.get("version")
    return Source(
        path=path,
        version=version if isinstance(version, str) else None,
        machine=_machine(machine_info),
        benchmarks=[
            _benchmark(entry, f"{path}: benchmarks[{index}]", require_rounds)
            for index, entry in enumerate(entries)
        ],
    )


def _benchmark(entry: object, where: str, require_rounds: bool) -> Benchmark:
    if not isinstance(entry, dict):
        raise Invalid(f"{where} is not a pytest-benchmark result: not an object")
    name, fullname, group = entry.get("name"), entry.get("fullname"), entry.get("group")
    stats = entry.get("stats")
    if not (isinstance(name, str) and isinstance(fullname, str) and name and fullname):
        raise Invalid(f"{where} is not a pytest-benchmark result: no name or fullname")
    if group is not None and not isinstance(group, str):
        raise Invalid(f"{where} ({fullname}) is not a pytest-benchmark result: group is not text")
    if not isinstance(stats, dict):
        raise Invalid(f"{where} ({fullname}) is not a pytest-benchmark result: no stats")
    where = f"{where} ({fullname})"
    rounds, iterations = _count(stats, "rounds", where), _count(stats, "iterations", where)
    times = {stat: _non_negative(stats.get(stat), f"{where}: stats.{stat}") for stat in TIMES}
    ops = _non_negative(stats.get("ops"), f"{where}: stats.ops")
    data = stats.get("data")
    rounds_ms: list[float] | None = None
    if data is None:
        if require_rounds:
            raise Invalid(
                f"{where} has no per-round data (stats.data): write it with --benchmark-json, "
                "or add --benchmark-save-data to --benchmark-save"
            )
    elif not isinstance(data, list) or len(data) != rounds:
        found = f"{len(data)} per-round times" if isinstance(data, list) else "stats.data"
        raise Invalid(f"{where} has {found}, not the {rounds} its stats.rounds says")
    else:
        rounds_ms = [_milliseconds(t, f"{where}: stats.data") for t in data]
    return Benchmark(
        name=name,
        fullname=fullname,
        group=group,
        rounds=rounds,
        iterations=iterations,
        times_ms={
            stat: _milliseconds(seconds, f"{where}: stats.{stat}")
            for stat, seconds in times.items()
        },
        ops=ops,
        rounds_ms=rounds_ms,
    )


def _count(stats: dict[str, Any], key: str, where: str) -> int:
    value = stats.get(key)
    if type(value) is not int or value < 1:
        raise Invalid(f"{where}: stats.{key} is not a whole number of at least 1")
    return value


def _non_negative(value: object, what: str) -> float:
    if not is_number(value) or value < 0:
        raise Invalid(f"{what} is not a finite, non-negative number")
    return float(value)


def _milliseconds(seconds: object, what: str) -> float:
    """A time in seconds as ms; one too large for a float in ms (1e307 s) would be written as
    a null metric of passed evidence: an error instead."""
    ms = _non_negative(seconds, what) * 1000
    if not math.isfinite(ms):
        raise Invalid(f"{what} is {seconds} s: too large to be a time (no finite number of ms)")
    return ms


def is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, never a measurement; an int beyond any float is not finite.
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _machine(info: dict[str, Any]) -> dict[str, str | int | None]:
    """What the numbers were measured on: Python and CPU, from pytest-benchmark's machine_info."""
    cpu = info.get("cpu")
    if not isinstance(cpu, dict):
        cpu = {}

    def text(value: object) -> str | None:
        return value if isinstance(value, str) and value else None

    python = [text(info.get(k)) for k in ("python_implementation", "python_version")]
    count = cpu.get("count")
    return {
        "python": " ".join(p for p in python if p) or None,
        # py-cpuinfo's brand; platform.processor() is often empty on Linux.
        "cpu": text(cpu.get("brand_raw")) or text(info.get("processor")),
        "cpu_count": count if type(count) is int else None,
        "system": text(info.get("system")),
        "machine": text(info.get("machine")),
    }


def merge(sources: list[Source]) -> list[Benchmark]:
    """All benchmarks of all files; one fullname twice would make its metrics ambiguous."""
    seen: dict[str, Path] = {}
    benchmarks: list[Benchmark] = []
    for source in sources:
        for benchmark in source.benchmarks:
            first = seen.get(benchmark.fullname)
            if first is not None:
                where = str(first) if first == source.path else f"{first} and {source.path}"
                raise Invalid(f"benchmark {benchmark.fullname} appears twice (in {where})")
            seen[benchmark.fullname] = source.path
            benchmarks.append(benchmark)
    return benchmarks
