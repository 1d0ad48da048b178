"""Run a child command with a deadline, and take its whole process group down on the way out."""

from __future__ import annotations

import contextlib
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
        exit_code = child.wait(timeout=timeout)
        # Anything the command left running in its group (a server a test forgot) ends too.
        _signal_group(child.pid, signal.SIGKILL)
        return Completed(exit_code, None)
    except subprocess.TimeoutExpired:
        _stop(child)
        return Completed(None, f"command timed out after {timeout:g} s: {' '.join(command)}")
    except KeyboardInterrupt:
        _stop(child)
        raise


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group: SIGTERM, a grace period, then SIGKILL for
    whatever is left (a grandchild may ignore SIGTERM or outlive its parent)."""
    # A second Ctrl-C or SIGTERM while waiting must not skip the SIGKILL.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _signal_group(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=_GRACE_SECONDS)
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(group, sig)
