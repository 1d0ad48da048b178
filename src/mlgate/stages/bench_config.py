"""The bench stage's configuration and policy: which benchmark JSON to read, and the ceilings."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from mlgate.fields import Command, Count, Paths
from mlgate.stages.interface import StageConfig, StagePolicy


class BenchConfig(StageConfig):
    command: Command | None = Field(
        default=None,
        description="Benchmark command run before the JSON is read (argv list or one string, "
        "split like a shell would, without a shell), e.g. "
        "'python -m pytest benchmarks --benchmark-json=.mlgate/benchmark.json'.",
    )
    # `json` is the config key; the attribute has another name because it would shadow
    # BaseModel.json.
    reports: Paths = Field(
        default_factory=lambda: [".mlgate/benchmark.json"],
        min_length=1,
        alias="json",
        description="pytest-benchmark JSON files or glob patterns, relative to "
        "working_directory; each must exist.",
    )
    require_rounds: bool = Field(
        default=True,
        description="Every benchmark must carry its per-round times (stats.data): "
        "--benchmark-json writes them, --benchmark-save only with --benchmark-save-data.",
    )


class BenchPolicy(StagePolicy):
    min_benchmarks: Count = Field(
        default=1, description="Fewer benchmarks than this fails the gate."
    )
    max_mean_ms: dict[str, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict,
        description="Ceiling on the mean time of one call, in ms, per benchmark: keys are a "
        "fullname or name, or a glob pattern of either; a key that matches no benchmark fails.",
    )
