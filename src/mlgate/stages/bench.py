"""The bench stage: run pytest-benchmark and/or ingest its JSON into evidence, raw rounds kept.

Metric keys, per benchmark, start with its pytest-benchmark `fullname` (the pytest node id, e.g.
`benchmarks/test_bench_predict.py::test_predict_one_row` or `...::test_sort[10]`), which stays
the same as long as the test keeps its file, name and parameters:

    <fullname>.mean_ms  <fullname>.median_ms  <fullname>.stddev_ms
    <fullname>.min_ms   <fullname>.max_ms     time of one call, in milliseconds
    <fullname>.rounds                         rounds measured

plus `benchmarks` (how many were ingested) and `command_exit_code`. Every round's time (the
round's duration divided by its iterations, in ms) goes into one gzip JSON artifact in the
evidence directory, `{fullname: [ms, ...]}`, named by `data["rounds_artifact"]`. A command
that ran leaves `data["command"]`: its argv, exit code and the tail of its output.
"""

from __future__ import annotations

import contextlib
import glob
import gzip
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, TypeGuard

from pydantic import Field

from mlgate import evidence as ev
from mlgate import process
from mlgate.evidence import Evidence
from mlgate.fields import Command, Paths
from mlgate.stages import reports
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.verdict import RuleResult

ROUNDS_ARTIFACT = "bench-rounds.json.gz"
# The command as reasons name it.
_LABEL = "benchmark command"

# pytest-benchmark's per-call statistics, in seconds, that become `<fullname>.<stat>_ms`.
_TIMES = ("mean", "median", "stddev", "min", "max")


class BenchConfig(StageConfig):
    command: Command | None = Field(
        default=None,
        min_length=1,
        description="Benchmark command run before the JSON is read (argv list or one string, "
        "split like a shell would, without a shell), e.g. "
        "'python -m pytest benchmarks --benchmark-json=.mlgate/benchmark.json'.",
    )
    # `json` is the config key; the attribute has another name because it would shadow
    # BaseModel.json.
    reports: Paths = Field(
        default_factory=lambda: [".mlgate/benchmark.json"],
        min_length=1,
        alias="json",
        description="pytest-benchmark JSON files or glob patterns, relative to "
        "working_directory; each must exist.",
    )
    require_rounds: bool = Field(
        default=True,
        description="Every benchmark must carry its per-round times (stats.data): "
        "--benchmark-json writes them, --benchmark-save only with --benchmark-save-data.",
    )


class BenchPolicy(StagePolicy):
    min_benchmarks: int = Field(
        default=1, ge=0, description="Fewer benchmarks than this fails the gate."
    )
    max_mean_ms: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Ceiling on the mean time of one call, in ms, per benchmark: keys are a "
        "fullname or name, or a glob pattern of either; a key that matches no benchmark fails.",
    )


class _Invalid(Exception):
    """Input whose numbers cannot be trusted; the message is the one-line reason."""


@dataclass(frozen=True)
class _Benchmark:
    name: str
    fullname: str
    group: str | None
    rounds: int
    iterations: int
    times_ms: dict[str, float]  # keyed by the names in _TIMES
    ops: float
    rounds_ms: list[float] | None


@dataclass(frozen=True)
class _Source:
    path: Path
    version: str | None
    machine: dict[str, str | int | None]
    benchmarks: list[_Benchmark]


