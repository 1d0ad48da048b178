"""The README's first command, as written: a fresh clone of this repository, a new empty
virtualenv (created by the script itself), `./scripts/demo.sh`. Nothing of the development
virtualenv is used; pip installs from the local wheelhouse scripts/test.sh fills from the
package index (the same packages the index serves a user), so the test itself stays offline."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WHEELHOUSE = ROOT / ".cache" / "wheelhouse-demo"


def _interpreter() -> str:
    """A python3 outside any virtualenv, as a fresh machine has it."""
    for candidate in ("/usr/local/bin/python3", shutil.which("python3") or "", "/usr/bin/python3"):
        if candidate and "/.venv/" not in candidate and Path(candidate).exists():
            return candidate
    pytest.fail("no python3 outside a virtualenv to run the demo with")


def test_the_readme_first_command_passes_from_a_fresh_clone(tmp_path: Path) -> None:
    if not (WHEELHOUSE / ".stamp").is_file():
        pytest.fail(f"{WHEELHOUSE} is missing: scripts/test.sh fills it before the tests run")
    clone = tmp_path / "mlgate"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MLFLOW_TRACKING_URI"}
    }
    environment["PATH"] = os.pathsep.join(
        part for part in environment["PATH"].split(os.pathsep) if "/.venv/" not in part + "/"
    )
    environment |= {
        "PYTHON": _interpreter(),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(WHEELHOUSE),
        "PIP_CONFIG_FILE": os.devnull,
    }
    demo = subprocess.run(
        ["./scripts/demo.sh"],
        cwd=clone,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-4000:]
    assert not (clone / ".venv" / "lib").samefile(ROOT / ".venv" / "lib")
    project = clone / "examples" / "iris" / ".mlgate"
    verdict = json.loads((project / "verdict.json").read_text())
    assert verdict["verdict"] == "pass", output[-4000:]
    assert (project / "report.md").is_file() and (project / "report.html").is_file()
    assert "verified" in output.lower()
    assert "staging" in output.split("promote")[-1]
    load = json.loads((project / "evidence" / "load.json").read_text())
    assert load["status"] == "passed", load.get("reason")
