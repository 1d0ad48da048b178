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

import contextlib
import copy
import http.client
import json
import math
import random
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, model_validator

from mlgate import evidence as ev
from mlgate import loadgen
from mlgate.evidence import Evidence, Finding
from mlgate.fields import HttpUrl, UrlPath
from mlgate.report import escape
from mlgate.stages.interface import RunContext, Stage, StageConfig, StagePolicy
from mlgate.verdict import Outcome, RuleResult

Failure = Literal["timeout", "reset", "bad-answer", "refused", "unreachable"]
CaseOutcome = Literal[
    "rejected", "accepted", "server-error", "timeout", "no-answer", "crash", "skipped"
]

# Outcomes where bad input broke the server (what policy no_5xx forbids).
BROKE = ("server-error", "timeout", "no-answer", "crash")
_SEVERITY: dict[str, ev.Severity] = {
    "crash": "critical",
    "server-error": "high",
    "timeout": "high",
    "no-answer": "high",
    "accepted": "low",
}
_EXTRA_COLUMN = "mlgate_probe_extra"
_NESTING = 100_000
_CHUNK = 64 * 1024
# A body larger than this waits a moment after the headers for an early refusal (a 413 sent on
# the Content-Length alone), as curl does for Expect: 100-continue: a second, or a quarter of
# the request's time if that is less.
_EARLY_ANSWER_ABOVE = 256 * 1024
_EARLY_ANSWER_WAIT_S = 1.0
_EARLY_ANSWER_SHARE = 0.25
_ANSWER_KEPT = 1 << 20  # bytes of an answer read
_DETAIL = 200  # characters of an answer kept in the evidence
_EXAMPLES_KEPT = 5


class ProbeConfig(StageConfig):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    url: HttpUrl = Field(description="Base URL of the running server, e.g. http://127.0.0.1:8080.")
    path: UrlPath = Field(default="/invocations", description="Endpoint the requests go to.")
    payload: str = Field(
        min_length=1,
        description="JSON-lines file of valid requests, one body per line, as the load stage "
        "takes it (relative to working_directory); the first is the model of the malformed ones.",
    )
    request_timeout: float = Field(
        default=10, gt=0, le=600, description="Seconds a request may take; longer is a hang."
    )
    noise: float = Field(
        default=0.01,
        ge=0,
        le=10,
        description="Relative Gaussian noise on floating-point feature values: x * (1 + noise * "
        "N(0, 1)).",
    )
    perturbations: int = Field(
        default=50, ge=0, le=100_000, description="Perturbed requests sent; 0 skips stability."
    )
    tolerance: float = Field(
        default=0.01,
        ge=0,
        description="Relative difference within which numeric predictions count as the same "
        "(integers and labels must be equal).",
    )
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1,
        le=1024**3,
        description="Size of the oversized-body request, bytes.",
    )
    seed: int = Field(default=0, description="Seed of the noise, so runs are repeatable.")

    @model_validator(mode="after")
    def _room_for_requests(self) -> ProbeConfig:
        if self.timeout <= self.request_timeout:
            raise ValueError(
                f"timeout ({self.timeout:g} s) must exceed request_timeout "
                f"({self.request_timeout:g} s)"
            )
        return self


class ProbePolicy(StagePolicy):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    no_5xx: bool = Field(
        default=True,
        description="Fail when a malformed request got a 5xx, no answer, a hang or a crash.",
    )
    max_accepted_garbage: int | None = Field(
        default=None,
        ge=0,
        description="Malformed requests the server may accept with a 2xx; null: report only.",
    )
    min_stability: float | None = Field(
        default=0.95,
        ge=0,
        le=1,
        description="Share of predictions that must stay the same under the noise; null: "
        "report only.",
    )


class _Invalid(Exception):
    """A probe that cannot be run or judged; the message is the one-line reason."""


@dataclass(frozen=True)
class _Target:
    https: bool
    host: str
    port: int | None
    path: str
    shown: str  # the URL, for reasons


@dataclass(frozen=True)
class _Answer:
    status: int | None
    failure: Failure | None
    detail: str  # one line: the answer's start, or what went wrong
    body: bytes
    seconds: float


@dataclass(frozen=True)
class _Case:
    name: str
    description: str
    body: bytes | None  # None: the payload's format cannot express this case
    content_type: str = "application/json"


