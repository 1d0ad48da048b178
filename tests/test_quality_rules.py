"""Quality's max_drop as a one-sided non-inferiority rule: decisions from the recorded bounds,
reasons that name each metric's decision and interval, and what would decide an inconclusive
one. Judged on the evidence a real quality run wrote (tests/data/evidence/quality.json), with its
numbers set where a case needs them."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlgate import evidence as ev
from mlgate.stages.quality import rules as quality_rules
from mlgate.stages.quality.config import QualityPolicy
from mlgate.stages.quality.stage import QualityStage
from mlgate.verdict import RuleResult

SEED: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "evidence" / "quality.json").read_text()
)
STAGE = QualityStage()
# Only accuracy is judged, at a 0.02 tolerance, unless a test says otherwise.
ACCURACY_ONLY = {
    "max_drop": {"accuracy": 0.02, "f1_macro": None, "roc_auc": None},
    "max_relative_drop": {"log_loss": None},
}


# The seed's champion log loss, a candidate 0.01 worse, and bounds of the change.
LOG_LOSS: dict[str, Any] = {
    "candidate": 0.5124546977873785 + 0.01,
    "champion": 0.5124546977873785,
    "difference": 0.01,
    "ci": [-0.008, 0.03],
    "one_sided": [-0.005, 0.024],
    "one_sided_relative": [-0.01, 0.055],
}


def evidence_with(rows: int = 1000, **entries: dict[str, Any]) -> ev.Evidence:
    """The seed's evidence with some metric entries' keys replaced."""
    document = copy.deepcopy(SEED)
    document["metrics"]["rows"] = rows
    for entry in document["data"]["metrics"]:
        entry.update(entries.get(entry["metric"], {}))
    return ev.Evidence.model_validate(document)


def accuracy(
    difference: float, ci: list[float], one_sided: list[float] | None = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "candidate": 0.80 + difference,
        "champion": 0.80,
        "difference": difference,
        "ci": ci,
    }
    if one_sided is not None:
        entry["one_sided"] = one_sided
    return entry


def drop_rules(evidence: ev.Evidence, policy: dict[str, Any] | None = None) -> list[RuleResult]:
    results = STAGE.evaluate(
        QualityPolicy.model_validate(ACCURACY_ONLY if policy is None else policy), evidence
    )
    return [r for r in results if r.rule == "quality.max_drop"]


def test_passes_on_the_one_sided_bound_where_the_two_sided_interval_cannot_tell() -> None:
    # The two-sided interval reaches -0.024, past the 0.02 tolerance; the one-sided 95% bound
    # (-0.018) is within it: non-inferior at the configured level.
    evidence = evidence_with(accuracy=accuracy(-0.004, [-0.024, 0.016], [-0.018, 0.012]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "pass", rule.reason
    assert "one-sided 95% lower bound -0.0180" in rule.reason
    assert "two-sided 95% CI -0.0240 to +0.0160: no change" not in rule.reason  # wider than t
    assert "two-sided 95% CI -0.0240 to +0.0160: inconclusive" in rule.reason
    assert rule.reason.endswith("tolerated drop 0.02: within the tolerance")


def test_fails_when_even_the_best_side_bound_is_beyond_the_tolerance() -> None:
    evidence = evidence_with(accuracy=accuracy(-0.06, [-0.09, -0.025], [-0.085, -0.03]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "fail"
    assert "two-sided 95% CI -0.0900 to -0.0250: regression" in rule.reason
    assert rule.reason.endswith("worse beyond the tolerance")
    assert not rule.statistical


def test_inconclusive_only_between_and_says_the_width_and_the_rows_that_would_decide() -> None:
    # A 133-row holdout (the example's): bounds 0.10 apart around a drop of 0.01.
    evidence = evidence_with(rows=133, accuracy=accuracy(-0.01, [-0.07, 0.05], [-0.06, 0.04]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "inconclusive"
    assert rule.statistical  # the data's indecision: on_inconclusive may let it through
    assert "cannot tell whether within" in rule.reason
    assert "the 90% interval between the bounds is 0.1000 wide" in rule.reason
    # Decided once the half-width (0.05) is under the margin to the tolerance (0.01):
    # 133 * (0.10 / (2 * 0.01))**2 = 3,325, said to two figures.
    assert "roughly 3,400 rows would decide it (now 133)" in rule.reason


def test_an_improvement_however_uncertain_never_fails() -> None:
    evidence = evidence_with(accuracy=accuracy(0.05, [-0.01, 0.11], [0.0, 0.10]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "pass"
    evidence = evidence_with(accuracy=accuracy(0.05, [0.03, 0.07], [0.035, 0.065]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "pass" and "improvement" in rule.reason


def test_lower_is_better_metrics_decide_on_their_upper_bound() -> None:
    # log_loss: the champion's 0.5124, 5% of it tolerated = 0.0256; candidate - champion is
    # worse when positive, so its upper one-sided bound decides a pass.
    log_loss = LOG_LOSS | {"one_sided_relative": None}  # as in evidence from before those
    policy = {"max_drop": {"accuracy": None, "f1_macro": None, "roc_auc": None}}
    (rule,) = drop_rules(evidence_with(log_loss=log_loss), policy)
    assert rule.outcome == "pass", rule.reason
    assert "one-sided 95% upper bound +0.0240" in rule.reason
    log_loss |= {"ci": [0.03, 0.07], "one_sided": [0.032, 0.065]}
    (rule,) = drop_rules(evidence_with(log_loss=log_loss), policy)
    assert rule.outcome == "fail" and "regression" in rule.reason


def test_evidence_without_one_sided_bounds_is_judged_on_its_two_sided_interval() -> None:
    # Written before the bounds were recorded: the interval's ends are one-sided 97.5% bounds,
    # stricter, so what passed before still passes and nothing newly passes.
    evidence = evidence_with(accuracy=accuracy(-0.004, [-0.024, 0.016]))
    (rule,) = drop_rules(evidence)
    assert rule.outcome == "inconclusive"
    assert "one-sided 98% lower bound -0.0240" in rule.reason  # 97.5%, rounded
    assert "the 95% interval between the bounds is 0.0400 wide" in rule.reason


def test_the_reasons_name_every_gated_metric_with_its_decision_and_interval() -> None:
    results = drop_rules(evidence_with(), {})  # the seed, under the default tolerances
    assert [r.reason.split()[1] for r in results] == [
        "accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
    ]
    for result in results:
        assert result.outcome == "fail"  # the seed's candidate is far worse on every metric
        assert re.search(
            r"two-sided 95% CI [-+]\d\.\d{4} to [-+]\d\.\d{4}: regression", result.reason
        )
        assert "bound" in result.reason and "tolerated drop" in result.reason
    # The gate passes only when all pass: one inconclusive metric among passing ones blocks.
    mixed = evidence_with(
        accuracy=accuracy(-0.01, [-0.05, 0.03], [-0.04, 0.02]),
        f1_macro=accuracy(0.0, [-0.01, 0.01], [-0.008, 0.008]),
    )
    policy = {"max_drop": {"roc_auc": None}, "max_relative_drop": {"log_loss": None}}
    outcomes = {r.reason.split()[1]: r.outcome for r in drop_rules(mixed, policy)}
    assert outcomes == {"accuracy": "inconclusive", "f1_macro": "pass"}


def test_inconclusive_for_want_of_data_is_not_statistical() -> None:
    # No interval, or no candidate value: nothing measured decides it, and no policy may let
    # it through as a mere warning.
    (no_interval,) = drop_rules(evidence_with(accuracy={"ci": None}))
    assert no_interval.outcome == "inconclusive" and not no_interval.statistical
    missing = {"candidate": None, "difference": None, "ci": None}
    (no_candidate,) = drop_rules(evidence_with(accuracy=missing))
    assert no_candidate.outcome == "inconclusive" and not no_candidate.statistical


@pytest.mark.parametrize("key", ["one_sided", "one_sided_relative"])
@pytest.mark.parametrize("bounds", [[0.02, -0.02], [0.01], "wide", [0.0, float("inf")]], ids=str)
def test_malformed_one_sided_bounds_fail_the_rule(key: str, bounds: object) -> None:
    document = copy.deepcopy(SEED)
    document["data"]["metrics"][0][key] = bounds
    (result,) = STAGE.evaluate(QualityPolicy(), ev.Evidence.model_validate(document))
    assert result.outcome == "fail"
    assert f"accuracy {key} bounds that is not [low, high]" in result.reason


def test_the_two_sided_information() -> None:
    assert quality_rules.two_sided(-0.05, -0.01, 0.02) == "regression"
    assert quality_rules.two_sided(0.01, 0.05, 0.02) == "improvement"
    assert quality_rules.two_sided(-0.01, 0.01, 0.02) == "no change"
    assert quality_rules.two_sided(-0.03, 0.01, 0.02) == "inconclusive"


def test_bootstrap_bounds_one_sided_inside_two_sided() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    champion = 10 + rng.normal(scale=0.1, size=20_000)
    replicates = rng.normal(size=20_000)
    bounds = quality_rules.bootstrap_bounds(champion + replicates, champion, 0.95, 0.9)
    assert bounds is not None
    low, high = bounds["ci"]
    one_low, one_high = bounds["one_sided"]
    assert low < one_low < one_high < high
    # The 2.5/97.5% and 5/95% quantiles of a standard normal.
    assert (low, high) == pytest.approx((-1.96, 1.96), abs=0.05)
    assert (one_low, one_high) == pytest.approx((-1.645, 1.645), abs=0.05)
    assert np.mean(replicates < one_low) <= 0.05
    # Relative to the champion's value (about 10) in each resample.
    assert bounds["one_sided_relative"] == pytest.approx((-0.1645, 0.1645), abs=0.01)
    # A champion of 0: no relative change, the rest stands; undefined everywhere: no bounds.
    zero = np.zeros(20_000)
    without = quality_rules.bootstrap_bounds(replicates, zero, 0.95, 0.9)
    assert without is not None and without["one_sided_relative"] is None
    assert without["one_sided"] == pytest.approx(bounds["one_sided"], abs=0.05)
    assert quality_rules.bootstrap_bounds(np.full(100, np.nan), zero[:100], 0.95, 0.9) is None


def test_a_relative_tolerance_is_judged_on_the_relative_change() -> None:
    # log_loss at 5% of the champion's value (0.5125): the absolute bounds' upper end +0.0240
    # is within 5% of the champion's holdout value (0.0256), but the relative change's bound,
    # +5.5% (the champion's value varies between resamples too), is not.
    log_loss = LOG_LOSS
    policy: dict[str, Any] = {"max_drop": {"accuracy": None, "f1_macro": None, "roc_auc": None}}
    (rule,) = drop_rules(evidence_with(log_loss=log_loss), policy)
    assert rule.outcome == "inconclusive", rule.reason
    assert "one-sided 95% upper bound +5.50% of its value" in rule.reason
    assert "tolerated drop 5% of the champion's value = 0.02562" in rule.reason
    assert "the 90% interval between the bounds is 6.50% of its value wide" in rule.reason
    narrower = log_loss | {"one_sided_relative": [-0.01, 0.04]}
    (rule,) = drop_rules(evidence_with(log_loss=narrower), policy)
    assert rule.outcome == "pass", rule.reason
    # An absolute tolerance on the same metric is judged on the difference's bounds.
    absolute = {"max_drop": policy["max_drop"] | {"log_loss": 0.03}}
    (rule,) = drop_rules(evidence_with(log_loss=log_loss), absolute)
    assert rule.outcome == "pass" and "upper bound +0.0240" in rule.reason


def test_a_relative_tolerance_of_a_zero_champion_fails_with_a_reason() -> None:
    # A relative drop from 0 is undefined: it fails the rule, not the gate with a division error.
    log_loss = LOG_LOSS | {"champion": 0.0, "candidate": 0.01}
    policy: dict[str, Any] = {"max_drop": {"accuracy": None, "f1_macro": None, "roc_auc": None}}
    (rule,) = drop_rules(evidence_with(log_loss=log_loss), policy)
    assert rule.outcome == "fail", rule.reason
    assert "a drop relative to a champion's value of 0 is undefined" in rule.reason
