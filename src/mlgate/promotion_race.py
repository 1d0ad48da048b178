"""Racing promoters: the alias as it was when the promotion was decided.

Comparing the alias under the lock with what it was when the command *read* it lets a promoter
that was started at the same time as another, but got the CPU later (ten promoters on a loaded
runner), read the winner's version, take it for "current" and win too. So a promotion is
decided when it is started — the start of the `mlgate` process, or of the workflow run that
runs it in GitHub Actions (GitHub's record, once the run is proven) — and at the end, under the
registry lock, two things must hold: the alias is where it was read, and no ledger record moved
this stage after the decision (except the run's own records: one run may promote twice). Of N
promoters started together exactly one wins; the others are refused and must decide again. An
explicit `--expect-current` replaces both: the caller said which version it expects.

Clocks: the decision time and the ledger's `at` come from different machines' clocks (the
runner's, GitHub's); a clock that runs behind by more than the time between two promotions
can let a late promoter through. Ledger records written before microseconds were recorded
count as one second later than written (never earlier).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mlgate import actions_env

if TYPE_CHECKING:
    from mlgate.github.run_identity import VerifiedRun

_IMPORTED_AT = time.time()  # a fallback where the process start time cannot be read


def process_started_at() -> datetime:
    """When this process was started (Linux: from /proc, so a process that waited for the CPU
    still dates from its start); elsewhere, when mlgate was imported."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            # The command name (field 2) may hold spaces: count fields after its ")".
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime, in clock ticks after boot
        with open("/proc/stat", encoding="ascii") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        started = _IMPORTED_AT
    return datetime.fromtimestamp(started, timezone.utc)


@dataclass(frozen=True)
class Decided:
    at: datetime  # when the promotion was decided
    own_run: str | None = None  # the URL of the proven workflow run it runs in


def moved_since(
    records: list[dict[str, Any]], stage: str, decided_at: datetime, own_run: str | None = None
) -> dict[str, Any] | None:
    """The first ledger record that moved `stage` after `decided_at`, or None. Records of the
    promoter's own workflow run (`own_run`, its URL) do not count: the run made them itself."""
    for record in records:
        if record.get("stage") != stage or "at" not in record:
            continue
        if own_run is not None and record.get("run_url") == own_run:
            continue
        at = _recorded_at(record["at"])
        if at is None or at > decided_at:  # an unreadable time cannot prove "before"
            return record
    return None


def refusal(name: str, stage: str, record: dict[str, Any], decided_at: datetime) -> str:
    moved = f"{record.get('from_version') or 'no version'} -> {record.get('to_version') or 'none'}"
    return (
        f"{name}@{stage} moved after this promotion was decided "
        f"({decided_at.isoformat(timespec='milliseconds')}): {record.get('kind', 'a move')} "
        f"{moved} by {record.get('actor', '?')} at {record.get('at')}; another promotion won, "
        "nothing was changed — decide again (or give --expect-current)"
    )


def _recorded_at(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    if "." not in value:  # written with whole seconds: it may be up to a second later
        at += timedelta(seconds=1)
    return at


def decided(decided_at: datetime, run: VerifiedRun | None) -> Decided:
    """A promotion in a proven workflow run was decided when the run (attempt) started."""
    if run is None:
        return Decided(decided_at)
    started = min(decided_at, run.started_at) if run.started_at is not None else decided_at
    return Decided(started, actions_env.run_url())