class ProbeStage(Stage[ProbeConfig, ProbePolicy]):
    name = "probe"
    title = "Robustness probe"
    config_model = ProbeConfig
    policy_model = ProbePolicy

    def run(self, config: ProbeConfig, context: RunContext) -> Evidence:
        started = ev.now()
        deadline = time.monotonic() + config.timeout
        try:
            documents = _read_payload(config)
            target = _target(config)
            first = _encode(documents[0])
            answer = _post(target, first, "application/json", _budget(config, deadline))
            _require_valid(target, answer, 1, reachable=True)
            cases = _run_cases(config, target, documents[0], first, deadline)
            # A crashed server has nothing left to measure.
            crashed = any(c["outcome"] == "crash" for c in cases)
            stability = (
                _stability(config, target, documents, deadline)
                if config.perturbations and not crashed
                else None
            )
        except _Invalid as exc:
            return _evidence(context, started, config, reason=str(exc))
        return _evidence(context, started, config, cases=cases, stability=stability)

    def evaluate(self, policy: ProbePolicy, evidence: Evidence) -> list[RuleResult]:
        try:
            cases, stability = _judged(evidence)
        except _Invalid as exc:
            # Evidence edited by hand or written by something else: its numbers decide nothing.
            return [_rule("evidence", "fail", f"probe: {exc}")]
        results: list[RuleResult] = []
        if policy.no_5xx:
            broke = [c for c in cases if c["outcome"] in BROKE]
            named = "; ".join(f"{c['case']}: {_answered(c)}" for c in broke)
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
        cases = _cases(evidence)
        if not cases:
            return ""
        lines = ["| request | answer | outcome |", "|---|---|---|"]
        for c in cases:
            outcome = str(c.get("outcome"))
            shown = escape.inline(outcome, 100)
            lines.append(
                f"| {escape.inline(str(c.get('case')), 100)} "
                f"| {escape.inline(_answered(c), 200)} "
                f"| {f'**{shown}**' if outcome in BROKE else shown} |"
            )
        return "\n".join(lines)

    def report_html(self, evidence: Evidence) -> str:
        cases = _cases(evidence)
        if not cases:
            return ""
        return escape.html_table(
            ("request", "what", "answer", "outcome"),
            (
                (str(c.get("case")), str(c.get("description")), _answered(c), str(c.get("outcome")))
                for c in cases
            ),
        )


# -- input ---------------------------------------------------------------------------------------


def _read_payload(config: ProbeConfig) -> list[Any]:
    workdir = Path(config.working_directory)
    if not workdir.is_dir():
        raise _Invalid(f"working directory {workdir} is not a directory")
    try:
        bodies = loadgen.read_payload((workdir / config.payload).resolve())
    except loadgen.LoadError as exc:
        raise _Invalid(str(exc)) from None
    return [json.loads(body) for body in bodies]


def _target(config: ProbeConfig) -> _Target:
    parts = urlsplit(config.url)
    base = parts.path.rstrip("/")
    try:
        port = parts.port
    except ValueError:
        raise _Invalid(f"url {config.url} has an invalid port") from None
    return _Target(
        https=parts.scheme == "https",
        host=parts.hostname or "",
        port=port,
        path=base + config.path,
        shown=config.url + config.path,
    )


