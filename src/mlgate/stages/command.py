"""A stage's own command (tests, bench): run with its deadline, then the reports it must leave.

One copy of what the command-running stages share: the command runs through `process.run`
(deadline, whole process group killed), a reason leads with the command's own failure, and a
report the command did not write (missing, or left over from an earlier run) is an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlgate import evidence as ev
from mlgate import process
from mlgate.stages import reports


@dataclass
class StageCommand:
    command: list[str]  # empty: no command, the reports are only read
    workdir: Path
    label: str  # the command as reasons name it, e.g. "test command"
    ran: process.Completed | None = None

    def run(self, timeout: float) -> str | None:
        """Run the command, if there is one; why it could not run to completion, or None."""
        if not self.command:
            return None
        self.ran = process.run(self.command, self.workdir, timeout)
        return self.ran.explain(self.label) if self.ran.problem else None

    @property
    def exit_code(self) -> int | None:
        return self.ran.exit_code if self.ran else None

    def after(self, then: str) -> str:
        """A reason that leads with the command's own failure, if it ran, then `then`."""
        return self.ran.explain(self.label, then) if self.ran else then

    def reports(
        self,
        patterns: Sequence[str],
        noun: str,
        started: datetime,
        optional: Sequence[str] = (),
    ) -> tuple[list[Path], list[Path]] | str:
        """The report files the patterns name (each must name one) and those `optional`
        names; or why they cannot be used. After a command every one must be newer than
        `started`: reports left over from an earlier run would describe other code."""
        paths, missing = reports.expand(self.workdir, patterns)
        if missing:
            return self.after(f"no {noun} found at {', '.join(missing)}")
        extra, _ = reports.expand(self.workdir, optional)
        if self.command:
            stale = reports.older_than(paths + extra, started)
            if stale:
                return f"{noun} {stale[0]} was not written by the {self.label}"
        return paths, extra

    def evidence_parts(self) -> tuple[dict[str, ev.MetricValue], dict[str, object]]:
        """The metrics and data every such stage's evidence starts from: the command's exit
        code, and what it printed last, which says why it failed when its reports cannot."""
        metrics: dict[str, ev.MetricValue] = {"command_exit_code": self.exit_code}
        data: dict[str, object] = {"command": self.ran.record(self.command)} if self.ran else {}
        return metrics, data
