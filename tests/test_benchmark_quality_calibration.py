"""The quality calibration benchmark keeps working: tiny settings, its tables printed; the
figures are never asserted (20 holdouts say nothing about a 5% rate)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quality_calibration_benchmark_runs_quick() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_quality_calibration.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        # This checkout's code, not whatever mlgate the environment has installed.
        env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("breast cancer, accuracy", "diabetes, RMSE"):
        assert f"{name}: as good, " in out and f"{name}: drop = tolerance, " in out
    assert out.count("gate (one-sided 95% bound)") == 8
    assert out.count("two-sided 95% interval's ends") == 8
    assert "false pass: " in out and "[" in out
