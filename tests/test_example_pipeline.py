"""The README's first command, in a scratch copy: the example model is registered in a sqlite
MLflow store, then tests, benchmarks and a load test of the model MLflow serves are gated."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"


def test_the_example_pipeline_passes_its_gate(tmp_path: Path) -> None:
    project = tmp_path / "iris"
    shutil.copytree(
        EXAMPLE,
        project,
        ignore=shutil.ignore_patterns(".mlgate", "mlruns", ".benchmarks", "__pycache__"),
    )
    bin_dir = str(Path(sys.executable).parent)
    env = os.environ | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }

    def step(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=project, env=env, capture_output=True, text=True, timeout=600
        )

    (project / ".mlgate").mkdir()
    champion = step(
        sys.executable,
        "log_model.py",
        "--tracking-uri",
        "sqlite:///.mlgate/mlflow.db",
        "--alias",
        "production",
        "--if-missing",
    )
    assert champion.returncode == 0, champion.stderr[-2000:]
    registered = step(
        sys.executable,
        "log_model.py",
        "--tracking-uri",
        "sqlite:///.mlgate/mlflow.db",
        "--alias",
        "candidate",
    )
    assert registered.returncode == 0, registered.stderr[-2000:]
    version = registered.stdout.splitlines()[-2].removeprefix("version=")
    ran = step(sys.executable, "-m", "mlgate", "run")
    assert ran.returncode == 0, ran.stderr[-3000:]
    gate = step(sys.executable, "-m", "mlgate", "gate")
    assert gate.returncode == 0, gate.stderr
    load = json.loads((project / ".mlgate" / "evidence" / "load.json").read_text())
    assert load["status"] == "passed" and load["data"]["serve"]["source"] == "mlflow"
    assert load["metrics"]["cold_start_s"] > 0 and load["metrics"]["errors"] == 0
    quality = json.loads((project / ".mlgate" / "evidence" / "quality.json").read_text())
    assert quality["status"] == "passed", quality["reason"]
    assert quality["data"]["champion"]["resolved"] == "models:/iris/1"
    # Both stages name the version they judged, with the files digest a bundle must match.
    served, judged = load["data"]["candidate_model"], quality["data"]["candidate"]
    assert (served["resolved"], served["digest"]) == (judged["resolved"], judged["digest"])
    assert quality["data"]["dataset"]["rows"] == 45
    report = step(sys.executable, "-m", "mlgate", "report")
    assert report.returncode == 0 and "mlgate: passed" in report.stdout
    assert "xychart-beta" in (project / ".mlgate" / "report.md").read_text()
    # The passing candidate goes to staging through the gated path, recorded in the ledger.
    env["MLFLOW_TRACKING_URI"] = "sqlite:///.mlgate/mlflow.db"
    bundled = step(sys.executable, "-m", "mlgate", "bundle", "create", "--version", version)
    assert bundled.returncode == 0, bundled.stderr[-2000:]
    verified = step(sys.executable, "-m", "mlgate", "bundle", "verify", ".mlgate/bundle")
    assert verified.returncode == 0, verified.stderr[-2000:]
    promoted = step(
        sys.executable, "-m", "mlgate", "promote", "--version", version, "--to", "staging"
    )
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    assert f"promotion: iris@staging (none) -> {version}" in promoted.stderr
    production = step(
        sys.executable, "-m", "mlgate", "promote", "--version", version, "--to", "production"
    )
    assert production.returncode == 1 and "needs GitHub" in production.stderr
    history = step(sys.executable, "-m", "mlgate", "history", "--json")
    (record,) = json.loads(history.stdout)["records"]
    assert (record["stage"], record["to_version"], record["kind"]) == (
        "staging",
        version,
        "promotion",
    )
