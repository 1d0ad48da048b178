"""Parse, render and publish a JUnit report of 20,000 test cases with 2,000 failures.

Publishes to the fake GitHub server (tests/fakegithub) on 127.0.0.1 with no write delay, and
prints wall time and peak memory per phase and the number of API requests. Run:

    .venv/bin/python benchmarks/bench_report.py [--cases 20000] [--failures 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakegithub

from mlgate import config, policy  # noqa: E402
from mlgate import evidence as ev  # noqa: E402
from mlgate.github import context, publish  # noqa: E402
from mlgate.report import files, markdown, model  # noqa: E402
from mlgate.stages.interface import RunContext  # noqa: E402
from mlgate.stages.tests import TestsConfig, TestsStage  # noqa: E402
from tests.fakegithub import FakeGitHub  # noqa: E402

T = TypeVar("T")


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
    print(f"{label:<36} {elapsed:7.3f} s   peak {peak / 2**20:6.1f} MiB allocated")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--failures", type=int, default=2_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, FakeGitHub() as gh:
        work = Path(scratch)
        junit = work / "junit.xml"
        write_junit(junit, args.cases, args.failures)
        print(
            f"JUnit report: {args.cases} cases, {args.failures} failures, "
            f"{junit.stat().st_size / 2**20:.1f} MiB\n"
        )
        cfg = config.parse({"stages": {"tests": {}}})
        evidence_dir = work / "evidence"

        def ingest() -> ev.Evidence:
            found = TestsStage().run(
                TestsConfig(junit=[str(junit)]), RunContext(evidence_dir, None)
            )
            ev.write(found, evidence_dir)
            return found

        found = measure("parse + write evidence", ingest)
        assert found.metrics["failed"] == args.failures, found.metrics
        measure("gate", lambda: policy.write(policy.evaluate(cfg, evidence_dir), work / "v.json"))
        report = measure("load report", lambda: model.load(cfg, work / "v.json", evidence_dir))
        measure(
            "render markdown (comment, checks)",
            lambda: (
                markdown.full(report, markdown.COMMENT_LIMIT),
                markdown.stage(report, "tests"),
            ),
        )
        measure("write report.md + report.html", lambda: files.write(report, work / "out"))

        gh.add_repo("octo/model")
        gh.add_pull("octo/model", number=7, head_sha="a" * 40, base_sha="b" * 40)
        gh.set_token("tok")
        event = work / "event.json"
        event.write_text(json.dumps({"pull_request": {"number": 7, "head": {"sha": "a" * 40}}}))
        os.environ.update(
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_API_URL": gh.url,
                "GITHUB_REPOSITORY": "octo/model",
                "GITHUB_SHA": "c" * 40,
                "GITHUB_EVENT_NAME": "pull_request",
                "GITHUB_EVENT_PATH": str(event),
                "GITHUB_RUN_ID": "1",
            }
        )
        ctx = context.from_env("tok")
        started = time.perf_counter()
        publish.publish(report, ctx, cfg.report, 0)
        print(f"{'publish to the fake GitHub':<36} {time.perf_counter() - started:7.3f} s")
        runs = {run["name"]: run for run in gh.check_runs("octo/model")}
        delivered = len(runs["mlgate/tests"]["output"]["annotations"])
        requests = Counter(method for method, _path, _status in gh.requests)
        by_method = ", ".join(f"{method} {count}" for method, count in sorted(requests.items()))
        print(f"\nAPI requests: {sum(requests.values())} ({by_method})")
        print(f"annotations delivered: {delivered} of {args.failures}")
        print(f"requests refused by the OpenAPI check: {len(gh.violations)}")
        print(
            f"with GitHub's 1 s pause between writes, publishing would add about "
            f"{requests['POST'] + requests['PATCH'] - 1} s"
        )
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"process peak RSS (fake server included): {maxrss:.0f} MiB")


if __name__ == "__main__":
    main()
