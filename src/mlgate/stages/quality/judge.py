"""The quality policy applied to quality evidence: first model, floors, drops against the
champion (rules.py), slice floors; evidence that does not agree with itself fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlgate.evidence import Evidence
from mlgate.stages.quality import rules
from mlgate.stages.quality.config import (
    HIGHER_IS_BETTER,
    METRICS,
    NAME,
    TASK_METRICS,
    QualityPolicy,
)
from mlgate.stages.quality.errors import Invalid
from mlgate.stages.quality.render import is_number, slice_value
from mlgate.verdict import Outcome, RuleResult


def evaluate(policy: QualityPolicy, evidence: Evidence) -> list[RuleResult]:
    """The quality policy's rule results on quality evidence."""
    try:
        view = _View.of(evidence)
    except Invalid as exc:
        # Evidence edited by hand or written by something else: its numbers decide nothing.
        return [_rule("evidence", "fail", str(exc))]
    results: list[RuleResult] = []
    if view.champion is None:
        note = f" ({view.champion_note})" if view.champion_note else ""
        if policy.first_model == "pass":
            results.append(
                _rule(
                    "first_model",
                    "pass",
                    f"no champion: first model, judged on floors only{note}",
                )
            )
        else:
            results.append(
                _rule(
                    "first_model",
                    "fail",
                    f"no champion to compare with (first_model: fail){note}",
                )
            )
    for floored, floor in policy.floors.items():
        results.append(_floor_rule("floor", "", view.metrics.get(floored), floored, floor))
    if view.champion is not None:
        rows = evidence.metrics.get("rows")
        for metric in METRICS:
            judged = rules.judge_drop(
                policy,
                view.metrics.get(metric),
                metric,
                HIGHER_IS_BETTER[metric],
                rows if type(rows) is int else 0,
                view.confidence,
            )
            if judged is not None:
                results.append(judged.rule())
    results += _slice_rules(policy, view)
    if not results:
        results.append(
            _rule(
                "rules",
                "inconclusive",
                "nothing to judge: no floor, and no tolerance for a metric both models have",
            )
        )
    return results


@dataclass(frozen=True)
class _View:
    """The parts of the evidence the policy reads, checked to agree with themselves."""

    champion: dict[str, Any] | None
    champion_note: str | None
    confidence: float
    metrics: dict[str, dict[str, Any]]
    slices: list[dict[str, Any]]

    @classmethod
    def of(cls, evidence: Evidence) -> _View:
        if evidence.status != "passed":
            raise Invalid(f"evidence status '{evidence.status}' is not one the stage writes")
        data = evidence.data
        if data.get("task") not in TASK_METRICS:
            raise Invalid("evidence names no task (classification or regression)")
        champion = data.get("champion")
        if champion is not None and not isinstance(champion, dict):
            raise Invalid("evidence holds a champion that is not an object")
        confidence = data.get("confidence")
        if not is_number(confidence) or not 0 < confidence < 1:
            raise Invalid("evidence lacks the confidence level of its intervals")
        metrics = {e["metric"]: e for e in _checked_entries(data.get("metrics"), champion)}
        slices = data.get("slices", [])
        if not isinstance(slices, list) or not all(isinstance(s, dict) for s in slices):
            raise Invalid("evidence holds slices that are not a list of objects")
        for item in slices:
            if type(item.get("rows")) is not int or not isinstance(item.get("judged"), bool):
                raise Invalid("evidence holds a slice without rows and judged")
            _checked_entries(item.get("metrics"), champion)
        note = data.get("champion_note")
        return cls(
            champion, note if isinstance(note, str) else None, float(confidence), metrics, slices
        )


def _checked_entries(entries: object, champion: object) -> list[dict[str, Any]]:
    if not isinstance(entries, list):
        raise Invalid("evidence lacks its list of metrics")
    checked = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("metric") not in HIGHER_IS_BETTER:
            raise Invalid("evidence holds a metric entry without a known metric name")
        name = entry["metric"]
        for key in ("candidate", "champion", "difference"):
            if entry.get(key) is not None and not is_number(entry.get(key)):
                raise Invalid(f"evidence holds a {name} {key} that is not a finite number")
        if entry.get("higher_is_better") is not HIGHER_IS_BETTER[name]:
            raise Invalid(f"evidence has {name} in the wrong direction")
        if entry.get("champion") is not None and champion is None:
            raise Invalid(f"evidence has a champion {name} but no champion")
        for key in ("ci", "one_sided", "one_sided_relative"):
            ci = entry.get(key)
            if ci is not None and not (
                isinstance(ci, list)
                and len(ci) == 2
                and all(is_number(v) for v in ci)
                and ci[0] <= ci[1]
            ):
                what = "interval" if key == "ci" else f"{key} bounds"
                raise Invalid(f"evidence holds a {name} {what} that is not [low, high]")
        checked.append(entry)
    return checked


def _floor_rule(
    kind: str, where: str, entry: dict[str, Any] | None, metric: str, floor: float
) -> RuleResult:
    value = entry.get("candidate") if entry is not None else None
    higher = HIGHER_IS_BETTER[metric]
    bound = f"at least {floor:g}" if higher else f"at most {floor:g}"
    if value is None:
        return _rule(kind, "fail", f"{where}{metric} was not measured; {bound} required")
    ok = value >= floor if higher else value <= floor
    return _rule(
        kind,
        "pass" if ok else "fail",
        f"{where}candidate {metric} {value:.4f}, {bound} {'required' if higher else 'allowed'}",
    )


def _slice_rules(policy: QualityPolicy, view: _View) -> list[RuleResult]:
    if not policy.slice_floors:
        return []
    if not view.slices:
        return [
            _rule(
                "slice_floor",
                "fail",
                "slice_floors are set, but no slice was evaluated (stages.quality.slices)",
            )
        ]
    results = []
    for item in view.slices:
        if not item["judged"]:
            continue  # too few rows: values only, reported as such
        where = f"{item.get('column')}={slice_value(item.get('value'))}: "
        entries = {e["metric"]: e for e in item["metrics"]}
        for metric, floor in policy.slice_floors.items():
            results.append(_floor_rule("slice_floor", where, entries.get(metric), metric, floor))
    return results


def _rule(rule: str, outcome: Outcome, reason: str) -> RuleResult:
    return RuleResult(
        stage=NAME,
        rule=f"quality.{rule}",
        outcome=outcome,
        reason=f"quality: {reason}",
    )
