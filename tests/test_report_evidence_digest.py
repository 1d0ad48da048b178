"""`mlgate report` renders only the evidence the gate judged: compared by stage and file digest,
so another spelling of the evidence directory (relative or absolute, a trailing slash, ./, a
symlink) cannot slip changed, added or removed evidence past it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import stage_evidence
from tests.test_bad_evidence import run_mlgate, seed


@pytest.fixture
def judged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose tests and load evidence the gate judged (both pass), run from its root."""
    monkeypatch.chdir(tmp_path)
    evidence = tmp_path / ".mlgate" / "evidence"
    evidence.mkdir(parents=True)
    (evidence / "tests.json").write_text(stage_evidence(passed=3).model_dump_json())
    (evidence / "load.json").write_text(json.dumps(seed("load")))
    (tmp_path / "mlgate.yml").write_text(
        'stages: {tests: {}, load: {url: "http://127.0.0.1:1", payload: p.jsonl}}\n'
    )
    (tmp_path / "link").symlink_to(tmp_path / ".mlgate")
    code, err = run_mlgate("gate", "--evidence-dir", ".mlgate/evidence")
    assert code == 0, err
    return evidence


def report(evidence_dir: str) -> tuple[int, str]:
    return run_mlgate("report", "--local", "--evidence-dir", evidence_dir)


SPELLINGS = [
    ".mlgate/evidence",
    "./.mlgate/evidence",
    ".mlgate/evidence/",
    ".mlgate//evidence",
    "link/evidence",
    "{root}/.mlgate/evidence",
    "{root}/link/evidence/",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_unchanged_evidence_reports_however_its_directory_is_spelled(
    judged: Path, spelling: str
) -> None:
    code, err = report(spelling.format(root=judged.parents[1]))
    assert code == 0, err


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_changed_evidence_is_refused_however_its_directory_is_spelled(
    judged: Path, spelling: str
) -> None:
    tests = judged / "tests.json"
    tests.write_text(tests.read_text().replace('"failed":0', '"failed":2'))
    code, err = report(spelling.format(root=judged.parents[1]))
    assert code == 2, err
    assert (
        err.startswith("mlgate: error: ") and "tests.json: changed since the gate judged it" in err
    )


def test_added_or_removed_evidence_is_refused(judged: Path) -> None:
    (judged / "drift.json").write_text(
        stage_evidence().model_copy(update={"stage": "drift"}).model_dump_json()
    )
    code, err = report("./.mlgate/evidence")
    assert code == 2 and "drift.json: evidence the gate did not judge" in err, err
    (judged / "drift.json").unlink()
    (judged / "load.json").unlink()
    code, err = report("./.mlgate/evidence")
    assert code == 2 and "evidence the gate judged is gone or unreadable (load)" in err, err
