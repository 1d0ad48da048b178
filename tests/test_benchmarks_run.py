"""The benchmark scripts keep working (small sizes; figures are printed, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_report_benchmark_runs_small() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_report.py"),
            "--cases",
            "300",
            "--failures",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "annotations delivered: 120 of 120" in result.stdout
    assert "requests refused by the OpenAPI check: 0" in result.stdout


def test_scan_benchmark_runs_on_the_vendored_advisories() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_scan.py"),
            "--osv-db",
            str(ROOT / "tests" / "data" / "advisories"),
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for step in ("load the OSV records", "bandit", "pip-audit", "picklescan", "whole scan stage"):
        assert step in result.stdout
