"""The ledger's hash chain: each record carries the digest of the record before it.

A record is stored as canonical JSON text; its digest is "sha256:" + the sha256 of that text.
Record 1 carries GENESIS in CHAIN_FIELD, record n the digest of record n-1, and the model tag
HEAD_TAG holds "<n>:<digest of record n>" for the last record written. Reading checks every
link and the head, so editing a record breaks the next record's link (or the head, for the
last one), and removing the last records leaves the head pointing past the end.

Ledgers written before the chain: records without CHAIN_FIELD at the start are a *legacy
prefix*, reported, not a break (only the last of them is protected, by the first chained record's
link). A record without CHAIN_FIELD after a chained one is a break, and so is a missing head
once any record is chained. The chain proves that the records were not edited one by one;
someone who can write registry tags can still rewrite the whole ledger consistently — the
copies (ledger/<model>.jsonl, the version tag mlgate.ledger.last, the GitHub deployments'
payloads) are what to compare against then.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from mlgate.registry.mlflow_registry import RegistryError

CHAIN_FIELD = "prev"
GENESIS = "sha256:" + "0" * 64
# Outside the record keys' prefix (mlgate.ledger.), which must hold only records.
HEAD_TAG = "mlgate.ledger_head"


@dataclass(frozen=True)
class ChainBreak:
    seq: int  # the record where the chain does not hold
    reason: str


@dataclass
class ChainReport:
    records: list[dict[str, Any]]
    legacy: int  # how many records at the start predate the chain
    breaks: list[ChainBreak] = field(default_factory=list)
    last_digest: str = GENESIS  # what the next record must carry

    def summary(self) -> str:
        """One line: the first break and how many, or nothing."""
        if not self.breaks:
            return ""
        first = self.breaks[0]
        more = f" (and {len(self.breaks) - 1} more)" if len(self.breaks) > 1 else ""
        return f"record {first.seq}: {first.reason}{more}"


class LedgerBroken(RegistryError):
    """The ledger's chain does not hold: a record was edited, replaced or removed."""

    def __init__(self, name: str, report: ChainReport) -> None:
        super().__init__(
            f"the ledger of {name} is broken at {report.summary()}: tampered with? "
            "(mlgate history shows where)"
        )
        self.report = report


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def link(record: dict[str, Any], chain: ChainReport) -> dict[str, Any]:
    """The record to append: it carries the digest of the last one."""
    return {k: v for k, v in record.items() if k != CHAIN_FIELD} | {CHAIN_FIELD: chain.last_digest}


def head_value(seq: int, text: str) -> str:
    return f"{seq}:{digest(text)}"


def verify(stored: list[tuple[str, dict[str, Any]]], head: str | None) -> ChainReport:
    """Check every link and the head; `stored` is each record's text and parsed form."""
    report = ChainReport(records=[record for _, record in stored], legacy=0)
    previous = GENESIS
    chained = False
    for seq, (text, record) in enumerate(stored, 1):
        carried = record.get(CHAIN_FIELD)
        if carried is None and not chained:
            report.legacy = seq
        elif carried is None:
            report.breaks.append(
                ChainBreak(seq, "carries no link to the record before it, which is chained")
            )
        elif carried != previous:
            what = "the chain's start" if seq == 1 else f"record {seq - 1}"
            report.breaks.append(
                ChainBreak(
                    seq,
                    f"its link does not match {what}: record {seq - 1} was edited, or "
                    f"record {seq} replaced",
                )
            )
            chained = True
        else:
            chained = True
        previous = digest(text)
    report.last_digest = previous
    _check_head(stored, head, report)
    return report


def _check_head(
    stored: list[tuple[str, dict[str, Any]]], head: str | None, report: ChainReport
) -> None:
    if head is None:
        # Fine for a legacy ledger only: once records are chained, a missing head would let
        # someone delete it and then the last records unnoticed.
        if any(CHAIN_FIELD in record for _, record in stored):
            report.breaks.append(ChainBreak(len(stored), "the head tag is missing"))
        return
    seq_text, _, head_digest = head.partition(":")
    if not seq_text.isdigit() or not head_digest:
        report.breaks.append(ChainBreak(len(stored), f"the head tag is unreadable: {head!r}"))
        return
    seq = int(seq_text)
    if seq > len(stored):
        report.breaks.append(
            ChainBreak(seq, f"the head names record {seq}, but the ledger ends at {len(stored)}")
        )
    elif seq >= 1 and digest(stored[seq - 1][0]) != head_digest:
        report.breaks.append(ChainBreak(seq, "it does not match the head's digest: edited"))
    report.breaks.sort(key=lambda b: b.seq)
