"""Servers started together (a champion comparison's pair each round): both start before
either is waited for, both are stopped whatever happens, and a failure names its server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mlgate.serving import ServeSpec
from mlgate.serving.together import ServerStartError, serve_together
from tests.test_serving import alive

# Healthy only once every server named in argv[3:] has started too (its file exists): a
# server waited for before the others are started would never answer 200.
PAIRED_SERVER = """
import http.server, pathlib, sys
port, directory, me, others = int(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
(directory / me).write_text("started")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = all((directory / other).exists() for other in others)
        self.send_response(200 if ready else 503)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def paired(tmp_path: Path, me: str, *others: str, **keys: object) -> ServeSpec:
    """A server whose processes carry the marker MLGATE_TEST_SERVER=<tmp_path's name>."""
    name, value = "MLGATE_TEST_SERVER", tmp_path.name
    command = [sys.executable, "-c", PAIRED_SERVER, "{port}", str(tmp_path), me, *others]
    return ServeSpec.model_validate(
        {"source": "command", "command": command, "env": {name: value}} | keys
    )


def test_a_pair_starts_together_and_is_stopped_after(tmp_path: Path) -> None:
    specs = {
        "candidate": paired(tmp_path, "candidate", "champion", startup_timeout=60),
        "champion": paired(tmp_path, "champion", "candidate", startup_timeout=60),
    }
    with serve_together(specs) as servers:
        assert list(servers) == ["candidate", "champion"]
        assert all(s.cold_start_s is not None and s.failure() is None for s in servers.values())
        running = list(servers.values())
    assert all(s.failure() is not None for s in running)  # stopped: their processes exited


def test_a_server_that_fails_is_named_and_the_other_is_stopped(tmp_path: Path) -> None:
    broken = ServeSpec(
        source="command", command=[sys.executable, "-c", "raise SystemExit(3)", "{port}"]
    )
    specs = {
        # Never healthy on its own: it waits for a server that never starts.
        "candidate": paired(tmp_path, "candidate", "nobody", startup_timeout=60),
        "champion": broken,
    }
    with pytest.raises(ServerStartError) as caught, serve_together(specs):
        pytest.fail("the pair should not have become healthy")
    assert caught.value.server == "champion"
    assert "exited 3" in str(caught.value)
    assert alive(f"MLGATE_TEST_SERVER={tmp_path.name}") == []  # the candidate was stopped


def test_a_server_that_cannot_start_stops_the_ones_already_started(tmp_path: Path) -> None:
    specs = {
        "candidate": paired(tmp_path, "candidate", startup_timeout=60),
        "champion": ServeSpec(
            source="command", command=["/no/such/server", "{port}"], startup_timeout=60
        ),
    }
    with pytest.raises(ServerStartError) as caught, serve_together(specs):
        pytest.fail("the pair should not have become healthy")
    assert caught.value.server == "champion"
    assert alive(f"MLGATE_TEST_SERVER={tmp_path.name}") == []
