"""The actions and workflows are attack surface: linters report nothing, inputs go through env,
third-party actions are pinned, and every input is documented in docs/actions.md."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ACTIONS = sorted([ROOT / "action.yml", *(ROOT / "actions").glob("*/action.yml")])
WORKFLOWS = sorted(
    [*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / "workflows").glob("*.yml")]
)
ALL_FILES = ACTIONS + WORKFLOWS
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; scripts/setup.sh dev installs it")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_there_is_something_to_lint() -> None:
    assert len(ACTIONS) >= 4 and len(WORKFLOWS) >= 3


def test_zizmor_reports_nothing() -> None:
    # --pedantic: also undocumented permissions, anonymous jobs and the like, so they stay fixed.
    result = _run(_tool("zizmor"), "--offline", "--pedantic", *map(str, ALL_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


def _shellcheck() -> str:
    """shellcheck on PATH: without it actionlint skips every run: script without a word."""
    path = shutil.which("shellcheck")
    if path is None:
        pytest.fail("shellcheck is not on PATH; scripts/setup.sh dev installs it (apt-get)")
    return path


def test_actionlint_reports_nothing() -> None:
    _shellcheck()
    result = _run(_tool("actionlint"), "-no-color", *map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


# The checks actionlint leaves out of its shellcheck runs (rule_shellcheck.go): each misreads a
# masked expression or a variable a step's env: supplies.
_ACTIONLINT_EXCLUDES = "SC1091,SC2194,SC2050,SC2153,SC2154,SC2157,SC2043"


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_reports_nothing_in_action_scripts(path: Path) -> None:
    """actionlint lints workflows only: composite actions' run: scripts get the same check."""
    shellcheck = _shellcheck()
    for step in _steps(yaml.safe_load(path.read_text())):
        if "run" not in step:
            continue
        assert step.get("shell") == "bash", f"{path}: step {step.get('name')} is not bash"
        result = subprocess.run(
            [shellcheck, "--norc", "--shell", "bash", "-e", _ACTIONLINT_EXCLUDES, "-"],
            input="set -e\n" + step["run"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"{path}: step {step.get('name')}:\n{result.stdout}"


def test_shellcheck_reports_nothing_in_scripts() -> None:
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert scripts
    result = _run(_shellcheck(), "--norc", *map(str, scripts))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("schema", "files"),
    [("vendor.github-workflows", WORKFLOWS), ("vendor.github-actions", ACTIONS)],
    ids=["workflows", "actions"],
)
def test_check_jsonschema_reports_nothing(schema: str, files: list[Path]) -> None:
    result = _run(_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr


def _steps(document: dict) -> list[dict]:
    if "runs" in document:
        return list(document["runs"].get("steps", []))
    return [step for job in document.get("jobs", {}).values() for step in job.get("steps", [])]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_expressions_inside_run_scripts(path: Path) -> None:
    for step in _steps(yaml.safe_load(path.read_text())):
        assert "${{" not in step.get("run", ""), (
            f"{path}: step {step.get('name')} expands an expression in run:"
        )


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_third_party_actions_are_pinned_by_sha(path: Path) -> None:
    for step in _steps(yaml.safe_load(path.read_text())):
        uses = step.get("uses")
        if uses is None or uses.startswith(("./", "$/")):
            continue
        assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{path}: {uses} is not pinned"


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_input_and_output_is_described(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    assert document.get("description"), f"{path}: no description"
    for kind in ("inputs", "outputs"):
        for name, spec in (document.get(kind) or {}).items():
            assert spec.get("description"), f"{path}: {kind[:-1]} {name} has no description"


def _docs_section(action: Path) -> str:
    page = (ROOT / "docs" / "actions.md").read_text()
    heading = "`" + ("." if action.parent == ROOT else str(action.parent.relative_to(ROOT))) + "`"
    match = re.search(rf"^## {re.escape(heading)}.*?$(.*?)(?=^## |\Z)", page, re.M | re.S)
    assert match, f"docs/actions.md has no '## {heading}' section"
    return match.group(1)


@pytest.mark.parametrize("path", ACTIONS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_input_and_output_is_in_the_docs(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    section = _docs_section(path)
    documented = set(re.findall(r"^\| `([\w-]+)` \|", section, re.M))
    for kind in ("inputs", "outputs"):
        for name in document.get(kind) or {}:
            assert name in documented, (
                f"docs/actions.md section of {path.parent.name}: {kind[:-1]} {name} missing"
            )
    extra = documented - set(document.get("inputs") or {}) - set(document.get("outputs") or {})
    assert not extra, f"docs/actions.md documents {sorted(extra)} that {path} does not have"
