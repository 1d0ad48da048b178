"""The scan stage end to end through the CLI: real bandit, pip-audit (offline, vendored PyPA
advisories) and picklescan over a project made here; one policy, waivers, SARIF, fail closed."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from mlgate import evidence as ev
from tests.test_cli import mlgate, one_line_error

DATA = Path(__file__).parent / "data"

VULNERABLE = """\
import subprocess


def run(command: str) -> int:
    return subprocess.call(command, shell=True)
"""


class Payload:
    """Pickling calls __reduce__, which only returns the call: nothing runs here."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


def project(tmp_path: Path, waivers: str | None = None, extra: str = "") -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(VULNERABLE)
    shutil.copy(DATA / "scan" / "requirements-vulnerable.txt", tmp_path / "requirements.txt")
    shutil.copytree(DATA / "advisories", tmp_path / "advisories")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.pkl").write_bytes(pickle.dumps(Payload()))
    (tmp_path / "mlgate.yml").write_text(
        "stages:\n"
        "  scan:\n"
        "    sources: [src]\n"
        "    requirements: [requirements.txt]\n"
        "    models: [model]\n"
        "    osv_db: advisories\n" + extra
    )
    if waivers is not None:
        (tmp_path / ".mlgate").mkdir(exist_ok=True)
        (tmp_path / ".mlgate" / "waivers.yml").write_text(waivers)
    return tmp_path


def scan_evidence(root: Path) -> ev.Evidence:
    return ev.read(root / ".mlgate" / "evidence" / "scan.json")


def test_one_policy_over_every_scanner(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = mlgate("run", cwd=root, env={"MLGATE_TODAY": "2026-11-25"})
    assert result.returncode == 0, result.stderr
    evidence = scan_evidence(root)
    assert evidence.status == "passed" and evidence.data["scanners"] == [
        "bandit",
        "pip-audit",
        "picklescan",
        "fickling",
    ]
    sources = {f.source for f in evidence.findings}
    assert sources == {"code", "dependencies", "model"}
    jinja = [f for f in evidence.findings if f.package == "jinja2"]
    assert jinja and all(f.id and f.aliases and f.fixed_versions for f in jinja)
    assert any(f.id == "B602" and f.path == "src/app.py" and f.line == 5 for f in evidence.findings)
    assert any(f.severity == "critical" and "system" in f.id for f in evidence.findings)
    # Offline data is pinned in the evidence, SARIF is written per scanner.
    assert evidence.data["osv_db"]["records"] > 0
    assert evidence.data["osv_db"]["digest"].startswith("sha256:")
    sarif_files = evidence.data["sarif"]
    assert sorted(sarif_files) == [
        "scan/bandit.sarif",
        "scan/fickling.sarif",
        "scan/picklescan.sarif",
        "scan/pip-audit.sarif",
    ]
    for name in sarif_files:
        log = json.loads((root / ".mlgate" / "evidence" / name).read_text())
        (run,) = log["runs"]
        assert run["results"] and all(r["locations"] for r in run["results"])
    gate = mlgate("gate", cwd=root, env={"MLGATE_TODAY": "2026-11-25"})
    assert gate.returncode == 1, gate.stderr
    assert "fail  scan: " in gate.stderr and "model critical" in gate.stderr


def test_waivers_waive_until_they_expire_and_then_fail_naming_the_owner(tmp_path: Path) -> None:
    waivers = "waivers:\n" + "".join(
        f"  - id: {rule}\n"
        f"    scope: {{{scope}}}\n"
        "    reason: accepted for the demo\n"
        "    owner: '@ml-platform'\n"
        "    expires: 2026-12-31\n"
        "    allow_critical: true\n"
        for rule, scope in (
            ("B602", "path: 'src/*.py'"),
            ("pickle:posix.system", "path: 'model/*'"),
            ("fickling:posix.system", "path: 'model/*'"),  # each engine's finding, waived
            ("CVE-2019-10906", "package: jinja2"),
        )
    )
    root = project(
        tmp_path, waivers, extra="policy:\n  scan:\n    fail_on: {dependencies: never}\n"
    )
    assert mlgate("run", cwd=root, env={"MLGATE_TODAY": "2026-11-25"}).returncode == 0
    waived = [f for f in scan_evidence(root).findings if f.waived_by]
    assert {f.waived_by["owner"] for f in waived if f.waived_by} == {"@ml-platform"}
    assert mlgate("gate", cwd=root, env={"MLGATE_TODAY": "2026-12-31"}).returncode == 0
    late = mlgate("gate", cwd=root, env={"MLGATE_TODAY": "2027-01-01"})
    assert late.returncode == 1
    assert "waiver B602 (owner @ml-platform) expired on 2026-12-31" in late.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda root: (root / "requirements.txt").unlink(), "requirements file requirements.txt"),
        (
            lambda root: (root / "requirements.txt").write_text("jinja2 === = 2\n"),
            "requirements.txt",
        ),
        (
            lambda root: (root / "advisories" / "vulns" / "jinja2" / "bad.yaml").write_text(
                "id: [unclosed\n"
            ),
            "bad.yaml",
        ),
        (
            lambda root: (
                (root / ".mlgate").mkdir()
                or (root / ".mlgate" / "waivers.yml").write_text("waivers:\n  - id: X\n")
            ),
            "waivers.yml",
        ),
    ],
    ids=["missing-requirements", "bad-requirements", "corrupt-osv-db", "bad-waivers"],
)
def test_bad_input_is_a_stage_error_and_the_gate_fails_closed(
    tmp_path: Path, change: object, message: str
) -> None:
    root = project(tmp_path)
    change(root)  # type: ignore[operator]
    result = mlgate("scan", cwd=root)
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    evidence = scan_evidence(root)
    assert evidence.status == "error" and message in (evidence.reason or "")
    assert "\n" not in (evidence.reason or "")
    gate = mlgate("gate", cwd=root)
    assert gate.returncode == 1


