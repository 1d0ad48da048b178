"""What a champion comparison on fresh servers costs beyond its measured load: the iris
example's load stage (its MLflow-served candidate beside the champion, open loop at 40 req/s
per side, 2 s warm-up at most) in 6 rounds of 10 s, 60 s measured per side. Run from a
project set up as scripts/demo.sh sets up examples/iris (its .mlgate/mlflow.db holding
models:/iris@candidate and @production):

    cd examples/iris && ../../.venv/bin/python ../../benchmarks/bench_load_overhead.py [--runs 3]

Prints, per run, the load average, the stage's wall time, the measured time and the overhead
(the difference), the standard deviation of the per-round p95 log-ratios (candidate against
champion: the two are the same model, so this is the A/A spread the comparison's interval is
made of) and, where the evidence records them, each round's server starts and warm-ups.
Results are in benchmarks/load-overhead.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml

from mlgate.cli import cli
from mlgate.samples import read_samples


def config() -> Path:
    """The example's mlgate.yml with 6 rounds of 10 s (60 s per side) instead of 12, beside
    it (its paths are the project's)."""
    document = yaml.safe_load(Path("mlgate.yml").read_text())
    document["stages"]["load"] |= {"rounds": 6, "duration": 60}
    path = Path("mlgate-bench-6-rounds.yml")
    path.write_text(yaml.safe_dump(document))
    return path


def one_run(configured: Path, evidence: Path) -> str:
    before = os.getloadavg()
    cli.main(
        ["run", "--config", str(configured), "--stage", "load", "--evidence-dir", str(evidence)],
        standalone_mode=False,
    )
    after = os.getloadavg()
    document = json.loads((evidence / "load.json").read_text())
    if document["status"] != "passed":
        return f"load stage {document['status']}: {document.get('reason')}"
    wall = (
        datetime.fromisoformat(document["finished_at"])
        - datetime.fromisoformat(document["started_at"])
    ).total_seconds()
    measured = float(document["metrics"]["duration_s"])
    candidate = read_samples(evidence / "load.json").rounds
    champion = read_samples(evidence / document["data"]["champion_samples_artifact"]).rounds
    ratios = [
        math.log(float(np.percentile(b, 95)) / float(np.percentile(a, 95)))
        for a, b in zip(champion, candidate, strict=True)
    ]
    p95 = [
        f"{float(np.percentile(a, 95)):.1f}/{float(np.percentile(b, 95)):.1f}"
        for a, b in zip(champion, candidate, strict=True)
    ]
    lines = [
        f"load average {before[0]:.1f} -> {after[0]:.1f}: stage {wall:.1f} s, measured "
        f"{measured:g} s, overhead {wall - measured:.1f} s; per-round p95 log-ratio sd "
        f"{statistics.stdev(ratios):.3f} (mean {statistics.mean(ratios):+.3f}); p95 ms per "
        f"round, champion/candidate: {' '.join(p95)}"
    ]
    for start in document["data"].get("round_starts", []):
        sides = {k: v for k, v in start.items() if k != "round"}
        lines.append(
            f"  round {start['round']}: "
            + ", ".join(
                f"{name} started {s['started_s']:.2f} s, cold start {s['cold_start_s']:.2f} s, "
                f"warm-up {s['warmup']['seconds']:.2f} s / {s['warmup']['requests']} requests"
                f"{'' if s['warmup']['settled'] else ' (not settled)'}"
                for name, s in sides.items()
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    configured = config()
    try:
        with tempfile.TemporaryDirectory(prefix="mlgate-bench-load-") as scratch:
            for index in range(args.runs):
                print(one_run(configured, Path(scratch) / f"evidence-{index}"), flush=True)
    finally:
        configured.unlink()


if __name__ == "__main__":
    main()
