"""Run a child command with a deadline, and take its whole process group down on the way out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlgate.errors import MlgateError

_GRACE_SECONDS = 5


@dataclass(frozen=True)
class Completed:
    exit_code: int | None
    problem: str | None  # why the command could not run to completion, if it could not


class CannotStart(MlgateError):
    """The command could not be started at all; the message says why."""


def start_group(
    command: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` as the leader of its own session and process group, so `stop_group`
    reaches everything it starts; stdin/stdout/stderr are inherited unless given."""
    try:
        return subprocess.Popen(
            list(command), cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True
        )
    except FileNotFoundError:
        raise CannotStart(f"command not found: {command[0]}") from None
    except PermissionError:
        raise CannotStart(f"command is not executable: {command[0]}") from None
    except NotADirectoryError:
        raise CannotStart(f"working directory is not a directory: {cwd}") from None


def run(command: Sequence[str], cwd: Path, timeout: float) -> Completed:
    """Run `command` with inherited stdout/stderr; never raises for a command that fails."""
    try:
        child = start_group(command, cwd)
    except CannotStart as exc:
        return Completed(None, str(exc))
    try:
        exit_code = child.wait(timeout=timeout)
        # Anything the command left running in its group (a server a test forgot) ends too.
        _signal_group(child.pid, signal.SIGKILL)
        return Completed(exit_code, None)
    except subprocess.TimeoutExpired:
        stop_group(child)
        return Completed(None, f"command timed out after {timeout:g} s: {' '.join(command)}")
    except KeyboardInterrupt:
        stop_group(child)
        raise


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group: SIGTERM, a grace period, then SIGKILL for
    whatever is left (a grandchild may ignore SIGTERM or outlive its parent). Also needed
    after the child exited by itself: its group may still hold its children."""
    # A second Ctrl-C or SIGTERM while waiting must not skip the SIGKILL. Only the main
    # thread may set signal handlers (and only it receives signals).
    signals = (
        (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is threading.main_thread()
        else ()
    )
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
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
