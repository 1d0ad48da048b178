"""The container source on a real Docker engine: scripts/docker-engine.sh installs and starts
one (host network, no firewall changes) and provides the offline base image; the example's
Dockerfile is built and served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker  # type: ignore[import-untyped]
import pytest
from pydantic import ValidationError

from mlgate.serving import ServeSpec, ServingError, serve, server_metrics
from mlgate.serving.container import ContainerServer
from mlgate.serving.interface import ImageBuild

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "iris"
PAYLOAD = json.loads((EXAMPLE / "payloads.jsonl").read_text().splitlines()[0])
LABEL = "org.mlgate.serve"


@pytest.fixture
def ours(engine: Any) -> Iterator[set[str]]:
    """Checks that every container mlgate creates in the test is gone afterwards (others'
    containers on a shared engine are left out of it)."""
    before = _labelled(engine)
    yield before
    assert _labelled(engine) - before == set()


def _labelled(client: Any) -> set[str]:
    return {c.id for c in client.containers.list(all=True, filters={"label": LABEL})}


def post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url + "/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as reply:
        return json.loads(reply.read())


def built() -> ServeSpec:
    return ServeSpec(source="container", build=ImageBuild(context=str(EXAMPLE)))


def test_an_image_built_from_the_dockerfile_serves_measured_and_is_removed(
    engine: Any, ours: set[str]
) -> None:
    with serve(built()) as server:
        assert isinstance(server, ContainerServer)
        assert server.url.startswith("http://127.0.0.1:")
        assert post(server.url, PAYLOAD)["predictions"] == [1]
        assert engine.containers.get(server.container_id).status == "running"
        for _ in range(20):
            post(server.url, PAYLOAD)
    usage = server.resources()
    metrics = server_metrics(server)
    print("container:", server.image_digest, metrics)
    assert usage is not None and usage.image_digest == server.image_digest
    assert server.image_digest.startswith("sha256:")
    assert engine.images.get(server.image_digest).id == server.image_digest
    assert 0 < (metrics["cold_start_s"] or 0) < 60
    assert (metrics["server_peak_memory_bytes"] or 0) > 10_000_000  # python + scikit-learn
    assert (metrics["server_cpu_seconds"] or 0) > 0
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(server.container_id)


def test_a_named_image_with_a_command_gets_the_port(engine: Any, ours: set[str]) -> None:
    with serve(built()) as first:
        assert isinstance(first, ContainerServer)
    command = ["python3", "serve.py", "--host", "127.0.0.1", "--port", "{port}"]
    spec = ServeSpec(source="container", image=first.image_digest, command=command)
    with serve(spec) as server:
        assert post(server.url, PAYLOAD)["predictions"] == [1]
        assert isinstance(server, ContainerServer)
        assert server.image_digest == first.image_digest


def test_a_container_that_crashes_at_start_is_one_line_and_removed(
    engine: Any, ours: set[str]
) -> None:
    crash = "import sys; print('loading...'); print('model file is corrupt'); sys.exit(3)"
    spec = ServeSpec(
        source="container", image="mlgate/base:bookworm", command=["python3", "-c", crash]
    )
    with pytest.raises(ServingError) as caught, serve(spec):
        pass
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("container exited 3: model file is corrupt, before GET http")


def test_ctrl_c_inside_serve_still_removes_the_container(engine: Any, ours: set[str]) -> None:
    with pytest.raises(KeyboardInterrupt), serve(built()) as server:
        assert isinstance(server, ContainerServer)
        container_id = server.container_id
        assert engine.containers.get(container_id).status == "running"
        raise KeyboardInterrupt
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(container_id)


def test_a_missing_image_is_one_clear_error(engine: Any, ours: set[str]) -> None:
    spec = ServeSpec(source="container", image="mlgate/no-such-image:1", startup_timeout=30)
    expected = r"^image mlgate/no-such-image:1 is not on the engine"
    with pytest.raises(ServingError, match=expected), serve(spec):
        pass


def test_no_engine_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    where = f"unix://{tmp_path}/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", where)
    spec = ServeSpec(source="container", image="mlgate/base:bookworm")
    with (
        pytest.raises(ServingError, match=f"^no Docker engine at {re.escape(where)}: "),
        serve(spec),
    ):
        pass


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({}, "source container needs image or build"),
        ({"image": "a", "build": {"context": "."}}, "takes image or build, not both"),
        ({"image": "a", "model_uri": "models:/m/1"}, "does not use model_uri"),
        ({"build": {"dockerfile": "Dockerfile"}}, "context"),
    ],
)
def test_container_spec_validation(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServeSpec.model_validate({"source": "container"} | keys)


def test_other_sources_do_not_take_an_image() -> None:
    with pytest.raises(ValidationError, match="source url does not use image"):
        ServeSpec(source="url", url="http://127.0.0.1:1", image="a")


def test_locust_loads_the_model_in_a_container(engine: Any, ours: set[str], tmp_path: Path) -> None:
    from mlgate.stages.interface import RunContext
    from mlgate.stages.load.config import LoadConfig
    from mlgate.stages.load.stage import LoadStage

    config = LoadConfig(
        serve=built(),
        payload=str(EXAMPLE / "payloads.jsonl"),
        users=2,
        warmup=1,
        duration=3,
        timeout=120,
    )
    evidence = LoadStage().run(config, RunContext(tmp_path / "ev", None))
    assert evidence.status == "passed", evidence.reason
    assert evidence.metrics["errors"] == 0
    assert (
        isinstance(evidence.metrics["server_peak_memory_bytes"], int)
        and evidence.metrics["server_peak_memory_bytes"] > 0
    )
    assert str(evidence.data["serve"]["image_digest"]).startswith("sha256:")
