"""Builders shared by tests: real JUnit XML documents and evidence written through mlgate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from mlgate.evidence import Evidence, Finding, collect_provenance, now
from tests.fakegithub import FakeGitHub


def junit_xml(
    path: Path,
    passed: int = 0,
    failed: int = 0,
    errors: int = 0,
    skipped: int = 0,
    file: str = "tests/test_model.py",
    message: str = "assert 0.71 >= 0.9",
) -> Path:
    """A pytest-style (xunit1) JUnit report with the given outcome counts."""
    suite = ET.Element(
        "testsuite",
        name="pytest",
        tests=str(passed + failed + errors + skipped),
        failures=str(failed),
        errors=str(errors),
        skipped=str(skipped),
        time="1.5",
    )
    line = 10
    for kind, count in (
        ("passed", passed),
        ("failed", failed),
        ("error", errors),
        ("skipped", skipped),
    ):
        for index in range(count):
            line += 1
            case = ET.SubElement(
                suite,
                "testcase",
                classname="tests.test_model",
                name=f"test_{kind}_{index}",
                file=file,
                line=str(line),
                time="0.01",
            )
            if kind == "failed":
                ET.SubElement(
                    case, "failure", message=message
                ).text = f"def test():\n>       assert score >= 0.9\nE       {message}\n\n{file}:{line + 1}: AssertionError"
            elif kind == "error":
                ET.SubElement(
                    case, "error", message="fixture 'model' not found"
                ).text = "E  fixture 'model' not found"
            elif kind == "skipped":
                ET.SubElement(case, "skipped", type="pytest.skip", message="needs a GPU")
    root = ET.Element("testsuites")
    root.append(suite)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


@contextmanager
def github_with_pull(repo: str, head_sha: str, token: str) -> Iterator[FakeGitHub]:
    """A fake GitHub holding `repo` with open PR #7 at `head_sha`; on exit, no request may
    have broken GitHub's OpenAPI description or hit an operation the fake lacks."""
    with FakeGitHub() as fake:
        fake.add_repo(repo)
        fake.add_pull(repo, number=7, head_sha=head_sha, base_sha="c" * 40)
        fake.set_token(token)
        yield fake
        assert fake.violations == [], fake.violations
        assert fake.unimplemented == [], fake.unimplemented


def stage_evidence(
    passed: int = 4,
    failed: int = 0,
    errors: int = 0,
    skipped: int = 0,
    flaky: int = 0,
    **fields: object,
) -> Evidence:
    """Tests-stage evidence whose counts, status and findings agree, as the stage writes them."""
    findings = [
        Finding(id=f"t::{rule}{i}", severity="high", message="boom", rule=rule)
        for rule, count in (("test-failure", failed), ("test-error", errors))
        for i in range(count)
    ]
    document: dict[str, object] = {
        "stage": "tests",
        "status": "failed" if failed or errors else "passed",
        "started_at": now(),
        "finished_at": now(),
        "metrics": {
            "tests": passed + failed + errors + skipped,
            "passed": passed,
            "failed": failed,
            "errors": errors,
            "skipped": skipped,
            "flaky": flaky,
        },
        "findings": findings,
        "provenance": collect_provenance(None, {}),
    }
    return Evidence.model_validate(document | fields)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "iris"


class ExampleServer:
    """The example's real model server (examples/iris/serve.py) on a free port of 127.0.0.1,
    in its own process group; extra arguments go to serve.py (e.g. --delay-ms 50)."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "serve.py", "--port", "0", *args],
            cwd=EXAMPLE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.append(self.process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout=60)
        if not lines or not lines[0].startswith("listening on "):
            self.stop()
            pytest.fail(f"serve.py did not start: {lines}")
        self.url = lines[0].removeprefix("listening on ").strip()

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@click.command(context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def _mlgate_entry(argv: tuple[str, ...]) -> None:
    """The `mlgate` console script (error lines and exit codes included), in this process."""
    from mlgate import cli

    saved = sys.argv
    sys.argv = ["mlgate", *argv]
    try:
        cli.main()
    finally:
        sys.argv = saved


def cli_runner() -> CliRunner:
    """A CliRunner whose result keeps stderr apart from stdout, on every click mlgate supports
    (click before 8.2 mixes them unless told not to; 8.2 dropped the switch)."""
    import inspect

    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    return CliRunner()


def mlgate_in_process(*args: str) -> Result:
    """Run mlgate as a user would, in-process (this worktree's code, not an installed one)."""
    return cli_runner().invoke(_mlgate_entry, list(args))


def log_sklearn_model(model: object, registered_model_name: str, **options: object) -> str:
    """mlflow.sklearn.log_model(model, ...) under the model name "model", registered as a new
    version of `registered_model_name`; that version. On every MLflow mlgate supports
    (constraints/lowest.txt): MLflow 3 calls the name `name`, 2.x `artifact_path`; options an
    older MLflow does not take (skops_trusted_types: 2.x pickles) are left out, and the
    version is looked up where ModelInfo does not carry it (older 2.x)."""
    import inspect

    import mlflow.sklearn

    taken = inspect.signature(mlflow.sklearn.log_model).parameters
    key = "name" if "name" in taken else "artifact_path"
    kept = {k: v for k, v in options.items() if k in taken}
    info = mlflow.sklearn.log_model(
        model, **{key: "model"}, registered_model_name=registered_model_name, **kept
    )
    version = getattr(info, "registered_model_version", None)
    if version is None:
        found = mlflow.MlflowClient().search_model_versions(f"name='{registered_model_name}'")
        version = next(v.version for v in found if v.run_id == info.run_id)
    return str(version)


def error_lines(result: Result) -> list[str]:
    """The `mlgate: error:` lines of a CLI result's stderr (and never a traceback there)."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("mlgate: error:")]


def zip_garbled(data: bytes) -> bytes:
    """The zip archive with its first member's compressed bytes overwritten."""
    garbled = bytearray(data)
    at = garbled.index(b"PK\x03\x04")
    start = at + 30 + int.from_bytes(garbled[at + 26 : at + 28], "little")
    start += int.from_bytes(garbled[at + 28 : at + 30], "little")
    for index in range(start, start + 8):
        garbled[index] ^= 0xFF
    return bytes(garbled)


ZIP_ENCRYPTED = 0x1  # bit 0 of a member's general purpose flags


def zip_flagged(data: bytes, flag: int) -> bytes:
    """The zip archive with `flag` set in every local and central header's general purpose
    bits (ZIP_ENCRYPTED: every member claims to be encrypted)."""
    flagged = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = flagged.find(signature)
        while at != -1:
            flagged[at + offset] |= flag
            at = flagged.find(signature, at + 1)
    return bytes(flagged)
