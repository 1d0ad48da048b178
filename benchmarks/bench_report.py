"""What a user pays for a JUnit report of 20,000 cases with 2,000 failures, published to GitHub.

mlgate runs as users run it, three CLI processes: ``mlgate test --junit``, ``mlgate gate`` and
``mlgate report`` publishing to the fake GitHub server (tests/fakegithub) on 127.0.0.1 with no
write delay. Each process is measured whole: wall time from start to exit and peak RSS (the
child's own ``ru_maxrss`` from wait4). With ``--peer`` the same report is published, in the same
run, by publish-unit-test-result-action (its ``python`` directory, run as its Docker image runs it,
with its reads and writes paced at 1 ms instead of 1 s and 2 s); mlgate and the peer alternate, so
load from other work on the machine hits both alike. Each tool publishes to a fresh server twice:
a first run, and a re-run of the same commit (what a re-run of the workflow does). Then, once,
the in-process phases of mlgate's path (wall time and Python's peak allocation). With
``--default-pacing`` each tool keeps its own default pause between GitHub requests, as on
GitHub (mlgate: 1 s between writes, what GitHub asks; the peer: 1 s between reads, 2 s between
writes), so the wall time is what a user waits there rather than the work done. Run:

    .venv/bin/python benchmarks/bench_report.py [--repeats 5] [--default-pacing] \
        [--peer PEER/python --peer-python PEER-VENV] [--markdown results.md]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakegithub

from tests.fakegithub import FakeGitHub  # noqa: E402

T = TypeVar("T")
REPO, PULL, HEAD, BASE = "octo/model", 7, "a" * 40, "b" * 40
TOKEN = "tok"


def write_junit(path: Path, cases: int, failures: int) -> None:
    suite = ET.Element("testsuite", name="pytest", tests=str(cases), failures=str(failures))
    every = cases // failures if failures else cases + 1
    for index in range(cases):
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"tests.test_module_{index % 200}",
            name=f"test_case_{index}[param-{index % 7}]",
            file=f"tests/test_module_{index % 200}.py",
            line=str(10 + index % 500),
            time="0.004",
        )
        if index % every == 0 and index // every < failures:
            ET.SubElement(case, "failure", message=f"assert {index} == {index + 1}").text = (
                f"def test_case_{index}():\n>       assert value == expected\n"
                f"E       assert {index} == {index + 1}\n\n"
                f"tests/test_module_{index % 200}.py:{11 + index % 500}: AssertionError"
            )
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# -- whole processes ------------------------------------------------------------------------


@dataclass
class Process:
    label: str
    wall: float
    cpu: float  # user + system seconds: less sensitive to other work on the machine
    max_rss_mib: float
    exit_code: int


@dataclass
class Run:
    """One tool's processes for one publication, and what reached the server."""

    tool: str
    attempt: str  # "first run" or "re-run"
    processes: list[Process] = field(default_factory=list)
    requests: int = 0
    by_method: str = ""
    annotations: int = 0
    violations: int = 0

    @property
    def wall(self) -> float:
        return sum(p.wall for p in self.processes)

    @property
    def cpu(self) -> float:
        return sum(p.cpu for p in self.processes)

    @property
    def max_rss_mib(self) -> float:
        return max(p.max_rss_mib for p in self.processes)


