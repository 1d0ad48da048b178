"""Source `command`: a command that starts a server listening on 127.0.0.1 at the port it is
given. Also the local-process handling other sources reuse (`local_port`, `start_process`):
the server runs as the leader of its own process group, its output goes to a temporary file
(`output.ServerOutput`: its tail explains an early exit) and a thread (`sampling.Sampler`)
samples the group's memory and CPU time from /proc until it is stopped."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from mlgate import process
from mlgate.serving.interface import (
    Resources,
    Server,
    ServeSpec,
    ServingError,
    ServingSource,
    with_port,
)
from mlgate.serving.output import ServerOutput
from mlgate.serving.sampling import Sampler

HOST = "127.0.0.1"
# A SIGKILLed process is gone within milliseconds; this only bounds a pathological wait.
_GONE_TIMEOUT_S = 2.0


class CommandSource(ServingSource):
    name = "command"

    def start(self, spec: ServeSpec, deadline: float) -> Server:
        port = local_port(spec.port)
        return start_process(
            with_port(spec.argv(), port),
            port,
            Path(spec.working_directory),
            os.environ | spec.env,
        )


def local_port(wanted: int | None) -> int:
    """`wanted` when nothing listens on it at 127.0.0.1 (ServingError otherwise), or a free
    port when None. A port in use must fail here: its server would answer the health check."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers do, so a closed connection's socket (TIME_WAIT) does not count as in use.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, wanted or 0))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServingError(f"port {wanted} on {HOST} is already in use") from None
            raise ServingError(f"cannot use port {wanted} at {HOST}: {exc.strerror}") from None
        port: int = probe.getsockname()[1]
        return port


def start_process(argv: list[str], port: int, cwd: Path, env: Mapping[str, str]) -> ProcessServer:
    """Start a server process that will listen at `port`; ServingError if it cannot start."""
    if not cwd.is_dir():
        # Popen would blame the command (FileNotFoundError) for a missing directory.
        raise ServingError(f"working directory {cwd} is not a directory")
    # Outlives this function: the server writes to it until ProcessServer.stop closes it.
    output = ServerOutput()
    started = time.monotonic()
    try:
        child = process.start_group(
            argv, cwd, env=env, stdout=output.file, stderr=subprocess.STDOUT
        )
    except process.CannotStart as exc:
        output.close()
        raise ServingError(str(exc)) from None
    return ProcessServer(child, f"http://{HOST}:{port}", started, output)


class ProcessServer(Server):
    """A server process mlgate started, with everything in its process group."""

    def __init__(
        self, child: subprocess.Popen[bytes], url: str, started_at: float, output: ServerOutput
    ) -> None:
        super().__init__(url, started_at)
        self._child = child
        self._output = output
        self._usage = _GroupUsage(child.pid)
        self._sampler = Sampler(self._usage.sample, f"mlgate-serve-usage-{child.pid}")

    @property
    def pid(self) -> int:
        """The leader's process id, which is also the id of the process group."""
        return self._child.pid

    def failure(self) -> str | None:
        code = self._child.poll()
        if code is None:
            return None
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited {code}"
        tail = self._output.tail()
        return f"server {how}" + (f": {tail}" if tail else " (no output)")

    def output_tail(self) -> str | None:
        return self._output.tail()

    def output(self) -> bytes | None:
        return self._output.whole()

    def stop(self) -> None:
        if self._sampler.stopped:
            return
        try:
            # Its last look is before the processes (and their CPU times) are gone.
            self._sampler.stop()
        finally:
            process.stop_group(self._child)
            self._output.close()
        _wait_group_gone(self._child.pid)

    def resources(self) -> Resources | None:
        if not self._sampler.stopped:
            self._usage.sample()
        return self._usage.resources()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"signal {number}"


def _wait_group_gone(group: int) -> None:
    """Wait briefly until no process of the group runs: SIGKILL is delivered asynchronously,
    and a member whose leader exited is not waited for by stop_group."""
    end = time.monotonic() + _GONE_TIMEOUT_S
    while time.monotonic() < end and any(
        fields[0] not in "ZX" for _, fields in _processes_of_group(group)
    ):
        time.sleep(0.01)


class _GroupUsage:
    """Memory and CPU time of one process group, sampled from /proc (Linux; elsewhere nothing
    is measured). Peak memory is the highest sum of resident set sizes seen in one sample
    (pages shared between processes count once per process: an upper bound). CPU time is the
    sum over every process seen of its user + system time at its last sample, so a process
    that lived between two samples, or the time a process spent after its last sample, is
    missed."""

    _TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
    _PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")

    def __init__(self, group: int) -> None:
        self._group = group
        self._lock = threading.Lock()
        # (pid, start time) -> CPU ticks at its last sample; the start time tells a reused
        # pid from the process that had it before.
        self._cpu_ticks: dict[tuple[int, int], int] = {}
        self._peak_pages = 0

    def sample(self) -> None:
        pages = 0
        with self._lock:
            for pid, fields in _processes_of_group(self._group):
                utime, stime, start, rss = (int(fields[i]) for i in (11, 12, 19, 21))
                self._cpu_ticks[(pid, start)] = utime + stime
                pages += rss
            self._peak_pages = max(self._peak_pages, pages)

    def resources(self) -> Resources | None:
        with self._lock:
            if not self._cpu_ticks:
                return None
            return Resources(
                peak_memory_bytes=self._peak_pages * self._PAGE_BYTES,
                cpu_seconds=sum(self._cpu_ticks.values()) / self._TICKS_PER_SECOND,
            )


def _processes_of_group(group: int) -> Iterator[tuple[int, list[str]]]:
    """(pid, fields of /proc/PID/stat after the command name) of each process in `group`."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                text = stat.read().decode(errors="replace")
        except OSError:  # it ended since the listing
            continue
        # The command name is in parentheses and may itself hold spaces and parentheses.
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 21 and fields[2] == str(group):
            yield int(entry), fields
