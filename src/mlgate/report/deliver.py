"""Delivering one report to every wanted sink: the local ones in order, and the one that mostly
waits on the network (GitHub) beside them, so its round trips hide their rendering time."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlgate.report.interface import Delivery, DeliveryFailed, ReportOptions, Sink
from mlgate.report.model import Report

_SWITCH_INTERVAL_S = 0.0002


@dataclass(frozen=True)
class Outcome:
    """What one sink did: a delivery, or the one line of why it could not."""

    sink: Sink
    delivery: Delivery | None = None
    failure: str | None = None


def deliver(report: Report, options: ReportOptions, sinks: Sequence[Sink]) -> Iterator[Outcome]:
    """Each wanted sink's outcome: the local sinks' in order as each finishes, then those of
    the sinks that wait on the network. Those run in threads started before the local sinks:
    a network sink's requests are still made one at a time (GitHub asks clients not to send
    them concurrently), and no local sink waits for one, so a network failure loses nothing
    written locally. An unexpected error in a sink is raised here, in the caller's thread,
    after the outcomes before it."""
    wanted = [sink for sink in sinks if sink.wanted(options)]
    # A response that arrives while a local sink renders waits for the interpreter lock for up
    # to the switch interval (5 ms): over 45 requests that would undo what running beside
    # gains, so the lock changes hands more often while both run.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    try:
        beside = {sink: _Beside(sink, report, options) for sink in wanted if sink.waits_on_network}
        for sink in wanted:
            if sink not in beside:
                yield _run(sink, report, options)
        for running in beside.values():
            yield running.outcome()
    finally:
        sys.setswitchinterval(interval)


def _run(sink: Sink, report: Report, options: ReportOptions) -> Outcome:
    try:
        return Outcome(sink, delivery=sink.deliver(report, options))
    except DeliveryFailed as exc:
        return Outcome(sink, failure=str(exc))


class _Beside:
    """A sink delivering in a daemon thread: an interrupted `mlgate report` exits without
    waiting for its requests (each has its own timeout anyway)."""

    def __init__(self, sink: Sink, report: Report, options: ReportOptions) -> None:
        self._result: Outcome | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._work, args=(sink, report, options), name=f"sink-{sink.name}", daemon=True
        )
        self._thread.start()

    def _work(self, sink: Sink, report: Report, options: ReportOptions) -> None:
        try:
            self._result = _run(sink, report, options)
        except BaseException as exc:  # handed to the caller's thread in outcome()
            self._error = exc

    def outcome(self) -> Outcome:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result
