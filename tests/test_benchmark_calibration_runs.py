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


def test_calibration_benchmark_runs_quick(tmp_path: Path) -> None:
    saved = tmp_path / "records.npz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--save", str(saved)],
        capture_output=True,
        text=True,
        timeout=900,  # ~75 s here, 140 s on a loaded machine
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for trial in range(1, 5):
        kind = "A/A" if trial % 2 else "A/B"
        assert f"trial {trial:>3} {kind}: A1 p95 " in out
    assert "successful requests per side and round" in out
    assert "A/A trials, A2 vs A1" in out and "A/B trials, B vs A1" in out
    assert "injected work: " in out
    assert "mlgate, paired rounds (p50, p95, mean; tolerance 10% (the default)" in out
    assert "A/A false alarms (any metric)" in out and "A/A gate fails" in out
    assert "A/B p95 detected" in out
    assert "the trials (runs)" in out and "50 of random rounds (est.)" in out
    assert "per metric, A/A regression|inconclusive|A/B regression" in out
    assert "for contrast, independent samples" in out
    assert "github-action-benchmark rule" in out
    for value in ("p95", "mean"):
        for threshold in ("200%", "110%"):
            assert any(
                value in line.split() and threshold in line.split() for line in out.splitlines()
            ), f"no github-action-benchmark row for {value} at {threshold}"
    assert "total time" in out
    # The saved records give the same analysis again, without loading anything.
    again = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--load", str(saved)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "trials: 4 from " in again.stdout

    def analysis(text: str) -> list[str]:
        lines = text.splitlines()
        first = next(i for i, line in enumerate(lines) if "successful requests per side" in line)
        return [line for line in lines[first:] if not line.startswith("total time")]

    assert analysis(again.stdout) == analysis(out)


@pytest.mark.parametrize("work", ["0", "-1", "nan"])
def test_calibration_benchmark_refuses_a_fixed_work_that_is_not_positive(work: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--work-ms", work],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "--work-ms must be a positive number of milliseconds" in result.stderr
    assert "Traceback" not in result.stderr


SEQUENTIAL = ROOT / "benchmarks" / "bench_sequential_calibration.py"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--work-ms", "0"], "--work-ms must be a positive number of milliseconds"),
        (["--min-rounds", "1"], "--min-rounds at least 2"),
    ],
)
def test_sequential_calibration_refuses_bad_settings(options: list[str], message: str) -> None:
    # Imports resolve (it reuses bench_compare_calibration's servers) and bad input is one
    # line, exit 2; the run itself takes minutes (--quick: about 5 on a busy 2-core machine).
    import os

    result = subprocess.run(
        [sys.executable, str(SEQUENTIAL), *options],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": str(ROOT / "src")},
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
