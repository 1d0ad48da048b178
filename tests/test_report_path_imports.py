"""`mlgate gate` and `mlgate report` load the tests stage for its policy and summary only:
not the JUnit reader or the command runner, which only `mlgate test` needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlgate

SRC = Path(mlgate.__file__).parents[1]

_PROBE = """
import json, sys
from mlgate.stages import STAGES
stage = STAGES["tests"]
stage.name, stage.policy_model, stage.config_model
print(json.dumps(sorted(sys.modules)))
"""


def test_the_tests_stage_imports_its_reader_only_to_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    modules = set(json.loads(done.stdout))
    assert "mlgate.stages.tests" in modules
    assert not {"mlgate.junit", "mlgate.junit_stream", "mlgate.stages.command"} & modules
