"""The model card: description from the config, results from real evidence, lineage from a
bundle; everything escaped."""

from __future__ import annotations

import json
from pathlib import Path

from mlgate import config
from mlgate import evidence as ev
from mlgate.report import card
from mlgate.stages.interface import RunContext
from mlgate.stages.tests import TestsStage
from mlgate.stages.tests_config import TestsConfig
from tests.helpers import junit_xml


def test_card_from_config_evidence_and_bundle(tmp_path: Path) -> None:
    junit_xml(tmp_path / "junit.xml", passed=5, failed=1)
    evidence = TestsStage().run(
        TestsConfig(junit=["junit.xml"], working_directory=str(tmp_path)),
        RunContext(tmp_path / "ev", None),
    )
    ev.write(evidence, tmp_path / "ev")
    cfg = config.parse(
        {
            "stages": {"tests": {}},
            "card": {
                "model": "fraud <script>alert(1)</script>",
                "purpose": "Score card transactions; ping @octocat",
                "owners": ["ml-platform"],
                "limitations": ["Not for accounts younger than 30 days"],
            },
        }
    )
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(
        json.dumps({"model": {"uri": "models:/fraud/3", "run_id": "r1", "digest": "sha256:ab"}})
    )
    content = card.build(cfg, tmp_path / "ev", bundle_file)
    md_path, html_path = card.write(content, tmp_path / "out")
    md, page = md_path.read_text(), html_path.read_text()
    assert "<script" not in md and "<script" not in page
    assert "@octocat" not in md and "Not for accounts younger than 30 days" in md
    assert "1 failed" in md and "| Tests |" in md
    assert "models:/fraud/3" in md and "sha256:ab" in page
    assert content["lineage"]["bundle"] == ev.sha256_file(bundle_file)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page


def test_card_without_bundle_or_description_still_lists_the_evidence(tmp_path: Path) -> None:
    cfg = config.parse({"stages": {"tests": {}}})
    content = card.build(cfg, tmp_path / "nothing", tmp_path / "no-bundle.json")
    assert content["stages"] == [] and content["lineage"] == {"git_sha": None}
    assert "# Model card: Model" in card.markdown(content)


def test_the_report_points_at_the_card_when_there_is_one(tmp_path: Path) -> None:
    from mlgate import policy
    from mlgate.report import markdown, model

    junit_xml(tmp_path / "junit.xml", passed=2)
    evidence_dir = tmp_path / ".mlgate" / "evidence"
    ev.write(
        TestsStage().run(
            TestsConfig(junit=["junit.xml"], working_directory=str(tmp_path)),
            RunContext(evidence_dir, None),
        ),
        evidence_dir,
    )
    cfg = config.parse({"stages": {"tests": {}}})
    policy.write(policy.evaluate(cfg, evidence_dir), tmp_path / "verdict.json")
    report = model.load(cfg, tmp_path / "verdict.json", evidence_dir)
    assert "Model card" not in markdown.full(report, markdown.COMMENT_LIMIT)
    card.write(card.build(cfg, evidence_dir), tmp_path / ".mlgate")
    assert "Model card: `model-card.html` in the `mlgate-report` artifact." in markdown.full(
        report, markdown.COMMENT_LIMIT
    )
