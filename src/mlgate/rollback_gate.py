"""Which versions a rollback may move a stage to.

A rollback skips the quality gates, so it may only go back to what was good enough before:
a version that held this stage (the ledger has a promotion, auto-rollback or ordinary rollback
moving the stage to it), has a registered bundle, and is not blocked (a rollback or a failed
post-promotion check moved the stage away from it, and it has no newer bundle). Anything else
needs an override: a non-blank reason, given by someone who passes the production stage's
access rule, recorded in the ledger. These functions decide; the caller refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_HOLDING_KINDS = ("promotion", "rollback", "auto-rollback")


def previous_holder(records: list[dict[str, Any]], stage: str, current: str) -> tuple[bool, Any]:
    """(found, version) the stage held before it moved to `current` (None: it was unset)."""
    for record in reversed(records):
        if record.get("stage") == stage and record.get("to_version") == current:
            previous = record.get("from_version")
            return True, str(previous) if previous is not None else None
    return False, None


def held(records: list[dict[str, Any]], stage: str, version: str) -> bool:
    """Whether the ledger shows `version` holding `stage` — not through an override."""
    return any(
        record.get("stage") == stage
        and str(record.get("to_version")) == version
        and record.get("kind") in _HOLDING_KINDS
        and not record.get("override")
        for record in records
    )


def blocked(tags: Mapping[str, str], blocked_tag: str, digest_tag: str) -> bool:
    """Blocked: rolled away from with the bundle it still has (or had none)."""
    mark = tags.get(blocked_tag)
    if not mark:
        return False
    digest = tags.get(digest_tag)
    return digest is None or mark == digest


def why_not(
    records: list[dict[str, Any]],
    stage: str,
    version: str,
    tags: Mapping[str, str],
    blocked_tag: str,
    digest_tag: str,
) -> str | None:
    """Why `version` may not be rolled back to without an override, or None."""
    if not held(records, stage, version):
        return f"version {version} never held {stage} (per the ledger)"
    if blocked(tags, blocked_tag, digest_tag):
        return f"version {version} was rolled back from (blocked) and has no newer bundle"
    if not tags.get(digest_tag):
        return f"version {version} has no registered bundle"
    return None


def eligible(
    records: list[dict[str, Any]],
    stage: str,
    current: str,
    tags_of: Callable[[str], Mapping[str, str]],
    blocked_tag: str,
    digest_tag: str,
) -> list[str]:
    """Versions a rollback of `stage` may go to, newest holder first."""
    seen: list[str] = []
    for record in reversed(records):
        version = record.get("to_version")
        if record.get("stage") != stage or version is None or str(version) in seen:
            continue
        seen.append(str(version))
    return [
        v
        for v in seen
        if v != current and why_not(records, stage, v, tags_of(v), blocked_tag, digest_tag) is None
    ]