def _budget(config: ProbeConfig, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left < 0.05:
        raise _Invalid(f"probe did not finish within the stage timeout of {config.timeout:g} s")
    return min(config.request_timeout, left)


def _encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def _require_valid(target: _Target, answer: _Answer, line: int, *, reachable: bool) -> None:
    """A valid request must be answered with a 2xx, or nothing the probe finds means much."""
    if answer.failure in ("refused", "unreachable") and reachable:
        raise _Invalid(f"server unreachable: POST {target.shown} failed: {answer.detail}")
    if answer.failure is not None:
        raise _Invalid(
            f"valid payload request {line} got {_failure_text(answer)} from POST {target.shown}"
        )
    if answer.status is None or not 200 <= answer.status < 300:
        raise _Invalid(
            f"valid payload request {line} answered HTTP {answer.status}: {answer.detail}"
        )


# -- malformed requests --------------------------------------------------------------------------


def _cases(evidence: Evidence) -> list[dict[str, Any]]:
    cases = evidence.data.get("cases")
    return [c for c in cases if isinstance(c, dict)] if isinstance(cases, list) else []


def _malformed(config: ProbeConfig, document: Any, valid: bytes) -> list[_Case]:
    nested = b'{"instances": ' + b"[" * _NESTING + b"]" * _NESTING + b"}"
    return [
        _Case("wrong-type", "strings in place of numbers", _maybe(_wrong_type(document))),
        _Case("missing-column", "a column left out", _maybe(_drop_column(document))),
        _Case("extra-column", "an unknown column added", _maybe(_add_column(document))),
        _Case("nan", "NaN for a number", _maybe(_special(document, math.nan))),
        _Case("infinity", "Infinity for a number", _maybe(_special(document, math.inf))),
        _Case("negative-infinity", "-Infinity for a number", _maybe(_special(document, -math.inf))),
        _Case("empty-body", "an empty body", b""),
        _Case(
            "oversized-body",
            f"a body of {config.max_body_bytes} bytes",
            _oversized(document, config.max_body_bytes),
        ),
        _Case("wrong-content-type", "the valid request as text/plain", valid, "text/plain"),
        _Case("invalid-json", "the valid request cut in half", _cut(valid)),
        _Case("deeply-nested-json", f"a list nested {_NESTING:,} deep", nested),
    ]


def _cut(valid: bytes) -> bytes:
    half = valid[: max(len(valid) // 2, 1)]
    try:
        json.loads(half)
    except (ValueError, RecursionError):
        return half
    return b"{" + half  # half of a bare number is still a number


def _maybe(document: Any) -> bytes | None:
    return None if document is None else _encode(document)


def _run_cases(
    config: ProbeConfig, target: _Target, document: Any, valid: bytes, deadline: float
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    crashed_after: str | None = None
    for case in _malformed(config, document, valid):
        entry: dict[str, Any] = {"case": case.name, "description": case.description}
        if crashed_after is not None or case.body is None:
            reason = (
                f"not sent: the server stopped answering after {crashed_after}"
                if crashed_after is not None
                else "not sent: the payload's format has no such part"
            )
            results.append(entry | {"outcome": "skipped", "status": None, "detail": reason})
            continue
        answer = _post(
            target,
            case.body,
            case.content_type,
            _budget(config, deadline),
            wait_early=len(case.body) > _EARLY_ANSWER_ABOVE,
        )
        outcome = _outcome(answer)
        entry |= {
            "outcome": outcome,
            "status": answer.status,
            "failure": answer.failure,
            "detail": answer.detail,
            "bytes_sent": len(case.body),
            "seconds": round(answer.seconds, 3),
        }
        if outcome != "crash":
            check = _post(target, valid, "application/json", _budget(config, deadline))
            if check.failure is not None or not (check.status and 200 <= check.status < 300):
                # Whatever this request got, the server is gone for everyone now.
                entry["after"] = f"a valid request then got {_failure_text(check)}"
                entry["outcome"] = "crash"
                crashed_after = case.name
        else:
            crashed_after = case.name
        results.append(entry)
    return results


def _outcome(answer: _Answer) -> CaseOutcome:
    if answer.failure == "timeout":
        return "timeout"
    if answer.failure in ("refused", "unreachable"):
        return "crash"  # it answered the valid request just before
    if answer.failure is not None or answer.status is None:
        return "no-answer"
    if answer.status >= 500:
        return "server-error"
    if answer.status >= 400:
        return "rejected"
    return "accepted"


def _rows(document: Any) -> list[Any] | None:
    """The rows of a scoring request (in place), or None for a format the probe does not know."""
    if not isinstance(document, dict):
        return None
    split = document.get("dataframe_split")
    if isinstance(split, dict) and isinstance(split.get("data"), list):
        rows: list[Any] = split["data"]
        return rows
    for key in ("dataframe_records", "instances", "inputs"):
        value = document.get(key)
        if isinstance(value, list):
            return value
    return None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _map(value: Any, change: Callable[[Any], Any], wanted: Callable[[Any], bool]) -> Any:
    """`value` with `change` applied to every leaf `wanted` picks, recursively."""
    if isinstance(value, list):
        return [_map(v, change, wanted) for v in value]
    if isinstance(value, dict):
        return {k: _map(v, change, wanted) for k, v in value.items()}
    return change(value) if wanted(value) else value


def _in_rows(document: Any, change: Callable[[Any], Any]) -> Any:
    """A copy of the document with `change` applied to each row (or to the whole of a document
    in a format the probe does not know)."""
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if rows is None:
        return change(copied)
    rows[:] = [change(row) for row in rows]
    return copied


def _count(value: Any, wanted: Callable[[Any], bool]) -> int:
    found = 0

    def tally(leaf: Any) -> Any:
        nonlocal found
        found += 1
        return leaf

    _map(value, tally, wanted)
    return found


def _wrong_type(document: Any) -> Any:
    changed = _in_rows(document, lambda row: _map(row, lambda _: "not-a-number", _is_number))
    return changed if _count(document, _is_number) else None


def _special(document: Any, value: float) -> Any:
    """Each row's first number replaced by `value`."""
    if not _count(document, _is_number):
        return None

    def first(row: Any) -> Any:
        done = False

        def once(leaf: Any) -> Any:
            nonlocal done
            if done:
                return leaf
            done = True
            return value

        return _map(row, once, _is_number)

    return _in_rows(document, first)


def _drop_column(document: Any) -> Any:
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if not rows:
        return None
    split = copied.get("dataframe_split") if isinstance(copied, dict) else None
    if isinstance(split, dict) and isinstance(split.get("columns"), list) and split["columns"]:
        split["columns"] = split["columns"][:-1]
    for index, row in enumerate(rows):
        if isinstance(row, list) and row:
            rows[index] = row[:-1]
        elif isinstance(row, dict) and row:
            rows[index] = dict(list(row.items())[:-1])
        else:
            return None  # a scalar row has no column to leave out
    return copied


def _add_column(document: Any) -> Any:
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if not rows:
        return None
    split = copied.get("dataframe_split") if isinstance(copied, dict) else None
    if isinstance(split, dict) and isinstance(split.get("columns"), list):
        split["columns"] = [*split["columns"], _EXTRA_COLUMN]
    for index, row in enumerate(rows):
        if isinstance(row, list):
            rows[index] = [*row, 0.5]
        elif isinstance(row, dict):
            rows[index] = row | {_EXTRA_COLUMN: 0.5}
        else:
            return None
    return copied


def _oversized(document: Any, size: int) -> bytes:
    """A request of at least `size` bytes: its rows repeated (a huge batch), padded with
    whitespace (valid JSON) to exactly `size` when that falls short or the format is unknown."""
    copied = copy.deepcopy(document)
    rows = _rows(copied)
    if rows:
        one = len(_encode(rows[0])) + 2
        repeat = max(size // max(one * len(rows), 1), 1)
        rows[:] = rows * repeat
        while len(_encode(copied)) > size and len(rows) > 1:
            del rows[len(rows) // 2 :]  # the estimate overshot (short rows): halve and pad
    body = _encode(copied)
    return body + b" " * (size - len(body)) if len(body) < size else body


# -- stability -----------------------------------------------------------------------------------


def _is_float(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _stability(
    config: ProbeConfig, target: _Target, documents: list[Any], deadline: float
) -> dict[str, Any]:
    rng = random.Random(config.seed)  # noqa: S311 (noise on features, not a secret)
    baselines: dict[int, list[Any]] = {}
    compared = stable = errors = perturbed_values = 0
    failures: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    for index in range(config.perturbations):
        line = index % len(documents)
        document = documents[line]
        if not _count(document, _is_float):
            continue
        if line not in baselines:
            answer = _post(target, _encode(document), "application/json", _budget(config, deadline))
            _require_valid(target, answer, line + 1, reachable=False)
            baselines[line] = _predictions(answer, line + 1)
        expected = baselines[line]

        def noisy(value: Any) -> Any:
            return value * (1 + config.noise * rng.gauss(0.0, 1.0))

        changed = _in_rows(document, lambda row: _map(row, noisy, _is_float))
        perturbed_values += _count(document, _is_float)
        answer = _post(target, _encode(changed), "application/json", _budget(config, deadline))
        compared += len(expected)
        if answer.failure is not None or not (answer.status and 200 <= answer.status < 300):
            errors += 1
            key = _failure_text(answer)
            failures[key] = failures.get(key, 0) + 1
            continue
        try:
            got = _predictions(answer, line + 1)
        except _Invalid:
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


def _predictions(answer: _Answer, line: int) -> list[Any]:
    """The per-row predictions of an answer: its `predictions` list (MLflow), or the answer."""
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        raise _Invalid(
            f"valid payload request {line} was answered with no JSON: {answer.detail}"
        ) from None
    if isinstance(document, dict) and "predictions" in document:
        document = document["predictions"]
    return document if isinstance(document, list) else [document]


def _same(before: Any, after: Any, tolerance: float) -> bool:
    if after is _MISSING:
        return False
    if isinstance(before, float) or isinstance(after, float):
        if not (_is_number(before) and _is_number(after)):
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


# -- HTTP ----------------------------------------------------------------------------------------


def _post(
    target: _Target,
    body: bytes,
    content_type: str | None,
    timeout: float,
    *,
    wait_early: bool = False,
) -> _Answer:
    """POST `body`; the answer, or how it failed. Never takes much longer than `timeout`: a
    watchdog shuts the socket down when the time is up, whatever the server does."""
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
        if target.https
        else http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    )
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, stop)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    try:
        connection.putrequest("POST", target.path, skip_accept_encoding=True)
        if content_type is not None:
            connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Accept", "application/json")
        connection.putheader("Connection", "close")
        connection.endheaders()
        _send_body(connection, body, started + timeout, wait_early)
        response = connection.getresponse()
        data = response.read(_ANSWER_KEPT)
        return _Answer(response.status, None, _detail(data), data, time.monotonic() - started)
    except TimeoutError:
        return _failed("timeout", f"no answer within {timeout:g} s", started)
    except ConnectionRefusedError as exc:
        return _failed("refused", exc.strerror or "connection refused", started)
    except (ConnectionError, http.client.IncompleteRead) as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed(
            "reset", f"connection closed without an answer: {type(exc).__name__}", started
        )
    except http.client.HTTPException as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed("bad-answer", f"not an HTTP answer: {type(exc).__name__}", started)
    except OSError as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed("unreachable", exc.strerror or type(exc).__name__, started)
    finally:
        watchdog.cancel()
        connection.close()


def _send_body(
    connection: http.client.HTTPConnection, body: bytes, deadline: float, wait_early: bool
) -> None:
    """Send the body in chunks; stop when the server answers (or closes) before the end."""
    sock = connection.sock
    if sock is None or not body:
        return
    if wait_early:
        left = deadline - time.monotonic()
        wait = max(min(_EARLY_ANSWER_WAIT_S, _EARLY_ANSWER_SHARE * left), 0)
        if select.select([sock], [], [], wait)[0]:
            return
    view = memoryview(body)
    try:
        for start in range(0, len(body), _CHUNK):
            if select.select([sock], [], [], 0)[0]:
                return  # an early answer: read it rather than push on into a reset
            sock.sendall(view[start : start + _CHUNK])
    except (BrokenPipeError, ConnectionResetError):
        return  # the server stopped reading; its answer, if any, is read next


def _failed(failure: Failure, detail: str, started: float) -> _Answer:
    return _Answer(None, failure, detail, b"", time.monotonic() - started)


def _detail(data: bytes) -> str:
    text = " ".join(data[: _DETAIL * 4].decode("utf-8", "replace").split())
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def _failure_text(answer: _Answer) -> str:
    if answer.failure is None:
        return f"HTTP {answer.status}"
    return answer.detail


# -- evidence ------------------------------------------------------------------------------------


def _evidence(
    context: RunContext,
    started: datetime,
    config: ProbeConfig,
    *,
    reason: str | None = None,
    cases: list[dict[str, Any]] | None = None,
    stability: dict[str, Any] | None = None,
) -> Evidence:
    metrics: dict[str, ev.MetricValue] = {}
    findings: list[Finding] = []
    data: dict[str, Any] = {
        "url": config.url,
        "path": config.path,
        "payload": config.payload,
        "request_timeout_s": config.request_timeout,
        "noise": config.noise,
        "tolerance": config.tolerance,
        "seed": config.seed,
    }
    if cases is not None:
        run = [c for c in cases if c["outcome"] != "skipped"]
        metrics = {
            "cases": len(cases),
            "cases_run": len(run),
            "rejected": sum(1 for c in run if c["outcome"] == "rejected"),
            "accepted_garbage": sum(1 for c in run if c["outcome"] == "accepted"),
            "server_failures": sum(1 for c in run if c["outcome"] in BROKE),
            "perturbations": stability["perturbations"] if stability else 0,
            "compared_predictions": stability["compared_predictions"] if stability else 0,
            "stable_predictions": stability["stable_predictions"] if stability else 0,
            "stability_rate": stability["stability_rate"] if stability else None,
            "perturbation_failures": stability["failed_requests"] if stability else 0,
        }
        data["cases"] = cases
        if stability is not None:
            data["stability"] = stability
        elif config.perturbations:
            data["stability_skipped"] = "the server crashed on a malformed request"
        for case in run:
            severity = _SEVERITY.get(case["outcome"])
            if severity is not None:
                findings.append(_finding(case, severity))
        if stability and stability["failed_requests"]:
            failures = ", ".join(f"{k}: {n}" for k, n in stability["failures"].items())
            findings.append(
                Finding(
                    id="probe:perturbation",
                    severity="medium",
                    rule="probe-perturbation-failed",
                    title="perturbed valid requests failed",
                    message=f"{stability['failed_requests']} of {stability['perturbations']} "
                    f"slightly perturbed valid requests failed ({failures})",
                )
            )
    return Evidence(
        stage=ProbeStage.name,
        status="error" if reason is not None else "passed",
        reason=reason,
        started_at=started,
        finished_at=ev.now(),
        metrics=metrics,
        findings=findings,
        data=data,
        provenance=ev.collect_provenance(context.config_digest, {}),
    )


def _finding(case: dict[str, Any], severity: ev.Severity) -> Finding:
    outcome = case["outcome"]
    what = {
        "crash": "stopped the server answering",
        "server-error": "got a server error",
        "timeout": "hung the server",
        "no-answer": "got no answer",
        "accepted": "was accepted",
    }[outcome]
    after = f"; {case['after']}" if case.get("after") else ""
    return Finding(
        id=f"probe:{case['case']}",
        severity=severity,
        rule=f"probe-{outcome}",
        title=f"malformed request {case['case']} {what}",
        message=f"{case['description']}: {_answered(case)}{after}",
        detail=case.get("detail") or None,
    )


def _answered(case: dict[str, Any]) -> str:
    status, failure = case.get("status"), case.get("failure")
    if case.get("outcome") == "skipped":
        return str(case.get("detail") or "not sent")
    answer = f"HTTP {status}" if isinstance(status, int) else str(case.get("detail") or failure)
    if case.get("outcome") == "crash":
        answer += ", then the server stopped answering"
    return answer


def _judged(evidence: Evidence) -> tuple[list[dict[str, Any]], tuple[float, int] | None]:
    """The cases and (stability rate, predictions compared), once the evidence agrees with
    itself."""
    if evidence.status != "passed":
        raise _Invalid(f"evidence status '{evidence.status}' is not one the stage writes")
    cases = _cases(evidence)
    known = ("rejected", "accepted", *BROKE, "skipped")
    if not cases or any(
        not isinstance(c.get("case"), str) or c.get("outcome") not in known for c in cases
    ):
        raise _Invalid("evidence lacks a well-formed list of malformed requests")
    m = evidence.metrics
    if m.get("server_failures") != sum(1 for c in cases if c["outcome"] in BROKE):
        raise _Invalid("evidence's count of server failures does not match its requests")
    if m.get("accepted_garbage") != sum(1 for c in cases if c["outcome"] == "accepted"):
        raise _Invalid("evidence's count of accepted requests does not match its requests")
    rate, compared = m.get("stability_rate"), m.get("compared_predictions")
    if rate is None:
        return cases, None
    if (
        not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not 0 <= rate <= 1
        or type(compared) is not int
        or compared < 1
    ):
        raise _Invalid("evidence lacks a stability rate between 0 and 1 with its count")
    return cases, (float(rate), compared)


def _rule(rule: str, outcome: Outcome, reason: str) -> RuleResult:
    return RuleResult(stage=ProbeStage.name, rule=f"probe.{rule}", outcome=outcome, reason=reason)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _run(cases: list[dict[str, Any]]) -> int:
    return sum(1 for c in cases if c["outcome"] != "skipped")
