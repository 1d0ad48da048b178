"""Start several model servers at once: a champion comparison on fresh servers starts a pair
every round, and a model server spends most of its start importing and loading, so starting
both together costs about the slower one's start rather than the sum (measured on 2 busy
cores: two `mlflow models serve` one after the other 27 s, together 18 s).

    with serve_together({"candidate": spec_a, "champion": spec_b}) as servers:
        ...  # servers["candidate"].url, servers["champion"].url

Each server's cold start is still its own (process start to its first healthy answer), but it
is measured while the other one starts too: on a small machine, higher than alone. They are
stopped together too, each stop waiting for its processes to exit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

from mlgate import process
from mlgate.serving import SOURCES, Server, ServeSpec, ServingError, ServingSource
from mlgate.serving import _sigterm_unwinds as sigterm_unwinds
from mlgate.serving import _wait_healthy as wait_healthy
from mlgate.serving.output import save


class ServerStartError(ServingError):
    """One of the servers could not start or never became healthy; `server` names it."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(message)
        self.server = server


@contextlib.contextmanager
def serve_together(
    specs: Mapping[str, ServeSpec],
    sources: Mapping[str, ServingSource] | None = None,
    logs: Mapping[str, Path] | None = None,
) -> Iterator[dict[str, Server]]:
    """Start the server of every spec (by name, in the mapping's order), wait until all are
    healthy, concurrently, and yield them by name. `sources` may replace the registered source
    of a name (e.g. an MLflow model prepared beforehand). The first server, in that order,
    that fails raises ServerStartError; whatever happens, every server started is stopped, and
    what it printed is appended to its log in `logs`, if named there."""
    chosen = dict(sources or {})
    servers: dict[str, Server] = {}
    with sigterm_unwinds():
        try:
            for name, spec in specs.items():
                source = chosen.get(name) or SOURCES[spec.source]
                deadline = time.monotonic() + spec.startup_timeout
                try:
                    servers[name] = source.start(spec, deadline)
                except ServingError as exc:
                    raise ServerStartError(name, str(exc)) from None
            _wait_all_healthy(servers, specs)
            yield servers
        finally:
            try:
                _stop_all(servers)
            finally:
                for name, server in servers.items():
                    printed = server.output()
                    log = (logs or {}).get(name)
                    if log is not None and printed is not None:
                        save(printed, log, f"output of the {specs[name].source} server")


def _stop_all(servers: Mapping[str, Server]) -> None:
    """Stop every server at once (each stop waits for its processes to exit), all of them
    even when one stop raises; then the first such error, as it is."""
    if not servers:
        return
    # The stops run in threads, where a signal cannot be ignored: ignored here instead.
    with (
        process.uninterrupted(),
        ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="mlgate-stop") as pool,
    ):
        stops = [pool.submit(server.stop) for server in servers.values()]
    for stop in stops:
        stop.result()


def _wait_all_healthy(servers: Mapping[str, Server], specs: Mapping[str, ServeSpec]) -> None:
    """Return once every server answers its health check; ServerStartError naming the one that
    failed (the first in order, when several failed before anyone looked). One thread per
    server, so each cold start is measured to the poll's resolution whatever the other does."""
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="mlgate-health") as pool:
        waits = {
            pool.submit(
                wait_healthy, server, specs[name], server_deadline(server, specs[name])
            ): name
            for name, server in servers.items()
        }
        done, _ = wait(waits, return_when=FIRST_EXCEPTION)
        failed = {waits[f]: e for f in done if (e := f.exception()) is not None}
        if failed:
            # The others need not go on starting: their waits end as they are stopped.
            for server in servers.values():
                server.stop()
            name = min(failed, key=list(servers).index)
            if not isinstance(failed[name], ServingError):
                raise failed[name]  # a defect, not a server's failure: as it is
            raise ServerStartError(name, str(failed[name]))


def server_deadline(server: Server, spec: ServeSpec) -> float:
    """When the server's start-up time is up, counted from its own start."""
    started = server.started_at if server.started_at is not None else time.monotonic()
    return started + spec.startup_timeout
