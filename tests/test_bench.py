from __future__ import annotations

import copy
import gzip
import json
import os
import re
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from mlgate import evidence as ev
from mlgate.stages.bench import ROUNDS_ARTIFACT, BenchStage
from mlgate.stages.bench_config import BenchConfig, BenchPolicy
from mlgate.stages.interface import RunContext

STAGE = BenchStage()
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "bench"
# Written by pytest-benchmark 5.3.1 (--benchmark-json) from three small benchmarks, one a
# parametrized pair in a group; the second file is the same run saved with --benchmark-save,
# which keeps no per-round data.
REAL = DATA / "pytest-benchmark.json"
SAVED = DATA / "saved-without-rounds.json"
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def run(tmp_path: Path, **config: Any) -> ev.Evidence:
    config.setdefault("working_directory", str(tmp_path))
    evidence = STAGE.run(BenchConfig(**config), RunContext(tmp_path / "ev", None))
    # Every outcome, error included, must survive the schema check on the way back in.
    assert ev.read(ev.write(evidence, tmp_path / "ev")) == evidence
    return evidence


def rounds_of(tmp_path: Path, evidence: ev.Evidence) -> dict[str, list[float]]:
    path = tmp_path / "ev" / evidence.data["rounds_artifact"]
    # Listed by its name in the evidence directory, where a bundle copies it from.
    (listed,) = [a for a in evidence.artifacts if a.path == evidence.data["rounds_artifact"]]
    assert listed.sha256 == ev.sha256_file(path) and listed.size == path.stat().st_size
    rounds: dict[str, list[float]] = json.loads(gzip.decompress(path.read_bytes()))
    return rounds


def test_runs_the_example_benchmarks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # leave the example's tree as it was
    # A directory that does not exist yet: pytest-benchmark would crash rather than make it.
    output = tmp_path / "fresh" / "benchmark.json"
    # pytest-benchmark makes its storage directory even when it saves nothing there.
    storage = f"--benchmark-storage=file://{tmp_path / 'storage'}"
    evidence = run(
        tmp_path,
        working_directory=str(ROOT / "examples" / "iris"),
        command=[*PYTEST, "benchmarks", f"--benchmark-json={output}", storage],
        json=str(output),
    )
    assert evidence.status == "passed", evidence.reason
    assert evidence.metrics["command_exit_code"] == 0 and evidence.metrics["benchmarks"] == 2
    raw = {b["fullname"]: b["stats"] for b in json.loads(output.read_text())["benchmarks"]}
    one = "benchmarks/test_bench_predict.py::test_predict_one_row"
    assert set(raw) == {one, "benchmarks/test_bench_predict.py::test_predict_batch_of_100"}
    rounds = rounds_of(tmp_path, evidence)
    for fullname, stats in raw.items():
        assert len(rounds[fullname]) == stats["rounds"] == evidence.metrics[f"{fullname}.rounds"]
        assert rounds[fullname] == [t * 1000 for t in stats["data"]]
        assert evidence.metrics[f"{fullname}.mean_ms"] == stats["mean"] * 1000
    entry = next(b for b in evidence.data["benchmarks"] if b["fullname"] == one)
    assert entry["name"] == "test_predict_one_row" and entry["samples_artifact"] == ROUNDS_ARTIFACT
    assert evidence.provenance.tool_versions["pytest-benchmark"] == version("pytest-benchmark")
    assert evidence.artifacts[0].path == str(output)
    # A ceiling no machine misses: the rule is exercised without asserting any timing.
    results = STAGE.evaluate(BenchPolicy(max_mean_ms={"test_predict_one_row": 1e9}), evidence)
    assert [(r.rule, r.outcome) for r in results] == [
        ("bench.min_benchmarks", "pass"),
        ("bench.max_mean_ms", "pass"),
    ]
    assert results[1].reason.startswith(f"bench: {one} mean ")
    assert results[1].reason.endswith(" ms, at most 1e+09 ms allowed")


