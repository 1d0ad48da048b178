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
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path

from mlgate import atomic_file
from mlgate import evidence as ev
from mlgate.evidence import Evidence
from mlgate.stages.bench_config import BenchConfig, BenchPolicy
from mlgate.stages.bench_results import Benchmark, Invalid, Source, is_number, merge, read_json
from mlgate.stages.command import StageCommand
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext, Stage
from mlgate.verdict import RuleResult

ROUNDS_ARTIFACT = "bench-rounds.json.gz"
# The command as reasons name it.
_LABEL = "benchmark command"


class BenchStage(Stage[BenchConfig, BenchPolicy]):
    name = "bench"
    title = "Benchmarks"

    def run(self, config: BenchConfig, context: RunContext) -> Evidence:
        started = ev.now()
        workdir = Path(config.working_directory)
        command = StageCommand(config.command or [], workdir, _LABEL)

        def error(reason: str) -> Evidence:
            return _evidence(context, started, command, reason=reason)

        try:
            # An earlier run's rounds must not sit beside this run's evidence, errored or not.
            (context.evidence_dir / ROUNDS_ARTIFACT).unlink(missing_ok=True)
        except OSError as exc:
            return error(f"cannot remove the earlier {ROUNDS_ARTIFACT}: {exc.strerror or exc}")
        if command.command and workdir.is_dir():
            # pytest-benchmark does not create the directory of --benchmark-json and crashes
            # at the end of the run; a fresh checkout has no .mlgate/ yet. A directory that
            # cannot be made shows up below as a missing report.
            for pattern in config.reports:
                if not glob.has_magic(pattern):
                    with contextlib.suppress(OSError):
                        (workdir / pattern).parent.mkdir(parents=True, exist_ok=True)
        problem = command.run(config.timeout)
        if problem:
            return error(problem)
        found = command.reports(config.reports, "benchmark JSON", started)
        if isinstance(found, str):
            return error(found)
        paths, _ = found
        try:
            sources = [read_json(path, config.require_rounds) for path in paths]
            benchmarks = merge(sources)
        except Invalid as exc:
            return error(str(exc))
        if command.exit_code:
            # pytest-benchmark leaves a benchmark that raised out of its JSON and records no
            # test outcome, so a clean-looking JSON from a failed run may be missing benchmarks.
            return error(
                command.after(
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
            command,
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
        except Invalid as exc:
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
            if key.endswith(".mean_ms") and is_number(value)
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


def _write_rounds(evidence_dir: Path, benchmarks: list[Benchmark]) -> Path:
    """Write the rounds artifact atomically, so a crash never leaves half a file behind."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    target = evidence_dir / ROUNDS_ARTIFACT
    rounds = {b.fullname: b.rounds_ms for b in benchmarks if b.rounds_ms is not None}
    # mtime=0: the same rounds give the same bytes, hence the same sha256.
    packed = gzip.compress(json.dumps(rounds).encode(), mtime=0)
    atomic_file.write_bytes(target, packed)
    return target


def _means(evidence: Evidence) -> dict[str, tuple[str, float]]:
    """Each benchmark's name and mean (ms) by fullname, once the evidence agrees with itself."""
    if evidence.status != "passed":
        raise Invalid(f"evidence status '{evidence.status}' is not one the bench stage writes")
    count = evidence.metrics.get("benchmarks")
    entries = evidence.data.get("benchmarks")
    if type(count) is not int or not isinstance(entries, list) or len(entries) != count:
        raise Invalid("evidence lacks a benchmarks count matching its list of benchmarks")
    means: dict[str, tuple[str, float]] = {}
    for entry in entries:
        fullname = entry.get("fullname") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        mean = evidence.metrics.get(f"{fullname}.mean_ms")
        if not isinstance(fullname, str) or not isinstance(name, str) or fullname in means:
            raise Invalid("evidence lists a benchmark without a unique fullname and a name")
        if not is_number(mean) or mean < 0:
            raise Invalid(f"evidence lacks a mean time for benchmark {fullname}")
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
    command: StageCommand,
    *,
    reason: str | None = None,
    sources: list[Source] | None = None,
    artifacts: list[ev.Artifact] | None = None,
) -> Evidence:
    """An error with a reason, else passed: no benchmark fails the stage, the policy judges."""
    metrics, data = command.evidence_parts()
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
    return finished_evidence(
        BenchStage.name,
        context,
        started,
        reason=reason,
        metrics=metrics,
        artifacts=artifacts,
        data=data,
        tool_versions=tool_versions,
    )


def _entry(b: Benchmark) -> dict[str, object]:
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
