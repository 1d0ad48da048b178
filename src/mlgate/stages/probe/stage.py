"""The probe stage: send a running model server malformed requests, then slightly perturbed valid
ones, and record how it copes.

Malformed requests, each built from the payload's first request (MLflow scoring JSON:
`dataframe_split`, `dataframe_records`, `instances` or `inputs`):

    wrong-type          strings in place of the numbers
    missing-column      the last column (or value of each row) left out
    extra-column        an unknown column added
    nan                 NaN in place of each row's first number (JSON `NaN`, as Python writes it)
    infinity            Infinity there
    negative-infinity   -Infinity there
    empty-body          no body at all
    oversized-body      the rows repeated to max_body_bytes (or whitespace padding, for a format
                        the probe does not know)
    wrong-content-type  the valid request sent as text/plain
    invalid-json        the valid request cut in half
    deeply-nested-json  a list nested 100,000 deep in the request

Each must be refused with a 4xx. A 5xx, an answer that is no HTTP, a connection closed without
an answer, or no answer within request_timeout (a hang) means bad input breaks the server; a
2xx means it accepted nonsense (a lesser finding: some servers ignore extra columns on
purpose). After every case a valid request must still be answered, or the server crashed and
probing stops. A case the payload's format cannot express (a column of a request without
columns) is skipped.

Then stability: `perturbations` requests, taking the payload's requests in turn, each with
every floating-point value of its rows multiplied by (1 + noise * N(0, 1)) (integers are left
alone: they are often counts or codes a schema would refuse as floats). Their predictions are
compared with those of the unperturbed request, row by row: numbers within `tolerance`
(relative), anything else equal; a perturbed request that fails counts each of its rows as
changed. The stability rate is the share of rows whose prediction stayed.

Requests use only the standard library (http.client), without proxies, each bounded by
request_timeout whatever the server does; a body is sent in chunks and sending stops as soon as
the server answers, so a server refusing an oversized body early is heard, not reset.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlgate import evidence as ev
from mlgate import loadgen
from mlgate.evidence import Evidence
from mlgate.report import escape
from mlgate.stages.interface import RunContext, Stage
from mlgate.stages.probe.cases import BROKE, run_cases
from mlgate.stages.probe.client import (
    Invalid,
    Target,
    budget,
    post,
    require_valid,
)
from mlgate.stages.probe.config import NAME, ProbeConfig, ProbePolicy
from mlgate.stages.probe.documents import (
    encode,
)
from mlgate.stages.probe.record import answered, cases_of, judged, probe_evidence
from mlgate.stages.probe.stability import run_stability
from mlgate.verdict import Outcome, RuleResult


class ProbeStage(Stage[ProbeConfig, ProbePolicy]):
    name = NAME
    title = "Robustness probe"

    def run(self, config: ProbeConfig, context: RunContext) -> Evidence:
        started = ev.now()
        deadline = time.monotonic() + config.timeout
        try:
            documents = _read_payload(config)
            target = _target(config)
            first = encode(documents[0])
            answer = post(target, first, "application/json", budget(config, deadline))
            require_valid(target, answer, 1, reachable=True)
            cases = run_cases(config, target, documents[0], first, deadline)
            # A crashed server has nothing left to measure.
            crashed = any(c["outcome"] == "crash" for c in cases)
            stability = (
                run_stability(config, target, documents, deadline)
                if config.perturbations and not crashed
                else None
            )
        except Invalid as exc:
            return probe_evidence(context, started, config, reason=str(exc))
        return probe_evidence(context, started, config, cases=cases, stability=stability)

    def evaluate(self, policy: ProbePolicy, evidence: Evidence) -> list[RuleResult]:
        try:
            cases, stability = judged(evidence)
        except Invalid as exc:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [_rule("evidence", "fail", f"probe: {exc}")]
        results: list[RuleResult] = []
        if policy.no_5xx:
            broke = [c for c in cases if c["outcome"] in BROKE]
            named = "; ".join(f"{c['case']}: {answered(c)}" for c in broke)
            results.append(
                _rule(
                    "no_5xx",
                    "fail" if broke else "pass",
                    f"probe: {len(broke)} malformed request{_s(len(broke))} broke the server: "
                    f"{named}"
                    if broke
                    else f"probe: the server refused or answered all {_run(cases)} malformed "
                    "requests without a 5xx, hang or crash",
                )
            )
        if policy.max_accepted_garbage is not None:
            accepted = [c for c in cases if c["outcome"] == "accepted"]
            limit = policy.max_accepted_garbage
            names = ": " + ", ".join(c["case"] for c in accepted) if accepted else ""
            results.append(
                _rule(
                    "max_accepted_garbage",
                    "pass" if len(accepted) <= limit else "fail",
                    f"probe: {len(accepted)} malformed request{_s(len(accepted))} accepted with "
                    f"a 2xx{names}; at most {limit} allowed",
                )
            )
        if policy.min_stability is not None:
            if stability is None:
                why = evidence.data.get("stability_skipped")
                if not isinstance(why, str):
                    why = "perturbations: 0, or no floating-point feature value"
                results.append(
                    _rule(
                        "min_stability",
                        "inconclusive",
                        f"probe: no prediction was compared under noise ({why}); at least "
                        f"{policy.min_stability:.0%} stable required",
                    )
                )
            else:
                rate, compared = stability
                results.append(
                    _rule(
                        "min_stability",
                        "pass" if rate >= policy.min_stability else "fail",
                        f"probe: {rate:.1%} of {compared} predictions stayed the same under "
                        f"noise, at least {policy.min_stability:.0%} required",
                    )
                )
        return results

    def summary(self, evidence: Evidence) -> str:
        if evidence.status == "error":
            return f"error: {evidence.reason}"
        m = evidence.metrics
        cases = evidence.data.get("cases")
        broke = [
            str(c.get("case"))
            for c in (cases if isinstance(cases, list) else [])
            if isinstance(c, dict) and c.get("outcome") in BROKE
        ]
        text = (
            f"{m.get('cases_run')} malformed requests: {m.get('rejected')} refused with a 4xx, "
            f"{m.get('accepted_garbage')} accepted, {len(broke)} broke the server"
        )
        if broke:
            text += f" ({', '.join(broke)})"
        rate = m.get("stability_rate")
        if isinstance(rate, (int, float)):
            text += f"; {rate:.1%} of {m.get('compared_predictions')} predictions stable"
        return text

    def report_markdown(self, evidence: Evidence) -> str:
        cases = cases_of(evidence)
        if not cases:
            return ""
        rows = []
        for c in cases:
            outcome = str(c.get("outcome"))
            shown = escape.inline(outcome, 100)
            rows.append(
                (
                    escape.inline(str(c.get("case")), 100),
                    escape.inline(answered(c), 200),
                    f"**{shown}**" if outcome in BROKE else shown,
                )
            )
        return "\n".join(escape.markdown_table(("request", "answer", "outcome"), rows))

    def report_html(self, evidence: Evidence) -> str:
        cases = cases_of(evidence)
        if not cases:
            return ""
        return escape.html_table(
            ("request", "what", "answer", "outcome"),
            (
                (str(c.get("case")), str(c.get("description")), answered(c), str(c.get("outcome")))
                for c in cases
            ),
        )


def _read_payload(config: ProbeConfig) -> list[Any]:
    workdir = Path(config.working_directory)
    if not workdir.is_dir():
        raise Invalid(f"working directory {workdir} is not a directory")
    try:
        bodies = loadgen.read_payload((workdir / config.payload).resolve())
    except loadgen.LoadError as exc:
        raise Invalid(str(exc)) from None
    return [json.loads(body) for body in bodies]


def _target(config: ProbeConfig) -> Target:
    parts = urlsplit(config.url)
    base = parts.path.rstrip("/")
    try:
        port = parts.port
    except ValueError:
        raise Invalid(f"url {config.url} has an invalid port") from None
    return Target(
        https=parts.scheme == "https",
        host=parts.hostname or "",
        port=port,
        path=base + config.path,
        shown=config.url + config.path,
    )


def _rule(rule: str, outcome: Outcome, reason: str) -> RuleResult:
    return RuleResult(stage=ProbeStage.name, rule=f"probe.{rule}", outcome=outcome, reason=reason)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _run(cases: list[dict[str, Any]]) -> int:
    return sum(1 for c in cases if c["outcome"] != "skipped")
