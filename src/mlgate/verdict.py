"""The gate's output: one result per rule, rolled up into one verdict."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Outcome = Literal["pass", "fail", "inconclusive"]

VERDICT_SCHEMA_VERSION = "1.0"

# Severity order used to roll results up: one failing rule fails the gate, and an
# inconclusive rule blocks a pass (fail closed) without claiming a failure.
_RANK: dict[Outcome, int] = {"pass": 0, "inconclusive": 1, "fail": 2}


class RuleResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str
    rule: str = Field(description="Dotted rule id, e.g. 'tests.max_failures'.")
    outcome: Outcome
    reason: str = Field(description="One line a person can act on.")

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


EXIT_CODES: dict[Outcome, int] = {"pass": 0, "fail": 1, "inconclusive": 3}
