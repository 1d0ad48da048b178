"""Serve the iris model over HTTP with MLflow's scoring protocol (for the load stage).

    python serve.py --port 8080 [--host 127.0.0.1] [--delay-ms 5] [--cpu-ms 0.2] [--threads 1]

`GET /ping` answers 200 once the model is trained; `POST /invocations` takes
`{"dataframe_split": {"columns": [...], "data": [[...]]}}` or `{"instances": [[...]]}` (rows
as lists, or as objects keyed by feature name) and answers `{"predictions": [...]}`. Bad input
gets a 4xx with a JSON error, never a 5xx. `--delay-ms` adds a fixed wait to every prediction
(a sleep: an I/O-bound model), `--cpu-ms` a fixed amount of busy work holding the GIL (a bigger
model; precise to microseconds, where a sleep overshoots by the scheduler's wake-up time), and
`--threads N` lets only N predictions run at once (0: no limit), to model a slower or smaller
server; `--port 0` picks a free port. Prints `listening on http://HOST:PORT` when ready.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import model as iris

_MAX_BODY_BYTES = 1 << 20


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Scorer:
    """The trained model, behind the injected delay and the limit on concurrent predictions."""

    def __init__(self, delay_ms: float, threads: int, cpu_ms: float = 0.0) -> None:
        features, _, labels, _ = iris.split()
        self.model = iris.train(features, labels)
        self.delay_s = delay_ms / 1000
        self.cpu_s = cpu_ms / 1000
        self.slots: contextlib.AbstractContextManager[Any] = (
            threading.BoundedSemaphore(threads) if threads else contextlib.nullcontext()
        )

    def predict(self, rows: list[Any]) -> list[int]:
        with self.slots:
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.cpu_s:
                busy_until = time.perf_counter() + self.cpu_s
                while time.perf_counter() < busy_until:
                    pass
            try:
                predictions = iris.predict(self.model, rows)
            except (ValueError, TypeError, OverflowError) as exc:
                raise BadRequest(f"cannot score the rows: {exc}") from None
        return [int(p) for p in predictions]


def rows_of(document: Any) -> list[Any]:
    """The feature rows of a scoring request, in the model's column order."""
    if not isinstance(document, dict):
        raise BadRequest("the request must be a JSON object")
    formats = [key for key in ("dataframe_split", "instances") if key in document]
    if len(formats) != 1:
        raise BadRequest("the request needs exactly one of 'dataframe_split' or 'instances'")
    if formats[0] == "dataframe_split":
        frame = document["dataframe_split"]
        if not isinstance(frame, dict) or not isinstance(frame.get("data"), list):
            raise BadRequest("'dataframe_split' needs a 'data' list of rows")
        columns = frame.get("columns", list(iris.FEATURES))
        if not isinstance(columns, list) or sorted(map(str, columns)) != sorted(iris.FEATURES):
            raise BadRequest(f"'columns' must name the features {list(iris.FEATURES)}")
        order = [columns.index(name) for name in iris.FEATURES]
        rows = frame["data"]
        if not all(isinstance(row, list) and len(row) == len(columns) for row in rows):
            raise BadRequest(f"every row of 'data' needs {len(columns)} values")
        return [[row[i] for i in order] for row in rows]
    instances = document["instances"]
    if not isinstance(instances, list):
        raise BadRequest("'instances' must be a list of rows")
    if all(isinstance(row, dict) for row in instances):
        try:
            return [[row[name] for name in iris.FEATURES] for row in instances]
        except KeyError as exc:
            raise BadRequest(f"an instance lacks the feature {exc}") from None
    return instances


class Handler(BaseHTTPRequestHandler):
    # Keep-alive, as real model servers do: a load generator reuses its connections.
    protocol_version = "HTTP/1.1"
    server_version = "iris-serve/1"
    # An idle kept-alive connection gives its thread back after this many seconds.
    timeout = 30
    # Headers and body go out in separate writes: with Nagle's algorithm the body would wait
    # for the client's delayed ACK, adding about 40 ms to every answer.
    disable_nagle_algorithm = True
    scorer: Scorer

    def log_message(self, format: str, *args: Any) -> None:
        """One line per request would cost more than the prediction: stay quiet."""

    def _reply(self, status: int, document: object, close: bool = False) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, close: bool = False) -> None:
        code = "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR"
        self._reply(status, {"error_code": code, "message": message}, close)

    def do_GET(self) -> None:
        if self.path == "/ping":
            self._reply(200, {"status": "ok"})
        else:
            self._error(404, f"no such endpoint: GET {self.path}")

    def do_POST(self) -> None:
        if self.path != "/invocations":
            self._error(404, f"no such endpoint: POST {self.path}", close=True)
            return
        try:
            body = self._body()
            try:
                document = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}") from None
            predictions = self.scorer.predict(rows_of(document))
        except BadRequest as exc:
            # Only a 400 comes after the body was read; otherwise its unread bytes would be
            # taken for the next request on this connection.
            self._error(exc.status, str(exc), close=exc.status != 400)
            return
        except Exception as exc:  # a bug here, not bad input: say so, keep serving
            self._error(500, f"internal error: {type(exc).__name__}", close=True)
            raise
        self._reply(200, {"predictions": predictions})

    def _not_allowed(self) -> None:
        self._error(405, f"method {self.command} not allowed", close=True)

    do_PUT = do_DELETE = do_PATCH = _not_allowed

    def _body(self) -> bytes:
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise BadRequest("Content-Type must be application/json", 415)
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            length = -1
        if length < 0:
            raise BadRequest("a Content-Length header is required", 411)
        if length > _MAX_BODY_BYTES:
            raise BadRequest(f"the body must be at most {_MAX_BODY_BYTES} bytes", 413)
        return self.rfile.read(length)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Room for a burst of new connections: the default of 5 drops SYNs under open-loop load.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timed-out load request) is not the server's error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every prediction")
    parser.add_argument("--cpu-ms", type=float, default=0.0, help="busy work per prediction")
    parser.add_argument("--threads", type=int, default=0, help="concurrent predictions, 0: any")
    args = parser.parse_args()
    if args.delay_ms < 0 or args.cpu_ms < 0 or args.threads < 0:
        parser.error("--delay-ms, --cpu-ms and --threads must not be negative")

    class BoundHandler(Handler):
        scorer = Scorer(args.delay_ms, args.threads, args.cpu_ms)

    server = Server((args.host, args.port), BoundHandler)
    # SIGTERM (how a supervisor stops it) closes the socket like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
