"""One measured run: the load generator's child process, its records turned into evidence."""

from __future__ import annotations

import gzip
import importlib.util
import io
import math
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from mlgate import atomic_file, loadgen, process, sequential
from mlgate import evidence as ev
from mlgate.errors import MlgateError
from mlgate.evidence import Evidence, Finding
from mlgate.serving import ServeSpec
from mlgate.serving import output as server_output
from mlgate.stages.finish import finished_evidence
from mlgate.stages.interface import RunContext
from mlgate.stages.load.comparison import baseline_file, compare_baseline
from mlgate.stages.load.config import (
    NAME,
    SAMPLES_FILE,
    LoadConfig,
)

_PERCENTILES = (("p50_ms", 50), ("p90_ms", 90), ("p95_ms", 95), ("p99_ms", 99))


@dataclass(frozen=True)
class Attempt:
    """What every way of loading starts from: when it started, its deadline, where its samples
    go, and how it ends in error."""

    config: LoadConfig
    context: RunContext
    started: datetime
    deadline: float  # time.monotonic() by which the stage must be done
    samples: Path

    @classmethod
    def begin(cls, config: LoadConfig, context: RunContext) -> Attempt:
        samples = context.evidence_dir / SAMPLES_FILE
        # Samples of an earlier run must never sit next to this run's evidence.
        samples.unlink(missing_ok=True)
        return cls(config, context, ev.now(), time.monotonic() + config.timeout, samples)

    @property
    def workdir(self) -> Path:
        return Path(self.config.working_directory)

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    def error(self, reason: str) -> Evidence:
        return load_evidence(self.context, self.started, self.config, reason=reason)

    def measured(self, plan: sequential.RoundPlan, span: float) -> Attempt:
        """The attempt as judged: with rounds chosen as they went, the duration measured is
        that of the rounds run."""
        if plan.fixed is not None:
            return self
        return replace(self, config=self.config.model_copy(update={"duration": span * plan.rounds}))

    def judge(
        self,
        records: list[loadgen.Record],
        result: loadgen.Result,
        rounds: list[list[list[float]]] | None = None,
    ) -> Evidence:
        """The evidence of the measured run (see `_judge_run`)."""
        return _judge_run(
            self.config, self.context, self.started, records, result, self.samples, rounds
        )


def server_log(context: RunContext, role: str) -> Path:
    return server_output.log_file(context.evidence_dir, NAME, role)


