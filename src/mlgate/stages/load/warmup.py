"""Warm a freshly started server up until its latency settles, rather than for a fixed time.

A champion comparison on fresh servers starts a pair every round, and every start needs a
warm-up: its first answers are slow. Measured on the example's MLflow scoring server (a pair
started together, each sent one request after another, 2 busy cores): the first answer took
21-79 ms, 5-10 times the server's median, the next ones 1-3 times it, and from about the tenth
on the medians stopped falling; a fixed 2 s (or the default 5 s) of load per round spent most
of its time on a server that was warm already. So each server gets requests one after another
until its latency no longer falls — the median of its last few answers is not clearly below
the median of the few before — at the least a few requests, at most the time the stage allows
(a server that keeps getting faster, e.g. one compiling as it goes, gets all of it).
Both servers of a pair are warmed at once, one thread each, so neither waits idle while the
other warms, and both warm under the same conditions.
"""

from __future__ import annotations

import http.client
import itertools
import statistics
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

# The window the rule compares: the median of the last _WINDOW answers against the median of
# the _WINDOW before them.
_WINDOW = 5
# Settled when the last window's median is at least this share of the one before: no longer
# falling by more than the noise between medians of five answers on a busy machine.
_SETTLED_RATIO = 0.8
# Fewer requests than this never count as settled: the first answer alone was 5-10 times
# slower than the median, the next few still up to 3 times.
_MIN_REQUESTS = 2 * _WINDOW
_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Warmup:
    """One server's warm-up: how long it took, how many requests, whether its latency settled
    (False: the time allowed ran out first) and how many of them failed."""

    seconds: float
    requests: int
    settled: bool
    errors: int

    def as_dict(self) -> dict[str, object]:
        return {
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "settled": self.settled,
            "errors": self.errors,
        }


def settled(latencies: list[float]) -> bool:
    """Whether a server answering with these latencies (in order) is warm."""
    if len(latencies) < _MIN_REQUESTS:
        return False
    last = statistics.median(latencies[-_WINDOW:])
    before = statistics.median(latencies[-2 * _WINDOW : -_WINDOW])
    return last >= _SETTLED_RATIO * before


def warm_up(url: str, bodies: list[str], limit_s: float, request_timeout: float) -> Warmup:
    """POST `bodies` (round-robin) to `url`, one request after another, until the latency
    settles or `limit_s` seconds are over. A failed request counts and the warm-up goes on:
    whether the server works is for the measured load to show."""
    # Proxies from the environment are bypassed, as they are for the load itself.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    end = started + limit_s
    latencies: list[float] = []
    errors = 0
    for body in itertools.cycle(bodies):
        left = end - time.monotonic()
        if left <= 0 or settled(latencies):
            break
        # The url is http://127.0.0.1:PORT of a server mlgate started.
        request = urllib.request.Request(url, data=body.encode(), headers=_HEADERS)  # noqa: S310
        sent = time.perf_counter()
        try:
            with opener.open(request, timeout=min(request_timeout, left)) as reply:
                reply.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            errors += 1
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            # Refused, reset, timed out, or a reply cut short or garbled.
            errors += 1
        latencies.append((time.perf_counter() - sent) * 1000)
    return Warmup(time.monotonic() - started, len(latencies), settled(latencies), errors)


def warm_up_together(
    urls: Mapping[str, str], bodies: list[str], limit_s: float, request_timeout: float
) -> dict[str, Warmup]:
    """Warm every server (by name) at once, one thread each; their warm-ups by name."""
    done: dict[str, Warmup] = {}

    def one(name: str, url: str) -> None:
        try:
            done[name] = warm_up(url, bodies, limit_s, request_timeout)
        except Exception:  # a warm-up that broke is unsettled, not a crash
            done[name] = Warmup(0.0, 0, False, 1)

    threads = [
        threading.Thread(target=one, args=item, name=f"mlgate-warmup-{item[0]}")
        for item in urls.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {name: done[name] for name in urls}
