"""Hostile inputs to promotion's trust anchors: a hand-crafted bundle.json is refused in one
line (never a traceback), and a ledger whose head tag was deleted is reported as broken."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlgate import bundle, config
from mlgate.registry import Ledger, Registry
from mlgate.registry.ledger_chain import HEAD_TAG, LedgerBroken
from tests.helpers import mlgate_in_process


def _document() -> dict[str, Any]:
    """A bundle document whose every key verify reads is of the right type."""
    cfg = config.parse({})
    return {
        "schema": bundle.SCHEMA,
        "model": {
            "name": "m",
            "version": "1",
            "uri": "models:/m/1",
            "run_id": None,
            "source": "x",
            "files": [{"path": "model.pkl", "sha256": "0" * 64, "size": 1}],
            "digest": "sha256:" + "0" * 64,
        },
        "source": {"git_sha": None},
        "data": [],
        "config": {
            "digest": cfg.digest,
            "policy_digest": cfg.policy_digest,
            "document": cfg.model_dump(mode="json", by_alias=True),
        },
        "verdict": {
            "outcome": "pass",
            "created_at": "2026-01-01T00:00:00+00:00",
            "config_digest": cfg.digest,
            "policy_digest": cfg.policy_digest,
            "rules": [],
            "evidence": [],
        },
        "evidence": [],
        "tools": {},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        inner = document
        for key in keys[:-1]:
            inner = inner[key]
        inner[keys[-1]] = value

    return change


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        inner = document
        for key in keys[:-1]:
            inner = inner[key]
        del inner[keys[-1]]

    return change


CRAFTED = {
    "evidence entry not an object": (_set("evidence", value=[1]), "evidence.0"),
    "evidence entry without sha256": (
        _set("evidence", value=[{"stage": "tests", "file": "tests.json"}]),
        "evidence.0.sha256",
    ),
    "evidence artifacts not strings": (
        _set(
            "evidence",
            value=[{"file": "tests.json", "sha256": "0", "artifacts": [["x"]]}],
        ),
        "evidence.0.artifacts.0",
    ),
    "model not an object": (_set("model", value="models:/m/1"), "model"),
    "model version a number": (_set("model", "version", value=1), "model.version"),
    "model without digest": (_drop("model", "digest"), "model.digest"),
    "model file not an object": (_set("model", "files", value=["model.pkl"]), "model.files.0"),
    "config not an object": (_set("config", value=[]), "config"),
    "config document not a config": (
        _set("config", "document", value={"stages": 7}),
        "config",
    ),
    "verdict not a verdict": (_set("verdict", value={"outcome": "maybe"}), "verdict"),
    "source not an object": (_set("source", value="x"), "source"),
    "created_at not a time": (_set("created_at", value="yesterday"), "created_at"),
    "created_at without timezone": (
        _set("created_at", value="2026-01-01T00:00:00"),
        "created_at",
    ),
    "created_at a number": (_set("created_at", value=0), "created_at"),
}


def _write(directory: Path, document: dict[str, Any]) -> Path:
    (directory / bundle.EVIDENCE_DIR).mkdir(parents=True)
    (directory / bundle.BUNDLE_FILE).write_bytes(bundle.canonical(document))
    return directory


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_bundle_is_one_line_refusal(case: str, tmp_path: Path) -> None:
    change, names = CRAFTED[case]
    document = _document()
    change(document)
    directory = _write(tmp_path / "bundle", document)
    result = mlgate_in_process("bundle", "verify", str(directory), "--offline")
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("mlgate: bundle does not verify: ")
    assert names in lines[0]


def test_evidence_entry_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    document = _document()
    document["evidence"] = [{"stage": "tests", "file": "tests.json", "sha256": "0"}]
    directory = _write(tmp_path / "bundle", document)
    (directory / bundle.EVIDENCE_DIR / "tests.json").mkdir()
    result = mlgate_in_process("bundle", "verify", str(directory), "--offline")
    assert result.exit_code == 1, (result.exit_code, result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "tests.json: cannot read" in result.stderr


def test_created_at_never_raises_and_an_unreadable_one_is_the_oldest() -> None:
    for value in ("yesterday", None, 5, "2026-01-01T00:00:00"):
        verified = bundle.Verified(document={"created_at": value}, digest="", outcome="pass")
        assert verified.created_at.year == 1
        assert verified.created_at.tzinfo is not None
    fine = bundle.Verified(
        document={"created_at": "2026-01-01T00:00:00+00:00"}, digest="", outcome="pass"
    )
    assert fine.created_at.year == 2026


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return Registry.connect(default_dir=tmp_path / ".mlgate")


def test_ledger_without_head_tag_and_last_record_is_broken(registry: Registry) -> None:
    from mlflow import MlflowClient

    name = f"chain-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(registry.uri, registry.uri)
    client.create_registered_model(name)
    ledger = Ledger(registry, name)
    for actor in ("alice", "bob", "carol"):
        ledger.append({"kind": "promotion", "actor": actor})
    assert [r["actor"] for r in ledger.records()] == ["alice", "bob", "carol"]
    # Someone with tag write access removes the head, then the last record: no gap is left.
    client.delete_registered_model_tag(name, HEAD_TAG)
    client.delete_registered_model_tag(name, "mlgate.ledger.000003")
    with pytest.raises(LedgerBroken, match="record 2: the head tag is missing") as err:
        ledger.records()
    assert "\n" not in str(err.value)
    with pytest.raises(LedgerBroken):  # and nothing is appended on top of it
        ledger.append({"kind": "promotion", "actor": "mallory"})
    assert len(ledger.read().records) == 2


def test_legacy_ledger_without_head_is_still_whole(registry: Registry) -> None:
    from mlflow import MlflowClient

    name = f"legacy-{uuid.uuid4().hex[:8]}"
    MlflowClient(registry.uri, registry.uri).create_registered_model(name)
    registry.set_model_tag(name, "mlgate.ledger.000001", json.dumps({"actor": "alice"}))
    report = Ledger(registry, name).read()
    assert (report.legacy, report.breaks) == (1, [])
