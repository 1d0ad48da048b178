"""The malformed requests, each sent and followed by a valid one, and what each got."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from mlgate.stages.probe.client import (
    EARLY_ANSWER_ABOVE,
    Answer,
    Target,
    budget,
    failure_text,
    post,
)
from mlgate.stages.probe.config import ProbeConfig
from mlgate.stages.probe.documents import (
    add_column,
    drop_column,
    encode,
    oversized,
    special,
    wrong_type,
)

CaseOutcome = Literal[
    "rejected", "accepted", "server-error", "timeout", "no-answer", "crash", "skipped"
]


# Outcomes where bad input broke the server (what policy no_5xx forbids).
BROKE = ("server-error", "timeout", "no-answer", "crash")


_NESTING = 100_000


@dataclass(frozen=True)
class _Case:
    name: str
    description: str
    body: bytes | None  # None: the payload's format cannot express this case
    content_type: str = "application/json"


def _malformed(config: ProbeConfig, document: Any, valid: bytes) -> list[_Case]:
    nested = b'{"instances": ' + b"[" * _NESTING + b"]" * _NESTING + b"}"
    return [
        _Case("wrong-type", "strings in place of numbers", _maybe(wrong_type(document))),
        _Case("missing-column", "a column left out", _maybe(drop_column(document))),
        _Case("extra-column", "an unknown column added", _maybe(add_column(document))),
        _Case("nan", "NaN for a number", _maybe(special(document, math.nan))),
        _Case("infinity", "Infinity for a number", _maybe(special(document, math.inf))),
        _Case("negative-infinity", "-Infinity for a number", _maybe(special(document, -math.inf))),
        _Case("empty-body", "an empty body", b""),
        _Case(
            "oversized-body",
            f"a body of {config.max_body_bytes} bytes",
            oversized(document, config.max_body_bytes),
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
    return None if document is None else encode(document)


def run_cases(
    config: ProbeConfig, target: Target, document: Any, valid: bytes, deadline: float
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
        answer = post(
            target,
            case.body,
            case.content_type,
            budget(config, deadline),
            wait_early=len(case.body) > EARLY_ANSWER_ABOVE,
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
            check = post(target, valid, "application/json", budget(config, deadline))
            if check.failure is not None or not (check.status and 200 <= check.status < 300):
                # Whatever this request got, the server is gone for everyone now.
                entry["after"] = f"a valid request then got {failure_text(check)}"
                entry["outcome"] = "crash"
                crashed_after = case.name
        else:
            crashed_after = case.name
        results.append(entry)
    return results


def _outcome(answer: Answer) -> CaseOutcome:
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
