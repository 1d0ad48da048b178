"""Run a child command with a deadline, and take its whole process group down on the way out.

`run` is the one runner of the commands stages run (tests, bench, the load generator): the
command's output still reaches the job log as it comes, and the last of it is kept, so a
command that fails says why in its evidence rather than only in a log nobody opens.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from mlgate.errors import MlgateError

_GRACE_SECONDS = 5
# How much of a command's output (stdout and stderr together) its evidence keeps: the end,
# where a runner prints its error or summary.
TAIL_LINES = 40
TAIL_BYTES = 4096
# How long the output is still read after the command ended: a grandchild outside its process
# group may hold the pipe open forever.
_DRAIN_SECONDS = 5
# The longest line of output a one-line reason quotes.
_QUOTED_CHARS = 200
# Colour codes (a runner forced to colour) and other control characters, left out of a reason.
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Completed:
    exit_code: int | None
    problem: str | None  # why the command could not run to completion, if it could not
    output_tail: str = ""  # the last TAIL_LINES lines (at most TAIL_BYTES) of its output

    def last_line(self) -> str:
        """The output's last non-blank line, shortened for a one-line reason ('' if none)."""
        plain = _CONTROL.sub("", self.output_tail.replace("\t", " "))
        lines = [line.strip() for line in plain.splitlines() if line.strip()]
        # What an interpreter prints while shutting down ("Exception ignored in: ...", and its
        # traceback) comes after the command's own last word and does not change its exit code.
        while (ignored := _ignored_exception_at_end(lines)) is not None:
            lines = lines[:ignored]
        if not lines:
            return ""
        line = lines[-1]
        return line if len(line) <= _QUOTED_CHARS else line[: _QUOTED_CHARS - 1] + "…"

    def explain(self, label: str, then: str | None = None) -> str:
        """A reason that leads with the command's own failure (why it stopped, or its exit
        code, and its last line of output), then what that left wrong (`then`). A command
        that exited 0 leaves `then` alone."""
        last = self.last_line()
        if self.problem:
            head = self.problem + (f"; its last output: {last}" if last else "")
            return f"{head} ({then})" if then else head
        if not self.exit_code:
            return then or f"{label} exited 0"
        head = f"{label} exited {self.exit_code}" + (f": {last}" if last else "")
        return f"{head} ({then})" if then else head

    def record(self, command: Sequence[str]) -> dict[str, object]:
        """What evidence keeps of the run: the command, its exit code and its output's tail."""
        return {"argv": list(command), "exit_code": self.exit_code, "output_tail": self.output_tail}


# The last line of a traceback: the exception's (qualified) name, and its message if any.
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(: .*)?")


def _ignored_exception_at_end(lines: list[str]) -> int | None:
    """Where a closing "Exception ignored in: ..." block starts, if the output ends with one:
    that line, maybe a traceback (frames: a 'File "..."' line, up to two lines of source and
    carets), and the exception's line, e.g. 'RuntimeError: greenlet is being finalized'."""
    start = next(
        (i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("Exception ignored ")),
        None,
    )
    if start is None:
        return None
    rest = lines[start + 1 :]
    if rest and not _EXCEPTION_LINE.fullmatch(rest[-1]):
        return None
    if len(rest) > 1 and rest[0] != "Traceback (most recent call last):":
        return None
    since_frame: int | None = None  # lines since the last 'File "..."' line
    for line in rest[1:-1]:
        if line.startswith('File "'):
            since_frame = 0
        elif since_frame is None or since_frame == 2:
            return None
        else:
            since_frame += 1
    return start


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
    """Run `command` in the environment as it is (never a PATH of mlgate's own), copying its
    stdout and stderr to this process's stdout as they come and keeping their tail; never
    raises for a command that fails."""
    try:
        child = start_group(command, cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except CannotStart as exc:
        return Completed(None, str(exc))
    assert child.stdout is not None
    tail = _Tail()
    copier = threading.Thread(target=_copy, args=(child.stdout, tail), daemon=True)
    copier.start()
    try:
        exit_code = child.wait(timeout=timeout)
        # Anything the command left running in its group (a server a test forgot) ends too.
        _signal_group(child.pid, signal.SIGKILL)
        copier.join(_DRAIN_SECONDS)
        return Completed(exit_code, None, tail.text())
    except subprocess.TimeoutExpired:
        stop_group(child)
        copier.join(_DRAIN_SECONDS)
        return Completed(
            None, f"command timed out after {timeout:g} s: {' '.join(command)}", tail.text()
        )
    except KeyboardInterrupt:
        stop_group(child)
        raise


class _Tail:
    """The last bytes of a stream, enough for TAIL_LINES lines of at most TAIL_BYTES."""

    def __init__(self) -> None:
        self._kept = bytearray()
        self._cut = False
        self._lock = threading.Lock()

    def add(self, chunk: bytes) -> None:
        with self._lock:
            self._kept += chunk
            excess = len(self._kept) - TAIL_BYTES
            if excess > 0:
                del self._kept[:excess]
                self._cut = True

    def text(self) -> str:
        with self._lock:
            lines = self._kept.decode("utf-8", errors="replace").splitlines()
            if self._cut and len(lines) > 1:
                lines = lines[1:]  # the first line kept lost its start
        return "\n".join(lines[-TAIL_LINES:])


def _copy(stream: IO[bytes], tail: _Tail) -> None:
    out = getattr(sys.stdout, "buffer", None)
    with stream:
        for chunk in iter(lambda: stream.read1(65536), b""):  # type: ignore[attr-defined]
            tail.add(chunk)
            # A closed (or absent) stdout must not stop the tail being kept.
            with contextlib.suppress(OSError, ValueError, AttributeError):
                if out is not None:
                    out.write(chunk)
                    out.flush()
                else:
                    sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                    sys.stdout.flush()


def stop_group(child: subprocess.Popen[bytes]) -> None:
    """Stop the child's whole process group: SIGTERM, a grace period, then SIGKILL for
    whatever is left (a grandchild may ignore SIGTERM or outlive its parent). Also needed
    after the child exited by itself: its group may still hold its children."""
    # A second Ctrl-C or SIGTERM while waiting must not skip the SIGKILL.
    with uninterrupted():
        _signal_group(child.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=_GRACE_SECONDS)
        _signal_group(child.pid, signal.SIGKILL)
        child.wait()


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM meanwhile, so stopping what was started is not cut short.
    Only the main thread may set signal handlers (and only it receives signals): elsewhere
    this changes nothing."""
    signals = (
        (signal.SIGINT, signal.SIGTERM)
        if threading.current_thread() is threading.main_thread()
        else ()
    )
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group may be gone already
        os.killpg(group, sig)
