"""What the user's commands import, run in-process on a config naming only the tests stage:
`mlgate test` imports no other stage (the scan policy a model-loading stage consults is left
to its defaults, unbuilt, when the config does not name the scan stage), and `mlgate gate`
neither the JUnit reader nor what only reporting needs (PyGithub and its requests, rich)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlgate

SRC = Path(mlgate.__file__).parents[1]

# Runs one command in-process, then lists what it imported.
_PROBE = """
import json, sys
from mlgate.cli import main
sys.argv = ["mlgate", *sys.argv[1:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""

_JUNIT = """<testsuite name="s" tests="2" failures="1">
<testcase classname="t" name="ok" time="0.1"/>
<testcase classname="t" name="bad" time="0.1"><failure message="no">no</failure></testcase>
</testsuite>
"""

_OTHER_STAGES = {"bench", "bench_config", "load", "scan", "drift", "probe", "quality"}
_REPORTING = {"github", "requests", "jwt", "rich"}


def _python(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter that sees only mlgate's source and the system's tools."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run(project: Path, *args: str) -> dict[str, Any]:
    done = _python(_PROBE, *args, cwd=project)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    result["stderr"] = done.stderr
    return result


def _project(tmp_path: Path) -> Path:
    (tmp_path / "mlgate.yml").write_text("stages:\n  tests: {}\n")
    (tmp_path / "junit.xml").write_text(_JUNIT)
    return tmp_path


def test_the_test_command_imports_no_other_stage(tmp_path: Path) -> None:
    result = _run(_project(tmp_path), "test", "--junit", "junit.xml")
    assert result["code"] == 0, result["stderr"]
    assert (tmp_path / ".mlgate" / "evidence" / "tests.json").is_file()
    modules = set(result["modules"])
    assert "mlgate.stages.tests" in modules
    stage_packages = {m.split(".")[2] for m in modules if m.startswith("mlgate.stages.")}
    assert not _OTHER_STAGES & stage_packages, stage_packages
    assert not _REPORTING & {m.split(".")[0] for m in modules}


def test_the_gate_command_imports_neither_the_reader_nor_reporting(tmp_path: Path) -> None:
    project = _project(tmp_path)
    assert _run(project, "test", "--junit", "junit.xml")["code"] == 0
    result = _run(project, "gate")
    assert result["code"] == 1, result["stderr"]  # one test failed, none allowed
    assert (tmp_path / ".mlgate" / "verdict.json").is_file()
    modules = set(result["modules"])
    assert "mlgate.policy" in modules
    assert not {"mlgate.junit", "mlgate.stages.command", "mlgate.report.sinks"} & modules
    stage_packages = {m.split(".")[2] for m in modules if m.startswith("mlgate.stages.")}
    assert not _OTHER_STAGES & stage_packages, stage_packages
    assert not _REPORTING & {m.split(".")[0] for m in modules}


# A client as `mlgate report` makes it, then what it imported; then PyGithub's App auth signs
# a token with a real RSA key, which needs the real PyJWT and cryptography.
_CLIENT_PROBE = """
import json, sys
from mlgate.github import client
from mlgate.github.context import GitHubContext
gh = client.connect(GitHubContext("t", "http://127.0.0.1:9", "o/r", "a" * 40, None, None, "k"), 0)
before = sorted(sys.modules)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from github import Auth
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
pem = key.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
token = Auth.AppAuth(123, pem).create_jwt()
import jwt
claims = jwt.decode(token, key.public_key(), algorithms=["RS256"])
print(json.dumps({"modules": before, "issuer": claims["iss"]}))
"""


def test_the_github_client_loads_jwt_only_when_an_app_key_is_signed() -> None:
    done = _python(_CLIENT_PROBE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    top = {m.split(".")[0] for m in result["modules"]}
    assert "github" in top
    assert not {"cryptography"} & top
    assert result["issuer"] == "123"


# A PyGithub that reads from jwt while it is imported gets the real module at once.
_EARLY_READ_PROBE = """
import sys
from mlgate.github import client
with client._jwt_deferred():
    from jwt import PyJWT
print(type(sys.modules["jwt"]).__name__, PyJWT.__module__)
"""


def test_jwt_read_while_pygithub_is_imported_is_the_real_module() -> None:
    done = _python(_EARLY_READ_PROBE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["module", "jwt.api_jwt"]


# What is alive at exit is frozen before the interpreter's shutdown collections; a hook
# registered before main() runs after it (atexit runs last-in first-out).
_EXIT_PROBE = """
import atexit, gc, sys
atexit.register(lambda: sys.stderr.write(f"frozen at exit: {gc.get_freeze_count()}\\n"))
from mlgate.cli import main
sys.argv = ["mlgate", "--version"]
main()
"""


def test_objects_alive_at_exit_are_frozen_for_a_quick_shutdown() -> None:
    done = _python(_EXIT_PROBE)
    frozen = [line for line in done.stderr.splitlines() if line.startswith("frozen at exit")]
    assert frozen, done.stderr
    assert int(frozen[0].split(": ")[1]) > 1000
