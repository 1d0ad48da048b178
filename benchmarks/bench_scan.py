"""Scan the example project offline against the full PyPA advisory snapshot; time each scanner.

Targets: the iris example's Python source (bandit), its dependencies pinned at the versions
installed here (pip-audit, through mlgate's local OSV endpoint), and the trained model saved
with joblib (picklescan and fickling). Vulnerability data: a directory of OSV records, by
default the PyPA advisory database snapshot in ../shared/advisory-db (outside the repository;
pass another with --osv-db). Run:

    .venv/bin/python benchmarks/bench_scan.py [--osv-db PATH] [--repeat 3]

Prints the database load time, each scanner's wall time (best of --repeat) and the whole
stage's (database load, scanners, waivers, SARIF, evidence).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
DEFAULT_DB = ROOT.parent / "shared" / "advisory-db"
# What the example's serving environment holds (requirements.txt names only the top level).
PACKAGES = ("scikit-learn", "numpy", "scipy", "joblib", "threadpoolctl", "pytest", "mlflow")

T = TypeVar("T")


def best_of(repeat: int, action: Callable[[], T]) -> tuple[float, T]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    assert result is not None
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--osv-db", type=Path, default=DEFAULT_DB, help="OSV records (dir/zip)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (best kept)")
    args = parser.parse_args()
    if not args.osv_db.exists():
        print(f"no advisory database at {args.osv_db}: pass --osv-db", file=sys.stderr)
        return 2

    sys.path.insert(0, str(EXAMPLE))
    import joblib
    import model as iris  # type: ignore[import-not-found]  # the example's own training code

    from mlgate.scanners import SCANNERS
    from mlgate.scanners.interface import ScanTargets
    from mlgate.scanners.osv import OsvDatabase
    from mlgate.stages.interface import RunContext
    from mlgate.stages.scan.config import ScanConfig
    from mlgate.stages.scan.stage import ScanStage

    with tempfile.TemporaryDirectory(prefix="mlgate-bench-scan-") as name:
        scratch = Path(name)
        pins = []
        for package in PACKAGES:
            try:
                pins.append(f"{package}=={version(package)}")
            except PackageNotFoundError:
                continue
        requirements = scratch / "requirements.txt"
        requirements.write_text("\n".join(pins) + "\n")
        features, _, labels, _ = iris.split()
        model_file = scratch / "model.joblib"
        joblib.dump(iris.train(features, labels), model_file)
        sources = tuple(sorted(EXAMPLE.glob("*.py")))

        load_s, db = best_of(args.repeat, lambda: OsvDatabase.load(args.osv_db))
        print(f"advisory database: {db.records} records from {args.osv_db} ({db.digest[:19]}…)")
        print(f"targets: {len(sources)} source files, {len(pins)} pinned requirements, 1 model")
        print()
        print(f"{'step':<28} {'wall s':>8}  findings")
        print(f"{'load the OSV records':<28} {load_s:>8.3f}")
        targets = ScanTargets(
            workdir=EXAMPLE,
            sources=sources,
            requirements=(requirements,),
            models=(model_file,),
            osv_db=db,
            scratch=scratch / "scratch",
        )
        total = load_s
        for scanner_name in ("bandit", "pip-audit", "picklescan", "fickling"):
            scanner = SCANNERS[scanner_name]
            seconds, result = best_of(args.repeat, lambda s=scanner: s.scan(targets))  # type: ignore[misc]
            total += seconds
            print(f"{scanner_name:<28} {seconds:>8.3f}  {len(result.findings)}")
        print(f"{'sum':<28} {total:>8.3f}")

        config = ScanConfig(
            sources=[str(p) for p in sources],
            requirements=[str(requirements)],
            models=[str(model_file)],
            osv_db=str(args.osv_db),
            working_directory=str(EXAMPLE),
        )
        stage_s, evidence = best_of(
            args.repeat,
            lambda: ScanStage().run(config, RunContext(scratch / "evidence", None)),
        )
        if evidence.status != "passed":
            print(f"the scan stage ended as {evidence.status}: {evidence.reason}", file=sys.stderr)
            return 1
        print(f"{'whole scan stage':<28} {stage_s:>8.3f}  {len(evidence.findings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
