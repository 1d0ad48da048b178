"""Stability: the predictions of slightly perturbed valid requests against the unperturbed."""

from __future__ import annotations

import json
import math
import random
from typing import Any

from mlgate.stages.probe.client import (
    Answer,
    Invalid,
    Target,
    budget,
    failure_text,
    post,
    require_valid,
)
from mlgate.stages.probe.config import ProbeConfig
from mlgate.stages.probe.documents import (
    count_leaves,
    encode,
    in_rows,
    is_float,
    is_number,
    map_leaves,
)

_EXAMPLES_KEPT = 5


def run_stability(
    config: ProbeConfig, target: Target, documents: list[Any], deadline: float
) -> dict[str, Any]:
    rng = random.Random(config.seed)  # noqa: S311 (noise on features, not a secret)
    baselines: dict[int, list[Any]] = {}
    compared = stable = errors = perturbed_values = 0
    failures: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for index in range(config.perturbations):
        line = index % len(documents)
        document = documents[line]
        if not count_leaves(document, is_float):
            continue
        if line not in baselines:
            answer = post(target, encode(document), "application/json", budget(config, deadline))
            require_valid(target, answer, line + 1, reachable=False)
            baselines[line] = _predictions(answer, line + 1)
        expected = baselines[line]

        def noisy(value: Any) -> Any:
            return value * (1 + config.noise * rng.gauss(0.0, 1.0))

        changed = in_rows(document, lambda row: map_leaves(row, noisy, is_float))
        perturbed_values += count_leaves(document, is_float)
        answer = post(target, encode(changed), "application/json", budget(config, deadline))
        compared += len(expected)
        if answer.failure is not None or not (answer.status and 200 <= answer.status < 300):
            errors += 1
            key = failure_text(answer)
            failures[key] = failures.get(key, 0) + 1
            continue
        try:
            got = _predictions(answer, line + 1)
        except Invalid:
            got = []
        for row, (before, after) in enumerate(
            zip(expected, _padded(got, len(expected)), strict=True)
        ):
            if _same(before, after, config.tolerance):
                stable += 1
            elif len(examples) < _EXAMPLES_KEPT:
                examples.append(
                    {
                        "perturbation": index + 1,
                        "payload_request": line + 1,
                        "row": row,
                        "before": _short(before),
                        "after": _short(after),
                    }
                )
    return {
        "perturbations": config.perturbations,
        "perturbed_values": perturbed_values,
        "compared_predictions": compared,
        "stable_predictions": stable,
        "stability_rate": round(stable / compared, 6) if compared else None,
        "failed_requests": errors,
        "failures": failures,
        "unstable_examples": examples,
    }


_MISSING = object()


def _padded(values: list[Any], length: int) -> list[Any]:
    return values[:length] + [_MISSING] * (length - len(values))


def _predictions(answer: Answer, line: int) -> list[Any]:
    """The per-row predictions of an answer: its `predictions` list (MLflow), or the answer."""
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        raise Invalid(
            f"valid payload request {line} was answered with no JSON: {answer.detail}"
        ) from None
    if isinstance(document, dict) and "predictions" in document:
        document = document["predictions"]
    return document if isinstance(document, list) else [document]


def _same(before: Any, after: Any, tolerance: float) -> bool:
    if after is _MISSING:
        return False
    if isinstance(before, float) or isinstance(after, float):
        if not (is_number(before) and is_number(after)):
            return False
        return math.isclose(before, after, rel_tol=tolerance, abs_tol=1e-12)
    if isinstance(before, list) and isinstance(after, list):
        return len(before) == len(after) and all(
            _same(b, a, tolerance) for b, a in zip(before, after, strict=True)
        )
    if isinstance(before, dict) and isinstance(after, dict):
        return before.keys() == after.keys() and all(
            _same(before[k], after[k], tolerance) for k in before
        )
    return bool(type(before) is type(after) and before == after)


def _short(value: Any) -> str:
    text = json.dumps(value) if value is not _MISSING else "(none)"
    return text if len(text) <= 100 else text[:99] + "…"