def test_ingests_real_pytest_benchmark_json(tmp_path: Path) -> None:
    evidence = run(tmp_path, json=str(REAL))
    assert evidence.status == "passed" and evidence.metrics["command_exit_code"] is None
    document = json.loads(REAL.read_text())
    assert evidence.metrics["benchmarks"] == 3
    rounds = rounds_of(tmp_path, evidence)
    for raw, entry in zip(document["benchmarks"], evidence.data["benchmarks"], strict=True):
        fullname, stats = raw["fullname"], raw["stats"]
        for stat in ("mean", "median", "stddev", "min", "max"):
            assert evidence.metrics[f"{fullname}.{stat}_ms"] == stats[stat] * 1000
            assert entry[f"{stat}_ms"] == stats[stat] * 1000
        assert rounds[fullname] == [t * 1000 for t in stats["data"]]
        assert entry["rounds"] == stats["rounds"] and entry["iterations"] == stats["iterations"]
        assert entry["ops"] == stats["ops"] and entry["group"] == raw["group"]
    assert [b["fullname"] for b in evidence.data["benchmarks"]] == [
        "test_fx.py::test_sort[10]",
        "test_fx.py::test_sort[1000]",
        "test_fx.py::test_join",
    ]
    (source,) = evidence.data["sources"]
    assert source["pytest_benchmark"] == "5.3.1"
    assert source["machine"] == {
        "python": "CPython 3.11.7",
        "cpu": "Intel(R) Xeon(R) Processor",
        "cpu_count": 2,
        "system": "Linux",
        "machine": "x86_64",
    }
    assert evidence.provenance.tool_versions["pytest-benchmark"] == "5.3.1"
    assert STAGE.summary(evidence) == "3 benchmarks, slowest mean 0.00406 ms (test_sort[1000])"


def test_rounds_artifact_is_reproducible(tmp_path: Path) -> None:
    first = run(tmp_path, json=str(REAL))
    second = run(tmp_path, json=str(REAL))
    assert first.artifacts == second.artifacts


def test_globs_gather_several_files(tmp_path: Path) -> None:
    document = json.loads(REAL.read_text())
    for index, raw in enumerate(document["benchmarks"]):
        single = copy.deepcopy(document) | {"benchmarks": [raw]}
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / f"{index}.json").write_text(json.dumps(single))
    evidence = run(tmp_path, json=["runs/*.json"])
    assert evidence.status == "passed" and evidence.metrics["benchmarks"] == 3
    assert len(evidence.data["sources"]) == 3 and len(evidence.artifacts) == 4


def test_rounds_can_be_optional(tmp_path: Path) -> None:
    evidence = run(tmp_path, json=str(SAVED), require_rounds=False)
    assert evidence.status == "passed" and evidence.metrics["benchmarks"] == 3
    assert all("samples_artifact" not in b for b in evidence.data["benchmarks"])
    assert rounds_of(tmp_path, evidence) == {}


def test_config_keys() -> None:
    config = BenchConfig.model_validate({"json": "b.json", "command": "pytest --benchmark-json=x"})
    assert config.reports == ["b.json"] and config.command == ["pytest", "--benchmark-json=x"]
    assert BenchConfig().reports == [".mlgate/benchmark.json"]
    with pytest.raises(ValueError, match="reports"):
        BenchConfig.model_validate({"reports": ["b.json"]})


def mutated(change: Callable[[dict[str, Any]], object]) -> str:
    document = json.loads(REAL.read_text())
    change(document)
    return json.dumps(document)