class BenchStage(Stage[BenchConfig, BenchPolicy]):
    name = "bench"
    title = "Benchmarks"
    config_model = BenchConfig
    policy_model = BenchPolicy

    def run(self, config: BenchConfig, context: RunContext) -> Evidence:
        started = ev.now()
        workdir = Path(config.working_directory)
        ran: process.Completed | None = None

        def error(reason: str) -> Evidence:
            return _evidence(context, started, "error", reason=reason, ran=ran, command=command)

        def after_command(then: str) -> str:
            return ran.explain(_LABEL, then) if ran else then

        command = config.command or []

        try:
            # An earlier run's rounds must not sit beside this run's evidence, errored or not.
            (context.evidence_dir / ROUNDS_ARTIFACT).unlink(missing_ok=True)
        except OSError as exc:
            return error(f"cannot remove the earlier {ROUNDS_ARTIFACT}: {exc.strerror or exc}")
        if command:
            if workdir.is_dir():
                # pytest-benchmark does not create the directory of --benchmark-json and
                # crashes at the end of the run; a fresh checkout has no .mlgate/ yet. A
                # directory that cannot be made shows up below as a missing report.
                for pattern in config.reports:
                    if not glob.has_magic(pattern):
                        with contextlib.suppress(OSError):
                            (workdir / pattern).parent.mkdir(parents=True, exist_ok=True)
            ran = process.run(command, workdir, config.timeout)
            if ran.problem:
                return error(ran.explain(_LABEL))
        exit_code = ran.exit_code if ran else None
        paths, missing = reports.expand(workdir, config.reports)
        if missing:
            return error(after_command(f"no benchmark JSON found at {', '.join(missing)}"))
        if config.command:
            stale = reports.older_than(paths, started)
            if stale:
                # JSON left over from an earlier run would describe other code.
                return error(f"benchmark JSON {stale[0]} was not written by the benchmark command")
        try:
            sources = [_read(path, config.require_rounds) for path in paths]
            benchmarks = _merge(sources)
        except _Invalid as exc:
            return error(str(exc))
        if exit_code:
            # pytest-benchmark leaves a benchmark that raised out of its JSON and records no
            # test outcome, so a clean-looking JSON from a failed run may be missing benchmarks.
            return error(
                after_command(
                    "its JSON cannot show what failed: pytest-benchmark leaves failed "
                    "benchmarks out"
                )
            )
        try:
            rounds_path = _write_rounds(context.evidence_dir, benchmarks)
        except OSError as exc:
            return error(f"cannot write {ROUNDS_ARTIFACT}: {exc.strerror or exc}")
        return _evidence(
            context,
            started,
            "passed",
            ran=ran,
            command=command,
            sources=sources,
            artifacts=[ev.artifact(p, "pytest-benchmark JSON", read=True) for p in paths]
            # Named as written into the evidence directory, like every stage's outputs: a
            # bundle copies its evidence's outputs from there.
            + [
                ev.artifact(
                    rounds_path, "per-round times of each benchmark, in ms (gzip JSON)"
                ).model_copy(update={"path": ROUNDS_ARTIFACT})
            ],
        )

    def evaluate(self, policy: BenchPolicy, evidence: Evidence) -> list[RuleResult]:
        try:
            means = _means(evidence)
        except _Invalid as exc:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [self._result("bench.evidence", False, str(exc))]
        results = [
            self._result(
                "bench.min_benchmarks",
                len(means) >= policy.min_benchmarks,
                f"{_benchmarks(len(means))} ran, at least {policy.min_benchmarks} required",
            )
        ]
        for pattern, limit in policy.max_mean_ms.items():
            matched = [
                (fullname, mean)
                for fullname, (name, mean) in means.items()
                if fnmatchcase(fullname, pattern) or fnmatchcase(name, pattern)
            ]
            if not matched:
                # A renamed or deleted benchmark must not slip out from under its ceiling.
                results.append(
                    self._result(
                        "bench.max_mean_ms",
                        False,
                        f"no benchmark matches {pattern!r} (mean at most {limit:g} ms)",
                    )
                )
            results.extend(
                self._result(
                    "bench.max_mean_ms",
                    mean <= limit,
                    f"{fullname} mean {_ms(mean)} ms, at most {limit:g} ms allowed",
                )
                for fullname, mean in matched
            )
        return results

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        # Read from the metrics alone, so a summary never fails on odd evidence.
        means = {
            key.removesuffix(".mean_ms"): float(value)
            for key, value in evidence.metrics.items()
            if key.endswith(".mean_ms") and _is_number(value)
        }
        if not means:
            return "0 benchmarks"
        slowest = max(means, key=means.__getitem__)
        return (
            f"{_benchmarks(len(means))}, slowest mean {_ms(means[slowest])} ms "
            f"({slowest.rpartition('::')[2]})"
        )

    def _result(self, rule: str, ok: bool, reason: str) -> RuleResult:
        return RuleResult(
            stage=self.name,
            rule=rule,
            outcome="pass" if ok else "fail",
            reason=f"bench: {reason}",
        )


