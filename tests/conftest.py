from __future__ import annotations

import os

import pytest

# Tests must not see the GitHub Actions environment of a CI runner they may run on.
_ACTIONS_VARS = [k for k in os.environ if k.startswith(("GITHUB_", "RUNNER_", "INPUT_"))]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*_ACTIONS_VARS, "ACTIONS_RUNTIME_TOKEN", "CI", "ACT"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
