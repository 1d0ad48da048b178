"""The README's first command, as written: a fresh clone of this repository, a new empty
virtualenv (created by the script itself), `./scripts/demo.sh`. Nothing of the development
virtualenv is used; pip installs from the local wheelhouse scripts/test.sh fills from the
package index (the same packages the index serves a user), so the test itself stays offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse-demo"


def _interpreter() -> str:
    """A python3 outside any virtualenv, as a fresh machine has it."""
    for candidate in ("/usr/local/bin/python3", shutil.which("python3") or "", "/usr/bin/python3"):
        if candidate and "/.venv/" not in candidate and Path(candidate).exists():
            return candidate
    pytest.fail("no python3 outside a virtualenv to run the demo with")


def _wheelhouse_problem() -> str | None:
    """Missing, or made for another pyproject, requirements file or set of extras: pip would
    fail inside the demo with a missing package, far from the cause."""
    stamp = WHEELHOUSE / ".stamp"
    if not stamp.is_file():
        return f"{WHEELHOUSE} is missing: scripts/test.sh fills it before the tests run"
    wanted = subprocess.run(
        [str(ROOT / "scripts" / "demo-wheelhouse-stamp.sh")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    if stamp.read_text().strip() != wanted:
        return (
            f"{WHEELHOUSE} is stale (pyproject, the example's requirements or its extras "
            "changed): run scripts/setup.sh dev"
        )
    return None


def test_the_readme_first_command_passes_from_a_fresh_clone(tmp_path: Path) -> None:
    problem = _wheelhouse_problem()
    if problem:
        pytest.fail(problem)
    clone = tmp_path / "mlgate"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI"}
    }
    environment["PATH"] = os.pathsep.join(
        part for part in environment["PATH"].split(os.pathsep) if "/.venv/" not in part + "/"
    )
    environment |= {
        "PYTHON": _interpreter(),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_CONFIG_FILE": os.devnull,
    }
    demo = subprocess.run(
        ["./scripts/demo.sh"],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-4000:]
    assert not (clone / ".venv" / "lib").samefile(ROOT / ".venv" / "lib")
    project = clone / "examples" / "iris" / ".mlgate"
    verdict = json.loads((project / "verdict.json").read_text())
    assert verdict["outcome"] == "pass", output[-4000:]
    assert (project / "report.md").is_file() and (project / "report.html").is_file()
    assert "verifies: models:/iris/" in output
    assert "xychart-beta" in (project / "report.md").read_text()
    load = json.loads((project / "evidence" / "load.json").read_text())
    assert load["status"] == "passed", load.get("reason")
    assert load["data"]["serve"]["source"] == "mlflow"
    assert load["metrics"]["cold_start_s"] > 0 and load["metrics"]["errors"] == 0
    # The headline: the candidate's latency against the champion served beside it.
    assert load["data"]["champion"]["model_uri"] == "models:/iris/1"
    comparison = load["data"]["comparison"]
    assert comparison["interleaving"] == "requests in turn, fresh servers every round"
    # rounds: auto, as many rounds as the data needed (6 on a quiet machine), a pair each.
    plan = comparison["sequential"]
    assert (plan["rule"], plan["min_rounds"]) == ("auto", 6), plan
    assert plan["stopped"].startswith("decided"), plan
    assert comparison["rounds"] >= 6 and load["data"]["server_starts"] == comparison["rounds"]
    rules = {r["rule"]: r for r in verdict["rules"]}
    assert rules["load.no_regression"]["outcome"] == "pass", rules["load.no_regression"]
    quality = json.loads((project / "evidence" / "quality.json").read_text())
    assert quality["status"] == "passed", quality["reason"]
    assert quality["data"]["champion"]["resolved"] == "models:/iris/1"
    assert quality["data"]["dataset"]["rows"] == 45
    # Both stages name the version they judged, with the files digest a bundle must match.
    served, judged = load["data"]["candidate_model"], quality["data"]["candidate"]
    assert (served["resolved"], served["digest"]) == (judged["resolved"], judged["digest"])

    def clone_mlgate(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(clone / ".venv" / "bin" / "mlgate"), *arguments],
            cwd=clone / "examples" / "iris",
            env=environment | {"MLFLOW_TRACKING_URI": "sqlite:///.mlgate/mlflow.db"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # The promotion is in the registry's ledger, read back with the clone's own mlgate.
    history = clone_mlgate("history", "--json")
    assert history.returncode == 0, history.stderr[-2000:]
    (record,) = json.loads(history.stdout)["records"]
    assert (record["stage"], record["kind"]) == ("staging", "promotion")
    assert f"promotion: iris@staging (none) -> {record['to_version']}" in output
    # Production stays behind GitHub's access rule, even for the demo's passing candidate.
    production = clone_mlgate("promote", "--version", record["to_version"], "--to", "production")
    assert production.returncode == 1 and "needs GitHub" in production.stderr
