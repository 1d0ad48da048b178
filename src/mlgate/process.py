"""Run a child command with a deadline, and take its whole process group down on the way out."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_GRACE_SECONDS = 5


@dataclass(frozen=True)
class Completed:
    exit_code: int | None
    problem: str | None  # why the command could not run to completion, if it could not


def run(command: Sequence[str], cwd: Path, timeout: float) -> Completed:
    """Run `command` with inherited stdout/stderr; never raises for a command that fails."""
    try:
        child = subprocess.Popen(list(command), cwd=cwd, start_new_session=True)
    except FileNotFoundError:
        return Completed(None, f"command not found: {command[0]}")
    except PermissionError:
        return Completed(None, f"command is not executable: {command[0]}")
    except NotADirectoryError:
        return Completed(None, f"working directory is not a directory: {cwd}")
    try:
        return Completed(child.wait(timeout=timeout), None)
    except subprocess.TimeoutExpired:
        _stop(child)
        return Completed(None, f"command timed out after {timeout:g} s: {' '.join(command)}")
    except KeyboardInterrupt:
        _stop(child)
        raise


def _stop(child: subprocess.Popen[bytes]) -> None:
    # The child leads its own session, so the signal reaches everything it started.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=_GRACE_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