def test_a_named_scanner_without_a_target_is_an_error(tmp_path: Path) -> None:
    root = project(tmp_path, extra="    scanners: [bandit, image]\n")
    result = mlgate("scan", cwd=root)
    assert result.returncode == 4
    assert "scanner image is configured but has nothing to scan" in scan_evidence(root).reason


def test_command_line_targets_replace_the_configs(tmp_path: Path) -> None:
    root = project(tmp_path)
    result = mlgate("scan", "--source", "src", cwd=root)
    assert result.returncode == 0, result.stderr
    assert scan_evidence(root).data["scanners"] == ["bandit"]
    result = mlgate("scan", "--image", "x", "--dockerfile", "Dockerfile", cwd=root)
    assert result.returncode == 2 and "not both" in one_line_error(result)


def test_new_only_fails_on_what_the_base_branch_did_not_have(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "mlgate.yml").write_text(
        "stages:\n  scan:\n    sources: [src]\n    baseline: base/scan.json\n"
        "policy:\n  scan:\n    new_only: true\n"
    )
    # No baseline file yet: fail closed, naming it.
    assert mlgate("scan", cwd=root).returncode == 4
    assert "base/scan.json" in (scan_evidence(root).reason or "")
    # The base branch's evidence: the same code, so nothing is new.
    (root / "base").mkdir()
    (root / "mlgate.yml").write_text("stages:\n  scan:\n    sources: [src]\n")
    assert mlgate("scan", cwd=root).returncode == 0
    shutil.copy(root / ".mlgate" / "evidence" / "scan.json", root / "base" / "scan.json")
    (root / "mlgate.yml").write_text(
        "stages:\n  scan:\n    sources: [src]\n    baseline: base/scan.json\n"
        "policy:\n  scan:\n    new_only: true\n"
    )
    assert mlgate("scan", cwd=root).returncode == 0
    assert mlgate("gate", cwd=root).returncode == 0
    # Code moved down two lines is not new; another shell call is.
    (root / "src" / "app.py").write_text(
        "\n\n" + VULNERABLE + "\n\ndef spawn(x: str) -> int:\n"
        "    return subprocess.Popen(x, shell=True).wait()\n"
    )
    assert mlgate("scan", cwd=root).returncode == 0
    gate = mlgate("gate", cwd=root)
    assert gate.returncode == 1 and "1 new finding" in gate.stderr, gate.stderr