def stats(document: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = document["benchmarks"][0]["stats"]
    return first


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("", "benchmark JSON b.json is empty"),
        ("{'benchmarks': []", "benchmark JSON b.json is not valid JSON"),
        ("[]", "b.json is not pytest-benchmark JSON: not an object"),
        (
            json.dumps({"stats": {"mean": 1}}),
            "b.json is not pytest-benchmark JSON: no machine_info or benchmarks list",
        ),
        (
            mutated(lambda d: d.update(benchmarks={"a": 1})),
            "no machine_info or benchmarks list",
        ),
        (
            mutated(lambda d: d["benchmarks"].append("x")),
            "b.json: benchmarks[3] is not a pytest-benchmark result: not an object",
        ),
        (
            mutated(lambda d: d["benchmarks"][0].pop("fullname")),
            "b.json: benchmarks[0] is not a pytest-benchmark result: no name or fullname",
        ),
        (
            mutated(lambda d: d["benchmarks"][0].pop("stats")),
            "benchmarks[0] (test_fx.py::test_sort[10]) is not a pytest-benchmark result: no stats",
        ),
        (
            mutated(lambda d: stats(d).update(mean="fast")),
            "(test_fx.py::test_sort[10]): stats.mean is not a finite, non-negative number",
        ),
        (
            mutated(lambda d: stats(d).update(max=float("nan"))),
            "stats.max is not a finite, non-negative number",
        ),
        (
            mutated(lambda d: stats(d).update(min=-1)),
            "stats.min is not a finite, non-negative number",
        ),
        (
            mutated(lambda d: stats(d).update(rounds=0)),
            "stats.rounds is not a whole number of at least 1",
        ),
        (
            mutated(lambda d: stats(d).update(rounds=True)),
            "stats.rounds is not a whole number of at least 1",
        ),
        (
            mutated(lambda d: stats(d)["data"].pop()),
            "(test_fx.py::test_sort[10]) has 11 per-round times, not the 12 its stats.rounds says",
        ),
        (
            mutated(lambda d: stats(d)["data"].__setitem__(3, None)),
            "stats.data is not a finite, non-negative number",
        ),
        (
            mutated(lambda d: stats(d).pop("data")),
            "benchmarks[0] (test_fx.py::test_sort[10]) has no per-round data (stats.data)",
        ),
        (
            mutated(lambda d: d["benchmarks"].append(d["benchmarks"][0])),
            "benchmark test_fx.py::test_sort[10] appears twice (in b.json)",
        ),
        (SAVED.read_text(), "add --benchmark-save-data to --benchmark-save"),
        # Finite in seconds, beyond any float in ms: once a null metric of passed evidence.
        (
            mutated(lambda d: stats(d).update(mean=1e307)),
            "stats.mean is 1e+307 s: too large to be a time (no finite number of ms)",
        ),
        (
            mutated(lambda d: stats(d)["data"].__setitem__(0, 1e307)),
            "stats.data is 1e+307 s: too large to be a time",
        ),
        (
            mutated(lambda d: stats(d).update(max=10**400)),
            "stats.max is not a finite, non-negative number",
        ),
    ],
    ids=[
        "empty",
        "not-json",
        "not-an-object",
        "other-json",
        "benchmarks-not-a-list",
        "benchmark-not-an-object",
        "no-fullname",
        "no-stats",
        "mean-not-a-number",
        "nan",
        "negative",
        "zero-rounds",
        "bool-rounds",
        "rounds-mismatch",
        "null-round",
        "no-rounds",
        "duplicate",
        "saved-without-data",
        "overflowing-mean",
        "overflowing-round",
        "integer-beyond-float",
    ],
)
def test_bad_json_is_error_evidence(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, reason: str
) -> None:
    # From the project directory, as in CI: reasons name files as the config does.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.json").write_text(content)
    evidence = run(tmp_path, working_directory=".", json="b.json")
    assert evidence.status == "error"
    assert reason in (evidence.reason or "")
    assert evidence.metrics == {"command_exit_code": None} and not evidence.data
    assert STAGE.summary(evidence) == f"error: {evidence.reason}"


def test_missing_json_is_error_evidence(tmp_path: Path) -> None:
    earlier = run(tmp_path, json=str(REAL))
    evidence = run(tmp_path, json=["missing.json", "runs/*.json"])
    assert evidence.status == "error"
    assert evidence.reason == "no benchmark JSON found at missing.json, runs/*.json"
    # The earlier run's rounds are gone with it, not left beside the error.
    assert not (tmp_path / "ev" / earlier.data["rounds_artifact"]).exists()


