"""policy.<stage>.on_inconclusive: fail (default) blocks on a rule the data could not decide;
warn lets it through as a warning that every report shows. Only a statistical rule's indecision
is let through: failures, missing, errored or unjudgeable evidence block either way.

Through `mlgate gate` as a user runs it (exit codes, stderr, the verdict file), on the evidence a
real quality run wrote (tests/data/evidence/quality.json)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from mlgate import config, policy
from mlgate.github import checks, publish, statuses
from mlgate.report import html, markdown, model, terminal
from mlgate.verdict import Outcome, RuleResult, gate_outcome, let_through
from tests.helpers import mlgate_in_process

SEED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "evidence" / "quality.json").read_text()
)
STAGES = {"quality": {"candidate": "models:/churn@candidate", "data": "d.csv", "target": "y"}}
# accuracy alone, at a tolerance inside the seed's interval (-0.197 to -0.121): the data cannot
# tell whether the drop is within 0.15.
UNDECIDED = {
    "max_drop": {"accuracy": 0.15, "f1_macro": None, "roc_auc": None},
    "max_relative_drop": {"log_loss": None},
}


def gate(
    tmp_path: Path, quality_policy: dict[str, Any], document: dict[str, Any] | None = None
) -> tuple[int, str, dict[str, Any]]:
    """`mlgate gate` over the quality evidence: exit code, stderr, the verdict written."""
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir(exist_ok=True)
    (evidence_dir / "quality.json").write_text(json.dumps(document or SEED))
    config_file = tmp_path / "mlgate.yml"
    config_file.write_text(
        json.dumps({"stages": STAGES, "policy": {"quality": quality_policy}})  # YAML 1.2
    )
    verdict_file = tmp_path / "verdict.json"
    result = mlgate_in_process(
        "gate",
        "--config",
        str(config_file),
        "--evidence-dir",
        str(evidence_dir),
        "--output",
        str(verdict_file),
    )
    verdict = json.loads(verdict_file.read_text()) if verdict_file.exists() else {}
    return result.exit_code, result.stderr, verdict


def test_by_default_an_undecided_rule_blocks_the_gate(tmp_path: Path) -> None:
    code, stderr, verdict = gate(tmp_path, UNDECIDED)
    assert code == 3, stderr
    assert verdict["outcome"] == "inconclusive"
    (rule,) = [r for r in verdict["rules"] if r["rule"] == "quality.max_drop"]
    assert rule["outcome"] == "inconclusive" and rule["statistical"] is True
    # Said explicitly, the same.
    assert gate(tmp_path, UNDECIDED | {"on_inconclusive": "fail"})[0] == 3


def test_warn_lets_an_undecided_rule_through_as_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    code, stderr, verdict = gate(tmp_path, UNDECIDED | {"on_inconclusive": "warn"})
    assert code == 0, stderr
    assert verdict["outcome"] == "pass"
    assert output.read_text() == "verdict=pass\n"
    (rule,) = [r for r in verdict["rules"] if r["rule"] == "quality.max_drop"]
    assert rule["outcome"] == "warn"
    assert rule["reason"].endswith(
        "(inconclusive: a warning under policy.quality.on_inconclusive: warn)"
    )
    assert "roughly" in rule["reason"] and "rows would decide it" in rule["reason"]
    # An annotation on the run, its title's ':' escaped as the runner expects.
    assert "::warning title=mlgate quality.max_drop::quality: accuracy 0.5840" in stderr
    assert "mlgate: verdict: pass with 1 warning(s)" in stderr


def test_warn_never_lets_a_failure_through(tmp_path: Path) -> None:
    # The seed's candidate is far worse on f1_macro: that fails whatever on_inconclusive says.
    code, _, verdict = gate(
        tmp_path, UNDECIDED | {"on_inconclusive": "warn", "max_drop": {"accuracy": 0.15}}
    )
    assert code == 1
    outcomes = {r["reason"].split()[1]: r["outcome"] for r in verdict["rules"]}
    assert outcomes["accuracy"] == "warn" and outcomes["f1_macro"] == "fail"


def test_warn_never_lets_missing_data_through(tmp_path: Path) -> None:
    # No interval: nothing measured decides it; not the data's indecision.
    document = copy.deepcopy(SEED)
    document["data"]["metrics"][0]["ci"] = None
    code, _, verdict = gate(tmp_path, UNDECIDED | {"on_inconclusive": "warn"}, document)
    assert code == 3
    (rule,) = [r for r in verdict["rules"] if r["rule"] == "quality.max_drop"]
    assert rule["outcome"] == "inconclusive" and "no interval" in rule["reason"]


@pytest.mark.parametrize("broken", ["error", "missing", "unjudgeable"])
def test_warn_never_lets_broken_evidence_through(tmp_path: Path, broken: str) -> None:
    document: dict[str, Any] | None = copy.deepcopy(SEED)
    assert document is not None
    if broken == "error":
        document |= {"status": "error", "reason": "the model would not load"}
    elif broken == "unjudgeable":
        document["data"]["confidence"] = None
    code, _, verdict = gate(tmp_path, UNDECIDED | {"on_inconclusive": "warn"}, document)
    if broken == "missing":
        (tmp_path / "evidence" / "quality.json").unlink()
        code, _, verdict = gate_again(tmp_path)
    assert code == 1
    assert verdict["outcome"] == "fail"
    assert not any(r["outcome"] == "warn" for r in verdict["rules"])


def gate_again(tmp_path: Path) -> tuple[int, str, dict[str, Any]]:
    result = mlgate_in_process(
        "gate",
        "--config",
        str(tmp_path / "mlgate.yml"),
        "--evidence-dir",
        str(tmp_path / "evidence"),
        "--output",
        str(tmp_path / "verdict.json"),
    )
    return result.exit_code, result.stderr, json.loads((tmp_path / "verdict.json").read_text())


@pytest.mark.parametrize("value", ["maybe", "WARN", True, None])
def test_a_bad_value_is_one_line_and_exit_2(tmp_path: Path, value: object) -> None:
    code, stderr, verdict = gate(tmp_path, {"on_inconclusive": value})
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert "policy.quality.on_inconclusive" in line and "Traceback" not in stderr
    assert verdict == {}


def test_every_stage_takes_it() -> None:
    from mlgate.stages import STAGES as ALL

    parsed = config.parse(
        {"policy": {name: {"on_inconclusive": "warn"} for name in ALL}}  # type: ignore[misc]
    )
    assert {parsed.stage_policy(name).on_inconclusive for name in ALL} == {"warn"}
    assert config.parse({}).stage_policy("load").on_inconclusive == "fail"


def test_a_warning_is_shown_as_one_in_every_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = config.parse(
        {"stages": STAGES, "policy": {"quality": UNDECIDED | {"on_inconclusive": "warn"}}}
    )
    (tmp_path / "evidence").mkdir()
    (tmp_path / "evidence" / "quality.json").write_text(json.dumps(SEED))
    verdict = policy.evaluate(cfg, tmp_path / "evidence")
    policy.write(verdict, tmp_path / "verdict.json")
    report = model.load(cfg, tmp_path / "verdict.json", tmp_path / "evidence")
    # The comment, check text and job summary: the headline and the rule's row.
    assert markdown.headline(report).startswith("✅ **mlgate: passed with 1 warning**")
    table = markdown.rules_table(report, ["quality"])
    assert "| 🟡 warning | quality | `quality.max_drop` |" in table
    # Check runs: the stage's is neutral (not blocking, not a success), the gate's passes.
    outputs = {o.name: o for o in publish.outputs(report, "mlgate")}
    assert outputs["mlgate/quality"].outcome == "warn"
    assert checks.conclusion("warn", None) == "neutral"
    assert outputs["mlgate"].outcome == "pass"
    assert outputs["mlgate"].title == "mlgate: passed with 1 warning"
    # A commit status has no neutral state: success, with the title saying warning.
    assert statuses._STATES["warn"] == "success"
    # The HTML report and the terminal.
    page = html.render(report)
    assert "<title>mlgate: passed with 1 warning</title>" in page
    assert "<span class='badge warn'>warning</span>" in page
    terminal.render(report)
    printed = capsys.readouterr().out
    assert "PASSED WITH 1 WARNING" in printed and "warning" in printed


def test_let_through_and_the_roll_up() -> None:
    def rule(outcome: Outcome, statistical: bool) -> RuleResult:
        return RuleResult(
            stage="load", rule="load.x", outcome=outcome, reason="r", statistical=statistical
        )

    assert let_through(rule("inconclusive", True), "warn").outcome == "warn"
    assert let_through(rule("inconclusive", True), "fail").outcome == "inconclusive"
    assert let_through(rule("inconclusive", False), "warn").outcome == "inconclusive"
    assert let_through(rule("fail", True), "warn").outcome == "fail"
    assert gate_outcome(["pass", "warn"]) == "pass"
    assert gate_outcome(["warn", "inconclusive"]) == "inconclusive"
    assert gate_outcome(["warn", "fail"]) == "fail"
    with pytest.raises(ValueError, match="never warn"):
        policy.Verdict.model_validate(
            {
                "outcome": "warn",
                "created_at": "2026-01-01T00:00:00+00:00",
                "config_digest": "x",
                "policy_digest": "y",
                "rules": [],
                "evidence": [],
            }
        )


def test_a_pass_with_warnings_promotes_and_anything_else_blocks() -> None:
    # The promoting checkout re-judges the bundle: a rule its policy lets through as a warning
    # must not refuse the promotion its verdict allows (it did on the first merge of this work).
    from mlgate.promotion_evidence import blocking

    def rule(outcome: Outcome) -> RuleResult:
        return RuleResult(stage="quality", rule="quality.max_drop", outcome=outcome, reason="r")

    assert blocking([rule("pass"), rule("warn")]) == []
    assert [r.outcome for r in blocking([rule("warn"), rule("inconclusive"), rule("fail")])] == [
        "inconclusive",
        "fail",
    ]
