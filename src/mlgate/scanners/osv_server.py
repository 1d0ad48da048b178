"""A local OSV-compatible HTTP endpoint on 127.0.0.1 serving an `OsvDatabase`, for tools that
only speak the OSV API (pip-audit), so an audit needs no network."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from mlgate.scanners.osv import PYPI, OsvDatabase


@contextlib.contextmanager
def serve(db: OsvDatabase) -> Iterator[str]:
    """Serve `db` as an OSV API on 127.0.0.1 (a free port, a background thread) and yield its
    base URL, e.g. "http://127.0.0.1:41234"; the query endpoint is that + "/v1/query".

    Answers POST /v1/query and POST /v1/querybatch as api.osv.dev does (PyPI only; queries by
    package name and version or by pkg:pypi purl), and GET /v1/vulns/<id>."""

    class Handler(_OsvHandler):
        database = db

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll interval: shutdown() waits for the next poll.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="osv-endpoint"
    )
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QueryError(Exception):
    pass


class _OsvHandler(BaseHTTPRequestHandler):
    database: ClassVar[OsvDatabase]
    protocol_version = "HTTP/1.1"  # keep-alive: pip-audit sends one request per package
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK, ~40 ms per package.
    disable_nagle_algorithm = True
    _MAX_BODY = 16 << 20

    def do_POST(self) -> None:
        try:
            query = self._json_body()
            if self.path == "/v1/query":
                self._send(200, self._query_response(query))
            elif self.path == "/v1/querybatch":
                self._send(200, self._batch_response(query))
            else:
                self._send_error(404, f"no such endpoint: {self.path}")
        except _QueryError as exc:
            self._send_error(400, str(exc))

    def do_GET(self) -> None:
        prefix = "/v1/vulns/"
        record_id = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
        if record_id and self.database.has(record_id):
            self._send(200, self.database.record_json(record_id))
        else:
            self._send_error(404, "Bug not found.")

    def _query_response(self, query: object) -> str:
        ids = self._query_ids(query)
        # osv.dev answers {} when nothing matches; pip-audit relies on that too.
        if not ids:
            return "{}"
        return '{"vulns":[' + ",".join(self.database.record_json(i) for i in ids) + "]}"

    def _batch_response(self, body: object) -> str:
        queries = body.get("queries") if isinstance(body, dict) else None
        if not isinstance(queries, list):
            raise _QueryError("expected {'queries': [...]}")
        results = []
        for query in queries:
            # The batch API returns ids and modification times only; clients fetch the rest.
            vulns = [
                {"id": i, "modified": self.database.modified(i)} for i in self._query_ids(query)
            ]
            results.append({"vulns": vulns} if vulns else {})
        return json.dumps({"results": results})

    def _query_ids(self, query: object) -> list[str]:
        if not isinstance(query, dict):
            raise _QueryError("a query must be a JSON object")
        package = query.get("package")
        if not isinstance(package, dict):
            raise _QueryError("a query needs a package")
        version = query.get("version")
        name = package.get("name")
        ecosystem = package.get("ecosystem")
        purl = package.get("purl")
        if isinstance(purl, str) and purl:
            match = re.fullmatch(r"pkg:pypi/([^@?#]+)(?:@([^?#]+))?(?:[?#].*)?", purl)
            if match is None:
                return []  # another ecosystem: not in this database
            name, version = match.group(1), match.group(2) or version
            ecosystem = PYPI
        if ecosystem != PYPI or not isinstance(name, str):
            return []
        if version is not None and not isinstance(version, str):
            raise _QueryError("version must be a string")
        return self.database.matching_ids(name, version)

    def _json_body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        if length > self._MAX_BODY:
            raise _QueryError("request body too large")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _QueryError(f"invalid JSON: {exc}") from None

    def _send(self, status: int, payload: str) -> None:
        body = payload.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"code": status, "message": message}))

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a scan's output is its findings, not an access log."""
