"""The compare calibration benchmark keeps working: real servers and load runs at tiny settings.

Only that it completes and prints its tables is checked; its figures are never asserted (a few
2 s windows say nothing about the rates, and timing depends on the machine).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_compare_calibration.py"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("locust") is None, reason="locust is not installed (mlgate[load])"
)


def test_calibration_benchmark_runs_quick() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "calibration: A p95" in out
    assert "--cpu-ms" in out
    assert "samples per round" in out
    for side in ("A1", "A2", "B"):
        assert f"  {side}: min " in out
    assert "achieved shift over all rounds" in out
    assert "mlgate, paired rounds (default rule" in out
    assert "A/A false alarms (any metric)" in out
    assert "A/B p95 detected" in out
    assert "2 of disjoint rounds" in out and "50 of random rounds (est.)" in out
    assert "per metric over the random trials" in out
    assert "for contrast, independent samples" in out
    assert "github-action-benchmark rule" in out
    for value in ("p95", "mean"):
        for threshold in ("200%", "110%"):
            assert any(
                value in line.split() and threshold in line.split() for line in out.splitlines()
            ), f"no github-action-benchmark row for {value} at {threshold}"
    assert "total time" in out
