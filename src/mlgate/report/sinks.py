"""The registry of report sinks, in delivery order: local first, so a GitHub failure loses
nothing. Adding a sink: write its module, add one line here."""

from __future__ import annotations

from mlgate.report.actions_summary import JobSummarySink
from mlgate.report.files import FilesSink
from mlgate.report.github_checks import GitHubSink
from mlgate.report.interface import Sink
from mlgate.report.terminal import TerminalSink

SINKS: tuple[Sink, ...] = (
    FilesSink(),
    TerminalSink(),
    JobSummarySink(),
    GitHubSink(),
)
