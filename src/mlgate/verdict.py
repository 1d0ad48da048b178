"""The gate's output: one result per rule, rolled up into one verdict."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# "warn" is a rule's outcome only: an inconclusive statistical rule its stage's policy lets
# through (policy.<stage>.on_inconclusive: warn). It never blocks, and a verdict is never "warn".
Outcome = Literal["pass", "warn", "fail", "inconclusive"]

VERDICT_SCHEMA_VERSION = "1.0"

# Severity order used to roll results up: one failing rule fails the gate, and an
# inconclusive rule blocks a pass (fail closed) without claiming a failure.
_RANK: dict[Outcome, int] = {"pass": 0, "warn": 1, "inconclusive": 2, "fail": 3}


class RuleResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    rule: str = Field(description="Dotted rule id, e.g. 'tests.max_failures'.")
    outcome: Outcome
    reason: str = Field(description="One line a person can act on.")
    statistical: bool = Field(
        default=False,
        description="Set by a stage on a rule whose inconclusive outcome is the data's (an "
        "interval straddles the tolerance), not missing or unusable evidence: only such a "
        "rule may be let through as a warning (policy.<stage>.on_inconclusive: warn).",
    )

    @field_validator("reason")
    @classmethod
    def _one_line(cls, value: str) -> str:
        # Reasons quote evidence, which may quote tool output: keep them to one line, so
        # nothing printed from them can start a line of its own (a workflow command).
        return " ".join(value.split())


class EvidenceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    path: str
    sha256: str | None
    status: str | None


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: str = VERDICT_SCHEMA_VERSION
    outcome: Outcome
    created_at: str
    commit: str | None = Field(default=None, description="The commit the evidence is about.")
    run: str | None = Field(default=None, description="Workflow run id and attempt.")
    config_digest: str
    policy_digest: str
    rules: list[RuleResult]
    evidence: list[EvidenceRef]

    @field_validator("outcome")
    @classmethod
    def _not_a_warning(cls, value: Outcome) -> Outcome:
        # Warnings are rules' outcomes; the verdict they roll up into passes (gate_outcome).
        if value == "warn":
            raise ValueError("a verdict is pass, fail or inconclusive, never warn")
        return value

    @property
    def warnings(self) -> list[RuleResult]:
        return [r for r in self.rules if r.outcome == "warn"]

    def stage_outcome(self, stage: str) -> Outcome:
        return worst(r.outcome for r in self.rules if r.stage == stage)

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(r.stage for r in self.rules))


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    result: Outcome = "pass"
    for outcome in outcomes:
        if _RANK[outcome] > _RANK[result]:
            result = outcome
    return result


def gate_outcome(outcomes: Iterable[Outcome]) -> Outcome:
    """The verdict's outcome: the worst rule's, where a warning does not block (a pass)."""
    rolled = worst(outcomes)
    return "pass" if rolled == "warn" else rolled


def let_through(result: RuleResult, on_inconclusive: Literal["fail", "warn"]) -> RuleResult:
    """`result` under its stage's `on_inconclusive`: with warn, a statistical rule the data
    did not decide becomes a warning; anything else (a failure, missing or broken evidence, an
    inconclusive rule that is not the data's) stays as it is."""
    if on_inconclusive != "warn" or result.outcome != "inconclusive" or not result.statistical:
        return result
    return result.model_copy(
        update={
            "outcome": "warn",
            "reason": f"{result.reason} (inconclusive: a warning under "
            f"policy.{result.stage}.on_inconclusive: warn)",
        }
    )


# A verdict's outcome: never "warn" (gate_outcome).
EXIT_CODES: dict[Outcome, int] = {"pass": 0, "fail": 1, "inconclusive": 3}
