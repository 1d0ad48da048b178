"""The registry of stages. Adding a stage: write its module, add one line here."""

from __future__ import annotations

from typing import Any

from mlgate.stages.bench import BenchStage
from mlgate.stages.drift import DriftStage
from mlgate.stages.interface import Stage
from mlgate.stages.load import LoadStage
from mlgate.stages.probe import ProbeStage
from mlgate.stages.quality import QualityStage
from mlgate.stages.scan.stage import ScanStage
from mlgate.stages.tests import TestsStage

STAGES: dict[str, Stage[Any, Any]] = {
    stage.name: stage
    for stage in (
        TestsStage(),
        BenchStage(),
        LoadStage(),
        ScanStage(),
        DriftStage(),
        ProbeStage(),
        QualityStage(),
    )
}