def within(spec: ServeSpec, deadline: float) -> ServeSpec:
    """The server's start-up timeout cut to what is left before the stage's deadline: starting
    counts against the stage's timeout like the load itself."""
    limit = max(deadline - time.monotonic(), 0.1)
    return spec.model_copy(update={"startup_timeout": min(spec.startup_timeout, limit)})


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def write_samples(path: Path, samples: list[float] | list[list[list[float]]]) -> None:
    """Write atomically and reproducibly (no timestamp in the gzip header): same samples, same
    digest. Given rounds (each as its time windows), each starts with a '# round N' line
    (samples.ROUND_MARKER), and its windows after the first with '# window K'
    (samples.WINDOW_MARKER)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, item in enumerate(samples, 1):
        if isinstance(item, list):
            lines.append(f"# round {i}\n")
            for k, window in enumerate(item, 1):
                if k > 1:
                    lines.append(f"# window {k}\n")
                lines += [f"{x!r}\n" for x in window]
        else:
            lines.append(f"{item!r}\n")
    text = "".join(lines)
    # GzipFile, not gzip.compress: the header's OS byte differs between them, and the bytes
    # (so the digest) stay what they were.
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(text.encode("ascii"))
    atomic_file.write_bytes(path, buffer.getvalue())


def checked_inputs(config: LoadConfig) -> tuple[Path | None, Path | None] | str:
    """The payload and locustfile, checked before any load starts; or why they cannot be used."""
    workdir = Path(config.working_directory)
    if importlib.util.find_spec("locust") is None:
        return "locust is not installed: pip install 'mlgate[load]'"
    if not workdir.is_dir():
        return f"working directory {workdir} is not a directory"
    payload = (workdir / config.payload).resolve() if config.payload else None
    locustfile = (workdir / config.locustfile).resolve() if config.locustfile else None
    if payload is not None:
        try:
            loadgen.read_payload(payload)
        except loadgen.LoadError as exc:
            return str(exc)
    if locustfile is not None and not locustfile.is_file():
        return f"locustfile {loadgen.shown(locustfile)} does not exist"
    return payload, locustfile


def generate(
    config: LoadConfig,
    url: str,
    workdir: Path,
    payload: Path | None,
    locustfile: Path | None,
    budget: float,
    warmup: float | None = None,
    duration: float | None = None,
    other_urls: list[str] | None = None,
) -> tuple[list[loadgen.Record], loadgen.Result] | str:
    """One load generator run (a child process); its records, or why it failed."""
    with tempfile.TemporaryDirectory(prefix="mlgate-load-") as scratch:
        directory = Path(scratch)
        spec = loadgen.LoadSpec(
            url=url,
            path=config.path,
            payload=str(payload) if payload else None,
            locustfile=str(locustfile) if locustfile else None,
            users=config.closed_loop_users,
            rate=config.rate,
            warmup=config.warmup if warmup is None else warmup,
            duration=config.duration if duration is None else duration,
            request_timeout=config.request_timeout,
            max_in_flight=config.max_in_flight,
            budget=budget,
            other_urls=other_urls or [],
        )
        spec.write(directory / "spec.json")
        command = [sys.executable, "-m", "mlgate.loadgen", "--spec", str(directory / "spec.json")]
        completed = process.run(command, workdir, budget)
        if completed.problem:
            # The only way this command fails to complete: it ran out of time.
            return f"load run did not finish within the stage timeout of {config.timeout:g} s"
        result_path = directory / loadgen.RESULT_FILE
        if not result_path.is_file():
            return f"load generator exited {completed.exit_code} without results"
        result = loadgen.read_result(result_path)
        if result.error:
            return result.error
        return loadgen.read_records(directory / loadgen.RECORDS_FILE), result


def _judge_run(
    config: LoadConfig,
    context: RunContext,
    started: datetime,
    records: list[loadgen.Record],
    result: loadgen.Result,
    samples: Path,
    rounds: list[list[list[float]]] | None = None,
) -> Evidence:
    """Metrics, findings and the samples artifact of one measured run; `rounds`, when the run
    was interleaved, splits the latencies into its rounds (and their time windows) for the
    samples file."""
    end = config.warmup + config.duration
    measured = [r for r in records if config.warmup <= r.offset_s < end]
    latencies = [r.latency_ms for r in measured if r.ok]
    failed = [r.outcome for r in measured if not r.ok]
    # Throughput is what the server delivered: answers completed inside the window. Counting
    # the requests started in it would credit an overloaded server with the offered rate.
    delivered = sum(
        1 for r in records if r.ok and config.warmup <= r.offset_s + r.latency_ms / 1000 < end
    )
    by_status = Counter(o for o in failed if o.isdigit())
    by_exception = Counter(o for o in failed if not o.isdigit())
    metrics: dict[str, ev.MetricValue] = {
        "requests": len(measured),
        "errors": len(failed),
        "error_rate": round(len(failed) / len(measured), 6) if measured else None,
        "throughput_rps": round(delivered / config.duration, 3),
    }
    data: dict[str, object] = {
        "errors_by_status": dict(by_status.most_common()),
        "errors_by_exception": dict(by_exception.most_common()),
        "warmup_requests": sum(1 for r in records if r.offset_s < config.warmup),
        "client_cpu_percent": result.client_cpu_percent,
    }
    if result.task_exceptions:
        data["task_exceptions"] = result.task_exceptions
    findings = [
        _finding(f"http-{status}", n, len(measured), f"answered HTTP {status}")
        for status, n in by_status.most_common()
    ] + [
        _finding(name, n, len(measured), f"failed with {name}")
        for name, n in by_exception.most_common()
    ]
    if not latencies:
        # Nothing to measure: that is a broken setup, never a latency to judge.
        if failed:
            worst, count = (by_status + by_exception).most_common(1)[0]
            what = f"HTTP {worst}" if worst.isdigit() else worst
            reason = (
                f"no request succeeded: {len(failed)} of {len(measured)} failed ({what}: {count})"
            )
        else:
            reason = "no request was made in the measured window"
        if result.task_exceptions:
            reason += f"; the locustfile's tasks raised {result.task_exceptions[0]['message']}"
        return load_evidence(
            context, started, config, reason=reason, metrics=metrics, data=data, findings=findings
        )
    ordered = sorted(latencies)
    for key, q in _PERCENTILES:
        metrics[key] = round(_percentile(ordered, q), 3)
    metrics["max_ms"] = round(ordered[-1], 3)
    metrics["mean_ms"] = round(math.fsum(ordered) / len(ordered), 3)
    write_samples(samples, rounds or latencies)
    artifact = ev.artifact(
        samples, "latency of each successful measured request, ms, one per line, gzip"
    ).model_copy(update={"path": SAMPLES_FILE})
    data["samples_artifact"] = SAMPLES_FILE
    if config.baseline:
        try:
            data["comparison"] = compare_baseline(baseline_file(config, context), latencies)
        except MlgateError as exc:
            return load_evidence(
                context, started, config, reason=f"baseline: {exc}", metrics=metrics
            )
    return load_evidence(
        context,
        started,
        config,
        status="passed",
        metrics=metrics,
        data=data,
        findings=findings,
        artifacts=[artifact],
    )


def _finding(key: str, count: int, requests: int, what: str) -> Finding:
    return Finding(
        id=f"load-error-{key}",
        severity="medium",
        rule="load-error",
        title=f"{count} requests {what}",
        message=f"{count} of {requests} measured requests ({count / requests:.2%}) {what}",
    )


def load_evidence(
    context: RunContext,
    started: datetime,
    config: LoadConfig,
    *,
    status: ev.Status = "error",
    reason: str | None = None,
    metrics: dict[str, ev.MetricValue] | None = None,
    data: dict[str, object] | None = None,
    findings: list[Finding] | None = None,
    artifacts: list[ev.Artifact] | None = None,
) -> Evidence:
    mode = "open" if config.rate is not None else "closed"
    return finished_evidence(
        NAME,
        context,
        started,
        status,
        reason,
        metrics=(metrics or {})
        | {
            "duration_s": config.duration,
            "warmup_s": config.warmup,
            "mode": mode,
            "users": config.closed_loop_users,
            "rate": config.rate,
        },
        findings=findings,
        artifacts=artifacts,
        data={
            "url": config.url,
            "path": config.path,
            "scenario": config.locustfile or "built-in",
            "payload": config.payload,
            "request_timeout_s": config.request_timeout,
        }
        | ({"max_in_flight": config.max_in_flight} if mode == "open" else {})
        | (data or {}),
        tool_versions=_tool_versions(),
    )


def _tool_versions() -> dict[str, str]:
    try:
        return {"locust": version("locust")}
    except PackageNotFoundError:
        return {}
