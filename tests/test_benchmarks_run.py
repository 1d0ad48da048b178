"""The benchmark scripts keep working (small sizes; figures are printed, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_report_benchmark_runs_small() -> None:
    """The three CLI processes run whole, first run and re-run, every annotation delivered and
    nothing refused by the fake's OpenAPI check; then the in-process phases."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_report.py"),
            "--cases",
            "300",
            "--failures",
            "120",
            "--repeats",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for process in ("`test --junit`", "`gate`", "`report`", "**all 3**"):
        assert f"| mlgate, first run | {process} |" in result.stdout, result.stdout
    for attempt in ("first run", "re-run"):
        # requests (by method) | annotations delivered | refused by the fake
        assert re.search(rf"\| mlgate, {attempt} \| \d+ \([^)]*\) \| 120 \| 0 \|", result.stdout)
    assert "write report.md + report.html" in result.stdout


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
