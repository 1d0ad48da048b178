"""What a report sink is: somewhere a report is delivered (files, terminal, job summary, GitHub).

A new sink is one module implementing `Sink` plus one line in `mlgate.report.sinks.SINKS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from mlgate.config import ReportConfig
from mlgate.report.model import Report


@dataclass(frozen=True)
class ReportOptions:
    output_dir: Path
    settings: ReportConfig
    in_actions: bool
    local_only: bool
    github_token: str | None = None
    pr_number: int | None = None
    sha: str | None = None
    write_delay: float = 1.0


@dataclass
class Delivery:
    """What a sink did, in one line, plus anything the user must know about."""

    done: str
    warnings: list[str] = field(default_factory=list)


class DeliveryFailed(Exception):
    """The sink could not deliver; the message is one line. Other sinks still run."""


class Sink(ABC):
    name: ClassVar[str]

    @abstractmethod
    def wanted(self, options: ReportOptions) -> bool:
        """Whether this sink applies to this run (e.g. only inside GitHub Actions)."""

    @abstractmethod
    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        """Deliver the report; raise DeliveryFailed with one line when it cannot."""
