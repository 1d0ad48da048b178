"""HTTP for the probe: one POST, bounded by its timeout whatever the server does."""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal

from mlgate.stages.probe.config import ProbeConfig

Failure = Literal["timeout", "reset", "bad-answer", "refused", "unreachable"]


_CHUNK = 64 * 1024
# A body larger than this waits a moment after the headers for an early refusal (a 413 sent on
# the Content-Length alone), as curl does for Expect: 100-continue: a second, or a quarter of
# the request's time if that is less.
EARLY_ANSWER_ABOVE = 256 * 1024
_EARLY_ANSWER_WAIT_S = 1.0
_EARLY_ANSWER_SHARE = 0.25
_ANSWER_KEPT = 1 << 20  # bytes of an answer read
_DETAIL = 200  # characters of an answer kept in the evidence


class Invalid(Exception):
    """A probe that cannot be run or judged; the message is the one-line reason."""


@dataclass(frozen=True)
class Target:
    https: bool
    host: str
    port: int | None
    path: str
    shown: str  # the URL, for reasons


@dataclass(frozen=True)
class Answer:
    status: int | None
    failure: Failure | None
    detail: str  # one line: the answer's start, or what went wrong
    body: bytes
    seconds: float


def budget(config: ProbeConfig, deadline: float) -> float:
    left = deadline - time.monotonic()
    if left < 0.05:
        raise Invalid(f"probe did not finish within the stage timeout of {config.timeout:g} s")
    return min(config.request_timeout, left)


def require_valid(target: Target, answer: Answer, line: int, *, reachable: bool) -> None:
    """A valid request must be answered with a 2xx, or nothing the probe finds means much."""
    if answer.failure in ("refused", "unreachable") and reachable:
        raise Invalid(f"server unreachable: POST {target.shown} failed: {answer.detail}")
    if answer.failure is not None:
        raise Invalid(
            f"valid payload request {line} got {failure_text(answer)} from POST {target.shown}"
        )
    if answer.status is None or not 200 <= answer.status < 300:
        raise Invalid(
            f"valid payload request {line} answered HTTP {answer.status}: {answer.detail}"
        )


def post(
    target: Target,
    body: bytes,
    content_type: str | None,
    timeout: float,
    *,
    wait_early: bool = False,
) -> Answer:
    """POST `body`; the answer, or how it failed. Never takes much longer than `timeout`: a
    watchdog shuts the socket down when the time is up, whatever the server does."""
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(target.host, target.port, timeout=timeout)
        if target.https
        else http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    )
    expired = threading.Event()

    def stop() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, stop)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    try:
        connection.putrequest("POST", target.path, skip_accept_encoding=True)
        if content_type is not None:
            connection.putheader("Content-Type", content_type)
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Accept", "application/json")
        connection.putheader("Connection", "close")
        connection.endheaders()
        _send_body(connection, body, started + timeout, wait_early)
        response = connection.getresponse()
        data = response.read(_ANSWER_KEPT)
        return Answer(response.status, None, _detail(data), data, time.monotonic() - started)
    except TimeoutError:
        return _failed("timeout", f"no answer within {timeout:g} s", started)
    except ConnectionRefusedError as exc:
        return _failed("refused", exc.strerror or "connection refused", started)
    except (ConnectionError, http.client.IncompleteRead) as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed(
            "reset", f"connection closed without an answer: {type(exc).__name__}", started
        )
    except http.client.HTTPException as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed("bad-answer", f"not an HTTP answer: {type(exc).__name__}", started)
    except OSError as exc:
        if expired.is_set():
            return _failed("timeout", f"no answer within {timeout:g} s", started)
        return _failed("unreachable", exc.strerror or type(exc).__name__, started)
    finally:
        watchdog.cancel()
        connection.close()


def _send_body(
    connection: http.client.HTTPConnection, body: bytes, deadline: float, wait_early: bool
) -> None:
    """Send the body in chunks; stop when the server answers (or closes) before the end."""
    sock = connection.sock
    if sock is None or not body:
        return
    if wait_early:
        left = deadline - time.monotonic()
        wait = max(min(_EARLY_ANSWER_WAIT_S, _EARLY_ANSWER_SHARE * left), 0)
        if select.select([sock], [], [], wait)[0]:
            return
    view = memoryview(body)
    try:
        for start in range(0, len(body), _CHUNK):
            if select.select([sock], [], [], 0)[0]:
                return  # an early answer: read it rather than push on into a reset
            sock.sendall(view[start : start + _CHUNK])
    except (BrokenPipeError, ConnectionResetError):
        return  # the server stopped reading; its answer, if any, is read next


def _failed(failure: Failure, detail: str, started: float) -> Answer:
    return Answer(None, failure, detail, b"", time.monotonic() - started)


def _detail(data: bytes) -> str:
    text = " ".join(data[: _DETAIL * 4].decode("utf-8", "replace").split())
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def failure_text(answer: Answer) -> str:
    if answer.failure is None:
        return f"HTTP {answer.status}"
    return answer.detail