def _read(path: Path, require_rounds: bool) -> _Source:
    """One pytest-benchmark JSON file (from --benchmark-json or --benchmark-save)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _Invalid(f"cannot read {path}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise _Invalid(f"benchmark JSON {path} is empty")
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Invalid(f"benchmark JSON {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise _Invalid(f"benchmark JSON {path} is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise _Invalid(f"{path} is not pytest-benchmark JSON: not an object")
    machine_info = document.get("machine_info")
    entries = document.get("benchmarks")
    if not isinstance(machine_info, dict) or not isinstance(entries, list):
        raise _Invalid(f"{path} is not pytest-benchmark JSON: no machine_info or benchmarks list")
    version = document.get("version")
    return _Source(
        path=path,
        version=version if isinstance(version, str) else None,
        machine=_machine(machine_info),
        benchmarks=[
            _benchmark(entry, f"{path}: benchmarks[{index}]", require_rounds)
            for index, entry in enumerate(entries)
        ],
    )


def _benchmark(entry: object, where: str, require_rounds: bool) -> _Benchmark:
    if not isinstance(entry, dict):
        raise _Invalid(f"{where} is not a pytest-benchmark result: not an object")
    name, fullname, group = entry.get("name"), entry.get("fullname"), entry.get("group")
    stats = entry.get("stats")
    if not (isinstance(name, str) and isinstance(fullname, str) and name and fullname):
        raise _Invalid(f"{where} is not a pytest-benchmark result: no name or fullname")
    if group is not None and not isinstance(group, str):
        raise _Invalid(f"{where} ({fullname}) is not a pytest-benchmark result: group is not text")
    if not isinstance(stats, dict):
        raise _Invalid(f"{where} ({fullname}) is not a pytest-benchmark result: no stats")
    where = f"{where} ({fullname})"
    rounds, iterations = _count(stats, "rounds", where), _count(stats, "iterations", where)
    times = {stat: _non_negative(stats.get(stat), f"{where}: stats.{stat}") for stat in _TIMES}
    ops = _non_negative(stats.get("ops"), f"{where}: stats.ops")
    data = stats.get("data")
    rounds_ms: list[float] | None = None
    if data is None:
        if require_rounds:
            raise _Invalid(
                f"{where} has no per-round data (stats.data): write it with --benchmark-json, "
                "or add --benchmark-save-data to --benchmark-save"
            )
    elif not isinstance(data, list) or len(data) != rounds:
        found = f"{len(data)} per-round times" if isinstance(data, list) else "stats.data"
        raise _Invalid(f"{where} has {found}, not the {rounds} its stats.rounds says")
    else:
        rounds_ms = [_milliseconds(t, f"{where}: stats.data") for t in data]
    return _Benchmark(
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
        raise _Invalid(f"{where}: stats.{key} is not a whole number of at least 1")
    return value


def _non_negative(value: object, what: str) -> float:
    if not _is_number(value) or value < 0:
        raise _Invalid(f"{what} is not a finite, non-negative number")
    return float(value)


def _milliseconds(seconds: object, what: str) -> float:
    """A time in seconds as ms; one too large for a float in ms (1e307 s) would be written as
    a null metric of passed evidence: an error instead."""
    ms = _non_negative(seconds, what) * 1000
    if not math.isfinite(ms):
        raise _Invalid(f"{what} is {seconds} s: too large to be a time (no finite number of ms)")
    return ms


def _is_number(value: object) -> TypeGuard[int | float]:
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


def _merge(sources: list[_Source]) -> list[_Benchmark]:
    """All benchmarks of all files; one fullname twice would make its metrics ambiguous."""
    seen: dict[str, Path] = {}
    benchmarks: list[_Benchmark] = []
    for source in sources:
        for benchmark in source.benchmarks:
            first = seen.get(benchmark.fullname)
            if first is not None:
                where = str(first) if first == source.path else f"{first} and {source.path}"
                raise _Invalid(f"benchmark {benchmark.fullname} appears twice (in {where})")
            seen[benchmark.fullname] = source.path
            benchmarks.append(benchmark)
    return benchmarks


def _write_rounds(evidence_dir: Path, benchmarks: list[_Benchmark]) -> Path:
    """Write the rounds artifact atomically, so a crash never leaves half a file behind."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    target = evidence_dir / ROUNDS_ARTIFACT
    rounds = {b.fullname: b.rounds_ms for b in benchmarks if b.rounds_ms is not None}
    # mtime=0: the same rounds give the same bytes, hence the same sha256.
    packed = gzip.compress(json.dumps(rounds).encode(), mtime=0)
    fd, tmp = tempfile.mkstemp(dir=evidence_dir, prefix=".bench-rounds.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(packed)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _means(evidence: Evidence) -> dict[str, tuple[str, float]]:
    """Each benchmark's name and mean (ms) by fullname, once the evidence agrees with itself."""
    if evidence.status != "passed":
        raise _Invalid(f"evidence status '{evidence.status}' is not one the bench stage writes")
    count = evidence.metrics.get("benchmarks")
    entries = evidence.data.get("benchmarks")
    if type(count) is not int or not isinstance(entries, list) or len(entries) != count:
        raise _Invalid("evidence lacks a benchmarks count matching its list of benchmarks")
    means: dict[str, tuple[str, float]] = {}
    for entry in entries:
        fullname = entry.get("fullname") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        mean = evidence.metrics.get(f"{fullname}.mean_ms")
        if not isinstance(fullname, str) or not isinstance(name, str) or fullname in means:
            raise _Invalid("evidence lists a benchmark without a unique fullname and a name")
        if not _is_number(mean) or mean < 0:
            raise _Invalid(f"evidence lacks a mean time for benchmark {fullname}")
        means[fullname] = (name, float(mean))
    return means


def _benchmarks(count: int) -> str:
    return f"{count} benchmark" if count == 1 else f"{count} benchmarks"


def _ms(value: float) -> str:
    """Three significant digits without an exponent: 0.000123, 0.233, 12.3, 1234."""
    if value <= 0:
        return "0"
    return f"{value:.{max(0, 2 - math.floor(math.log10(value)))}f}"


def _evidence(
    context: RunContext,
    started: datetime,
    status: ev.Status,
    *,
    reason: str | None = None,
    ran: process.Completed | None = None,
    command: list[str] | None = None,
    sources: list[_Source] | None = None,
    artifacts: list[ev.Artifact] | None = None,
) -> Evidence:
    metrics: dict[str, ev.MetricValue] = {"command_exit_code": ran.exit_code if ran else None}
    # What the command printed last says why it failed when its JSON cannot.
    data: dict[str, object] = {"command": ran.record(command or [])} if ran else {}
    tool_versions: dict[str, str] = {}
    if sources is not None:
        benchmarks = [b for source in sources for b in source.benchmarks]
        metrics["benchmarks"] = len(benchmarks)
        for b in benchmarks:
            metrics |= {f"{b.fullname}.{stat}_ms": value for stat, value in b.times_ms.items()}
            metrics[f"{b.fullname}.rounds"] = b.rounds
        data |= {
            "benchmarks": [_entry(b) for b in benchmarks],
            "rounds_artifact": ROUNDS_ARTIFACT,
            "sources": [
                {"path": str(s.path), "pytest_benchmark": s.version, "machine": s.machine}
                for s in sources
            ],
        }
        versions = sorted({s.version for s in sources if s.version})
        if versions:
            tool_versions["pytest-benchmark"] = ", ".join(versions)
    return Evidence(
        stage=BenchStage.name,
        status=status,
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics,
        artifacts=artifacts or [],
        data=data,
        provenance=ev.collect_provenance(context.config_digest, tool_versions),
    )


def _entry(b: _Benchmark) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": b.name,
        "fullname": b.fullname,
        "group": b.group,
        "rounds": b.rounds,
        "iterations": b.iterations,
        **{f"{stat}_ms": value for stat, value in b.times_ms.items()},
        "ops": b.ops,
    }
    if b.rounds_ms is not None:
        # Where this benchmark's rounds are: this artifact, under its fullname.
        entry["samples_artifact"] = ROUNDS_ARTIFACT
    return entry
