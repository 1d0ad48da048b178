"""The candidate's latencies against a baseline's or a champion's, as the evidence keeps them."""

from __future__ import annotations

from pathlib import Path

from mlgate import evidence as ev
from mlgate import sequential
from mlgate.errors import MlgateError
from mlgate.stages.baseline import baseline_path
from mlgate.stages.interface import RunContext
from mlgate.stages.load.config import (
    NAME,
    LoadConfig,
)


def baseline_file(config: LoadConfig, context: RunContext) -> Path:
    assert config.baseline is not None
    return baseline_path(config.baseline, "load", config.working_directory, context.evidence_dir)


def compare_baseline(baseline_path: Path, latencies: list[float]) -> dict[str, object]:
    from mlgate import samples

    if baseline_path.is_dir():
        # An evidence directory (e.g. an unpacked report artifact): its load evidence.
        inside = ev.evidence_path(baseline_path, NAME)
        if not inside.is_file():
            raise MlgateError(f"{baseline_path}: a directory without {inside.name}")
        baseline_path = inside
    baseline = samples.read_samples(baseline_path)
    return _compare_samples(str(baseline_path), list(baseline.values), latencies)


def _compare_samples(
    baseline_name: str, baseline: list[float], latencies: list[float]
) -> dict[str, object]:
    """The candidate's samples against the baseline's: intervals and p-values, which the
    policy turns into decisions with its own tolerance."""
    import numpy as np

    from mlgate import stats

    values = np.asarray(baseline, dtype=np.float64)
    results = stats.compare(values, latencies)
    return {
        "baseline": baseline_name,
        "method": "independent samples",
        "baseline_ms": {label: round(stats.point_estimate(values, label), 3) for label in _CHARTED},
        "baseline_samples": len(values),
        "candidate_samples": len(latencies),
        "metrics": [r.as_json() for r in results],
    }


def compare_rounds(
    champion: list[list[list[float]]],
    candidate: list[list[list[float]]],
    plan: sequential.RoundPlan,
) -> dict[str, object]:
    """Round i of the champion against round i of the candidate, each in its time windows
    (see stats.compare_rounds): with the per-round log-ratios and how the rounds were chosen,
    which the gate judges."""
    import numpy as np

    from mlgate import stats

    results = stats.compare_rounds(champion, candidate, sequence=plan.fixed is None)
    pooled = np.sort(np.concatenate([w for windows in champion for w in windows]))
    return {
        "baseline": "champion (interleaved A/B)",
        "method": "paired rounds",
        "rounds": len(champion),
        "sequential": plan.as_json(),
        "log_ratios": sequential.so_far(champion, candidate)(),
        "baseline_ms": {label: round(stats.point_estimate(pooled, label), 3) for label in _CHARTED},
        "baseline_samples": int(pooled.size),
        "candidate_samples": sum(len(w) for windows in candidate for w in windows),
        "windows": [len(windows) for windows in candidate],
        "metrics": [r.as_json() for r in results],
    }


_CHARTED = ("p50", "p90", "p95", "p99")
