"""The load policy's rules, judged from the evidence alone."""

from __future__ import annotations

import math

from mlgate import evidence as ev
from mlgate.evidence import Evidence
from mlgate.stages.load import report as load_report
from mlgate.stages.load.config import (
    NAME,
    LoadPolicy,
)
from mlgate.verdict import RuleResult


def evaluate(policy: LoadPolicy, evidence: Evidence) -> list[RuleResult]:
    problem = _inconsistency(evidence)
    if problem:
        # Evidence edited by hand or written by something else: its numbers decide nothing.
        return [_rule("evidence", False, f"load: {problem}")]
    m = evidence.metrics
    requests, errors = int(m["requests"] or 0), int(m["errors"] or 0)
    succeeded = requests - errors
    error_rate = float(m["error_rate"] or 0)
    results = [
        _rule(
            "min_requests",
            succeeded >= policy.min_requests,
            f"load: {succeeded} successful requests measured, "
            f"at least {policy.min_requests} required",
        ),
        _rule(
            "error_rate_max",
            error_rate <= policy.error_rate_max,
            f"load: error rate {error_rate:.2%} ({errors} of {requests}), "
            f"at most {policy.error_rate_max:.2%} allowed",
        ),
    ]
    for key, label, limit in (
        ("p95_ms", "p95", policy.p95_ms_max),
        ("p99_ms", "p99", policy.p99_ms_max),
    ):
        if limit is not None:
            value = float(m[key] or 0)
            results.append(
                _rule(
                    f"{key}_max",
                    value <= limit,
                    f"load: {label} {value:.1f} ms, at most {limit:g} ms allowed",
                )
            )
    results += _regression_rules(policy, evidence)
    results += _server_rules(policy, m)
    if policy.throughput_min_rps is not None:
        throughput = float(m["throughput_rps"] or 0)
        results.append(
            _rule(
                "throughput_min_rps",
                throughput >= policy.throughput_min_rps,
                f"load: throughput {throughput:.1f} req/s, "
                f"at least {policy.throughput_min_rps:g} req/s required",
            )
        )
    return results


def _regression_rules(policy: LoadPolicy, evidence: Evidence) -> list[RuleResult]:
    comparison = evidence.data.get("comparison")
    if not isinstance(comparison, dict):
        if policy.require_baseline:
            return [
                _rule("no_regression", False, "load: no baseline was compared, one is required")
            ]
        return []
    tolerance = policy.regression_tolerance
    found = load_report.decisions(comparison, tolerance)
    if not found:
        return [_rule("no_regression", False, "load: the baseline comparison holds no metric")]
    outcome = load_report.outcome(load_report.gate(found))
    other = "champion" if load_report.is_champion(comparison) else "baseline"
    how = load_report.stopped(comparison)
    reason = (
        f"load: vs {other}, no slowdown beyond +{tolerance:.0%} on every metric "
        f"({load_report.interval_name(comparison)}{'; ' + how if how else ''}): "
        + load_report.reasons(comparison, found, tolerance)
    )
    return [
        RuleResult(
            stage=NAME,
            rule="load.no_regression",
            outcome=outcome,
            reason=reason,
            # Undecided by the measured rounds: `on_inconclusive: warn` may let it through.
            statistical=outcome == "inconclusive" and load_report.data_undecided(found),
        )
    ]


def _server_rules(policy: LoadPolicy, m: dict[str, ev.MetricValue]) -> list[RuleResult]:
    """Ceilings on what serving measured; a ceiling without the measurement fails closed."""
    results = []
    if policy.memory_max_mb is not None:
        peak = m.get("server_peak_memory_bytes")
        if isinstance(peak, (int, float)):
            mib = peak / 2**20
            results.append(
                _rule(
                    "memory_max_mb",
                    mib <= policy.memory_max_mb,
                    f"load: server peak memory {mib:.0f} MiB, "
                    f"at most {policy.memory_max_mb:g} MiB allowed",
                )
            )
        else:
            results.append(
                _rule("memory_max_mb", False, "load: server memory was not measured (use serve:)")
            )
    if policy.cold_start_max_s is not None:
        cold = m.get("cold_start_s")
        if isinstance(cold, (int, float)):
            results.append(
                _rule(
                    "cold_start_max_s",
                    cold <= policy.cold_start_max_s,
                    f"load: cold start {cold:.2f} s, at most {policy.cold_start_max_s:g} s allowed",
                )
            )
        else:
            results.append(
                _rule("cold_start_max_s", False, "load: cold start was not measured (use serve:)")
            )
    return results


def _rule(rule: str, ok: bool, reason: str) -> RuleResult:
    return RuleResult(
        stage=NAME, rule=f"load.{rule}", outcome="pass" if ok else "fail", reason=reason
    )


_METRIC_ORDER = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")


def _inconsistency(evidence: Evidence) -> str | None:
    """Why the evidence's numbers cannot be trusted, or None when they agree with each other."""
    m = evidence.metrics
    requests, errors = m.get("requests"), m.get("errors")
    if type(requests) is not int or type(errors) is not int or min(requests, errors) < 0:
        return "evidence lacks whole-number counts of requests and errors"
    if errors > requests:
        return "evidence counts more errors than requests"
    numbers = {k: m.get(k) for k in (*_METRIC_ORDER, "mean_ms", "throughput_rps", "error_rate")}
    bad = [
        k
        for k, v in numbers.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0
    ]
    if bad:
        return f"evidence lacks latency numbers: {', '.join(bad)}"
    ordered = [float(numbers[k] or 0) for k in _METRIC_ORDER]
    if ordered != sorted(ordered):
        return "evidence percentiles are not in increasing order"
    if requests and abs(float(m["error_rate"] or 0) - errors / requests) > 1e-5:
        return "evidence error rate does not match its counts"
    return None