def test_same_benchmark_in_two_files_is_error_evidence(tmp_path: Path) -> None:
    (tmp_path / "again.json").write_bytes(REAL.read_bytes())
    evidence = run(tmp_path, json=[str(REAL), "again.json"])
    assert evidence.status == "error"
    assert f"test_fx.py::test_sort[10] appears twice (in {REAL} and " in (evidence.reason or "")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (
            {"command": ["definitely-not-a-command-xyz"]},
            "command not found: definitely-not-a-command-xyz",
        ),
        (
            {"command": python("import time; time.sleep(30)"), "timeout": 0.5},
            "timed out after 0.5 s",
        ),
        (
            {"command": python("pass"), "json": "stale.json"},
            "benchmark JSON {tmp}/stale.json was not written by the benchmark command",
        ),
        (
            {"command": python("print('boom'); raise SystemExit(4)"), "json": "none.json"},
            "benchmark command exited 4: boom (no benchmark JSON found at none.json)",
        ),
    ],
    ids=["missing-tool", "timeout", "stale-json", "crash-without-json"],
)
def test_command_problems_are_error_evidence(
    tmp_path: Path, config: dict[str, Any], reason: str
) -> None:
    stale = tmp_path / "stale.json"
    stale.write_bytes(REAL.read_bytes())
    os.utime(stale, (1, 1))
    evidence = run(tmp_path, **config)
    assert evidence.status == "error"
    assert reason.format(tmp=tmp_path) in (evidence.reason or "")


def test_failed_benchmark_run_is_error_evidence(tmp_path: Path) -> None:
    (tmp_path / "test_b.py").write_text(
        "def test_fine(benchmark):\n"
        "    benchmark.pedantic(sum, args=([1, 2],), rounds=3)\n\n"
        "def test_broken(benchmark):\n"
        "    benchmark.pedantic(int, args=('not a number',), rounds=3)\n"
    )
    command = [*PYTEST, "test_b.py", "--benchmark-json=b.json"]
    evidence = run(tmp_path, command=command, json="b.json")
    # pytest-benchmark drops the benchmark that raised and writes a JSON that looks clean:
    # only the exit code tells.
    written = json.loads((tmp_path / "b.json").read_text())
    assert [b["name"] for b in written["benchmarks"]] == ["test_fine"]
    assert evidence.status == "error" and evidence.metrics["command_exit_code"] == 1
    # The reason quotes pytest's summary line; the evidence keeps the output's tail.
    assert evidence.reason is not None
    assert re.fullmatch(
        r"benchmark command exited 1: (=+ )?1 failed, 1 passed in [\d.]+s( =+)? \(its JSON cannot "
        r"show what failed: pytest-benchmark leaves failed benchmarks out\)",
        evidence.reason,
    ), evidence.reason
    ran = evidence.data["command"]
    assert isinstance(ran, dict) and ran["argv"] == command and ran["exit_code"] == 1
    assert "ValueError: invalid literal for int()" in ran["output_tail"]


def bench_evidence(means: dict[str, float]) -> ev.Evidence:
    """Evidence shaped as the stage writes it, with the given mean times (ms) by fullname."""
    metrics: dict[str, ev.MetricValue] = {"command_exit_code": None, "benchmarks": len(means)}
    metrics |= {f"{fullname}.mean_ms": mean for fullname, mean in means.items()}
    return ev.Evidence(
        stage="bench",
        status="passed",
        started_at=ev.now(),
        finished_at=ev.now(),
        metrics=metrics,
        data={
            "benchmarks": [
                {"name": f.rpartition("::")[2], "fullname": f, "mean_ms": m}
                for f, m in means.items()
            ],
            "rounds_artifact": ROUNDS_ARTIFACT,
        },
    )


def evaluate(policy: BenchPolicy, evidence: ev.Evidence) -> list[tuple[str, str, str]]:
    return [(r.rule, r.outcome, r.reason) for r in STAGE.evaluate(policy, evidence)]


