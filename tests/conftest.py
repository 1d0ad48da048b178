from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# scripts/docker-engine.sh exits 3 when no engine can be started here at all: the only reason
# to skip a container test.
NO_ENGINE = 3

# Tests must not see the GitHub Actions environment of a CI runner they may run on.
_ACTIONS_VARS = [k for k in os.environ if k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*_ACTIONS_VARS, "ACTIONS_RUNTIME_TOKEN", "CI", "ACT"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """A docker client of the engine scripts/docker-engine.sh starts (or finds running), one
    per session for every container test; DOCKER_HOST stays set for the code under test."""
    import docker  # type: ignore[import-untyped]  # only the container tests need it

    done = subprocess.run(
        [str(ROOT / "scripts" / "docker-engine.sh")],
        capture_output=True,
        text=True,
        timeout=1200,  # the first run installs packages and debootstraps the base image
        check=False,
    )
    message = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
    if done.returncode == NO_ENGINE:
        pytest.skip(f"no Docker engine can be started here: {message}")
    assert done.returncode == 0, f"scripts/docker-engine.sh failed: {message}"
    name, value = done.stdout.strip().splitlines()[-1].split("=", 1)
    assert name == "DOCKER_HOST"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOCKER_HOST", value)
        client = docker.from_env()
        yield client
        client.close()