def run_process(label: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> Process:
    """Run one child to its end: wall time, and its own peak RSS from wait4 (not a sum)."""
    started = time.perf_counter()
    child = subprocess.Popen(
        argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode not in (0, 1):  # the gate and the peer exit 1 for failing tests
        sys.exit(f"{label} exited {child.returncode}:\n{errors.decode(errors='replace')[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Process(label, wall, cpu, usage.ru_maxrss / 1024, child.returncode)


def seeded_server() -> FakeGitHub:
    gh = FakeGitHub().start()
    gh.add_repo(REPO)
    gh.add_pull(REPO, number=PULL, head_sha=HEAD, base_sha=BASE)
    gh.set_token(TOKEN)
    return gh


def actions_env(gh: FakeGitHub, work: Path) -> dict[str, str]:
    event = work / "event.json"
    event.write_text(
        json.dumps(
            {
                "pull_request": {
                    "number": PULL,
                    "head": {"sha": HEAD, "repo": {"full_name": REPO}},
                    "base": {"sha": BASE, "repo": {"full_name": REPO}},
                },
                "repository": {"full_name": REPO, "default_branch": "main"},
            }
        )
    )
    for name in ("output", "summary"):
        (work / name).write_text("")
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", str(work)),
        "GITHUB_ACTIONS": "true",
        "GITHUB_API_URL": gh.url,
        "GITHUB_GRAPHQL_URL": f"{gh.url}/graphql",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_SHA": "c" * 40,
        "GITHUB_REF": f"refs/pull/{PULL}/merge",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_RUN_ID": "1",
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_OUTPUT": str(work / "output"),
        "GITHUB_STEP_SUMMARY": str(work / "summary"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }


def run_mlgate(
    gh: FakeGitHub,
    work: Path,
    junit: Path,
    src: Path,
    python: str,
    attempt: str,
    tool: str,
    paced: bool,
) -> Run:
    """`paced`: mlgate keeps its default pause between GitHub writes (--default-pacing)."""
    env = actions_env(gh, work) | {"PYTHONPATH": str(src)}
    if not paced:
        env["MLGATE_WRITE_DELAY_SECONDS"] = "0"
    (work / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    mlgate = [python, "-m", "mlgate"]
    run = Run(tool, attempt)
    for label, args in (
        ("test --junit", ["test", "--junit", str(junit)]),
        ("gate", ["gate"]),
        ("report", ["report"]),
    ):
        run.processes.append(run_process(label, [*mlgate, *args], env, work))
    return tally(run, gh, "mlgate/tests")


def run_peer(
    gh: FakeGitHub, work: Path, junit: Path, peer: Path, python: str, attempt: str, paced: bool
) -> Run:
    """`paced`: the peer keeps its default pauses between GitHub reads and writes."""
    env = actions_env(gh, work) | {
        "INPUT_FILES": str(junit),
        "INPUT_ACTION_FAIL": "false",
        # Its comment goes through GraphQL, which the fake (REST only) does not serve.
        "INPUT_COMMENT_MODE": "off",
        "PYTHONPATH": str(peer),
    }
    if not paced:
        env["INPUT_SECONDS_BETWEEN_GITHUB_READS"] = "0.001"
        env["INPUT_SECONDS_BETWEEN_GITHUB_WRITES"] = "0.001"
    run = Run("peer", attempt)
    argv = [python, str(peer / "publish_test_results.py")]
    run.processes.append(run_process("publish_test_results.py", argv, env, work))
    return tally(run, gh, "Test Results")


# What each of mlgate's three processes must import before it does any work: click, PyYAML and
# pydantic with one model built (the first model built loads pydantic's schema machinery);
# `report` also PyGithub. Three such processes doing nothing else are the floor of the path.
_FLOOR_IMPORTS = (
    "import click, yaml, pydantic\nclass Model(pydantic.BaseModel):\n    x: int\nModel(x=1)\n"
)
_FLOOR = (
    ("start-up, as test", _FLOOR_IMPORTS),
    ("start-up, as gate", _FLOOR_IMPORTS),
    ("start-up, as report", _FLOOR_IMPORTS + "import github\n"),
)


def run_floor(work: Path, python: str) -> Run:
    """Three processes that only import what mlgate's three must: the start-up floor."""
    run = Run("floor", "first run")
    for label, code in _FLOOR:
        run.processes.append(run_process(label, [python, "-c", code], {}, work))
    return run


def tally(run: Run, gh: FakeGitHub, check: str) -> Run:
    requests = Counter(method for method, _path, _status in gh.requests)
    run.requests = sum(requests.values())
    run.by_method = ", ".join(f"{method} {count}" for method, count in sorted(requests.items()))
    newest = [r for r in gh.check_runs(REPO) if r["name"] == check][-1]
    run.annotations = sum(
        1 for a in newest["output"]["annotations"] if a["annotation_level"] != "notice"
    )
    run.violations = len(gh.violations) + len(gh.unimplemented)
    gh.reset_log()
    return run


def publish_twice(publish: Callable[[FakeGitHub, str], Run]) -> list[Run]:
    gh = seeded_server()
    try:
        return [publish(gh, "first run"), publish(gh, "re-run")]
    finally:
        gh.stop()


# -- in-process phases ----------------------------------------------------------------------


def measure(label: str, action: Callable[[], T]) -> T:
    """Wall time of one run, then Python's peak allocation in a second, traced run (tracing
    slows code down, so the two are measured apart)."""
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  {label:<36} {elapsed:7.3f} s   peak {peak / 2**20:6.1f} MiB allocated")
    return result


def phases(work: Path, junit: Path, failures: int) -> None:
    from mlgate import config, policy
    from mlgate import evidence as ev
    from mlgate.report import files, markdown, model
    from mlgate.stages.interface import RunContext
    from mlgate.stages.tests import TestsStage
    from mlgate.stages.tests_config import TestsConfig

    cfg = config.parse({"stages": {"tests": {}}})
    evidence_dir = work / "evidence"

    def ingest() -> ev.Evidence:
        found = TestsStage().run(TestsConfig(junit=[str(junit)]), RunContext(evidence_dir, None))
        ev.write(found, evidence_dir)
        return found

    found = measure("parse + write evidence", ingest)
    assert found.metrics["failed"] == failures, found.metrics
    measure("read evidence", lambda: ev.read(evidence_dir / "tests.json"))
    measure("gate", lambda: policy.write(policy.evaluate(cfg, evidence_dir), work / "v.json"))
    report = measure("load report", lambda: model.load(cfg, work / "v.json", evidence_dir))
    measure(
        "render markdown (comment, checks)",
        lambda: (markdown.full(report, markdown.COMMENT_LIMIT), markdown.stage(report, "tests")),
    )
    measure("write report.md + report.html", lambda: files.write(report, work / "out"))


# -- summary --------------------------------------------------------------------------------


def spread(values: Sequence[float], unit: str, digits: int = 2) -> str:
    return (
        f"{statistics.median(values):.{digits}f} {unit} "
        f"({min(values):.{digits}f} to {max(values):.{digits}f})"
    )


def summary(runs: list[Run], loads: list[tuple[float, float, float]]) -> list[str]:
    lines = [
        "| tool, run | process | wall time, median (range) | CPU time, median (range) "
        "| peak RSS, median (range) |",
        "|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.tool, run.attempt), []).append(run)
    for (tool, attempt), group in groups.items():
        for index, process in enumerate(group[0].processes):
            walls = [r.processes[index].wall for r in group]
            cpus = [r.processes[index].cpu for r in group]
            rss = [r.processes[index].max_rss_mib for r in group]
            lines.append(
                f"| {tool}, {attempt} | `{process.label}` | {spread(walls, 's')} "
                f"| {spread(cpus, 's')} | {spread(rss, 'MiB', 0)} |"
            )
        if len(group[0].processes) > 1:
            walls = [r.wall for r in group]
            cpus = [r.cpu for r in group]
            rss = [r.max_rss_mib for r in group]
            lines.append(
                f"| {tool}, {attempt} | **all {len(group[0].processes)}** "
                f"| **{spread(walls, 's')}** | {spread(cpus, 's')} "
                f"| {spread(rss, 'MiB', 0)} (largest) |"
            )
    lines += ["", "| tool, run | API requests | annotations delivered | refused by the fake |"]
    lines.append("|---|---|---|---|")
    for (tool, attempt), group in groups.items():
        if tool == "floor":  # it makes no requests
            continue
        counts = sorted({r.requests for r in group})
        annotations = sorted({r.annotations for r in group})
        lines.append(
            f"| {tool}, {attempt} | {'/'.join(map(str, counts))} ({group[0].by_method}) "
            f"| {'/'.join(map(str, annotations))} | {sum(r.violations for r in group)} |"
        )
    firsts: dict[str, list[float]] = {}
    for run in runs:
        if run.attempt == "first run":
            firsts.setdefault(run.tool, []).append(run.wall)
    lines.append("")
    for tool in firsts:
        if tool != "peer" and "peer" in firsts:
            ratios = [m / p for m, p in zip(firsts[tool], firsts["peer"], strict=True)]
            lines.append(f"{tool} / peer wall time, first run, per repeat: {spread(ratios, 'x')}")
    one_minute = [load[0] for load in loads]
    lines.append(
        f"load average (1 min) at each repeat's start: "
        f"{', '.join(f'{value:.2f}' for value in one_minute)} on {os.cpu_count()} cores"
    )
    return lines


def _python(given: str) -> str:
    return str(Path(given) / "bin" / "python") if Path(given).is_dir() else given


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--failures", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--src", type=Path, default=ROOT / "src", help="mlgate source to run [default: this one]"
    )
    parser.add_argument(
        "--base-src",
        type=Path,
        help="another mlgate source (e.g. a checkout of the previous release) measured "
        "alongside, as mlgate@base",
    )
    parser.add_argument(
        "--python",
        default=sys.executable,
        help="Python (or virtualenv) to run mlgate with, e.g. one with only mlgate's base "
        "dependencies, as the action installs it [default: this Python]",
    )
    parser.add_argument(
        "--peer", type=Path, help="publish-unit-test-result-action's python directory"
    )
    parser.add_argument(
        "--peer-python",
        default=sys.executable,
        help="Python (or virtualenv) with the peer's requirements [default: this Python]",
    )
    parser.add_argument("--no-phases", action="store_true", help="skip the in-process phases")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also measure, as 'floor', three processes that only import what mlgate's three "
        "must (click, PyYAML, pydantic with one model; the third PyGithub) with --python",
    )
    parser.add_argument(
        "--default-pacing",
        action="store_true",
        help="keep each tool's default pause between GitHub requests (mlgate 1 s between "
        "writes; the peer 1 s between reads, 2 s between writes) instead of none",
    )
    parser.add_argument("--markdown", type=Path, help="also write the summary tables here")
    parser.add_argument(
        "--keep",
        type=Path,
        help="work in this (new) directory and keep it: each tool's evidence, reports, job "
        "summary and outputs per repeat, to compare two versions' outputs",
    )
    args = parser.parse_args()
    mlgate_python, peer_python = _python(args.python), _python(args.peer_python)
    if args.peer and not (args.peer / "publish_test_results.py").is_file():
        args.peer = args.peer / "python"

    if args.keep:
        args.keep.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep.resolve() if args.keep else Path(scratch)
        junit = work / "junit.xml"
        write_junit(junit, args.cases, args.failures)
        pacing = "each tool's default" if args.default_pacing else "none"
        print(
            f"JUnit report: {args.cases} cases, {args.failures} failures, "
            f"{junit.stat().st_size / 2**20:.1f} MiB; {args.repeats} repeats; pause between "
            f"GitHub requests: {pacing}\n"
        )
        runs: list[Run] = []
        loads: list[tuple[float, float, float]] = []
        for repeat in range(args.repeats):
            loads.append(os.getloadavg())
            tools = ["mlgate"] + (["mlgate@base"] if args.base_src else [])
            tools += ["peer"] if args.peer else []
            tools += ["floor"] if args.floor else []
            # Rotate who goes first, so a burst of other work hits each tool alike.
            for tool in tools[repeat % len(tools) :] + tools[: repeat % len(tools)]:
                place = work / f"{tool}-{repeat}"
                place.mkdir()
                src = args.src if tool == "mlgate" else args.base_src

                def publish(
                    gh: FakeGitHub,
                    attempt: str,
                    place: Path = place,
                    tool: str = tool,
                    src: Path = src,
                ) -> Run:
                    if tool == "peer":
                        return run_peer(
                            gh, place, junit, args.peer, peer_python, attempt, args.default_pacing
                        )
                    return run_mlgate(
                        gh, place, junit, src, mlgate_python, attempt, tool, args.default_pacing
                    )

                if tool == "floor":
                    done = [run_floor(place, mlgate_python)]
                else:
                    done = publish_twice(publish)
                for run in done:
                    steps = ", ".join(f"{p.label} {p.wall:.2f} s" for p in run.processes)
                    print(
                        f"repeat {repeat + 1} {run.tool:>11} {run.attempt:<9} {run.wall:6.2f} s "
                        f"(CPU {run.cpu:5.2f} s) "
                        f"peak {run.max_rss_mib:4.0f} MiB  {run.requests:3d} requests "
                        f"{run.annotations:5d} annotations  [{steps}]"
                    )
                runs.extend(done)
        lines = summary(runs, loads)
        print("\n" + "\n".join(lines))
        if args.markdown:
            args.markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if not args.no_phases:
            sys.path.insert(0, str(args.src))
            print("\nin-process phases of mlgate's path (one run each):")
            phases(work, junit, args.failures)
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"  this process's peak RSS (fake server included): {maxrss:.0f} MiB")


if __name__ == "__main__":
    main()