MEANS = {"b/test_p.py::test_one": 0.21, "b/test_p.py::test_batch": 12.5}


def test_mean_ceilings_by_name_fullname_and_glob() -> None:
    policy = BenchPolicy(
        max_mean_ms={"test_one": 1, "b/test_p.py::test_batch": 10, "*::test_*": 20}
    )
    assert evaluate(policy, bench_evidence(MEANS)) == [
        ("bench.min_benchmarks", "pass", "bench: 2 benchmarks ran, at least 1 required"),
        (
            "bench.max_mean_ms",
            "pass",
            "bench: b/test_p.py::test_one mean 0.210 ms, at most 1 ms allowed",
        ),
        (
            "bench.max_mean_ms",
            "fail",
            "bench: b/test_p.py::test_batch mean 12.5 ms, at most 10 ms allowed",
        ),
        (
            "bench.max_mean_ms",
            "pass",
            "bench: b/test_p.py::test_one mean 0.210 ms, at most 20 ms allowed",
        ),
        (
            "bench.max_mean_ms",
            "pass",
            "bench: b/test_p.py::test_batch mean 12.5 ms, at most 20 ms allowed",
        ),
    ]


def test_a_ceiling_that_matches_nothing_fails() -> None:
    results = evaluate(BenchPolicy(max_mean_ms={"test_renamed": 1}), bench_evidence(MEANS))
    assert results[-1] == (
        "bench.max_mean_ms",
        "fail",
        "bench: no benchmark matches 'test_renamed' (mean at most 1 ms)",
    )


def test_zero_benchmarks_fail_closed() -> None:
    assert evaluate(BenchPolicy(), bench_evidence({})) == [
        ("bench.min_benchmarks", "fail", "bench: 0 benchmarks ran, at least 1 required")
    ]
    assert STAGE.summary(bench_evidence({})) == "0 benchmarks"


def test_min_benchmarks() -> None:
    results = evaluate(BenchPolicy(min_benchmarks=3), bench_evidence(MEANS))
    assert results == [
        ("bench.min_benchmarks", "fail", "bench: 2 benchmarks ran, at least 3 required")
    ]
    one = bench_evidence({"b/test_p.py::test_one": 0.000123})
    assert evaluate(BenchPolicy(), one)[0][2] == "bench: 1 benchmark ran, at least 1 required"
    assert STAGE.summary(one) == "1 benchmark, slowest mean 0.000123 ms (test_one)"


def untrustworthy(change: Callable[[ev.Evidence], object]) -> ev.Evidence:
    evidence = bench_evidence(MEANS)
    change(evidence)
    return evidence


@pytest.mark.parametrize(
    ("evidence", "reason"),
    [
        (
            untrustworthy(lambda e: e.metrics.update(benchmarks=3)),
            "evidence lacks a benchmarks count matching its list of benchmarks",
        ),
        (
            untrustworthy(lambda e: e.metrics.pop("b/test_p.py::test_one.mean_ms")),
            "evidence lacks a mean time for benchmark b/test_p.py::test_one",
        ),
        (
            untrustworthy(lambda e: e.metrics.update({"b/test_p.py::test_one.mean_ms": "0.2"})),
            "evidence lacks a mean time for benchmark b/test_p.py::test_one",
        ),
        (
            untrustworthy(
                lambda e: e.data["benchmarks"][1].update(fullname="b/test_p.py::test_one")
            ),
            "evidence lists a benchmark without a unique fullname and a name",
        ),
        (
            untrustworthy(lambda e: setattr(e, "status", "failed")),
            "evidence status 'failed' is not one the bench stage writes",
        ),
    ],
    ids=["count", "no-mean", "text-mean", "duplicate", "status"],
)
def test_untrustworthy_evidence_fails(evidence: ev.Evidence, reason: str) -> None:
    policy = BenchPolicy(max_mean_ms={"test_one": 1})
    assert evaluate(policy, evidence) == [("bench.evidence", "fail", f"bench: {reason}")]
