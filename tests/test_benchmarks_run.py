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
            "--floor",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for process in ("`test --junit`", "`gate`", "`report`", "**all 3**"):
        assert f"| mlgate, first run | {process} |" in result.stdout, result.stdout
    for process in ("`start-up, as test`", "`start-up, as report`", "**all 3**"):
        assert f"| floor, first run | {process} |" in result.stdout, result.stdout
    assert "| floor, first run | 0" not in result.stdout  # no row of requests for it
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


def test_action_install_benchmark_index_is_cached_by_pip(tmp_path: Path) -> None:
    """The benchmark's warm runs rest on pip caching what its local index serves."""
    import importlib.util
    import os

    wheelhouse = ROOT / ".cache" / "wheelhouse"
    if not (wheelhouse / ".stamp").exists():
        import pytest

        pytest.skip("no wheelhouse: run scripts/setup.sh dev")
    spec = importlib.util.spec_from_file_location(
        "bench_action_install", ROOT / "benchmarks" / "bench_action_install.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench  # its dataclasses look their module up there
    spec.loader.exec_module(bench)
    cache = tmp_path / "pip-cache"
    with bench.local_index(wheelhouse) as index:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
        env.update(
            PIP_CONFIG_FILE=os.devnull,
            PIP_CACHE_DIR=str(cache),
            PIP_INDEX_URL=index,
            PIP_TRUSTED_HOST="127.0.0.1",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
        )
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(tmp_path), "click"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(tmp_path.glob("click-*.whl"))
    cached = [p for p in (cache / "http-v2").rglob("*") if p.is_file()] + [
        p for p in (cache / "http").rglob("*") if p.is_file()
    ]
    assert cached, "pip cached nothing from the local index"
