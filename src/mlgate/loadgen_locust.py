"""The load generator's locust side, imported in its child process alone (`mlgate.loadgen`).

Closed loop: locust users (the built-in scenario or a locustfile's), each sending its next request
when the previous one answered. Open loop: requests sent on schedule whatever the answers. Either
way every request is recorded here, not from locust's statistics.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from locust import User
    from locust.event import EventHook

from mlgate.loadgen import (
    IN_FLIGHT_LIMIT,
    UNFINISHED,
    LoadError,
    LoadSpec,
    Record,
    Result,
    read_payload,
    shown,
)

_HEADERS = {"Content-Type": "application/json"}
# The key under which an open-loop request carries its scheduled time through locust's
# request event to the listener that records it.
_SCHEDULED = "mlgate_scheduled_offset"
_TARGET = "mlgate_target"
# Time kept back from the child's budget to write its files before the stage gives up on it.
_WRITE_MARGIN_S = 1.0
_TASK_EXCEPTIONS_KEPT = 5


def _outcome(response: Any, exception: BaseException | str | None) -> tuple[bool, str]:
    """Success and outcome of one request as locust's request event describes it."""
    status = getattr(response, "status_code", None)
    if exception is None:
        return True, str(status) if isinstance(status, int) and status else "ok"
    if isinstance(status, int) and status >= 400:
        return False, str(status)
    # geventhttpclient wraps a timeout or reset in RetriesExceeded (even with retries off):
    # the error it wraps is the one that names the problem.
    exception = getattr(exception, "original", None) or exception
    # A locustfile may fire the event with a message instead of an exception.
    return False, type(exception).__name__ if isinstance(exception, BaseException) else "Failure"


