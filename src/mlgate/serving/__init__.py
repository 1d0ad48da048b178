"""Serving: start (or find) a model server, wait until it is healthy, measure it, stop it.

    from mlgate.serving import ServeSpec, serve, server_metrics

    with serve(ServeSpec(source="mlflow", model_uri="models:/iris@champion")) as server:
        ...  # load server.url
    metrics = server_metrics(server)  # cold_start_s, server_peak_memory_bytes, ...

Adding a source: write its module implementing `ServingSource` (see `interface`), add one
line to `SOURCES` and its name to `ServeSpec.source`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from mlgate.extensions import by_name
from mlgate.serving.command import CommandSource
from mlgate.serving.container import ContainerSource
from mlgate.serving.interface import (
    Resources,
    Server,
    ServeSpec,
    ServingError,
    ServingSource,
)
from mlgate.serving.mlflow_model import MlflowSource
from mlgate.serving.output import save
from mlgate.serving.url import UrlSource

__all__ = [
    "SOURCES",
    "Resources",
    "ServeSpec",
    "Server",
    "ServingError",
    "ServingSource",
    "serve",
    "server_metrics",
]

SOURCES: dict[str, ServingSource] = by_name(
    UrlSource(),
    CommandSource(),
    MlflowSource(),
    ContainerSource(),
)

# Short, so the cold start is measured to about this resolution.
_HEALTH_POLL_S = 0.1
_HEALTH_REQUEST_TIMEOUT_S = 2.0


@contextlib.contextmanager
def serve(spec: ServeSpec, log: Path | None = None) -> Iterator[Server]:
    """Start the server of `spec`, wait until GET `health_path` answers 200 and yield it,
    with its `cold_start_s` set. Whatever happens — the server exits or never gets healthy
    (ServingError, with the tail of its output), the body raises, Ctrl-C or SIGTERM —
    everything started is stopped, and what it printed is appended to `log` if given."""
    deadline = time.monotonic() + spec.startup_timeout
    with _sigterm_unwinds():
        server = SOURCES[spec.source].start(spec, deadline)
        try:
            _wait_healthy(server, spec, deadline)
            yield server
        finally:
            try:
                server.stop()
            finally:
                printed = server.output()
                if log is not None and printed is not None:
                    save(printed, log, f"output of the {spec.source} server")


def server_metrics(server: Server, since: Resources | None = None) -> dict[str, float | None]:
    """What the load evidence records about the server: its cold start (s), peak memory
    (bytes) and CPU time (s), None where not measured. CPU time counts from the start, or
    from `since` (a `server.resources()` taken when the load began). Valid after the `with`."""
    usage = server.resources()
    cpu = None
    if usage is not None:
        cpu = round(usage.cpu_seconds - (since.cpu_seconds if since else 0.0), 3)
    return {
        "cold_start_s": None if server.cold_start_s is None else round(server.cold_start_s, 3),
        "server_peak_memory_bytes": None if usage is None else usage.peak_memory_bytes,
        "server_cpu_seconds": cpu,
    }


def _wait_healthy(server: Server, spec: ServeSpec, deadline: float) -> None:
    """Return once GET health_path answers 200; ServingError when the server's process exits
    first or the deadline passes."""
    url = server.url + spec.health_path
    # Proxies from the environment are bypassed, as they are for the load itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    last = "failed: no answer yet"
    answered = False
    while True:
        problem = server.failure()
        if problem:
            raise ServingError(f"{problem}, before GET {url} answered 200")
        left = deadline - time.monotonic()
        status: int | None = None
        try:
            with opener.open(url, timeout=max(0.1, min(_HEALTH_REQUEST_TIMEOUT_S, left))) as reply:
                status = reply.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except urllib.error.URLError as exc:
            reason = exc.reason
            why = (reason.strerror or str(reason)) if isinstance(reason, OSError) else str(reason)
            last = f"failed: {why}"
        except OSError as exc:  # a timeout or reset while reading the answer
            last = f"failed: {exc.strerror or type(exc).__name__}"
        if status == 200:
            _healthy(server, url)
            return
        if status is not None:
            answered, last = True, f"answered {status}"
        if time.monotonic() + _HEALTH_POLL_S >= deadline:
            break
        time.sleep(_HEALTH_POLL_S)
    if server.started_at is None and not answered:
        raise ServingError(f"server unreachable for {spec.startup_timeout:g} s: GET {url} {last}")
    # What it printed explains a server that never answered; one that answered said enough.
    tail = None if answered else server.output_tail()
    printed = f"; its output ends: {tail}" if tail else ""
    raise ServingError(
        f"server not healthy within {spec.startup_timeout:g} s: GET {url} {last}{printed}"
    )


def _healthy(server: Server, url: str) -> None:
    if server.started_at is not None:
        server.cold_start_s = time.monotonic() - server.started_at
    # The answer came, but from whom? A server that exited meanwhile did not give it.
    problem = server.failure()
    if problem:
        raise ServingError(f"{problem}, yet another process answers GET {url}")


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Let SIGTERM (a cancelled CI job) unwind like Ctrl-C, so the server is stopped rather
    than orphaned. Only where SIGTERM has its default action (the CLI installs the same) and
    in the main thread, the only one that may set handlers."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
