"""What a stage is: its config and policy sections, how it runs, and how its evidence is judged.

A new stage is one module implementing `Stage` plus one entry in `mlgate.stages.REGISTRY`;
config, policy, the gate and the reports pick it up from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Generic, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from mlgate.evidence import Evidence
from mlgate.verdict import RuleResult

if TYPE_CHECKING:
    from mlgate.report.comparison import Comparison


class StageConfig(BaseModel):
    """Common keys of every `stages.<name>` section."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    timeout: float = Field(default=3600, gt=0, description="Seconds before the stage is an error.")
    working_directory: str = Field(default=".", description="Where the stage's commands run.")


class StagePolicy(BaseModel):
    """Common keys of every `policy.<name>` section."""

    model_config = ConfigDict(extra="forbid")

    on_inconclusive: Literal["fail", "warn"] = Field(
        default="fail",
        description="A rule the data could not decide (an interval straddling its tolerance): "
        "fail blocks the gate (verdict inconclusive, exit 3); warn lets it through as a warning "
        "shown in every report. Missing, broken or errored evidence blocks either way.",
    )


@dataclass(frozen=True)
class RunContext:
    """What every stage run needs besides its own config section."""

    evidence_dir: Path
    config_digest: str | None
    # What a stage that loads a model consults first (stages.model_guard): the scan stage's
    # config when one is configured, and the scan policy (None: its defaults).
    scan_config: StageConfig | None = None
    scan_policy: StagePolicy | None = None
    # The running stage's own policy section (None: its defaults), for a stage that decides
    # while it runs (the load stage's rounds: auto stops once its gate rule is decided).
    stage_policy: StagePolicy | None = None


ConfigT = TypeVar("ConfigT", bound=StageConfig)
PolicyT = TypeVar("PolicyT", bound=StagePolicy)


class Stage(ABC, Generic[ConfigT, PolicyT]):
    name: ClassVar[str]
    title: ClassVar[str]
    # The models a stage is generic in (`class X(Stage[XConfig, XPolicy])`), set from there.
    config_model: ClassVar[type[StageConfig]]
    policy_model: ClassVar[type[StagePolicy]]
    # Package extras (pyproject) the stage needs in mlgate's own environment.
    extras: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for base in cls.__dict__.get("__orig_bases__", ()):
            if get_origin(base) is Stage:
                cls.config_model, cls.policy_model = get_args(base)

    def extras_for(self, config: ConfigT) -> tuple[str, ...]:
        """The extras this configuration of the stage needs (more than `extras` where what it
        starts depends on the config)."""
        return self.extras

    @abstractmethod
    def run(self, config: ConfigT, context: RunContext) -> Evidence:
        """Run the stage and return its evidence; bad input is `error` evidence, not a raise."""

    @abstractmethod
    def evaluate(self, policy: PolicyT, evidence: Evidence) -> list[RuleResult]:
        """Judge evidence whose status is passed or failed; one result per rule."""

    @abstractmethod
    def summary(self, evidence: Evidence) -> str:
        """One line for reports, e.g. '120 tests: 118 passed, 2 failed'."""

    def report_markdown(self, evidence: Evidence) -> str:
        """More for the PR comment, check and job summary (tables, charts); markdown whose
        untrusted parts the stage has escaped. None by default."""
        return ""

    def report_html(self, evidence: Evidence) -> str:
        """The same for the HTML report: an HTML fragment, escaped, no scripts."""
        return ""

    def comparisons(self, evidence: Evidence, policy: PolicyT) -> list[Comparison]:
        """The candidate against its champion or baseline, judged under `policy` (a table with
        a decision per row, intervals against the tolerance), which every report (terminal,
        markdown, HTML) shows before `report_markdown`'s part. None by default."""
        return []