class _FirstOnly(logging.Filter):
    """Lets each distinct message through once: locust logs a task's exception with its
    traceback every time the task runs, thousands of times a second with no wait time."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message in self.seen:
            return False
        self.seen.add(message)
        return True


def _load_locustfile(path: str) -> list[type[User]]:
    from locust.util.load_locustfile import is_user_class

    name = shown(Path(path))
    module_name = Path(path).stem
    # Like locust itself: the locustfile's own directory is importable, for its helpers.
    sys.path.insert(0, str(Path(path).parent))
    spec = importlib.util.spec_from_file_location(f"mlgate_locustfile_{module_name}", path)
    if spec is None or spec.loader is None:
        raise LoadError(f"locustfile {name} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import would: dataclasses and pickling look it up.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # anything a user's module raises is bad input
        raise LoadError(
            f"locustfile {name} failed to import: {type(exc).__name__}: {exc}"
        ) from None
    users = [value for value in vars(module).values() if is_user_class(value)]
    if not users:
        raise LoadError(f"locustfile {name} defines no User class")
    return users


def _builtin_user(spec: LoadSpec, bodies: list[str]) -> type[User]:
    from locust import FastHttpUser, constant, task

    # Users share one cycle, so all of them together post the payload lines in turn; greenlets
    # switch only on I/O, so next() needs no lock.
    cycle = itertools.cycle(bodies)

    class PayloadUser(FastHttpUser):
        # Closed loop: each user sends its next request as soon as the previous one answered.
        wait_time = constant(0)
        network_timeout = spec.request_timeout
        connection_timeout = spec.request_timeout

        @task
        def post(self) -> None:
            self.client.post(spec.path, data=next(cycle), headers=_HEADERS)

    return PayloadUser


def _closed_loop(
    spec: LoadSpec, users: list[type[User]], add: Callable[[Record], None], drain: float
) -> list[dict[str, Any]]:
    """Run the users; return the exceptions their tasks raised (count and message)."""
    import gevent  # type: ignore[import-untyped]  # gevent ships no type information
    import locust
    from locust.env import Environment

    def on_request(
        response_time: float,
        response: Any = None,
        exception: BaseException | str | None = None,
        **_: Any,
    ) -> None:
        # The event fires as the answer arrives, so the request started response_time ago.
        ok, outcome = _outcome(response, exception)
        offset = time.perf_counter() - started - response_time / 1000
        add(Record(offset, float(response_time), ok, outcome))

    logging.getLogger("locust.user.task").addFilter(_FirstOnly())
    # Counted here rather than read from the runner, whose record lacks the exception's type.
    task_errors: Counter[str] = Counter()

    def on_user_error(exception: BaseException, **_: Any) -> None:
        task_errors[f"{type(exception).__name__}: {exception}"] += 1

    # locust.events is the instance a locustfile's listeners (init, test_start, ...) hook into.
    environment = Environment(
        user_classes=users, events=locust.events, host=spec.url, stop_timeout=drain
    )
    runner = environment.create_local_runner()
    # locust's EventHook methods are unannotated.
    locust.events.init.fire(environment=environment, runner=runner, web_ui=None)  # type: ignore[no-untyped-call]
    locust.events.request.add_listener(on_request)  # type: ignore[no-untyped-call]
    locust.events.user_error.add_listener(on_user_error)  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    assert spec.users is not None  # closed loop
    runner.start(spec.users, spawn_rate=spec.users)
    gevent.sleep(spec.warmup + spec.duration)
    # Users finish the task they are in (up to `drain` seconds), then stop: a request that
    # started inside the measured window is measured, however long it takes.
    runner.quit()
    return [
        {"count": count, "message": message}
        for message, count in task_errors.most_common(_TASK_EXCEPTIONS_KEPT)
    ]


def _open_loop(
    spec: LoadSpec, bodies: list[str], add: Callable[[Record], None], drain: float
) -> None:
    """Send requests at constant scheduled times, whatever the server's answers do.

    Each latency runs from the request's scheduled time, not from when it was sent: a server
    that falls behind makes the client late, and that lateness is the server's queueing, which
    a closed loop (or a locust user with a wait time) would leave out of the statistics.
    """
    import gevent  # (mypy reports gevent's missing type information once, above)
    from gevent.pool import Pool  # type: ignore[import-untyped]  # no type information
    from locust.contrib.fasthttp import FastHttpSession
    from locust.event import Events

    assert spec.rate is not None  # open loop
    events = Events()  # type: ignore[no-untyped-call]  # unannotated in locust

    def on_request(
        response: Any = None,
        exception: BaseException | str | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        scheduled = float((context or {})[_SCHEDULED])
        target = int((context or {}).get(_TARGET, 0))
        ok, outcome = _outcome(response, exception)
        latency = (time.perf_counter() - started - scheduled) * 1000
        add(Record(scheduled, latency, ok, outcome, target))

    request_event: EventHook = events.request
    request_event.add_listener(on_request)  # type: ignore[no-untyped-call]  # unannotated
    urls = [spec.url, *spec.other_urls]
    sessions = [
        FastHttpSession(
            url,
            request_event,
            user=None,
            network_timeout=spec.request_timeout,
            connection_timeout=spec.request_timeout,
            # A retry would hide a failed request inside a slow one.
            max_retries=0,
            # One connection per request in flight: a smaller pool would queue requests in the
            # client and charge that to the server.
            concurrency=spec.max_in_flight,
        )
        for url in urls
    ]
    pool = Pool(spec.max_in_flight)
    unanswered: dict[int, tuple[float, int]] = {}
    cycle = itertools.cycle(bodies)

    def send(index: int, scheduled: float, target: int) -> None:
        sessions[target].request(
            "POST",
            spec.path,
            data=next(cycle),
            headers=_HEADERS,
            context={_SCHEDULED: scheduled, _TARGET: target},
        )
        del unanswered[index]

    end = spec.warmup + spec.duration
    # Every target gets `rate` requests per second; they take turns, one request each, and
    # every other cycle in reverse order (A B, B A, A B, ...): the first of a cycle was
    # measured ~5% faster in p95 than the second, a bias between identical servers.
    ticks_per_second = spec.rate * len(urls)
    started = time.perf_counter()
    for index in itertools.count():
        scheduled = index / ticks_per_second
        if scheduled >= end:
            break
        cycle_index, position = divmod(index, len(urls))
        target = position if cycle_index % 2 == 0 else len(urls) - 1 - position
        wait = started + scheduled - time.perf_counter()
        if wait > 0:
            gevent.sleep(wait)
        # When the client is late it sends at once: the lateness is in the latency already.
        if pool.full():
            add(Record(scheduled, 0.0, False, IN_FLIGHT_LIMIT, target))
            continue
        unanswered[index] = (scheduled, target)
        pool.spawn(send, index, scheduled, target)
    pool.join(timeout=drain)
    pool.kill()
    now = time.perf_counter() - started
    for scheduled, target in unanswered.values():
        add(Record(scheduled, (now - scheduled) * 1000, False, UNFINISHED, target))


def run(spec: LoadSpec) -> tuple[list[Record], Result]:
    deadline = time.perf_counter() + spec.budget - _WRITE_MARGIN_S
    # First: locust patches the standard library with gevent as it is imported.
    import locust  # noqa: F401

    if spec.payload is not None:
        # A locustfile finds the configured payload here (the built-in scenario reads it too).
        os.environ["MLGATE_LOAD_PAYLOAD"] = spec.payload
    bodies = read_payload(Path(spec.payload)) if spec.payload else []
    # Loaded before the clock starts; the open loop sends the payload itself, without users.
    users: list[type[User]] = []
    if spec.locustfile:
        users = _load_locustfile(spec.locustfile)
    elif spec.rate is None:
        users = [_builtin_user(spec, bodies)]
    records: list[Record] = []
    cpu = time.process_time()
    started = time.perf_counter()
    # A request may take up to its timeout to answer; the drain never runs past the budget.
    left = deadline - started - spec.warmup - spec.duration
    drain = max(0.0, min(spec.request_timeout + 1, left))
    task_exceptions: list[dict[str, Any]] = []
    if spec.rate is not None:
        _open_loop(spec, bodies, records.append, drain)
    else:
        task_exceptions = _closed_loop(spec, users, records.append, drain)
    elapsed = time.perf_counter() - started
    cpu_percent = round(100 * (time.process_time() - cpu) / elapsed, 1) if elapsed else None
    records.sort(key=lambda r: r.offset_s)
    return records, Result(client_cpu_percent=cpu_percent, task_exceptions=task_exceptions)
