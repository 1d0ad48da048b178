"""Waivers cannot be used to walk around the gate: an unaccountable waiver (blank owner or
reason) is refused, and a gate inside GitHub Actions cannot set its own date to revive an
expired one."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import mlgate as mlgate_package
from mlgate import waivers
from mlgate.errors import ConfigError
from mlgate.stages.scan.config import ScanPolicy
from tests.test_cli import ROOT, mlgate, one_line_error
from tests.test_scan_policy import evidence_of, rules, vuln, waiver


@pytest.fixture(autouse=True)
def _today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(waivers.TODAY_VARIABLE, "2026-11-25")


@pytest.mark.parametrize("field", ["owner", "reason", "id"])
@pytest.mark.parametrize("blank", [" ", " \t\n "])
def test_a_waiver_file_with_a_blank_owner_or_reason_is_refused(
    tmp_path: Path, field: str, blank: str
) -> None:
    path = tmp_path / "waivers.yml"
    entry = waiver(allow_critical=True) | {field: blank}
    path.write_text(json.dumps({"waivers": [entry]}, default=str))
    with pytest.raises(ConfigError) as err:
        waivers.load(path)
    assert str(err.value).startswith(f"{path}: waivers[0]")
    assert str(err.value).endswith(f".{field}: Value error, must not be blank")


def test_a_blank_waiver_recorded_in_evidence_waives_nothing() -> None:
    # Evidence is written by the run job; the gate re-validates the waivers it records.
    blank = waiver(owner=" ", reason=" ", allow_critical=True)
    evidence = evidence_of([vuln(severity="critical")], (blank,))
    result = rules(ScanPolicy(), evidence)
    assert result and all(outcome == "fail" for outcome, _ in result.values()), result


def test_owner_and_reason_are_kept_without_surrounding_blanks(tmp_path: Path) -> None:
    path = tmp_path / "waivers.yml"
    path.write_text(json.dumps({"waivers": [waiver(owner="  @ml-platform ")]}))
    (loaded,) = waivers.load(path)
    assert loaded.owner == "@ml-platform"


def test_the_date_override_is_refused_inside_github_actions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    with pytest.raises(ConfigError, match="MLGATE_TODAY is set, but a gate inside GitHub Actions"):
        waivers.today()


def test_a_gate_run_in_actions_with_mlgate_today_exits_2(tmp_path: Path) -> None:
    (tmp_path / "mlgate.yml").write_text("stages:\n  scan:\n    sources: [src]\n")
    # The mlgate this test imports (a worktree's src), not the one the virtualenv installed.
    code = os.pathsep.join([str(Path(mlgate_package.__file__).parents[1]), str(ROOT)])
    env = {"GITHUB_ACTIONS": "true", "MLGATE_TODAY": "2020-01-01", "PYTHONPATH": code}
    for command in ("run", "gate"):
        result = mlgate(command, cwd=tmp_path, env=env)
        assert result.returncode == 2, result.stderr
        assert "MLGATE_TODAY is set, but a gate inside GitHub Actions" in one_line_error(result)
