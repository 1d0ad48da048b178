"""The mlgate.yml `mlgate init` writes: the stages it found enabled with policies a first gate
can live with, the others as commented-out examples to fill in."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

from mlgate.init.detect import Project

_PYTEST = "python -m pytest -q -p no:cacheprovider"


def render(project: Project) -> str:
    model = project.model
    model_uri = model.uri if model is not None else "models:/MY-MODEL@candidate"
    parts = [_header(project), "version: 1", "stages:"]
    parts += _tests(project) + _bench(project) + _scan(project)
    local = model is not None and model.directory is not None
    parts += _load_example(model_uri) + _quality_example(model_uri, local)
    parts += ["policy:"]
    parts += _tests_policy(project) + _bench_policy(project) + _scan_policy(project)
    parts += _quality_policy_example()
    parts += [
        "report:",
        "  comment: on-change  # the sticky PR comment: always, on-change, on-failure or off",
    ]
    parts += _promotion(project)
    return "\n".join(parts) + "\n"


def _header(project: Project) -> str:
    found = [f"#   - {line}" for line in project.found()] or ["#   - nothing gateable yet"]
    return "\n".join(
        [
            "# mlgate configuration, written by `mlgate init` from what it found here:",
            *found,
            "# Stages listed under stages: run in CI and are required by the gate; the commented",
            "# ones are examples to fill in. Check it with `mlgate config check`, print the full",
            "# schema with `mlgate config schema`, and run the stages locally with `mlgate run`",
            "# then `mlgate gate` (everything lands in .mlgate/, which is not committed).",
        ]
    )


def _q(value: str) -> str:
    """A YAML scalar for any string (JSON strings are YAML)."""
    return json.dumps(value)


def _command(*words: str) -> str:
    return " ".join(shlex.quote(w) for w in words)


@dataclass(frozen=True)
class _PytestStage:
    """A stage that runs pytest: enabled when init found what it runs, else an example."""

    name: str
    missing: str  # the comment on the example
    arguments: str  # pytest's, with {} where the paths go
    example: str  # the example's paths
    report: str  # the config key and path of the report pytest writes
    report_path: str

    def lines(self, paths: list[str] | None) -> list[str]:
        if paths is None:
            return [
                f"  # {self.name + ':':<30}# {self.missing}",
                f"  #   command: {_PYTEST} {self.arguments.format(self.example)}",
                f"  #   {self.report}: {self.report_path}",
            ]
        command = f"{_PYTEST} {self.arguments.format(_command(*paths))}".rstrip()
        return [
            f"  {self.name}:",
            f"    command: {_q(command)}",
            f"    {self.report}: {self.report_path}",
            "    timeout: 1800",
        ]


# Positional, in the order of the fields: a table of the two.
_TESTS = _PytestStage(
    "tests", "no pytest tests found",
    "--junitxml=.mlgate/junit.xml {}", "tests", "junit", ".mlgate/junit.xml",
)  # fmt: skip
_BENCH = _PytestStage(
    "bench", "no pytest-benchmark benchmarks found",
    "{} --benchmark-json=.mlgate/benchmark.json", "benchmarks", "json", ".mlgate/benchmark.json",
)  # fmt: skip


def _tests(project: Project) -> list[str]:
    if not project.tests:
        return _TESTS.lines(None)
    return _TESTS.lines([] if project.tests == ["."] else project.tests)


def _bench(project: Project) -> list[str]:
    return _BENCH.lines(project.benchmarks or None)


def _scan(project: Project) -> list[str]:
    lines = []
    if project.sources:
        lines.append(f"    sources: {json.dumps(project.sources)}  # bandit")
    if project.requirements:
        lines.append(f"    requirements: {json.dumps(project.requirements)}  # pip-audit")
    if project.dockerfile:
        lines.append(f"    dockerfile: {_q(project.dockerfile)}  # built, then scanned by trivy")
    if project.model is not None and project.model.directory is not None:
        lines.append(f"    models: {json.dumps([project.model.directory])}  # model files")
    if not lines:
        return [
            "  # scan:",
            "  #   sources: [src]",
            "  #   requirements: [requirements.txt]",
            "  #   dockerfile: Dockerfile",
        ]
    return ["  scan:", *lines, "    timeout: 1800"]


def _load_example(model_uri: str) -> list[str]:
    return [
        "  # load:                         # latency of the served model under load",
        "  #   serve:",
        "  #     source: mlflow",
        f"  #     model_uri: {_q(model_uri)}",
        "  #   champion_alias: production  # also serve the champion and compare side by side",
        "  #   payload: payloads.jsonl     # one request body per line",
        "  #   users: 4",
        "  #   duration: 60",
    ]


def _quality_example(model_uri: str, local: bool) -> list[str]:
    # A registered candidate's champion is its model's production alias; a model directory
    # has no model name, so without `champion:` it would be judged on floors alone.
    champion = (
        ['  #   champion: "models:/MY-MODEL@production"  # compare with the registered champion']
        if local
        else []
    )
    return [
        "  # quality:                      # the candidate against the champion on held-out data",
        f"  #   candidate: {_q(model_uri)}",
        *champion,
        "  #   data: data/holdout.csv",
        "  #   target: label",
        "  #   # models:/ URIs are read from $MLFLOW_TRACKING_URI (or tracking_uri here): the",
        "  #   # candidate and the registry must exist there, or the stage fails and says why.",
    ]


def _tests_policy(project: Project) -> list[str]:
    prefix = "  " if project.tests else "  # "
    return [
        f"{prefix}tests:",
        f"{prefix}  max_failures: 0",
        f"{prefix}  max_errors: 0",
        f"{prefix}  min_tests: 1",
    ]


def _bench_policy(project: Project) -> list[str]:
    if not project.benchmarks:
        return ["  # bench:", "  #   min_benchmarks: 1"]
    return [
        "  bench:",
        f"    min_benchmarks: {max(project.benchmark_count, 1)}  # as many as init found",
        "    # max_mean_ms:                # a ceiling per benchmark (fnmatch patterns)",
        '    #   "*test_predict_one_row": 50',
    ]


def _scan_policy(project: Project) -> list[str]:
    lines = [
        "    fail_on:                      # the lowest severity that fails, per source",
        "      code: high",
        "      dependencies: high",
        "      image_os: critical",
        "    # only_fixable: true          # vulnerabilities without a fix do not fail",
    ]
    if any(line.startswith("  scan:") for line in _scan(project)):
        return ["  scan:", *lines]
    return ["  # scan:", *("  #" + line[1:] for line in lines)]


def _quality_policy_example() -> list[str]:
    return [
        "  # quality:",
        "  #   floors: {accuracy: 0.9}",
        "  #   max_drop: {accuracy: 0.02}  # against the champion, judged on the interval",
        "  #   first_model: fail           # no champion alias yet: fail instead of floors only",
    ]


def _promotion(project: Project) -> list[str]:
    model = project.model
    if model is None or model.name is None:
        return [
            "# promotion:                     # aliases a version moves through (mlgate promote)",
            "#   model: MY-MODEL",
            "#   stages: [staging, production]",
        ]
    return [
        "promotion:",
        f"  model: {_q(model.name)}",
        "  stages: [staging, production]  # MLflow aliases, in order",
    ]
