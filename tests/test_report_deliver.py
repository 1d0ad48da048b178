"""Delivering to the sinks: local ones in order, the network one beside them (report/deliver.py)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import ClassVar, cast

import pytest

from mlgate.config import ReportConfig
from mlgate.report.deliver import deliver
from mlgate.report.interface import Delivery, DeliveryFailed, ReportOptions, Sink
from mlgate.report.model import Report

REPORT = cast(Report, object())  # these sinks never read it


def options(tmp_path: Path) -> ReportOptions:
    return ReportOptions(
        output_dir=tmp_path, settings=ReportConfig(), in_actions=True, local_only=False
    )


class Local(Sink):
    name: ClassVar[str] = "local"

    def __init__(self, log: list[str], label: str, then: threading.Event | None = None) -> None:
        self.log, self.label, self.then = log, label, then

    def wanted(self, options: ReportOptions) -> bool:
        return True

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        self.log.append(self.label)
        if self.then is not None:
            self.then.set()
        return Delivery(self.label)


class Network(Sink):
    name: ClassVar[str] = "network"
    waits_on_network = True

    def __init__(self, log: list[str], waits_for: threading.Event, error: Exception | None = None):
        self.log, self.waits_for, self.error = log, waits_for, error

    def wanted(self, options: ReportOptions) -> bool:
        return True

    def deliver(self, report: Report, options: ReportOptions) -> Delivery:
        # Returns only once the last local sink has delivered: proof that they ran meanwhile
        # (delivered one after another, this would give up after the guard's 30 s).
        seen = self.waits_for.wait(timeout=30)
        self.log.append(f"network saw the local sinks: {seen}")
        if self.error is not None:
            raise self.error
        return Delivery("published")


class Unwanted(Local):
    def wanted(self, options: ReportOptions) -> bool:
        return False


def test_the_network_sink_runs_beside_the_local_ones_and_outcomes_keep_the_sinks_order(
    tmp_path: Path,
) -> None:
    log: list[str] = []
    last_local = threading.Event()
    sinks = [
        Local(log, "files"),
        Unwanted(log, "never"),
        Local(log, "summary", then=last_local),
        Network(log, last_local),
    ]
    interval = sys.getswitchinterval()
    outcomes = list(deliver(REPORT, options(tmp_path), sinks))
    assert [o.delivery.done for o in outcomes if o.delivery] == ["files", "summary", "published"]
    assert log == ["files", "summary", "network saw the local sinks: True"]
    assert sys.getswitchinterval() == interval


def test_a_network_failure_is_one_outcome_and_loses_nothing_local(tmp_path: Path) -> None:
    log: list[str] = []
    done = threading.Event()
    failing = Network(log, done, error=DeliveryFailed("could not publish to GitHub: 502"))
    outcomes = list(deliver(REPORT, options(tmp_path), [failing, Local(log, "files", then=done)]))
    assert outcomes[0].delivery == Delivery("files")
    assert outcomes[1].failure == "could not publish to GitHub: 502"


def test_an_unexpected_error_beside_is_raised_in_the_callers_thread_after_earlier_outcomes(
    tmp_path: Path,
) -> None:
    log: list[str] = []
    done = threading.Event()
    broken = Network(log, done, error=RuntimeError("bug"))
    outcomes = deliver(REPORT, options(tmp_path), [Local(log, "files", then=done), broken])
    assert next(outcomes).delivery == Delivery("files")
    interval = sys.getswitchinterval()
    with pytest.raises(RuntimeError, match="bug"):
        next(outcomes)
    assert sys.getswitchinterval() >= interval
