"""The registry of stages, by name. Adding a stage: write its modules, add one entry here.

Entries name classes by dotted path and nothing is imported until a stage is asked for, so
a command pays only for the stages its config uses (a stage module may import numpy & co.).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgate.stages.interface import Stage, StageConfig, StagePolicy


@dataclass(frozen=True, slots=True)
class StageEntry:
    """Where one stage's classes live, as "module:attribute"."""

    config: str
    policy: str
    stage: str


# The order is the order of the config's sections and of reports.
REGISTRY: dict[str, StageEntry] = {
    "tests": StageEntry(
        "mlgate.stages.tests_config:TestsConfig",
        "mlgate.stages.tests_config:TestsPolicy",
        "mlgate.stages.tests:TestsStage",
    ),
    "bench": StageEntry(
        "mlgate.stages.bench_config:BenchConfig",
        "mlgate.stages.bench_config:BenchPolicy",
        "mlgate.stages.bench:BenchStage",
    ),
    "load": StageEntry(
        "mlgate.stages.load.config:LoadConfig",
        "mlgate.stages.load.config:LoadPolicy",
        "mlgate.stages.load.stage:LoadStage",
    ),
    "scan": StageEntry(
        "mlgate.stages.scan.config:ScanConfig",
        "mlgate.stages.scan.config:ScanPolicy",
        "mlgate.stages.scan.stage:ScanStage",
    ),
    "drift": StageEntry(
        "mlgate.stages.drift.config:DriftConfig",
        "mlgate.stages.drift.config:DriftPolicy",
        "mlgate.stages.drift.stage:DriftStage",
    ),
    "probe": StageEntry(
        "mlgate.stages.probe.config:ProbeConfig",
        "mlgate.stages.probe.config:ProbePolicy",
        "mlgate.stages.probe.stage:ProbeStage",
    ),
    "quality": StageEntry(
        "mlgate.stages.quality.config:QualityConfig",
        "mlgate.stages.quality.config:QualityPolicy",
        "mlgate.stages.quality.stage:QualityStage",
    ),
}


def resolve(dotted: str) -> Any:
    """The object a "module:attribute" path names, importing its module."""
    module, _, attribute = dotted.partition(":")
    return getattr(importlib.import_module(module), attribute)


def config_model(name: str) -> type[StageConfig]:
    """The `stages.<name>` section's model (imports only the module that defines it)."""
    model: type[StageConfig] = resolve(REGISTRY[name].config)
    return model


def policy_model(name: str) -> type[StagePolicy]:
    """The `policy.<name>` section's model."""
    model: type[StagePolicy] = resolve(REGISTRY[name].policy)
    return model


class _Stages(Mapping[str, "Stage[Any, Any]"]):
    """Stage name -> the stage, imported and made on first use, then kept."""

    def __init__(self) -> None:
        self._made: dict[str, Stage[Any, Any]] = {}

    def __getitem__(self, name: str) -> Stage[Any, Any]:
        made = self._made.get(name)
        if made is None:
            made = self._made[name] = resolve(REGISTRY[name].stage)()
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)

    def __contains__(self, name: object) -> bool:
        return name in REGISTRY


STAGES: Mapping[str, Stage[Any, Any]] = _Stages()
